"""Grafana, Jaeger and the MicroShop dashboard agree with compose and with the code.

No Docker and no Grafana needed: compose, the provisioning YAML and the dashboard JSON are read
as files. The metric names a panel may query are collected from the source itself (every
`metrics.counter/gauge/histogram(NAME, ...)` call), so renaming a metric without updating the
dashboard fails here, and every expression is parsed by a real PromQL parser.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import promql_parser
import pytest

from tests.deployfiles import COMPOSE_FILE, ROOT, Service, load_yaml

DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
MAIN_DASHBOARD = DASHBOARDS / "microshop.json"
SOURCE_PACKAGES = ("microshop", "eventstore", "services", "web")
IMAGE = "microshop:latest"

# Series Prometheus makes itself; a panel may use them although no service exports them.
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

# Exported metrics that deliberately have no panel, each with its reason. Keep it short: a
# metric nobody looks at is a metric nobody needs.
NOT_ON_DASHBOARD: dict[str, str] = {}

# Grafana's built-in variables, replaced by a typical value before an expression is parsed.
GRAFANA_GLOBALS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "30m",
}
VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<plain>\w+))")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_VALUES = re.compile(r"label_values\((?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*\w+\)")
GRID_WIDTH = 24
SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
FACTORIES = frozenset(SUFFIXES)  # metrics.counter(...), ...: microshop.metrics.Metrics
CLASSES = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram", "Summary": "summary"}
CLIENT_LIBRARIES = ("aioprometheus", "prometheus_client")

Panel = dict[str, Any]


# -- what the code exports ---------------------------------------------------------------------


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _strings(node: ast.expr) -> list[str] | None:
    """The values of a literal tuple/list/set of strings, else None."""
    if not isinstance(node, ast.Tuple | ast.List | ast.Set):
        return None
    values = [elt.value for elt in node.elts if isinstance(elt, ast.Constant)]
    strings = [value for value in values if isinstance(value, str)]
    return strings if len(strings) == len(node.elts) else None


def _loop_values(name: str, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[str] | None:
    """What `name` takes in the nearest enclosing `for name in ("a", "b")` (loop or
    comprehension) around `node`, else None."""
    current: ast.AST | None = node
    while current is not None:
        generators: list[ast.comprehension | ast.For | ast.AsyncFor] = []
        if isinstance(current, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            generators.extend(current.generators)
        elif isinstance(current, ast.For | ast.AsyncFor):
            generators.append(current)
        for generator in generators:
            if isinstance(generator.target, ast.Name) and generator.target.id == name:
                return _strings(generator.iter)
        current = parents.get(current)
    return None


def _enclosing_parameters(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> set[str]:
    current = parents.get(node)
    while current is not None:
        if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
            args = current.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
            return {arg.arg for arg in every}
        current = parents.get(current)
    return set()


def _module_constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for statement in tree.body:
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ):
            found[statement.targets[0].id] = statement.value.value
    return found


def _metric_names(
    arg: ast.expr, parents: dict[ast.AST, ast.AST], constants: dict[str, str], where: str
) -> list[str]:
    """The name(s) a metric-creating call's first argument stands for; [] for a wrapper's
    parameter (`Metrics.counter(self, name, ...)` passing its own `name` on)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.Name):
        if arg.id in constants:
            return [constants[arg.id]]
        if arg.id in _enclosing_parameters(arg, parents):
            return []
    if isinstance(arg, ast.JoinedStr):
        choices: list[list[str]] = []
        for part in arg.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                choices.append([part.value])
                continue
            values = None
            if isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name):
                values = _loop_values(part.value.id, arg, parents)
            if values is None:
                break
            choices.append(values)
        else:
            return ["".join(combination) for combination in itertools.product(*choices)]
    pytest.fail(
        f"{where}: cannot tell which metric name {ast.unparse(arg)!r} is; use a string literal, "
        "a module constant, or an f-string over a literal tuple (`for kind in ('a', 'b')`)"
    )


def _calls(tree: ast.Module) -> Iterator[tuple[str, ast.Call]]:
    """(kind, call) of every call that creates a metric in `tree`."""
    uses_client = any(
        isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CLIENT_LIBRARIES)
        for node in ast.walk(tree)
    )
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not (node.args or node.keywords):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in FACTORIES:
            yield func.attr, node
        elif uses_client and isinstance(func, ast.Name) and func.id in CLASSES:
            yield CLASSES[func.id], node


