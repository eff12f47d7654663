"""The Kubernetes manifests (deploy/k8s) render, are valid objects, and agree with the code.

`kubectl kustomize` renders both overlays, each from a copy of deploy/k8s with its
`secrets.env` written from the committed `secrets.env.example`. Every rendered object is
validated strictly (an unknown field is an error) against the Kubernetes API schemas that
kubernetes-validate ships, for the oldest Kubernetes we support and the newest it knows. The
agreement tests then hold the objects against `microshop.config`, `microshop.services`, the
gateway's routes, the calls services make to each other, the Dockerfile and
docker-compose.yml, as `test_compose.py` does for compose.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from microshop.config import SERVICE_PORTS, Config
from microshop.scaling import Capacity, plan
from microshop.services import SERVICES, available
from services.gateway.app import create_app as create_gateway
from services.gateway.routing import ROUTES
from tests.deployfiles import (
    COMPOSE_FILE,
    IMAGE,
    ROOT,
    Service,
    app_services,
    command,
    load_yaml,
    parse_env_file,
)

BUILT = available()
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
OLDEST_KUBERNETES = "1.30"
"""The oldest Kubernetes the manifests are for: a field newer than it fails validation."""

# ConfigMap values that deliberately differ from Config's defaults: name -> (value, why). The
# *_URL variables are checked against the Services instead.
K8S_DEFAULTS: dict[str, tuple[str, str]] = {
    "MICROSHOP_HOST": ("0.0.0.0", "a container listens on its pod's address"),
}

PORT_VARS = frozenset(env for env, _ in SERVICE_PORTS.values())
UP_ONLY = frozenset({"MICROSHOP_REPLICAS", "MICROSHOP_REPLICA"})
"""`microshop up`'s own: Kubernetes runs replicas as pods of a Deployment."""
SECRET = frozenset(
    {
        "DATABASE_URL",
        "DATABASE_DIRECT_URL",
        "AMQP_URL",
        "INTERNAL_API_KEY",
        "PII_KEY_ENCRYPTION_KEY",
    }
)
"""What every service reads from the Secret, never from the ConfigMap."""
ADMIN_SECRETS = frozenset({"ADMIN_PASSWORD", "JWT_PRIVATE_KEY"})
"""Secret, and read only where it is used: auth-service (and the seeding Job)."""
REQUIRED = frozenset({"DATABASE_URL", "AMQP_URL", "INTERNAL_API_KEY", "MICROSHOP_HOST"})
"""What no service container may go without (the defaults are for `make up` on one host)."""

OPERATIONS = ("/health", "/ready", "/metrics", "/demo/logs")
"""The gateway's own operational endpoints: for probes and Prometheus, never the Ingress."""
DENIED = ("/internal", "/internal/orders/x/payment-succeeded", "/internal/settings", *OPERATIONS)

AUTOSCALED = frozenset({"gateway", "cart", "order"})

Object = dict[str, Any]


# -- rendering ----------------------------------------------------------------------------------


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "these tests render deploy/k8s with `kubectl kustomize`: install kubectl >= 1.24 "
            "(kustomize >= v4.5); Debian 12's kubernetes-client (1.20, kustomize v2.0.3) is "
            "too old for the overlays"
        )
    return found


def _render(overlay: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_kubectl(), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _fill(example: Path) -> str:
    """secrets.env for a test render: the example with every empty value filled in."""
    lines = []
    for name, value in parse_env_file(example):
        lines.append(f"{name}={value or f'test-{name.lower()}'}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/k8s without any secrets.env (a developer's may be there)."""
    target = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, target, ignore=shutil.ignore_patterns("secrets.env"))
    return target


@pytest.fixture(scope="module")
def rendered(copy: Path) -> dict[str, list[Object]]:
    found = {}
    for name in OVERLAYS:
        overlay = copy / "overlays" / name
        (overlay / "secrets.env").write_text(_fill(overlay / "secrets.env.example"))
        done = _render(overlay)
        assert done.returncode == 0, f"kubectl kustomize overlays/{name} failed:\n{done.stderr}"
        found[name] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
        (overlay / "secrets.env").unlink()
    return found


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest, rendered: dict[str, list[Object]]) -> list[Object]:
    found: list[Object] = rendered[request.param]
    return found


