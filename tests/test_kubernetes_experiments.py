"""The Kubernetes experiments, validated and run through the CLI against the Kubernetes API fake.

A run needs load against the shop's gateway; no cluster runs here, so the copy that runs
points its load at the embedded demo shop instead of the NodePort, and keeps everything
else: the method's faults, the chaosk8s and inoculate probes, the rollbacks, the ledger.
The faults reach the fake over HTTP; a fake deployment controller recreates pods.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubernetes_emulator import (
    DEPLOYMENTS,
    NETWORK_POLICIES,
    PODS,
    ApiFake,
    FakeDeploymentController,
    running_api_fake,
    seed_deployment,
)
from tests.support import REPO, Workspace, assert_no_fault_remains

pytestmark = pytest.mark.integration

K8S_EXPERIMENTS = REPO / "experiments" / "kubernetes"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def test_every_kubernetes_experiment_validates(workspace: Workspace) -> None:
    paths = sorted(K8S_EXPERIMENTS.glob("*.yaml"))
    assert len(paths) == 3
    result = workspace.run("validate", *map(str, paths))
    assert result.code == 0, result.stderr
    assert result.stdout.count("valid ") == 3


def test_a_bad_kubernetes_argument_is_invalid_input(workspace: Workspace, tmp_path: Path) -> None:
    experiment = yaml.safe_load((K8S_EXPERIMENTS / "pod-kill-blast-radius.yaml").read_text())
    experiment["method"][0]["provider"]["arguments"]["percentage"] = "a third"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(experiment))
    result = workspace.run("validate", str(path))
    assert result.code == 2
    assert "method[0] (kill-a-third-of-the-catalog-pods).provider.arguments.percentage" in (
        result.stderr
    )


@pytest.fixture(scope="module")
def api_fake() -> Iterator[ApiFake]:
    with running_api_fake() as fake:
        yield fake


@pytest.fixture
def shop_in_fake(
    api_fake: ApiFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A namespace holding the shop's deployments, with a controller; KUBECONFIG set."""
    monkeypatch.setenv("KUBECONFIG", str(api_fake.write_kubeconfig(tmp_path / "kubeconfig")))
    for variable in ("KUBERNETES_CONTEXT", *PROXY_VARIABLES):
        monkeypatch.delenv(variable, raising=False)
    ns = f"shop-{uuid.uuid4().hex[:8]}"
    seed_deployment(api_fake, "catalog", ns, 3, {"app": "catalog"})
    seed_deployment(api_fake, "gateway", ns, 2, {"app": "gateway"})
    seed_deployment(api_fake, "orders", ns, 1, {"app": "orders"})
    with FakeDeploymentController(api_fake, ns, delay_s=1.0):
        yield ns


def _runnable_copy(name: str, folder: Path) -> Path:
    """The experiment with its load on the embedded shop and short pauses; all else as is."""
    experiment = yaml.safe_load((K8S_EXPERIMENTS / name).read_text())
    [block] = [e for e in experiment["extensions"] if e["name"] == "inoculate"]
    load = {k: v for k, v in block["load"].items() if k != "host"}
    load.update(
        locustfile=str(REPO / "experiments" / "shop" / "locustfile.py"),
        users=10,
        spawn_rate=10,
        warmup_s=3,
    )
    block.update(load=load, system={"embedded": "shop"}, runbook=None)
    for activity in experiment["method"]:
        activity["pauses"] = {"after": 3}
    path = folder / name
    path.write_text(yaml.safe_dump(experiment))
    return path


def _run(workspace: Workspace, name: str, ns: str) -> tuple[Any, dict[str, Any]]:
    path = _runnable_copy(name, workspace.root)
    result = workspace.run("run", str(path), "--var", f"namespace={ns}")
    assert result.code == 0, result.stdout + result.stderr
    summary = result.summary()
    assert summary["status"] == "passed"
    assert_no_fault_remains(workspace, summary)
    return result, summary


def _probe_output(journal: dict[str, Any], name: str) -> Any:
    probes = journal["steady_states"]["before"]["probes"]
    return next(p["output"] for p in probes if p["activity"]["name"] == name)


def test_pod_kill_experiment_runs_against_the_fake(
    workspace: Workspace, api_fake: ApiFake, shop_in_fake: str
) -> None:
    before = api_fake.names(PODS, shop_in_fake)
    result, summary = _run(workspace, "pod-kill-blast-radius.yaml", shop_in_fake)
    [fault] = summary["faults"]
    assert fault["kind"] == fault["fault"] == "kubernetes:kill_pods"
    killed = result.journal()["run"][0]["output"]
    assert len(killed["killed"]) == 1 and killed["candidates"] == 3  # 34 % of 3, rounded down
    assert isinstance(killed["seed"], int)
    after = api_fake.names(PODS, shop_in_fake)
    assert killed["killed"][0] in before and killed["killed"][0] not in after
    assert len([n for n in after if n.startswith("catalog")]) == 3  # replaced, then waited for
    assert _probe_output(result.journal(), "catalog-available-and-healthy") is True


def test_scale_down_experiment_runs_against_the_fake(
    workspace: Workspace, api_fake: ApiFake, shop_in_fake: str
) -> None:
    result, summary = _run(workspace, "deployment-scale-down.yaml", shop_in_fake)
    [fault] = summary["faults"]
    assert fault["kind"] == fault["fault"] == "kubernetes:scale_deployment"
    assert result.journal()["run"][0]["output"]["original"] == 3
    assert api_fake.get(DEPLOYMENTS, shop_in_fake, "catalog")["spec"]["replicas"] == 3
    patches = [
        r.data["spec"]["replicas"]
        for r in api_fake.requests("PATCH", f"/namespaces/{shop_in_fake}/deployments/catalog")
    ]
    assert patches == [1, 3]  # scaled down by chaosk8s, restored by the rollback
    assert _probe_output(result.journal(), "catalog-ready")["met"] is True


def test_deny_ingress_experiment_runs_against_the_fake(
    workspace: Workspace, api_fake: ApiFake, shop_in_fake: str
) -> None:
    result, summary = _run(workspace, "deny-ingress-orders.yaml", shop_in_fake)
    [fault] = summary["faults"]
    assert fault["kind"] == fault["fault"] == "kubernetes:deny_ingress"
    policy = result.journal()["run"][0]["output"]["policy"]
    created = api_fake.requests("POST", f"/namespaces/{shop_in_fake}/networkpolicies")
    deleted = api_fake.requests("DELETE", f"/namespaces/{shop_in_fake}/networkpolicies/{policy}")
    assert [r.data["metadata"]["name"] for r in created] == [policy] and len(deleted) == 1
    assert api_fake.names(NETWORK_POLICIES, shop_in_fake) == []
