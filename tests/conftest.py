"""Test-session fixtures: one real local stack, started and stopped here.

Integration and e2e tests share one stack on free loopback ports under a
temporary state folder, so `make test` needs no `make up` and never touches
a stack a developer is running.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.ports import stack_port_settings
from deploy.local.settings import LocalStackSettings
from deploy.local.stack import LocalStack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Start the whole local stack once per test session; stop it at the end."""
    state_dir = tmp_path_factory.mktemp("stack")
    settings = LocalStackSettings(
        state_dir=state_dir,
        trainers=2,
        startup_timeout_s=240,
        **stack_port_settings(),
    )
    stack = LocalStack(settings)
    try:
        stack.up()
    except BaseException:
        stack.down()
        raise
    yield stack
    stack.down()


@pytest.fixture
def unique() -> str:
    """Return a short name unique to this test, for topics, groups and prefixes."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def repo_root() -> Path:
    """Return the repository's top folder."""
    return Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: integration/ and e2e/ need the real stack."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