def _of_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _one(objects: list[Object], kind: str) -> Object:
    found = list(_of_kind(objects, kind).values())
    assert len(found) == 1, f"want one {kind}, rendered {[o['metadata']['name'] for o in found]}"
    return found[0]


def _pod(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def _image_containers(pod: Object) -> Iterator[Object]:
    """Every container of `pod` running the MicroShop image (initContainers too)."""
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        if _repository(container["image"]).rpartition("/")[2] == "microshop":
            yield container


def _repository(image: str) -> str:
    """`image` without its tag (a registry's port stays)."""
    head, _, last = image.rpartition("/")
    return f"{head}/{last.partition(':')[0]}" if head else last.partition(":")[0]


def _deployments(objects: list[Object]) -> dict[str, Object]:
    """The MicroShop services' Deployments by the service they serve."""
    found = {}
    for deployment in _of_kind(objects, "Deployment").values():
        main = _main(deployment)
        assert main["args"][:1] == ["serve"], f"{deployment['metadata']['name']}: {main['args']}"
        found[main["args"][1]] = deployment
    return found


def _main(deployment: Object) -> Object:
    containers = _pod(deployment)["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container per pod"
    found: Object = containers[0]
    return found


def _config_map(objects: list[Object]) -> dict[str, str]:
    data: dict[str, str] = _one(objects, "ConfigMap")["data"]
    return data


def _env_names(container: Object, objects: list[Object]) -> dict[str, str]:
    """Every variable `container` gets -> where from ("config" or the Secret's key)."""
    names = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref is not None, f"{container['name']}: envFrom only from the ConfigMap: {source}"
        assert ref["name"] == _one(objects, "ConfigMap")["metadata"]["name"]
        names.update(dict.fromkeys(_config_map(objects), "config"))
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        assert ref is not None, (
            f"{container['name']}: {entry['name']} should come from the ConfigMap (envFrom) or "
            f"the Secret, not a value of its own"
        )
        names[entry["name"]] = ref["key"]
    return names


def _selects(selector: Object, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels / matchExpressions In) matches `labels`."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", f"only In expressions are read here: {expression}"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _pod_labels(workload: Object) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


# -- (a) they render and are valid Kubernetes objects -------------------------------------------


@pytest.fixture(scope="module")
def validate() -> Iterator[Callable[..., str]]:
    """kubernetes_validate.validate, reading each schema file once instead of once per object
    (megabytes of JSON: two thirds of the time otherwise)."""
    with pytest.MonkeyPatch.context() as patch:
        cached = functools.cache(kubernetes_validate.utils.schema_contents)
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield kubernetes_validate.validate


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.latest_version()])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(
    rendered: dict[str, list[Object]], validate: Callable[..., str], overlay: str, version: str
) -> None:
    problems = []
    for obj in rendered[overlay]:
        try:
            validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(exc.message)
    assert not problems, f"overlays/{overlay} on Kubernetes {version}:\n" + "\n".join(problems)


def test_an_overlay_without_its_secrets_refuses_to_render(copy: Path) -> None:
    for name in OVERLAYS:
        done = _render(copy / "overlays" / name)
        assert done.returncode != 0 and "secrets.env" in done.stderr, (
            f"overlays/{name} rendered without a secrets.env: it must refuse"
        )


def test_the_secrets_files_are_ignored_by_git() -> None:
    for name in OVERLAYS:
        path = f"deploy/k8s/overlays/{name}/secrets.env"
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} must be git-ignored (.gitignore)"


def test_everything_lives_in_one_namespace(objects: list[Object]) -> None:
    namespace = _one(objects, "Namespace")["metadata"]["name"]
    elsewhere = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objects
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != namespace
    ]
    assert not elsewhere, f"not in namespace {namespace}: {elsewhere}"


# -- (b) one Deployment per service, running what compose runs ----------------------------------


@pytest.fixture(scope="module")
def compose_services() -> dict[str, Service]:
    services: dict[str, Service] = load_yaml(COMPOSE_FILE)["services"]
    return services