def exported_metrics() -> dict[str, str]:
    """metric name -> kind (counter, gauge, histogram, summary), from the source."""
    found: dict[str, str] = {}
    for package in SOURCE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            parents = _parents(tree)
            constants = _module_constants(tree)
            for kind, call in _calls(tree):
                name_kw = [kw.value for kw in call.keywords if kw.arg == "name"]
                arg = call.args[0] if call.args else (name_kw[0] if name_kw else None)
                if arg is None:
                    continue
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                for name in _metric_names(arg, parents, constants, where):
                    assert METRIC_NAME.fullmatch(name), f"{where}: {name!r} is no metric name"
                    assert found.setdefault(name, kind) == kind, (
                        f"{where}: {name} is a {kind} here and a {found[name]} elsewhere"
                    )
    return found


@pytest.fixture(scope="module")
def exported() -> dict[str, str]:
    return exported_metrics()


def _series(exported: dict[str, str]) -> dict[str, str]:
    """Every series name Prometheus stores -> the metric it belongs to."""
    return {name + suffix: name for name, kind in exported.items() for suffix in SUFFIXES[kind]}


def test_the_source_scan_finds_the_metrics(exported: dict[str, str]) -> None:
    # A few of every kind and origin, so a broken scan cannot make the checks below vacuous.
    assert exported["http_requests_total"] == "counter"
    assert exported["http_request_duration_seconds"] == "histogram"
    assert exported["relay_lag_seconds"] == "gauge"
    assert exported["order_time_to_outcome_seconds"] == "histogram"
    # f-string names over a literal tuple (microshop.workers)
    consumers = {name for name in exported if name.startswith("consumer_")}
    assert consumers >= {"consumer_handled_total", "consumer_parked_total"}, consumers


# -- compose: grafana and jaeger ----------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    found: dict[str, Service] = compose["services"]
    return found


def _service(services: dict[str, Service], name: str) -> Service:
    assert name in services, f"docker-compose.yml has no `{name}` service"
    return services[name]


