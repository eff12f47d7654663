"""Load every event type and projection the services define (for the CLI and tools)."""

from __future__ import annotations

import importlib
import importlib.util

from eventstore import Projection, projections

from .services import SERVICES

__all__ = ["load_projections"]


def _import_if_present(module: str) -> None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if found:
        importlib.import_module(module)


def load_projections() -> dict[str, Projection]:
    """Every registered projection by name, after importing each service's modules."""
    importlib.import_module("eventstore.streams")
    for module in SERVICES.values():
        package = module.rpartition(".")[0]
        _import_if_present(f"{package}.events")
        _import_if_present(f"{package}.projections")
    return dict(sorted(projections.items()))