def test_one_deployment_per_service_named_like_it(
    objects: list[Object], compose_services: dict[str, Service]
) -> None:
    deployments = _deployments(objects)
    assert sorted(deployments) == sorted(BUILT)
    assert sorted(deployments) == sorted(app_services(compose_services))
    for name, deployment in deployments.items():
        assert deployment["metadata"]["name"] == name
        assert _main(deployment)["args"] == ["serve", name]
        assert _pod_labels(deployment)["app.kubernetes.io/name"] == name
        assert deployment["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": name}}


def test_containers_run_the_image_as_compose_does(
    rendered: dict[str, list[Object]], compose_services: dict[str, Service]
) -> None:
    """The image's entrypoint is `python -m microshop`: a container sets only its args."""
    for overlay, objects in rendered.items():
        job = _one(objects, "Job")
        workloads = [*_deployments(objects).values(), job]
        for workload in workloads:
            for container in _image_containers(_pod(workload)):
                where = f"{overlay}: {workload['metadata']['name']}/{container['name']}"
                assert "command" not in container, f"{where}: keep the image's entrypoint"
                assert container["imagePullPolicy"] == "IfNotPresent", where
        for name, deployment in _deployments(objects).items():
            assert _main(deployment)["args"] == command(compose_services[name])
        assert _main(job)["args"] == command(compose_services["migrate"])
    dev = {
        c["image"] for d in _deployments(rendered["dev"]).values() for c in _pod(d)["containers"]
    }
    assert dev == {IMAGE}, f"the dev overlay runs the image compose builds, {IMAGE}: {dev}"
    prod = {
        c["image"] for d in _deployments(rendered["prod"]).values() for c in _pod(d)["containers"]
    }
    assert len(prod) == 1 and not prod & {IMAGE}, f"prod runs one pinned image: {prod}"