def _mounts(service: Service) -> dict[str, tuple[str, str]]:
    """container path -> (source, options) of the service's short-syntax volumes."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *options = str(entry).split(":")
        mounts[target] = (source, ",".join(options))
    return mounts


def _ports(service: Service) -> set[str]:
    return {str(entry) for entry in service.get("ports", [])}


def _environment(service: Service) -> dict[str, Any]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of `environment`"
    return env


def _pinned(image: str, repository: str) -> None:
    name, _, tag = image.partition(":")
    assert name == repository, f"want image {repository}, not {name}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin {repository} to a version, not {tag!r}"


def _bind_source(service: Service, target: str) -> Path:
    mounts = _mounts(service)
    assert target in mounts, f"nothing is mounted at {target}; mounts: {sorted(mounts)}"
    source, options = mounts[target]
    assert source.startswith("./"), f"{target} should be a bind mount of a repo path"
    assert "ro" in options.split(","), f"mount {target} read-only (`:ro`)"
    return ROOT / source


def test_grafana_runs_with_provisioning_and_dashboards(
    compose: dict[str, Any], services: dict[str, Service]
) -> None:
    grafana = _service(services, "grafana")
    _pinned(grafana["image"], "grafana/grafana-oss")
    assert _ports(grafana) == {"127.0.0.1:3000:3000"}
    assert _bind_source(grafana, "/etc/grafana/provisioning") == PROVISIONING
    assert _bind_source(grafana, "/etc/grafana/dashboards") == DASHBOARDS
    data, _ = _mounts(grafana)["/var/lib/grafana"]
    assert data in (compose.get("volumes") or {}), f"declare the named volume {data}"
    env = _environment(grafana)
    anonymous = env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
    assert anonymous or "GF_SECURITY_ADMIN_PASSWORD" in env, (
        "let people in: anonymous viewers, or an admin password from .env"
    )
    if anonymous:
        assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", "anonymous users only view"
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home is not None:
        relative = PurePosixPath(home).relative_to("/etc/grafana/dashboards")
        assert (DASHBOARDS / relative).is_file(), f"home dashboard {home} does not exist"


def test_jaeger_takes_otlp_over_http(services: dict[str, Service]) -> None:
    jaeger = _service(services, "jaeger")
    _pinned(jaeger["image"], "jaegertracing/all-in-one")
    assert "127.0.0.1:16686:16686" in _ports(jaeger), "Jaeger's UI on 127.0.0.1:16686"
    assert all(port.startswith("127.0.0.1:") for port in _ports(jaeger)), "local ports only"
    assert _environment(jaeger).get("COLLECTOR_OTLP_ENABLED") == "true"


def test_services_send_traces_to_jaeger(services: dict[str, Service]) -> None:
    microshop = {key: svc for key, svc in services.items() if svc.get("image") == IMAGE}
    assert microshop
    for key, svc in microshop.items():
        value = _environment(svc).get("OTEL_EXPORTER_OTLP_ENDPOINT")
        assert value == "${OTEL_EXPORTER_OTLP_ENDPOINT:-http://jaeger:4318}", (
            f"{key}: OTEL_EXPORTER_OTLP_ENDPOINT should default to Jaeger's OTLP/HTTP port (the "
            f"app appends /v1/traces), overridable from .env; it is {value!r}"
        )


# -- grafana provisioning -----------------------------------------------------------------------


def _provisioning(kind: str) -> list[dict[str, Any]]:
    files = sorted((PROVISIONING / kind).glob("*.y*ml"))
    assert files, f"no provisioning files in {(PROVISIONING / kind).relative_to(ROOT)}"
    documents = [load_yaml(path) for path in files]
    for path, document in zip(files, documents, strict=True):
        assert document.get("apiVersion") == 1, f"{path.name}: apiVersion must be 1"
    return documents


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    """uid -> datasource."""
    found = [ds for doc in _provisioning("datasources") for ds in doc.get("datasources", [])]
    uids = Counter(ds.get("uid") for ds in found)
    assert all(uids) and max(uids.values()) == 1, f"give each datasource a fixed uid: {uids}"
    return {ds["uid"]: ds for ds in found}


def _points_at(url: str, services: dict[str, Service], name: str, port: int) -> None:
    _service(services, name)
    parts = urlsplit(url)
    assert (parts.hostname, parts.port) == (name, port), f"{url} should be http://{name}:{port}"


def test_prometheus_datasource(
    datasources: dict[str, dict[str, Any]], services: dict[str, Service]
) -> None:
    proms = [ds for ds in datasources.values() if ds.get("type") == "prometheus"]
    assert len(proms) == 1, "provision exactly one Prometheus datasource"
    prom = proms[0]
    _points_at(prom["url"], services, "prometheus", 9090)
    assert prom.get("isDefault") is True
    scrape = load_yaml(ROOT / "deploy" / "prometheus.yml")["global"]["scrape_interval"]
    assert prom.get("jsonData", {}).get("timeInterval") == scrape, (
        "timeInterval must be Prometheus' scrape_interval, or $__rate_interval is wrong"
    )


def test_other_datasources_point_at_compose_services(
    datasources: dict[str, dict[str, Any]], services: dict[str, Service]
) -> None:
    for ds in datasources.values():
        host = urlsplit(ds["url"]).hostname
        assert host in services, f"datasource {ds['uid']}: {ds['url']} is no compose service"
        if ds["type"] == "jaeger":
            _points_at(ds["url"], services, "jaeger", 16686)


def test_dashboard_provider_reads_the_mounted_directory(services: dict[str, Service]) -> None:
    providers = [p for doc in _provisioning("dashboards") for p in doc.get("providers", [])]
    assert providers, "no dashboard provider"
    mounted = _mounts(_service(services, "grafana"))
    for provider in providers:
        assert provider.get("type") == "file"
        path = provider["options"]["path"]
        assert path in mounted, f"provider {provider['name']} reads {path}, which is not mounted"
        assert ROOT / mounted[path][0] == DASHBOARDS
    assert list(DASHBOARDS.glob("*.json")), "no dashboards to provision"


# -- the dashboards -----------------------------------------------------------------------------


def _dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def _load_dashboard(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        pytest.fail(f"{path.name} is not valid JSON: {exc}")
    assert isinstance(data, dict), f"{path.name} is not a JSON object"
    return data


def _panels(dashboard: dict[str, Any]) -> list[Panel]:
    """Every panel, including those inside collapsed rows."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}", target


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            yield str(ds["uid"])
        elif isinstance(ds, str):
            yield ds
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_uids(item)


