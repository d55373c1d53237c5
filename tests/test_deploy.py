"""deploy/: the canary scheduled on engines that already exist — a Kubernetes CronJob, a systemd
service and timer, a GitHub Actions workflow — each checked here.

- **Kubernetes** (deploy/kubernetes/): every manifest deserialises into the ``kubernetes``
  client's models without losing a field, the CronJob has the settings an unattended canary
  needs, and the manifests apply to the API emulator (tests/kubernetes_emulator.py) and read
  back. The Role's rules are the set derived from the code: the client methods that
  ``inoculate/extensions/kubernetes/`` calls (and the chaostoolkit-kubernetes functions it
  calls, followed into their source) are mapped to (API group, resource, verb) through the
  client's own request paths, so a new API call without a rule fails here; and every request
  the faults really make to the emulator is one the Role allows.
- **systemd** (deploy/systemd/): ``systemd-analyze verify`` on the units, in a root of their
  own, where every warning counts (skipped without the binary, but not under CI=true: .ci/run
  installs Debian's systemd); the keys that matter are checked with configparser everywhere.
- **GitHub Actions** (deploy/github/canary.yml): the workflow's schedule, concurrency and
  artifacts, and its canary step's script run under bash with a stand-in ``inoculate`` for
  every exit code (4, skipped, passes the step).
"""

from __future__ import annotations

import ast
import configparser
import importlib
import inspect
import os
import re
import shlex
import shutil
import stat
import subprocess
import textwrap
import types
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes import client, utils
from kubernetes import config as kube_config

from inoculate.experiment.validation import validate_experiment
from inoculate.extensions import kubernetes as k8s
from inoculate.extensions.kubernetes.preview import PREVIEWS
from inoculate.modes.canary import load_policy
from tests.kubernetes_emulator import (
    ApiFake,
    FakeDeploymentController,
    running_api_fake,
    seed_deployment,
)
from tests.prometheus_support import start_prometheus
from tests.support import REPO

DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
CANARY_FILES = DEPLOY / "canary"
SYSTEMD = DEPLOY / "systemd"
WORKFLOW = DEPLOY / "github" / "canary.yml"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")
Rule = tuple[str, str, str]  # (API group, resource, verb)

# ----------------------------------------------------------------------------- manifests


@cache
def _manifests() -> dict[str, dict[str, Any]]:
    """Every manifest of deploy/kubernetes (one document per file), by file name."""
    found = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            [document] = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
            found[path.name] = document
    return found


def _by_kind(kind: str) -> dict[str, Any]:
    [document] = [d for d in _manifests().values() if d["kind"] == kind]
    return document


def _model_name(document: dict[str, Any]) -> str:
    version = document["apiVersion"].rpartition("/")[2]
    return f"{version[0].upper()}{version[1:]}{document['kind']}"


def test_the_kustomization_lists_every_manifest_but_the_recover_job() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert "namespace" not in kustomization
    assert sorted(kustomization["resources"]) == sorted(set(_manifests()) - {"recover-job.yaml"})


def test_every_manifest_deserialises_into_the_clients_models_without_losing_a_field() -> None:
    api = client.ApiClient()
    assert {d["kind"] for d in _manifests().values()} == {
        "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "PersistentVolumeClaim",
        "CronJob", "Job",
    }  # fmt: skip
    for name, document in _manifests().items():
        model = api._ApiClient__deserialize(document, _model_name(document))  # type: ignore[attr-defined]
        assert type(model).__name__ == _model_name(document), name
        # A misspelt or misplaced key is silently dropped by the models: the round trip
        # gives the manifest back only when every key is one the API knows, where it belongs.
        assert api.sanitize_for_serialization(model) == document, name


def test_no_manifest_names_a_namespace_and_the_names_agree() -> None:
    for name, document in _manifests().items():
        assert "namespace" not in document["metadata"], name
    account = _by_kind("ServiceAccount")["metadata"]["name"]
    binding = _by_kind("RoleBinding")
    # Without a namespace, a RoleBinding's ServiceAccount subject is the binding's own
    # namespace's: the manifests apply unchanged to any namespace.
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": _by_kind("Role")["metadata"]["name"],
    }
    assert account == "inoculate-canary" and _by_kind("ConfigMap")["metadata"]["name"] == account


def _pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec = document["spec"]
    job = spec["jobTemplate"]["spec"] if document["kind"] == "CronJob" else spec
    return job["template"]["spec"]


