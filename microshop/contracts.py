"""Integration events: what one service publishes and another consumes, as versioned contracts.

An event is an integration event when a consumer of another service declares it accepts it
(`topology.CONSUMER_QUEUES`), or a read model of another service folds it from the log
(`topology.LOG_READERS`). Each of its versions has a JSON Schema in
`docs/events/{Type}.v{N}.json`, generated from the producer's own class and checked in:
reviewers see a contract change in the diff, and `check()` fails when the producer's
class no longer matches the schema of the version it writes (a shape changed without a new
version) or when a consumer accepts a version that has no schema.

`microshop events schemas` prints the problems (exit 1); `--write` writes the schema of
each integration event's current version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from eventstore import EventRegistry, UnknownEventType
from eventstore import registry as default_registry

from .topology import CONSUMER_QUEUES, LOG_READERS, load_projections

__all__ = ["SCHEMAS", "accepted", "check", "schema_of", "schema_path", "write"]

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "events"


def accepted() -> dict[str, set[int]]:
    """Every integration event type and the versions some consumer or reader accepts."""
    found: dict[str, set[int]] = {}
    declared = [spec.accepts for spec in CONSUMER_QUEUES.values()]
    declared += [spec.accepts for spec in LOG_READERS.values()]
    for accepts in declared:
        for event_type, versions in accepts.items():
            found.setdefault(event_type, set()).update(versions)
    return found


def _without_descriptions(node: Any) -> Any:
    """Docstrings are no part of the contract: editing one must not look like a change."""
    if isinstance(node, dict):
        return {k: _without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


def schema_of(event_type: str, registry: EventRegistry = default_registry) -> dict[str, Any]:
    """The JSON Schema of the version of `event_type` this code writes."""
    version = registry.version_of(event_type)
    schema = _without_descriptions(msgspec.json.schema(registry.class_of(event_type)))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://microshop.local/events/{event_type}.v{version}.json",
        "title": f"{event_type} v{version}",
        **schema,
    }


def schema_path(event_type: str, version: int, root: Path = SCHEMAS) -> Path:
    return root / f"{event_type}.v{version}.json"


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def check(registry: EventRegistry = default_registry, root: Path = SCHEMAS) -> list[str]:
    """Every way the published schemas and the code disagree (none: they agree)."""
    load_projections()  # imports every service's events
    problems = []
    for event_type, versions in sorted(accepted().items()):
        try:
            current = registry.version_of(event_type)
        except UnknownEventType:
            problems.append(f"{event_type}: consumed, but no service registers it")
            continue
        path = schema_path(event_type, current, root)
        if not path.exists():
            problems.append(f"{event_type} v{current}: no schema at {path} (run --write)")
        elif path.read_text() != _text(schema_of(event_type, registry)):
            problems.append(
                f"{event_type} v{current}: the producer's class no longer matches {path.name}: "
                "a change to an event's shape needs a new SCHEMA_VERSION and an upcaster"
            )
        problems += [
            f"{event_type} v{v}: a consumer accepts it, but {schema_path(event_type, v, root)} "
            "does not exist"
            for v in sorted(versions)
            if not schema_path(event_type, v, root).exists()
        ]
    return problems


def write(registry: EventRegistry = default_registry, root: Path = SCHEMAS) -> list[Path]:
    """Write the schema of each integration event's current version (older ones stay)."""
    load_projections()
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type in sorted(accepted()):
        current = registry.version_of(event_type)
        path = schema_path(event_type, current, root)
        path.write_text(_text(schema_of(event_type, registry)))
        written.append(path)
    return written
