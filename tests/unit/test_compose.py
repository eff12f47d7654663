"""docker-compose.yml, deploy/prometheus.yml and .env.example agree with the code.

No Docker needed: the files are read as YAML / text and checked against `microshop.config` and
`microshop.services`, the single source of service names, ports and environment variables.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from eventstore.sealing import KeyEncryptionKeys
from microshop.config import SERVICE_PORTS, Config, ConfigError
from microshop.services import available

BUILT = available()  # the services that exist so far; later ones join compose with their code

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
IMAGE = "microshop:latest"

# Variables compose may set in MicroShop containers although Config does not read them, each
# with its reason. Keep it empty: compose and the app read the same names.
COMPOSE_ONLY_ENV: dict[str, str] = {}

# Config variables whose compose default deliberately differs from Config's: name -> (the
# compose default, why). Everything else defaults to what the app does outside compose.
COMPOSE_DEFAULTS: dict[str, tuple[str, str]] = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": (
        "http://jaeger:4318",
        "the stack has Jaeger, so tracing is on in compose (off by default elsewhere)",
    ),
}

# Config variables compose deliberately leaves unset in the containers: every service listens on
# its default port, which the published ports, healthchecks and Prometheus targets spell out.
UNSET_IN_CONTAINERS = frozenset(env for env, _ in SERVICE_PORTS.values())

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)
HEALTH_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(?P<port>\d+)/health\b")
HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"

Service = dict[str, Any]


def _load_yaml(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.relative_to(ROOT)} is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE_FILE)
    assert isinstance(data.get("services"), dict), "docker-compose.yml has no services mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    found: dict[str, Service] = compose["services"]
    return found


def _command(service: Service) -> list[str]:
    command = service.get("command", [])
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list), f"command must be a list or a string, not {command!r}"
    return [str(part) for part in command]


def _environment(service: Service) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    assert isinstance(env, dict), f"environment must be a mapping or a list, not {env!r}"
    return env


def _app_services(services: dict[str, Service]) -> dict[str, Service]:
    """Compose services running `microshop serve NAME`."""
    return {key: svc for key, svc in services.items() if _command(svc)[:1] == ["serve"]}


def _microshop_services(services: dict[str, Service]) -> dict[str, Service]:
    """Compose services running the MicroShop image (the app services plus `migrate`)."""
    return {key: svc for key, svc in services.items() if svc.get("image") == IMAGE}


def _app_service(services: dict[str, Service], name: str) -> Service:
    assert name in services, (
        f"docker-compose.yml has no service {name!r}; every built service "
        f"(microshop.services.available()) needs one named like it (Prometheus and the other "
        f"services address it by that name)"
    )
    return services[name]


# What a user sets a required variable to, where any text will not do.
USER_SETS = {"PII_KEY_ENCRYPTION_KEY": KeyEncryptionKeys.generate()}


def _resolve(value: str) -> str:
    """`value` as compose would interpolate it with an empty .env (required ones filled in)."""

    def substitute(match: re.Match[str]) -> str:
        op = match.group("op") or ""
        if "?" in op:
            return USER_SETS.get(match.group("name"), "set-by-the-user")
        return (match.group("arg") or "") if "-" in op else ""

    return INTERPOLATION.sub(substitute, value)


def _published(entry: str | dict[str, Any]) -> tuple[int, int]:
    """(published, target) of one `ports:` entry, short or long syntax."""
    if isinstance(entry, dict):
        return int(entry["published"]), int(entry["target"])
    parts = str(entry).split("/")[0].rsplit(":", 2)
    assert len(parts) >= 2, f"port {entry!r} is not published to the host (want HOST:CONTAINER)"
    return int(parts[-2]), int(parts[-1])


def _parse_env_file(path: Path) -> list[tuple[str, str]]:
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


# -- (a) compose services are the microshop serve targets ----------------------------------------


def test_every_serve_command_names_a_service(services: dict[str, Service]) -> None:
    for key, svc in _app_services(services).items():
        command = _command(svc)
        assert len(command) == 2, f"{key}: command should be ['serve', NAME], not {command}"
        target = command[1]
        assert target in BUILT, (
            f"{key}: `microshop serve {target}` is not a built service; built: {BUILT}"
        )
        assert key == target, f"compose service {key!r} runs `serve {target}`: name them alike"


def test_every_service_has_exactly_one_compose_service(services: dict[str, Service]) -> None:
    targets = Counter(_command(svc)[1] for svc in _app_services(services).values())
    missing = sorted(set(BUILT) - set(targets))
    doubled = sorted(name for name, count in targets.items() if count > 1)
    assert not missing, f"no compose service runs `microshop serve` for: {missing}"
    assert not doubled, f"more than one compose service runs `microshop serve` for: {doubled}"


def test_one_image_built_once(services: dict[str, Service]) -> None:
    builders = sorted(key for key, svc in services.items() if "build" in svc)
    assert len(builders) == 1, f"exactly one service should build the image, not {builders}"
    assert services[builders[0]].get("image") == IMAGE, f"{builders[0]} must tag {IMAGE}"
    wrong = {
        key: svc.get("image")
        for key, svc in _app_services(services).items()
        if svc.get("image") != IMAGE
    }
    assert not wrong, f"app services must run {IMAGE}: {wrong}"


def test_no_host_port_the_host_s_own_postgres_and_rabbitmq_hold(
    services: dict[str, Service],
) -> None:
    """`make up` and `make test` need the host's 5432 and 5672: compose must not take them."""
    taken = {
        (key, _published(entry)[0])
        for key, svc in services.items()
        for entry in svc.get("ports", [])
        if _published(entry)[0] in (5432, 5672)
    }
    assert not taken, f"published on a port the host's own server holds: {sorted(taken)}"


