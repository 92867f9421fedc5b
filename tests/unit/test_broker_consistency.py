"""How the broker consistency check judges and reports what it read back."""

from __future__ import annotations

from typing import Any

from benchmarks.broker_consistency import _table, consistent


def _result(**changes: int) -> dict[str, Any]:
    kept = {
        "acknowledged": 400,
        "end_offset": 400,
        "missed_reading_along": 0,
        "lost_on_second_read": 0,
        "twice_on_second_read": 0,
    }
    return {**kept, **changes}


def test_a_partition_is_consistent_only_when_every_count_agrees() -> None:
    assert consistent(_result())
    assert not consistent(_result(end_offset=387))
    assert not consistent(_result(missed_reading_along=1))
    assert not consistent(_result(lost_on_second_read=1))
    assert not consistent(_result(twice_on_second_read=1))


def test_the_table_has_a_row_per_storage_with_its_verdict() -> None:
    results = {
        "machine": {"host": "vm", "cpus": 2, "date": "2026-12-04 23:30 UTC"},
        "rounds": 4,
        "s3": _result(end_offset=387, missed_reading_along=1),
        "memory": _result(),
    }
    table = _table(results, "python -m benchmarks.broker_consistency")
    assert "| s3 | 400 | 387 | 1 | 0 | 0 | no |" in table
    assert "| memory | 400 | 400 | 0 | 0 | 0 | yes |" in table