def _template_variables(dashboard: dict[str, Any]) -> set[str]:
    return {var["name"] for var in dashboard.get("templating", {}).get("list", [])}


def _parse(expr: str, variables: set[str], where: str) -> promql_parser.Expr:
    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        if name in GRAFANA_GLOBALS:
            return GRAFANA_GLOBALS[name]
        assert name in variables, f"{where}: ${name} is no template variable ({variables})"
        return match.group(0)  # inside a label matcher's string: PromQL takes it as it is

    try:
        return promql_parser.parse(VARIABLE.sub(substitute, expr))
    except ValueError as exc:
        pytest.fail(f"{where}: {expr!r} is not valid PromQL: {exc}")


def _selected(expr: promql_parser.Expr) -> list[str | None]:
    """The metric name of every selector in `expr` (None: a selector without one)."""
    names: list[str | None] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            by_label = [
                m.value
                for m in node.matchers.matchers
                if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
            ]
            names.append(node.name or (by_label[0] if by_label else None))
        return True

    promql_parser.walk(expr, visit)
    return names


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path, datasources: dict[str, dict[str, Any]]) -> None:
    dashboard = _load_dashboard(path)
    assert dashboard.get("uid") and dashboard.get("title"), f"{path.name}: uid and title"
    panels = _panels(dashboard)
    ids = Counter(panel.get("id") for panel in panels)
    doubled = sorted(str(i) for i, count in ids.items() if count > 1 or i is None)
    assert not doubled, f"{path.name}: panel ids must be unique and set: {doubled}"
    uids = set(_datasource_uids(dashboard)) - {"-- Grafana --"}
    unknown = sorted(uids - set(datasources))
    assert not unknown, f"{path.name}: datasource uids {unknown} are not provisioned"
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard.get("panels", []):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_WIDTH, f"{panel['title']!r} is wider than the grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = taken.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']!r} overlaps {other!r}"
    for where, target in _targets(dashboard):
        assert target.get("expr"), f"{path.name}: {where} has no expression"


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_every_queried_metric_is_exported(path: Path, exported: dict[str, str]) -> None:
    dashboard = _load_dashboard(path)
    variables = _template_variables(dashboard)
    series = _series(exported)
    for where, target in _targets(dashboard):
        for name in _selected(_parse(target["expr"], variables, f"{path.name}: {where}")):
            assert name is not None, f"{path.name}: {where} selects series without a name"
            if name in series or name in PROMETHEUS_SERIES:
                continue
            hint = ""
            if exported.get(name) == "histogram":
                hint = " (a histogram: query its _bucket, _sum or _count series)"
            pytest.fail(f"{path.name}: {where} queries {name}, which no service exports{hint}")
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for match in LABEL_VALUES.finditer(text):
            metric = match.group("metric")
            assert metric in series, f"{path.name}: ${var['name']} reads unknown {metric}"


def test_every_exported_metric_is_on_the_dashboard(exported: dict[str, str]) -> None:
    dashboard = _load_dashboard(MAIN_DASHBOARD)
    variables = _template_variables(dashboard)
    series = _series(exported)
    shown = {
        series[name]
        for where, target in _targets(dashboard)
        for name in _selected(_parse(target["expr"], variables, where))
        if name in series
    }
    missing = sorted(set(exported) - shown - set(NOT_ON_DASHBOARD))
    assert not missing, (
        f"{MAIN_DASHBOARD.name} shows no panel for {missing}: add one, or list the metric in "
        "NOT_ON_DASHBOARD with the reason"
    )
    stale = sorted(set(NOT_ON_DASHBOARD) - set(exported))
    assert not stale, f"NOT_ON_DASHBOARD names metrics nobody exports: {stale}"


def test_main_dashboard_has_the_sections() -> None:
    dashboard = _load_dashboard(MAIN_DASHBOARD)
    assert dashboard["title"] == "MicroShop"
    rows = " ".join(p["title"].lower() for p in dashboard["panels"] if p["type"] == "row")
    for section in (
        "requests",
        "event store",
        "relay",
        "projections",
        "consumers",
        "business",
        "logs",
    ):
        assert section in rows, f"{MAIN_DASHBOARD.name} has no row about {section}"
    assert "service" in _template_variables(dashboard)