@pytest.mark.parametrize("name", sorted(BUILT))
def test_port_and_probes_are_the_service_s(
    objects: list[Object], compose_services: dict[str, Service], name: str
) -> None:
    _, port = SERVICE_PORTS[name]
    deployment = _deployments(objects)[name]
    main = _main(deployment)
    assert main["ports"] == [{"name": "http", "containerPort": port}]
    compose_targets = [int(str(p).rsplit(":", 1)[-1]) for p in compose_services[name]["ports"]]
    assert compose_targets == [port], f"compose publishes {name} on {compose_targets}"
    probes = {
        kind: main[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": {"path": "/health", "port": "http"},
        "livenessProbe": {"path": "/health", "port": "http"},
        "readinessProbe": {"path": "/ready", "port": "http"},
    }
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_pods_run_as_the_image_s_user_read_only(rendered: dict[str, list[Object]]) -> None:
    user = re.search(r"useradd --uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert user is not None, "the Dockerfile creates its user with useradd --uid N"
    uid = int(user.group(1))
    for overlay, objects in rendered.items():
        for workload in [*_deployments(objects).values(), _one(objects, "Job")]:
            pod = _pod(workload)
            where = f"{overlay}: {workload['kind']}/{workload['metadata']['name']}"
            context = pod["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == uid, where
            # Kubernetes would set ORDER_PORT=tcp://... for the Service `order` (and so on),
            # which the app reads as its own port setting and refuses.
            assert pod["enableServiceLinks"] is False, f"{where}: set enableServiceLinks: false"
            assert pod["automountServiceAccountToken"] is False, where
            for container in pod.get("initContainers", []) + pod["containers"]:
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True, where
                assert security["allowPrivilegeEscalation"] is False, where
                assert security["capabilities"] == {"drop": ["ALL"]}, where
                resources = container["resources"]
                assert {"cpu", "memory"} <= set(resources["requests"]), f"{where}: requests"
                assert "memory" in resources["limits"], f"{where}: a memory limit"


def test_services_wait_for_the_schema_of_their_image(objects: list[Object]) -> None:
    """The initContainer applies (or finds applied) the migrations; seeding is the Job's."""
    for name, deployment in _deployments(objects).items():
        init = _pod(deployment).get("initContainers", [])
        assert [c["args"] for c in init] == [["migrate", "--no-create"]], name
        assert init[0]["image"] == _main(deployment)["image"], name
    job = _one(objects, "Job")
    assert _pod(job)["restartPolicy"] == "OnFailure"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0, "a finished Job must make room for the next"


# -- (c) the environment is Config's ------------------------------------------------------------


def test_every_variable_set_is_one_the_code_reads(objects: list[Object]) -> None:
    known = Config.ENV_VARS
    unknown = sorted(set(_config_map(objects)) - known)
    assert not unknown, f"the ConfigMap sets {unknown}, which microshop.config.Config does not read"
    for workload in [*_deployments(objects).values(), _one(objects, "Job")]:
        for container in _image_containers(_pod(workload)):
            names = _env_names(container, objects)
            unknown = sorted(set(names) - known)
            assert not unknown, f"{workload['metadata']['name']}/{container['name']}: {unknown}"
            ports = sorted(set(names) & PORT_VARS)
            assert not ports, f"{workload['metadata']['name']}: ports are fixed, not {ports}"


def test_every_service_gets_what_it_needs(objects: list[Object]) -> None:
    for name, deployment in _deployments(objects).items():
        names = _env_names(_main(deployment), objects)
        missing = sorted(REQUIRED - set(names))
        assert not missing, f"{name} does not get {missing}"
        secret = {n for n, source in names.items() if source != "config"}
        admin = ADMIN_SECRETS if name == "auth" else frozenset()
        assert secret == SECRET | admin, f"{name} reads {sorted(secret)} from the Secret"
        assert not (SECRET | ADMIN_SECRETS) & set(_config_map(objects)), "secrets in the ConfigMap"
        renamed = {env: key for env, key in names.items() if key not in ("config", env)}
        assert not renamed, f"{name}: Secret keys under other names: {renamed}"
    job = _env_names(_main(_one(objects, "Job")), objects)
    assert {"DATABASE_URL", "ADMIN_PASSWORD"} <= set(job), "the Job migrates and seeds"


def test_every_setting_is_in_the_config_map_or_the_secret(objects: list[Object]) -> None:
    """Like compose: one place shows every knob (the ports are fixed)."""
    names = set(_config_map(objects))
    for deployment in _deployments(objects).values():
        names |= set(_env_names(_main(deployment), objects))
    missing = sorted(Config.ENV_VARS - PORT_VARS - UP_ONLY - names)
    assert not missing, f"add {missing} to deploy/k8s/base/config.env (or the Secret)"


def test_config_map_holds_config_s_defaults_or_says_why(objects: list[Object]) -> None:
    default = Config()
    for name, value in _config_map(objects).items():
        if name.endswith("_URL"):
            continue  # test_urls_name_the_services
        if name in K8S_DEFAULTS:
            want, why = K8S_DEFAULTS[name]
            assert value == want, f"{name} should be {want!r} in Kubernetes ({why})"
        else:
            assert Config.from_env({name: value}) == default, (
                f"the ConfigMap's {name}={value!r} is not Config's default: use the default or "
                "add it to K8S_DEFAULTS with the reason"
            )
    known = {k: v for k, v in _config_map(objects).items() if k in Config.ENV_VARS}
    Config.from_env(known)  # and the whole of it is a valid Config


def test_secret_references_name_the_generated_secret(rendered: dict[str, list[Object]]) -> None:
    base = load_yaml(K8S / "base" / "kustomization.yaml")
    (placeholder,) = base["secretGenerator"]
    placeholder_keys = {literal.split("=", 1)[0] for literal in placeholder["literals"]}
    assert all(literal.endswith("=") for literal in placeholder["literals"]), (
        "the base's Secret is a placeholder: no value in it"
    )
    for overlay, objects in rendered.items():
        secret = _one(objects, "Secret")
        example = {n for n, _ in parse_env_file(K8S / "overlays" / overlay / "secrets.env.example")}
        assert set(secret["data"]) == example
        referenced = set()
        for workload in [
            *_of_kind(objects, "Deployment").values(),
            *_of_kind(objects, "StatefulSet").values(),
            _one(objects, "Job"),
        ]:
            for container in [
                *_pod(workload).get("initContainers", []),
                *_pod(workload)["containers"],
            ]:
                for entry in container.get("env", []):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    if ref is None:
                        continue
                    assert ref["name"] == secret["metadata"]["name"], f"{overlay}: {entry}"
                    referenced.add(ref["key"])
                    if not ref.get("optional"):
                        assert ref["key"] in example, (
                            f"overlays/{overlay}/secrets.env.example lacks {ref['key']}"
                        )
        unused = sorted(example - referenced)
        assert not unused, f"overlays/{overlay}/secrets.env.example holds unused {unused}"
        assert placeholder_keys <= referenced


def test_urls_name_the_services(objects: list[Object]) -> None:
    services = _of_kind(objects, "Service")
    deployments = _deployments(objects)
    for name, value in _config_map(objects).items():
        if not name.endswith("_URL") or name == "DATABASE_URL":
            continue
        target = next(s for s in SERVICE_PORTS if f"{s.replace('-', '_').upper()}_URL" == name)
        url = urlsplit(value)
        assert (url.scheme, url.path) == ("http", ""), f"{name}={value}"
        assert url.hostname in services, f"{name}={value}: no Service {url.hostname}"
        assert url.port == SERVICE_PORTS[target][1], f"{name}={value}: {target}'s port"
        service = services[url.hostname]
        assert [p["port"] for p in service["spec"]["ports"]] == [url.port], f"{name}={value}"
        selector = {"matchLabels": service["spec"]["selector"]}
        assert _selects(selector, _pod_labels(deployments[target])), f"{name}: not {target}'s pods"


def test_the_dev_databases_are_the_ones_the_urls_name(rendered: dict[str, list[Object]]) -> None:
    objects = rendered["dev"]
    example = dict(parse_env_file(K8S / "overlays" / "dev" / "secrets.env.example"))
    servers = _of_kind(objects, "StatefulSet")
    services = _of_kind(objects, "Service")
    for variable, server, user_env, database_env in (
        ("DATABASE_URL", "postgres", "POSTGRES_USER", "POSTGRES_DB"),
        ("AMQP_URL", "rabbitmq", "RABBITMQ_DEFAULT_USER", None),
    ):
        url = urlsplit(example[variable])
        assert url.hostname == server and url.hostname in services, variable
        assert url.port in [p["port"] for p in services[server]["spec"]["ports"]], variable
        env = {e["name"]: e for e in _pod(servers[server])["containers"][0]["env"]}
        assert url.username == env[user_env]["value"], variable
        if database_env:
            assert PurePosixPath(url.path).name == env[database_env]["value"], variable
    assert not _of_kind(rendered["prod"], "StatefulSet"), "prod runs no database in the cluster"


# -- (d) Services, autoscalers, disruption budgets ----------------------------------------------


@functools.cache
def _calls() -> dict[str, frozenset[str]]:
    """callee -> the services whose code calls it (`ServiceClient.of(..., "name")`, a page's
    `call(request, "name", ...)`, the gateway's route table, and everyone's JWKS from auth)."""
    callers: dict[str, set[str]] = {name: set() for name in BUILT}
    for caller, module in SERVICES.items():
        package = ROOT / Path(*module.split(".")[:-1])
        files = list(package.rglob("*.py"))
        if caller == "gateway":
            files += list((ROOT / "web").rglob("*.py"))
        for path in files:
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                named = (isinstance(func, ast.Attribute) and func.attr == "of") or (
                    isinstance(func, ast.Name) and func.id == "call"
                )
                for arg in node.args if named else ():
                    if isinstance(arg, ast.Constant) and arg.value in callers:
                        callers[arg.value].add(caller)
    for route in ROUTES:
        callers[route.service].add("gateway")
    callers["auth"] |= set(BUILT) - {"auth"}  # make_app verifies tokens with auth's JWKS
    return {name: frozenset(found) for name, found in callers.items()}


def test_a_service_per_called_service(objects: list[Object]) -> None:
    """order-consumer and relay take no requests: no Service, only probes and scraping."""
    called = {name for name, callers in _calls().items() if callers} | {"gateway"}
    deployments = _deployments(objects)
    services = {
        name: svc for name, svc in _of_kind(objects, "Service").items() if name in SERVICE_PORTS
    }
    assert sorted(services) == sorted(called)
    for name, service in services.items():
        port = SERVICE_PORTS[name][1]
        assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
        assert _selects(
            {"matchLabels": service["spec"]["selector"]}, _pod_labels(deployments[name])
        )


def test_autoscalers_own_the_replicas_of_the_request_path(objects: list[Object]) -> None:
    deployments = _deployments(objects)
    autoscalers = _of_kind(objects, "HorizontalPodAutoscaler")
    assert {a["spec"]["scaleTargetRef"]["name"] for a in autoscalers.values()} == AUTOSCALED
    for autoscaler in autoscalers.values():
        assert autoscaler["apiVersion"] == "autoscaling/v2"
        target = autoscaler["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        deployment = deployments[target["name"]]
        assert "replicas" not in deployment["spec"], (
            f"{target['name']}: an applied replicas field would undo the autoscaler's choice"
        )
        assert autoscaler["spec"]["minReplicas"] >= 2
        (metric,) = autoscaler["spec"]["metrics"]
        assert (
            metric["resource"]["name"] == "cpu"
            and "cpu" in _main(deployment)["resources"]["requests"]
        )


def test_every_service_survives_a_node_drain(objects: list[Object]) -> None:
    """Two pods at least, and a budget that lets a drain take one at a time."""
    autoscaled = {
        a["spec"]["scaleTargetRef"]["name"]: a["spec"]["minReplicas"]
        for a in _of_kind(objects, "HorizontalPodAutoscaler").values()
    }
    budgets = _of_kind(objects, "PodDisruptionBudget")
    for name, deployment in _deployments(objects).items():
        replicas = deployment["spec"].get("replicas", autoscaled.get(name, 1))
        assert replicas >= 2, f"{name} runs {replicas} pod(s)"
        covering = [
            b for b in budgets.values() if _selects(b["spec"]["selector"], _pod_labels(deployment))
        ]
        assert [b["spec"].get("maxUnavailable") for b in covering] == [1], (
            f"{name}: want one PodDisruptionBudget with maxUnavailable 1, have {covering}"
        )


def test_the_dev_postgres_holds_every_pool(rendered: dict[str, list[Object]]) -> None:
    """`microshop budget`'s plan of the pods at their most (the autoscalers' maximums)."""
    objects = rendered["dev"]
    config = Config.from_env(
        {k: v for k, v in _config_map(objects).items() if k in Config.ENV_VARS}
    )
    autoscaled = {
        a["spec"]["scaleTargetRef"]["name"]: a["spec"]["maxReplicas"]
        for a in _of_kind(objects, "HorizontalPodAutoscaler").values()
    }
    pods = {
        name: autoscaled.get(name, deployment["spec"].get("replicas", 1))
        for name, deployment in _deployments(objects).items()
    }
    stack = plan(list(pods), pods, config)
    args = _pod(_of_kind(objects, "StatefulSet")["postgres"])["containers"][0]["args"]
    limit = int(next(a.split("=", 1)[1] for a in args if a.startswith("max_connections=")))
    available = Capacity(limit, 3, 0).available(config.db_connection_reserve)
    assert stack.total <= available, "\n".join([stack.explain(Capacity(limit, 3, 0), 10)])


# -- (e) the Ingress: the gateway's public paths, never /internal ------------------------------


def _routes(path: str, rule_path: str, path_type: str) -> bool:
    """Whether an Ingress path of `path_type` matches the request path (Kubernetes semantics:
    Prefix matches whole path elements)."""
    if path_type == "Exact":
        return path == rule_path
    assert path_type == "Prefix", f"pathType {path_type}: use Exact or Prefix"
    prefix = rule_path.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or prefix == ""


def _ingress_paths(ingress: Object) -> list[tuple[str, str, Object]]:
    return [
        (p["path"], p["pathType"], p["backend"])
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    ]


def _public_gateway_paths() -> list[str]:
    """A request path for every route the gateway serves, but its operational endpoints."""
    app = create_gateway(Config())
    paths = {re.sub(r"\{[^}]+\}", "x", r.canonical) for r in app.router.resources()}
    paths = {p + "/x" if p in ("/static", "/app") else p for p in paths}
    return sorted(p for p in paths if p not in OPERATIONS)


def test_the_ingress_routes_every_public_gateway_path_to_the_gateway(objects: list[Object]) -> None:
    ingress = _of_kind(objects, "Ingress")["gateway"]
    gateway = _of_kind(objects, "Service")["gateway"]
    paths = _ingress_paths(ingress)
    for _, _, backend in paths:
        assert backend["service"]["name"] == gateway["metadata"]["name"]
        assert backend["service"]["port"] == {"name": gateway["spec"]["ports"][0]["name"]}
    unrouted = [
        p for p in _public_gateway_paths() if not any(_routes(p, r, t) for r, t, _ in paths)
    ]
    assert not unrouted, f"the gateway serves {unrouted}, which the Ingress does not route"


def test_the_ingress_never_routes_internal_or_operations(objects: list[Object]) -> None:
    ingresses = _of_kind(objects, "Ingress")
    paths = _ingress_paths(ingresses["gateway"])
    routed = [p for p in DENIED if any(_routes(p, r, t) for r, t, _ in paths)]
    assert not routed, f"the Ingress routes {routed}"
    deny = ingresses["gateway-deny-internal"]
    assert [(r, t) for r, t, _ in _ingress_paths(deny)] == [("/internal", "Prefix")]
    ranges = deny["metadata"]["annotations"]["nginx.ingress.kubernetes.io/denylist-source-range"]
    assert set(ranges.split(",")) == {"0.0.0.0/0", "::/0"}, "deny every client"
    hosts = [
        [rule.get("host") for rule in i["spec"]["rules"]] for i in (ingresses["gateway"], deny)
    ]
    assert hosts[0] == hosts[1], "the denial must cover the gateway's host"
    assert not [
        o for o in objects if o["kind"] == "Ingress" and o["metadata"]["name"] not in ingresses
    ]


# -- (f) NetworkPolicy: the calls in the code, and nothing else ---------------------------------


def _policy_sources(objects: list[Object], pod_labels: dict[str, str]) -> list[tuple[Object, Any]]:
    """(peer, ports) of every ingress rule of every policy selecting pods with `pod_labels`."""
    found = []
    for policy in _of_kind(objects, "NetworkPolicy").values():
        spec = policy["spec"]
        if not _selects(spec["podSelector"], pod_labels):
            continue
        assert spec["policyTypes"] == ["Ingress"], policy["metadata"]["name"]
        for rule in spec.get("ingress", []):
            assert rule.get("from"), (
                f"{policy['metadata']['name']}: a rule without `from` allows all"
            )
            for peer in rule["from"]:
                found.append((peer, rule.get("ports")))
    return found


def test_a_default_deny_underlies_every_policy(objects: list[Object]) -> None:
    deny = _of_kind(objects, "NetworkPolicy")["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_network_policy_lets_in_exactly_the_callers(objects: list[Object], name: str) -> None:
    deployments = _deployments(objects)
    allowed: set[str] = set()
    namespaces: list[Object] = []
    for peer, ports in _policy_sources(objects, _pod_labels(deployments[name])):
        assert ports == [{"port": "http"}], f"{name}: only its own port, not {ports}"
        if "namespaceSelector" in peer:
            assert "podSelector" not in peer, peer
            namespaces.append(peer["namespaceSelector"]["matchLabels"])
            continue
        selector = peer["podSelector"]
        allowed |= {n for n, d in deployments.items() if _selects(selector, _pod_labels(d))}
    assert allowed == _calls()[name], f"{name}: the code's callers are {sorted(_calls()[name])}"
    expected = [{"microshop.io/scrape-metrics": "true"}]
    if name == "gateway":  # the ingress controller reaches the gateway, and only it
        expected.append({"kubernetes.io/metadata.name": "ingress-nginx"})
    assert sorted(map(str, namespaces)) == sorted(map(str, expected)), name


def test_the_dev_databases_take_only_microshop_s_pods(rendered: dict[str, list[Object]]) -> None:
    objects = rendered["dev"]
    workloads = [*_deployments(objects).values(), _one(objects, "Job")]
    for server, clients in (
        ("postgres", workloads),
        ("rabbitmq", list(_deployments(objects).values())),
    ):
        sources = _policy_sources(objects, _pod_labels(_of_kind(objects, "StatefulSet")[server]))
        assert all("podSelector" in peer and "namespaceSelector" not in peer for peer, _ in sources)
        for workload in clients:
            assert any(
                _selects(peer["podSelector"], _pod_labels(workload)) for peer, _ in sources
            ), f"{workload['metadata']['name']} cannot reach {server}"
