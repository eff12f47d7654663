"""Reading the deployment files the way their tools do, for the tests that keep them in
agreement with the code: docker-compose.yml (`tests/unit/test_compose.py`) and the Kubernetes
manifests (`tests/unit/test_k8s.py`)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from eventstore.sealing import KeyEncryptionKeys

__all__ = [
    "COMPOSE_FILE",
    "IMAGE",
    "INTERPOLATION",
    "ROOT",
    "Service",
    "app_services",
    "command",
    "environment",
    "load_yaml",
    "microshop_services",
    "parse_env_file",
    "resolve",
]

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE = "microshop:latest"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)

Service = dict[str, Any]
"""One entry of a compose file's `services`."""


def load_yaml(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.relative_to(ROOT)} is not a YAML mapping"
    return data


def command(service: Service) -> list[str]:
    """A compose service's `command` as a list."""
    found = service.get("command", [])
    if isinstance(found, str):
        return shlex.split(found)
    assert isinstance(found, list), f"command must be a list or a string, not {found!r}"
    return [str(part) for part in found]


def environment(service: Service) -> dict[str, Any]:
    """A compose service's `environment` as a mapping."""
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    assert isinstance(env, dict), f"environment must be a mapping or a list, not {env!r}"
    return env


def app_services(services: dict[str, Service]) -> dict[str, Service]:
    """Compose services running `microshop serve NAME`."""
    return {key: svc for key, svc in services.items() if command(svc)[:1] == ["serve"]}


def microshop_services(services: dict[str, Service]) -> dict[str, Service]:
    """Compose services running the MicroShop image (the app services plus `migrate`)."""
    return {key: svc for key, svc in services.items() if svc.get("image") == IMAGE}


# What a user sets a required variable to, where any text will not do.
USER_SETS = {"PII_KEY_ENCRYPTION_KEY": KeyEncryptionKeys.generate()}


def resolve(value: str) -> str:
    """`value` as compose would interpolate it with an empty .env (required ones filled in)."""

    def substitute(match: re.Match[str]) -> str:
        op = match.group("op") or ""
        if "?" in op:
            return USER_SETS.get(match.group("name"), "set-by-the-user")
        return (match.group("arg") or "") if "-" in op else ""

    return INTERPOLATION.sub(substitute, value)


def parse_env_file(path: Path) -> list[tuple[str, str]]:
    """The NAME=value lines of an env file (.env.example, a kustomize generator's envs)."""
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    pairs = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        assert sep, f"{path.name}:{number}: not NAME=value: {raw!r}"
        pairs.append((name.strip(), value.strip()))
    return pairs