def test_the_cronjob_runs_one_canary_at_a_time_never_retried_never_late() -> None:
    cronjob = _by_kind("CronJob")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 600
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert len(spec["schedule"].split()) == 5 and spec["timeZone"]
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert 0 < job["activeDeadlineSeconds"] <= 3600
    pod = _pod_spec(cronjob)
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == _by_kind("ServiceAccount")["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    # SIGTERM aborts the canary, which then reverts its faults: the grace period must outlast
    # the longest rollback of the experiment it runs.
    experiment = yaml.safe_load((CANARY_FILES / "experiment.yaml").read_text())
    rollback_s = max(
        a["provider"]["arguments"].get("timeout_s", 0) for a in experiment["rollbacks"]
    )
    assert pod["terminationGracePeriodSeconds"] > rollback_s > 0


def test_the_canary_pods_run_locked_down() -> None:
    for name in ("cronjob.yaml", "recover-job.yaml"):
        pod = _pod_spec(_manifests()[name])
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        [container] = pod["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), name
        assert container["image"] == "inoculate:latest", name  # the placeholder README explains


def _mounts(pod: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Mount path → (volumeMount, volume) of the pod's only container."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    [container] = pod["containers"]
    return {m["mountPath"]: (m, volumes[m["name"]]) for m in container["volumeMounts"]}


def _under(path: str, mounts: dict[str, Any]) -> str:
    """The mount path ``path`` lies under (fails when none)."""
    [mount] = [m for m in mounts if PurePosixPath(path).is_relative_to(m)]
    return mount


def test_the_cronjob_reads_the_configmap_read_only_and_keeps_its_state_on_the_claim() -> None:
    pod = _pod_spec(_by_kind("CronJob"))
    mounts = _mounts(pod)
    [container] = pod["containers"]
    args = container["args"]
    assert args[:2] == ["inoculate", "canary"]
    experiment, policy = args[2], args[args.index("--policy") + 1]
    configmap = _by_kind("ConfigMap")
    for path in (experiment, policy):
        mount, volume = mounts[_under(path, mounts)]
        assert mount["readOnly"] is True
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert PurePosixPath(path).name in configmap["data"]
    claim = _by_kind("PersistentVolumeClaim")["metadata"]["name"]
    env = {e["name"]: e for e in container["env"]}
    kept = [args[args.index("--audit-log") + 1], args[args.index("--out") + 1]]
    kept.append(env["INOCULATE_LEDGER"]["value"])
    for path in kept:  # the audit log, the runs and the fault ledger outlive the pod
        mount, volume = mounts[_under(path, mounts)]
        assert not mount.get("readOnly") and volume["persistentVolumeClaim"]["claimName"] == claim
    assert "--lock-dir" not in args  # in a cluster the lock is a Lease
    assert env["CANARY_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # The recover Job reverts from the same ledger.
    recover = _pod_spec(_manifests()["recover-job.yaml"])
    [recover_container] = recover["containers"]
    ledger = recover_container["args"][recover_container["args"].index("--ledger") + 1]
    assert recover_container["args"][:2] == ["inoculate", "recover"]
    assert ledger == env["INOCULATE_LEDGER"]["value"]
    recover_mounts = _mounts(recover)
    assert recover_mounts[_under(ledger, recover_mounts)][1] == mounts[_under(ledger, mounts)][1]


def test_the_configmap_holds_the_files_the_other_canaries_read() -> None:
    data = _by_kind("ConfigMap")["data"]
    assert set(data) == {"experiment.yaml", "policy.yaml"}
    for key, text in data.items():
        assert text == (CANARY_FILES / key).read_text(encoding="utf-8"), key
    # The example policy is one the canary accepts.
    policy = load_policy(CANARY_FILES / "policy.yaml")
    assert policy.scope == "shop-catalog" and policy.blast_radius["kubernetes"].max_count == 1


def test_the_example_experiment_is_valid_and_its_prometheus_queries_parse(tmp_path: Path) -> None:
    prometheus = start_prometheus(tmp_path / "prometheus", {})
    try:
        validated = validate_experiment(
            CANARY_FILES / "experiment.yaml", {"prometheus_url": prometheus.url}
        )
    finally:
        prometheus.stop()
    assert validated.spec is not None and validated.spec.load is None  # production is the load
    assert validated.spec.guards is not None and validated.spec.guards.error_budget is not None
    assert all(slo.prometheus is not None for slo in validated.spec.slos)
    # Its faults and probes are the ones the Role was derived from.
    experiment = validated.experiment
    activities = [
        *experiment["steady-state-hypothesis"]["probes"],
        *experiment["method"],
        *experiment["rollbacks"],
    ]
    modules = {a["provider"].get("module") for a in activities}
    assert modules == {"inoculate.extensions.kubernetes", "inoculate.steady_state.probes"}


# ------------------------------------------- the Role: derived from the code's API calls

# The lock's code (inoculate/canary/lock.py) is written in parallel with this file. Until it
# calls the Lease API, these are the verbs its design needs; once it does, its calls are
# derived like the faults' and this set is no longer used.
PLANNED_LEASE_RULES: frozenset[Rule] = frozenset(
    ("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update", "delete")
)


def _scanned_files() -> list[Path]:
    files = sorted((REPO / "inoculate" / "extensions" / "kubernetes").glob("*.py"))
    files += sorted((REPO / "inoculate" / "canary").glob("*.py"))
    files += [p for p in [REPO / "inoculate" / "modes" / "canary.py"] if p.exists()]
    return files


@cache
def _api_classes() -> dict[str, list[type]]:
    """Client method name → the ``kubernetes.client`` API classes that have it."""
    found: dict[str, list[type]] = {}
    for name in dir(kubernetes.client):
        cls = getattr(kubernetes.client, name)
        if not (isinstance(cls, type) and name.endswith("Api")):
            continue
        for method in dir(cls):
            if not method.startswith("_") and hasattr(cls, f"_{method}_serialize"):
                found.setdefault(method, []).append(cls)
    return found


def _rbac_of_request(http_method: str, path: str, watch: bool = False) -> Rule:
    """What RBAC checks for a namespaced request: (API group, resource[/subresource], verb)."""
    found = re.fullmatch(
        r"/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/[^/]+/(?P<resource>[^/]+)"
        r"(?P<named>/[^/]+(?:/(?P<sub>[^/]+))?)?",
        path,
    )
    assert found, f"{http_method} {path}: not a namespaced request (a Role cannot allow it)"
    resource = found["resource"] + (f"/{found['sub']}" if found["sub"] else "")
    named = found["named"] is not None
    verb = {
        "GET": ("get" if named else "watch" if watch else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
    }[http_method]
    return (found["group"] or "", resource, verb)


def _rbac_of_method(method: str) -> Rule:
    """The rule a ``kubernetes.client`` method needs, read from the request it builds."""
    rules = set()
    for cls in _api_classes()[method]:
        source = inspect.getsource(getattr(cls, f"_{method}_serialize"))
        http = re.search(r"method='(\w+)'", source)
        path = re.search(r"resource_path='([^']+)'", source)
        assert http and path, f"{cls.__name__}.{method}: no request in its serializer"
        rules.add(_rbac_of_request(http[1], path[1].replace("{namespace}", "ns")))
    assert len(rules) == 1, f"{method} means different requests in different classes: {rules}"
    return rules.pop()


def _aliases(tree: ast.Module) -> dict[str, Any]:
    """Names bound by the module's imports of chaostoolkit-kubernetes (modules or functions)."""
    bound: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chaosk8s"):
            for alias in node.names:
                try:
                    target = importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    target = getattr(importlib.import_module(str(node.module)), alias.name)
                bound[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("chaosk8s"):
                    bound[alias.asname or alias.name] = importlib.import_module(alias.name)
    return bound


def _called_methods(
    tree: ast.AST, aliases: dict[str, Any], seen: set[str] | None = None
) -> set[str]:
    """The ``kubernetes.client`` methods a piece of code calls, following chaosk8s functions."""
    seen = set() if seen is None else seen
    methods: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, target = node.func, None
        if isinstance(func, ast.Attribute) and func.attr in _api_classes():
            methods.add(func.attr)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            module = aliases.get(func.value.id)
            if isinstance(module, types.ModuleType):
                target = getattr(module, func.attr, None)
        elif isinstance(func, ast.Name):
            target = aliases.get(func.id)
        if isinstance(target, types.FunctionType):
            methods |= _methods_of_chaosk8s_function(target, seen)
    return methods


def _methods_of_chaosk8s_function(func: types.FunctionType, seen: set[str]) -> set[str]:
    name = f"{func.__module__}.{func.__qualname__}"
    if name in seen:
        return set()
    seen.add(name)
    module_tree = ast.parse(inspect.getsource(inspect.getmodule(func)))  # type: ignore[arg-type]
    return _called_methods(
        ast.parse(textwrap.dedent(inspect.getsource(func))), _aliases(module_tree), seen
    )


def _rules_called_by(source: str) -> set[Rule]:
    tree = ast.parse(source)
    return {_rbac_of_method(m) for m in _called_methods(tree, _aliases(tree))}


def _role_rules() -> set[Rule]:
    rules = set()
    for rule in _by_kind("Role")["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules |= {(group, resource, verb) for verb in rule["verbs"]}
    return rules


def test_the_scanner_finds_direct_and_chaosk8s_calls() -> None:
    # The derivation below is only as good as this: a direct call, and one made inside a
    # chaostoolkit-kubernetes function the code calls, both come out as the rule they need.
    source = textwrap.dedent("""
        from chaosk8s.networking import actions as net
        from kubernetes import client

        def f(api):
            client.CoreV1Api(api).read_namespaced_secret("token", "ns")
            net.create_network_policy(spec={}, ns="ns")
    """)
    assert _rules_called_by(source) == {
        ("", "secrets", "get"),
        ("networking.k8s.io", "networkpolicies", "create"),
    }


def test_the_roles_rules_are_exactly_what_the_code_calls() -> None:
    derived: set[Rule] = set()
    for path in _scanned_files():
        derived |= _rules_called_by(path.read_text(encoding="utf-8"))
    if not any(group == "coordination.k8s.io" for group, _, _ in derived):
        derived |= PLANNED_LEASE_RULES  # the lock's code has not landed yet
    role = _role_rules()
    assert derived == role, (
        f"rules the code needs but the Role lacks: {sorted(derived - role)}; "
        f"rules the Role grants but no code needs: {sorted(role - derived)} "
        "(deploy/kubernetes/role.yaml)"
    )
    # What the faults need, spelled out (a reader's check on the derivation).
    assert {r for r in derived if r[0] != "coordination.k8s.io"} == {
        ("", "pods", "list"), ("", "pods", "delete"),
        ("apps", "deployments", "get"), ("apps", "deployments", "patch"),
        ("apps", "replicasets", "get"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("networking.k8s.io", "networkpolicies", "get"),
        ("networking.k8s.io", "networkpolicies", "delete"),
    }  # fmt: skip


# ------------------------------------------------------------------------ on the emulator


@pytest.fixture(scope="module")
def api_fake() -> Iterator[ApiFake]:
    with running_api_fake() as fake:
        yield fake


@pytest.fixture
def namespace(api_fake: ApiFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    kubeconfig = api_fake.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # The client reads $KUBECONFIG once, at import (as tests/test_kubernetes.py explains).
    monkeypatch.setattr(kube_config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    for variable in ("KUBERNETES_CONTEXT", *PROXY_VARIABLES):
        monkeypatch.delenv(variable, raising=False)  # only loopback traffic, to the fake
    return f"t-{uuid.uuid4().hex[:8]}"


def test_the_manifests_apply_to_the_emulator_and_read_back(
    api_fake: ApiFake, namespace: str
) -> None:
    api = kube_config.new_client_from_config()
    for name in [*yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"]]:
        utils.create_from_yaml(api, str(KUBE / name), namespace=namespace)
    batch, rbac = client.BatchV1Api(api), client.RbacAuthorizationV1Api(api)
    core = client.CoreV1Api(api)
    cronjob = batch.read_namespaced_cron_job("inoculate-canary", namespace)
    assert cronjob.spec.concurrency_policy == "Forbid"
    assert cronjob.spec.starting_deadline_seconds == 300
    assert cronjob.spec.job_template.spec.backoff_limit == 0
    [container] = cronjob.spec.job_template.spec.template.spec.containers
    assert container.security_context.read_only_root_filesystem is True
    role = rbac.read_namespaced_role("inoculate-canary", namespace)
    assert [api.sanitize_for_serialization(r) for r in role.rules] == _by_kind("Role")["rules"]
    binding = rbac.read_namespaced_role_binding("inoculate-canary", namespace)
    assert binding.role_ref.name == role.metadata.name
    assert core.read_namespaced_service_account("inoculate-canary", namespace)
    configmap = core.read_namespaced_config_map("inoculate-canary", namespace)
    assert configmap.data == _by_kind("ConfigMap")["data"]
    claim = core.read_namespaced_persistent_volume_claim("inoculate-canary-state", namespace)
    assert claim.spec.resources.requests == {"storage": "1Gi"}
    # The recover Job is applied by hand, the same way.
    utils.create_from_yaml(api, str(KUBE / "recover-job.yaml"), namespace=namespace)
    recover = batch.read_namespaced_job("inoculate-canary-recover", namespace)
    assert recover.spec.template.spec.service_account_name == "inoculate-canary"


def _allowed(rule: Rule, rules: list[dict[str, Any]]) -> bool:
    group, resource, verb = rule
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules
    )


def test_every_request_the_faults_make_is_one_the_role_allows(
    api_fake: ApiFake, namespace: str, tmp_path: Path
) -> None:
    configuration = {"inoculate_ledger": str(tmp_path / "ledger.jsonl")}
    ns = namespace
    seed_deployment(api_fake, "catalog", ns, 3, {"app": "catalog"})
    seed_deployment(api_fake, "orders", ns, 1, {"app": "orders"})
    with FakeDeploymentController(api_fake, ns, delay_s=0.2):
        k8s.kill_pods("app=catalog", ns, count=1, configuration=configuration)
        k8s.ensure_pods_ready("app=catalog", ns, timeout_s=10, configuration=configuration)
        k8s.scale_deployment("catalog", 1, ns, configuration=configuration)
        k8s.restore_replicas("catalog", ns, configuration=configuration)
        k8s.wait_deployment_ready("catalog", ns, timeout_s=10)
        assert k8s.deployment_ready("catalog", ns)["met"] is True
        k8s.deny_ingress("app=orders", ns, configuration=configuration)
        k8s.allow_ingress(ns, "app=orders", configuration=configuration)
        for activity, preview in PREVIEWS.items():  # what --dry-run asks
            lines = preview({"ns": ns, "label_selector": "app=catalog", "name": "catalog"}, {})
            assert lines and not any("cannot tell" in line for line in lines), activity
    made: set[Rule] = set()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        for request in api_fake.requests(method, f"/namespaces/{ns}/"):
            watch = request.params.get("watch") in ("true", "1")
            made.add(_rbac_of_request(method, request.url.path, watch))
    rules = _by_kind("Role")["rules"]
    assert {r for r in made if not _allowed(r, rules)} == set()
    # And the Role grants nothing these activities did not use (the lock's Lease aside).
    assert made == {r for r in _role_rules() if r[0] != "coordination.k8s.io"}


# ------------------------------------------------------------------------------ systemd


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text(encoding="utf-8").replace("\\\n", " "))
    return parser


def _exec_start() -> list[str]:
    return shlex.split(_unit("inoculate-canary.service")["Service"]["ExecStart"])


def _argument(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


def test_the_service_runs_the_canary_once_hardened_and_counts_a_skip_as_success() -> None:
    service = _unit("inoculate-canary.service")["Service"]
    args = _exec_start()
    assert PurePosixPath(args[0]).name == "inoculate" and PurePosixPath(args[0]).is_absolute()
    assert args[1] == "canary" and "--policy" in args
    assert service["Type"] == "oneshot"
    assert service["User"] not in ("", "root") and service["Group"]
    assert service["SuccessExitStatus"].split() == ["4"]
    hardening = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
        "ProtectHome": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
    }  # fmt: skip
    assert {k: service.get(k) for k in hardening} == hardening
    writable = service["ReadWritePaths"].split()
    for option in ("--audit-log", "--out", "--lock-dir"):
        path = _argument(args, option)
        assert any(PurePosixPath(path).is_relative_to(w) for w in writable), option
    ledger = dict(v.split("=", 1) for v in service["Environment"].split())["INOCULATE_LEDGER"]
    assert any(PurePosixPath(ledger).is_relative_to(w) for w in writable)
    # SIGTERM aborts the canary, which then reverts; it needs more than a pod kill's 120 s.
    assert int(service["TimeoutStopSec"]) > 120


def test_the_timer_fires_in_office_hours_and_never_catches_up() -> None:
    timer = _unit("inoculate-canary.timer")
    assert timer["Timer"]["Persistent"] == "false"
    assert timer["Timer"]["Unit"] == "inoculate-canary.service"
    found = re.fullmatch(
        r"(?P<days>\S+) \*-\*-\* (?P<h>\d\d):(?P<m>\d\d):00 (?P<zone>\S+)",
        timer["Timer"]["OnCalendar"],
    )
    assert found and found["days"] == "Mon..Thu"
    delay_min = int(timer["Timer"]["RandomizedDelaySec"].removesuffix("min"))
    start = int(found["h"]) * 60 + int(found["m"])
    assert start >= 10 * 60 and start + delay_min + 30 <= 16 * 60  # a 30-minute run included
    assert timer["Install"]["WantedBy"] == "timers.target"


def _verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}",
         *(f"/etc/systemd/system/{u}" for u in units)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is not installed (.ci/run installs Debian's systemd)")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # A root of their own: the system's units (for the targets they order against), the two
    # units, and an executable where ExecStart expects inoculate (verify checks it exists).
    root = tmp_path / "root"
    system_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")))
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in ("inoculate-canary.service", "inoculate-canary.timer"):
        shutil.copy(SYSTEMD / unit, units / unit)
    binary = root / _exec_start()[0].lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    result = _verify(root, "inoculate-canary.service", "inoculate-canary.timer")
    # verify exits 0 on unknown keys and bad values (it ignores them): every line counts.
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")

    # The check above is only as strict as this: a misspelt key is reported.
    service = units / "inoculate-canary.service"
    service.write_text(service.read_text().replace("SuccessExitStatus=", "SucessExitStatus="))
    assert "Unknown key 'SucessExitStatus'" in _verify(root, "inoculate-canary.service").stderr


# ------------------------------------------------------------------------- GitHub Actions


def _workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _cron_values(field: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in field.split(","):
        found = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        assert found, f"cron field {field!r}"
        span, step = found[1], int(found[2] or 1)
        first, _, last = span.partition("-")
        start, end = (low, high) if span == "*" else (int(first), int(last or first))
        assert low <= start <= end <= high, f"cron field {field!r} outside {low}-{high}"
        values |= set(range(start, end + 1, step))
    return values


def test_the_workflow_is_scheduled_and_never_cancels_a_running_canary() -> None:
    workflow = _workflow()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "workflow_dispatch" in triggers
    [schedule] = triggers["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5
    values = [_cron_values(f, lo, hi) for f, (lo, hi) in zip(fields, CRON_RANGES, strict=True)]
    assert values[4] == {1, 2, 3, 4}  # Monday to Thursday
    # In UTC: inside 10:00-16:00 in Berlin both in winter (UTC+1) and in summer (UTC+2).
    assert all(h + 1 >= 10 and h + 2 < 16 for h in values[1])
    assert workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["permissions"] == {"contents": "read"}


def _steps() -> dict[str, dict[str, Any]]:
    [job] = _workflow()["jobs"].values()
    return {s.get("id") or s.get("name") or s["uses"]: s for s in job["steps"]}


def test_the_workflow_runs_the_repositorys_canary_and_uploads_its_record() -> None:
    steps = _steps()
    lines = steps["canary"]["run"].replace("\\\n", " ").splitlines()
    [command] = [line for line in lines if line.strip().startswith("inoculate canary")]
    args = shlex.split(command)
    assert args[:2] == ["inoculate", "canary"]
    assert (REPO / args[2]).is_file() and (REPO / _argument(args, "--policy")).is_file()
    [upload] = [s for s in steps.values() if str(s.get("uses", "")).startswith("actions/upload")]
    assert upload["if"] == "always()"
    uploaded = upload["with"]["path"].splitlines()
    for option in ("--audit-log", "--out"):
        written = _argument(args, option).replace("$STATE_DIR", "${{ env.STATE_DIR }}")
        assert any(written.rstrip("/") == p.rstrip("/") for p in uploaded), option
    install = [s["run"] for s in steps.values() if "pip install" in s.get("run", "")]
    assert install, "a step installs inoculate"


@pytest.mark.parametrize(("code", "step_code"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 0)])
def test_the_canary_step_passes_a_skip_and_fails_every_other_failure(
    tmp_path: Path, code: int, step_code: int
) -> None:
    # The step's script, run as GitHub runs a `run:` (bash -e), with a stand-in inoculate
    # that records its arguments and exits with the code under test.
    stand_in = tmp_path / "bin" / "inoculate"
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/args"\nexit {code}\n')
    stand_in.chmod(0o755)
    script = tmp_path / "step.sh"
    script.write_text(_steps()["canary"]["run"])
    output = tmp_path / "github_output"
    env = {
        "PATH": f"{stand_in.parent}:{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(output),
        "STATE_DIR": str(tmp_path / "state"),
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == step_code, result.stderr
    assert output.read_text().splitlines() == [f"exit_code={code}"]
    assert ("::notice title=Canary skipped::" in result.stdout) == (code == 4)
    args = (tmp_path / "args").read_text().splitlines()
    assert args[:2] == ["canary", "deploy/canary/experiment.yaml"]
    assert _argument(args, "--audit-log") == f"{tmp_path}/state/audit.jsonl"
