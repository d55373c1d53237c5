"""The Kubernetes faults against a real cluster: `make test-k8s-real` (after `make kind-up
kind-load kind-deploy`), with KUBECONFIG pointing at it.

Marked ``real_cluster`` and deselected from the default run (pyproject's addopts). Selected
without a cluster, the tests fail and say what to do; they never skip. They act only in the
shop's namespace (``$K8S_NAMESPACE``, default inoculate-shop) and send load only to the
gateway's NodePort on 127.0.0.1 (``$SHOP_URL``, default http://127.0.0.1:30080).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from chaosk8s import create_k8s_api_client
from chaosk8s.deployment.probes import deployment_available_and_healthy
from kubernetes import client

from inoculate.extensions import kubernetes as k8s
from inoculate.faults.ledger import FaultLedger
from inoculate.faults.protocol import revert_outstanding
from tests.support import REPO, Workspace, wait_for

pytestmark = pytest.mark.real_cluster

NAMESPACE = os.environ.get("K8S_NAMESPACE", "inoculate-shop")
SHOP_URL = os.environ.get("SHOP_URL", "http://127.0.0.1:30080")
READY_TIMEOUT_S = 180.0


@pytest.fixture(scope="module", autouse=True)
def real_cluster() -> None:
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if not kubeconfig or not Path(kubeconfig).is_file():
        pytest.fail(
            "real_cluster tests need KUBECONFIG pointing at a cluster with the shop deployed: "
            "make kind-up kind-load kind-deploy test-k8s-real",
            pytrace=False,
        )
    for name in ("gateway", "catalog", "orders"):
        k8s.wait_deployment_ready(name, NAMESPACE, timeout_s=READY_TIMEOUT_S)


@pytest.fixture
def configuration(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ledger = tmp_path / "ledger.jsonl"
    yield {"inoculate_ledger": str(ledger)}
    # Whatever a failed test left behind is reverted, so the cluster stays as deployed.
    outcomes = revert_outstanding(FaultLedger(ledger))
    assert all(o.reverted for o in outcomes), [o.detail for o in outcomes]


def _catalog_pods() -> list[Any]:
    pods = client.CoreV1Api(create_k8s_api_client()).list_namespaced_pod(
        NAMESPACE, label_selector="app=catalog"
    )
    return [p for p in pods.items if p.metadata.deletion_timestamp is None]


def test_the_shop_is_deployed_ready_and_served_on_the_nodeport() -> None:
    for name in ("gateway", "catalog", "orders"):
        assert k8s.deployment_ready(name, NAMESPACE)["met"], name
        assert deployment_available_and_healthy(name, ns=NAMESPACE) is True
    products = requests.get(f"{SHOP_URL}/products", timeout=5)
    assert products.status_code == 200 and len(products.json()) == 20


def test_kill_pods_then_the_deployment_becomes_ready_again(configuration: dict) -> None:
    before = {p.metadata.name for p in _catalog_pods()}
    result = k8s.kill_pods("app=catalog", NAMESPACE, percentage=34, configuration=configuration)
    assert len(result["killed"]) == 1 and result["killed"][0] in before
    state = k8s.ensure_pods_ready(
        "app=catalog", NAMESPACE, timeout_s=READY_TIMEOUT_S, configuration=configuration
    )
    after = {p.metadata.name for p in _catalog_pods()}
    assert result["killed"][0] not in after and len(after) == len(before)
    assert state["deployments"][0]["met"]


def test_scale_down_then_restore(configuration: dict) -> None:
    original = k8s.deployment_ready("catalog", NAMESPACE)["replicas"]
    k8s.scale_deployment("catalog", 1, NAMESPACE, configuration=configuration)
    wait_for(lambda: len(_catalog_pods()) == 1, 120, "the scale-down to one catalog pod")
    k8s.restore_replicas("catalog", NAMESPACE, configuration=configuration)
    state = k8s.wait_deployment_ready("catalog", NAMESPACE, timeout_s=READY_TIMEOUT_S)
    assert state["replicas"] == original and state["ready_pods"] == original


def _checkout_status() -> int:
    order = requests.post(f"{SHOP_URL}/orders", json={"product_id": 1, "quantity": 1}, timeout=5)
    return order.status_code


def test_deny_ingress_cuts_orders_off_until_allowed_again(configuration: dict) -> None:
    assert _checkout_status() == 201
    result = k8s.deny_ingress("app=orders", NAMESPACE, configuration=configuration)
    # Enforced by the CNI: the gateway cannot reach orders and queues the order (202).
    wait_for(lambda: _checkout_status() == 202, 60, "checkout to be queued (policy enforced)")
    k8s.allow_ingress(NAMESPACE, "app=orders", configuration=configuration)
    net = client.NetworkingV1Api(create_k8s_api_client())
    names = [p.metadata.name for p in net.list_namespaced_network_policy(NAMESPACE).items]
    assert result["policy"] not in names
    wait_for(lambda: _checkout_status() == 201, 60, "checkout to reach orders again")


CRASHING_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from inoculate.extensions import kubernetes as k8s
    k8s.scale_deployment("catalog", 1, sys.argv[1], configuration={"inoculate_ledger": sys.argv[2]})
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_recover_restores_a_scale_down_after_a_sigkill(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    original = k8s.deployment_ready("catalog", NAMESPACE)["replicas"]
    command = [sys.executable, "-c", CRASHING_RUN, NAMESPACE, str(ledger)]
    crashed = subprocess.run(command, cwd=REPO, capture_output=True, timeout=60, check=False)
    assert crashed.returncode == -signal.SIGKILL
    recover = [sys.executable, "-m", "inoculate.cli", "recover", "--ledger", str(ledger)]
    recovered = subprocess.run(recover, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    state = k8s.wait_deployment_ready("catalog", NAMESPACE, timeout_s=READY_TIMEOUT_S)
    assert state["replicas"] == original


@pytest.mark.parametrize(
    "experiment",
    ["pod-kill-blast-radius.yaml", "deployment-scale-down.yaml", "deny-ingress-orders.yaml"],
)
def test_the_kubernetes_experiments_hold_on_the_cluster(
    workspace: Workspace, experiment: str
) -> None:
    path = REPO / "experiments" / "kubernetes" / experiment
    result = workspace.run("run", str(path), "--var", f"namespace={NAMESPACE}", timeout=600)
    assert result.code == 0, result.stdout + result.stderr
    assert workspace.outstanding_faults() == []