def test_the_built_image_is_never_pulled(services: dict[str, Service]) -> None:
    """Only `migrate` builds microshop:latest; the others must not try to pull it first."""
    assert services["migrate"].get("pull_policy") == "build"
    pulling = sorted(
        k for k, s in _app_services(services).items() if s.get("pull_policy") != "never"
    )
    assert not pulling, f"set pull_policy: never on {pulling}"


def test_migrate_runs_once_before_everything(services: dict[str, Service]) -> None:
    migrate = services.get("migrate")
    assert migrate is not None, "docker-compose.yml has no `migrate` service"
    assert migrate.get("image") == IMAGE
    assert _command(migrate) == ["migrate", "--seed-if-empty"], (
        "migrate must run `microshop migrate --seed-if-empty`: a fresh stack comes up seeded"
    )
    assert migrate.get("restart") == "no", (
        f"migrate is one-shot: restart must be the string 'no', not {migrate.get('restart')!r} "
        "(unquoted `no` is YAML for false)"
    )
    assert (migrate.get("depends_on") or {}).get("postgres", {}).get("condition") == HEALTHY


# -- (b) the environment is Config's ----------------------------------------------------------


def test_environment_names_are_config_vars(services: dict[str, Service]) -> None:
    microshop = _microshop_services(services)
    assert microshop, f"no compose service runs {IMAGE}"
    for key, svc in microshop.items():
        env = _environment(svc)
        unknown = sorted(set(env) - Config.ENV_VARS - set(COMPOSE_ONLY_ENV))
        assert not unknown, (
            f"{key} sets {unknown}, which microshop.config.Config does not read: a typo, or a "
            "setting the app is missing (add it to Config, or to COMPOSE_ONLY_ENV with a reason)"
        )
        for name, value in env.items():
            kind = type(value).__name__
            assert isinstance(value, str), (
                f"{key}: {name}={value!r} should be a quoted string, not a YAML {kind}"
            )


def test_every_config_var_reaches_the_containers(services: dict[str, Service]) -> None:
    for key, svc in _microshop_services(services).items():
        env = _environment(svc)
        missing = sorted(Config.ENV_VARS - UNSET_IN_CONTAINERS - set(env))
        assert not missing, (
            f"{key} does not pass {missing}: add them to x-microshop-env in docker-compose.yml "
            "as NAME: ${NAME:-default} so .env can set them"
        )
        overridden = sorted(UNSET_IN_CONTAINERS & set(env))
        assert not overridden, (
            f"{key} sets {overridden}: ports are fixed in compose (ports, healthchecks and "
            "deploy/prometheus.yml use the defaults)"
        )


def test_environment_interpolates_same_names_with_config_defaults(
    services: dict[str, Service],
) -> None:
    default = Config()
    for key, svc in _microshop_services(services).items():
        env: dict[str, str] = _environment(svc)
        for name, value in env.items():
            for match in INTERPOLATION.finditer(value):
                assert match.group("name") == name, (
                    f"{key}: {name} reads ${{{match.group('name')}}}; .env, compose and the app "
                    "use one name per setting"
                )
                if "-" in (match.group("op") or ""):
                    if name in COMPOSE_DEFAULTS:
                        want, why = COMPOSE_DEFAULTS[name]
                        assert match.group("arg") == want, (
                            f"{key}: {name} should default to {want!r} in compose ({why})"
                        )
                        continue
                    parsed = Config.from_env({name: match.group("arg")})
                    assert parsed == default, (
                        f"{key}: the compose default of {name} ({match.group('arg')!r}) differs "
                        "from Config's"
                    )
        resolved = {name: _resolve(value) for name, value in env.items()}
        try:
            Config.from_env(resolved)
        except ConfigError as exc:
            pytest.fail(f"{key}: its environment is not a valid Config: {exc}")


def test_connection_urls_point_at_the_compose_services(services: dict[str, Service]) -> None:
    postgres_env = _environment(services["postgres"])
    rabbit_env = _environment(services["rabbitmq"])
    for key, svc in _microshop_services(services).items():
        config = Config.from_env({k: _resolve(v) for k, v in _environment(svc).items()})
        db = urlsplit(config.database_url)
        assert db.hostname == "postgres", f"{key}: DATABASE_URL must use host `postgres`"
        assert db.port in (None, 5432)
        assert db.username == postgres_env.get("POSTGRES_USER", "postgres"), key
        assert db.password == postgres_env.get("POSTGRES_PASSWORD"), key
        assert PurePosixPath(db.path).name == postgres_env.get("POSTGRES_DB", db.username), key
        amqp = urlsplit(config.amqp_url)
        assert amqp.hostname == "rabbitmq", f"{key}: AMQP_URL must use host `rabbitmq`"
        assert amqp.port in (None, 5672)
        assert amqp.username == rabbit_env.get("RABBITMQ_DEFAULT_USER", "guest"), key
        assert amqp.password == rabbit_env.get("RABBITMQ_DEFAULT_PASS", "guest"), key
        assert config.host == "0.0.0.0", f"{key}: MICROSHOP_HOST must be 0.0.0.0 in a container"


