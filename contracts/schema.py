"""Export the JSON Schema of every message and an AsyncAPI document of the topics.

``python -m contracts.schema write`` rewrites ``contracts/schemas/``;
``python -m contracts.schema check`` exits 1 when the committed files differ
from what the code describes (the tests run the same check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.envelope import SCHEMA_VERSION
from contracts.registry import MESSAGE_TYPES, TOPIC_MESSAGES
from contracts.topics import DEAD_LETTER_TOPIC, TOPICS

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def message_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of each message, by message type."""
    return {
        name: cls.model_json_schema(mode="serialization")
        for name, cls in sorted(MESSAGE_TYPES.items())
    }


def asyncapi_document() -> dict[str, Any]:
    """Return an AsyncAPI 3.0 document: one channel per topic, its messages."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in TOPICS:
        key = spec.name.replace(".", "_")
        messages = {
            cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"}
            for cls in TOPIC_MESSAGES.get(spec.name, ())
        }
        if spec.name == DEAD_LETTER_TOPIC:
            messages = {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}}
        channels[key] = {
            "address": spec.name,
            "description": f"{spec.description} ({spec.partitions} partition"
            f"{'' if spec.partitions == 1 else 's'})",
            "messages": messages,
        }
        operations[f"receive_{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
        }
    components = {
        name: {
            "name": name,
            "title": name,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": f"./{name}.json"},
        }
        for name, cls in sorted(MESSAGE_TYPES.items())
    }
    components["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "DeadLetter",
        "summary": "A record no service could handle, with the reason.",
        "contentType": "application/json",
        "payload": {"$ref": "./DeadLetter.json"},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "al-platform messages",
            "version": str(SCHEMA_VERSION),
            "description": "Commands and events between the platform's services.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": components},
    }


def rendered_files() -> dict[str, str]:
    """Return every exported file's name and text."""
    from contracts.deadletter import DeadLetter

    files = {
        f"{name}.json": _dump(schema) for name, schema in message_schemas().items()
    }
    files["DeadLetter.json"] = _dump(DeadLetter.model_json_schema(mode="serialization"))
    files["asyncapi.json"] = _dump(asyncapi_document())
    return files


def drift(directory: Path = SCHEMA_DIR) -> list[str]:
    """Return the files in ``directory`` that differ from the code, or are extra."""
    wanted = rendered_files()
    present = (
        {p.name for p in directory.glob("*.json")} if directory.is_dir() else set()
    )
    stale = [
        name
        for name, text in wanted.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    return sorted(stale + [name for name in present if name not in wanted])


def write(directory: Path = SCHEMA_DIR) -> None:
    """Rewrite ``directory`` with the exported files, removing stale ones."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = rendered_files()
    for path in directory.glob("*.json"):
        if path.name not in wanted:
            path.unlink()
    for name, text in wanted.items():
        (directory / name).write_text(text)


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write or check the exported schemas."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["write", "check"])
    args = parser.parse_args(argv)
    if args.action == "write":
        write()
        return 0
    stale = drift()
    if stale:
        sys.stderr.write(
            "contracts/schemas is out of date (run `make contracts`): "
            + ", ".join(stale)
            + "\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