# -- (c) ports and healthchecks ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILT))
def test_published_port_is_the_default(services: dict[str, Service], name: str) -> None:
    env_name, port = SERVICE_PORTS[name]
    ports = [_published(entry) for entry in _app_service(services, name).get("ports", [])]
    assert ports == [(port, port)], (
        f"{name} should publish its {env_name} default {port} as {port}:{port}, not {ports}"
    )


@pytest.mark.parametrize("name", sorted(BUILT))
def test_healthcheck_hits_health_on_the_default_port(
    services: dict[str, Service], name: str
) -> None:
    _, port = SERVICE_PORTS[name]
    check = _app_service(services, name).get("healthcheck") or {}
    test = check.get("test")
    assert isinstance(test, list), f"{name}: healthcheck.test should be a CMD list, not {test!r}"
    assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck.test starts with {test[0]!r}"
    command = " ".join(test[1:])
    assert "curl" not in command, f"{name}: python:3.11-slim has no curl"
    found = [int(m.group("port")) for m in HEALTH_URL.finditer(command)]
    assert found == [port], f"{name}: healthcheck should hit /health on {port}, found {found}"


# -- (d) start-up order ------------------------------------------------------------------------


def test_depends_on_uses_conditions(services: dict[str, Service]) -> None:
    for key, svc in _microshop_services(services).items():
        depends = svc.get("depends_on")
        assert isinstance(depends, dict), (
            f"{key}: depends_on must be a mapping with conditions (the list form only waits for "
            "the containers to start)"
        )
        for dependency, spec in depends.items():
            assert dependency in services, f"{key} depends on unknown service {dependency!r}"
            condition = (spec or {}).get("condition")
            assert condition in (HEALTHY, COMPLETED), (
                f"{key} -> {dependency}: condition {condition!r}, want {HEALTHY} or {COMPLETED}"
            )
            if condition == HEALTHY:
                assert "healthcheck" in services[dependency], (
                    f"{key} waits for {dependency} to be healthy, which has no healthcheck"
                )
            else:
                assert services[dependency].get("restart") == "no", (
                    f"{key} waits for {dependency} to complete: it must not restart"
                )


def test_app_services_wait_for_infrastructure(services: dict[str, Service]) -> None:
    want = {"postgres": HEALTHY, "rabbitmq": HEALTHY, "migrate": COMPLETED}
    for key, svc in _app_services(services).items():
        depends = svc.get("depends_on") or {}
        got = {dep: (depends.get(dep) or {}).get("condition") for dep in want}
        assert got == want, f"{key}: depends_on should include {want}, has {got}"


# -- (e) .env.example --------------------------------------------------------------------------


def test_env_example_lists_exactly_the_config_vars() -> None:
    names = [name for name, _ in _parse_env_file(ENV_EXAMPLE)]
    doubled = sorted(name for name, count in Counter(names).items() if count > 1)
    unknown = sorted(set(names) - Config.ENV_VARS)
    missing = sorted(Config.ENV_VARS - set(names))
    assert not doubled, f".env.example sets {doubled} more than once"
    assert not unknown, f".env.example sets {unknown}, which Config does not read"
    assert not missing, f".env.example does not document {missing} (Config reads them)"


def test_env_example_holds_the_defaults() -> None:
    values = dict(_parse_env_file(ENV_EXAMPLE))
    for name, value in values.items():
        assert Config.from_env({name: value}) == Config(), (
            f".env.example: {name}={value!r} is not Config's default"
        )


# -- (f) Prometheus ----------------------------------------------------------------------------


def _prometheus_config(services: dict[str, Service]) -> dict[str, Any]:
    prometheus = services.get("prometheus")
    assert prometheus is not None, "docker-compose.yml has no `prometheus` service"
    for volume in prometheus.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == "/etc/prometheus/prometheus.yml":
            return _load_yaml(ROOT / source)
    pytest.fail("prometheus does not mount a config at /etc/prometheus/prometheus.yml")


def test_prometheus_scrapes_every_service(services: dict[str, Service]) -> None:
    scraped: set[str] = set()
    for job in _prometheus_config(services).get("scrape_configs", []):
        if job.get("metrics_path", "/metrics") != "/metrics":
            continue
        for static in job.get("static_configs", []):
            scraped.update(static.get("targets", []))
    want = {f"{name}:{SERVICE_PORTS[name][1]}" for name in BUILT}
    missing = sorted(want - scraped)
    assert not missing, f"deploy/prometheus.yml does not scrape /metrics of {missing}"
