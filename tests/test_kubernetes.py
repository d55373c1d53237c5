"""Kubernetes faults at the HTTP level: the real ``kubernetes`` client and chaostoolkit-kubernetes
talk, through a kubeconfig, to kmock's KubernetesEmulator served on 127.0.0.1.

What this proves: the requests our helpers and chaosk8s' activities make, the objects they
create, patch and delete, the undo records and their reverts (also from the ledger alone,
after a SIGKILL). What it cannot prove (no cluster runs here): scheduling, probes, PDBs,
NetworkPolicy enforcement — see README "Kubernetes" and tests/test_kubernetes_real.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaosk8s.deployment.actions import scale_deployment as chaosk8s_scale
from chaosk8s.deployment.probes import deployment_available_and_healthy
from chaosk8s.networking.actions import deny_all_ingress, remove_deny_all_ingress
from chaosk8s.pod.actions import terminate_pods
from kubernetes import config as kube_config
from kubernetes import utils

from inoculate.extensions import kubernetes as k8s
from inoculate.faults.ledger import FaultLedger
from inoculate.faults.protocol import revert_outstanding
from inoculate.model.errors import FaultError
from tests.kubernetes_emulator import (
    DEPLOYMENTS,
    NETWORK_POLICIES,
    PODS,
    ApiFake,
    FakeDeploymentController,
    deployment,
    pod,
    replica_set,
    running_api_fake,
    seed_deployment,
)
from tests.support import REPO, wait_for

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")


@dataclass
class Cluster:
    """One test's view of the fake: its own namespace, kubeconfig and fault ledger."""

    fake: ApiFake
    ns: str
    kubeconfig: Path
    ledger_path: Path

    @property
    def configuration(self) -> dict[str, Any]:
        return {"inoculate_ledger": str(self.ledger_path)}

    @property
    def ledger(self) -> FaultLedger:
        return FaultLedger(self.ledger_path)

    def pods(self, prefix: str = "") -> list[str]:
        return [n for n in self.fake.names(PODS, self.ns) if n.startswith(prefix)]

    def replicas(self, name: str) -> int:
        return int(self.fake.get(DEPLOYMENTS, self.ns, name)["spec"]["replicas"])

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
        return {
            **env,
            "KUBECONFIG": str(self.kubeconfig),
            "INOCULATE_LEDGER": str(self.ledger_path),
        }


@pytest.fixture(scope="module")
def api_fake() -> Iterator[ApiFake]:
    with running_api_fake() as fake:
        yield fake


@pytest.fixture
def cluster(api_fake: ApiFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    kubeconfig = api_fake.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # The kubernetes client reads $KUBECONFIG once, at import; a process started with it set
    # (inoculate, chaos, the subprocesses below) needs no such help.
    monkeypatch.setattr(kube_config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    for variable in ("KUBERNETES_CONTEXT", *PROXY_VARIABLES):
        monkeypatch.delenv(variable, raising=False)  # only loopback traffic, to the fake
    return Cluster(api_fake, f"t-{uuid.uuid4().hex[:8]}", kubeconfig, tmp_path / "ledger.jsonl")


# --- chaostoolkit-kubernetes' own activities, over HTTP ---


def test_chaosk8s_activities_make_real_requests_to_the_fake(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    seed_deployment(cluster.fake, "gateway", cluster.ns, 2, {"app": "gateway"})

    assert deployment_available_and_healthy("catalog", ns=cluster.ns) is True
    deleted = terminate_pods(label_selector="app=catalog", ns=cluster.ns, qty=1)
    assert len(deleted) == 1 and deleted[0] not in cluster.pods()
    assert len(cluster.pods("catalog")) == 2 and len(cluster.pods("gateway")) == 2

    chaosk8s_scale("catalog", 5, ns=cluster.ns)
    assert cluster.replicas("catalog") == 5
    deny_all_ingress({"app": "gateway"}, ns=cluster.ns)
    policy = cluster.fake.get(NETWORK_POLICIES, cluster.ns, "chaostoolkit-deny-all-ingress")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "gateway"}}
    remove_deny_all_ingress(ns=cluster.ns)
    assert cluster.fake.names(NETWORK_POLICIES, cluster.ns) == []


def test_chaosk8s_percentage_rounds_up_which_is_why_kill_pods_exists(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 10, {"app": "catalog"})
    # 25 % of 10 pods: chaosk8s kills ceil(2.5) = 3, more than the quarter asked for.
    assert len(terminate_pods("app=catalog", ns=cluster.ns, mode="percentage", qty=25)) == 3


# --- kill_pods ---


def test_kill_pods_kills_a_rounded_down_percentage_of_owned_pods_by_uid(cluster: Cluster) -> None:
    names = seed_deployment(cluster.fake, "catalog", cluster.ns, 10, {"app": "catalog"})
    seed_deployment(cluster.fake, "gateway", cluster.ns, 2, {"app": "gateway"})
    bare = pod(replica_set(deployment("x", cluster.ns, 1, {})), {"app": "catalog"}, "bare")
    del bare["metadata"]["ownerReferences"]  # a pod no controller would bring back
    cluster.fake.put(PODS, cluster.ns, bare)
    pending = pod(replica_set(deployment("catalog", cluster.ns, 1, {})), {"app": "catalog"}, "new")
    pending["status"] = {"phase": "Pending"}  # not running yet: not a candidate
    cluster.fake.put(PODS, cluster.ns, pending)
    deletes_before = len(cluster.fake.requests("DELETE", f"/namespaces/{cluster.ns}/pods/"))

    result = k8s.kill_pods(
        "app=catalog", ns=cluster.ns, percentage=25, seed=1234, configuration=cluster.configuration
    )

    assert len(result["killed"]) == 2  # floor(25 % of 10): never more than asked
    assert result["candidates"] == 10 and result["seed"] == 1234
    assert result["skipped_unowned"] == [bare["metadata"]["name"]]
    assert result["workloads"] == [{"kind": "Deployment", "name": "catalog"}]
    left = cluster.pods()
    assert not set(result["killed"]) & set(left)
    assert set(names) - set(result["killed"]) <= set(left)
    assert bare["metadata"]["name"] in left and pending["metadata"]["name"] in left
    assert len(cluster.pods("gateway")) == 2
    deletes = cluster.fake.requests("DELETE", f"/namespaces/{cluster.ns}/pods/")[deletes_before:]
    assert len(deletes) == 2
    assert all(r.data["preconditions"]["uid"] for r in deletes)  # a replacement is never hit
    [record] = cluster.ledger.outstanding()
    assert record.fault == "kill_pods" and record.undo["seed"] == 1234
    assert record.undo["api_server"] == cluster.fake.url and record.undo["context"] == "kmock"
    assert {p["name"] for p in record.undo["pods"]} == set(result["killed"])
    # Names and places only: credentials come from the kubeconfig when reverting.
    assert set(record.undo) == {
        "api_server",
        "context",
        "namespace",
        "pods",
        "workloads",
        "ready_timeout_s",
        "seed",
    }


def test_kill_pods_with_the_same_seed_picks_the_same_pods(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 6, {"app": "catalog"})
    other = f"{cluster.ns}-b"
    seed_deployment(cluster.fake, "catalog", other, 6, {"app": "catalog"})
    first = k8s.kill_pods(
        "app=catalog", cluster.ns, count=2, seed=99, configuration=cluster.configuration
    )
    second = k8s.kill_pods(
        "app=catalog", other, count=2, seed=99, configuration=cluster.configuration
    )
    assert first["killed"] == second["killed"]


def test_kill_pods_refuses_a_blast_radius_that_selects_nothing(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    with pytest.raises(FaultError, match="rounds down to none"):
        k8s.kill_pods("app=catalog", cluster.ns, percentage=20, configuration=cluster.configuration)
    with pytest.raises(FaultError, match="no target matches"):
        k8s.kill_pods("app=nothing", cluster.ns, count=1, configuration=cluster.configuration)
    with pytest.raises(FaultError, match="give `count` or `percentage`"):
        k8s.kill_pods("app=catalog", cluster.ns, configuration=cluster.configuration)
    assert len(cluster.pods()) == 3 and cluster.ledger.outstanding() == []


def test_pod_kill_rollback_waits_until_the_deployment_is_ready_again(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    with FakeDeploymentController(cluster.fake, cluster.ns, delay_s=0.8) as controller:
        killed = k8s.kill_pods(
            "app=catalog", cluster.ns, count=2, configuration=cluster.configuration
        )["killed"]
        assert k8s.deployment_ready("catalog", cluster.ns)["met"] is False
        started = time.monotonic()
        result = k8s.ensure_pods_ready(
            "app=catalog", cluster.ns, timeout_s=15, configuration=cluster.configuration
        )
        waited = time.monotonic() - started
    assert 0.4 < waited < 10, waited  # it waited for the controller, and not for nothing
    assert len(controller.recreated) == 2 and not set(killed) & set(cluster.pods())
    assert [o["fault"] for o in result["reverted"]] == ["kubernetes:kill_pods"]
    assert result["deployments"][0]["met"] and result["deployments"][0]["ready_pods"] == 3
    assert cluster.ledger.outstanding() == []


def test_the_kill_reverter_alone_waits_for_the_replacements(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    with FakeDeploymentController(cluster.fake, cluster.ns, delay_s=0.8):
        k8s.kill_pods("app=catalog", cluster.ns, count=3, configuration=cluster.configuration)
        started = time.monotonic()
        [outcome] = revert_outstanding(cluster.ledger)  # what `inoculate recover` does
        waited = time.monotonic() - started
        assert len(cluster.pods("catalog")) == 3  # back before the reverter returned
    assert outcome.reverted and "deployment catalog ready (3 pods)" in outcome.detail
    assert 0.4 < waited < 10, waited


def test_pod_kill_rollback_fails_and_keeps_the_record_when_pods_never_return(
    cluster: Cluster,
) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 2, {"app": "catalog"})
    record = k8s.kill_pods(
        "app=catalog", cluster.ns, count=1, ready_timeout_s=0.5, configuration=cluster.configuration
    )
    # No controller: the status still says 2 ready, but only 1 live pod is there.
    with pytest.raises(FaultError, match=r"not ready after 0\.5s"):
        k8s.ensure_pods_ready("app=catalog", cluster.ns, configuration=cluster.configuration)
    [outstanding] = cluster.ledger.outstanding()
    assert outstanding.undo["pods"][0]["name"] == record["killed"][0]


# --- scale_deployment ---


def test_scale_deployment_records_the_original_replicas_and_restores_them(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    result = k8s.scale_deployment("catalog", 1, cluster.ns, configuration=cluster.configuration)
    assert result == {
        "namespace": cluster.ns,
        "deployment": "catalog",
        "replicas": 1,
        "original": 3,
    }
    assert cluster.replicas("catalog") == 1
    [record] = cluster.ledger.outstanding()
    assert record.undo["replicas"] == 3 and record.undo["deployment"] == "catalog"

    reverted = k8s.restore_replicas("catalog", cluster.ns, configuration=cluster.configuration)
    assert cluster.replicas("catalog") == 3
    assert reverted["reverted"][0]["detail"].endswith("scaled back to 3")
    assert cluster.ledger.outstanding() == []


def test_stacked_scale_downs_restore_the_first_original(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 4, {"app": "catalog"})
    k8s.scale_deployment("catalog", 2, cluster.ns, configuration=cluster.configuration)
    k8s.scale_deployment("catalog", 0, cluster.ns, configuration=cluster.configuration)
    assert cluster.replicas("catalog") == 0
    k8s.restore_replicas("catalog", cluster.ns, configuration=cluster.configuration)
    assert cluster.replicas("catalog") == 4  # newest record reverted first


def test_scale_of_a_missing_deployment_fails_before_recording(cluster: Cluster) -> None:
    with pytest.raises(FaultError, match="404"):
        k8s.scale_deployment("nope", 1, cluster.ns, configuration=cluster.configuration)
    assert cluster.ledger.outstanding() == []


def test_wait_deployment_ready_follows_a_restored_scale(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    with FakeDeploymentController(cluster.fake, cluster.ns, delay_s=0.3):
        k8s.scale_deployment("catalog", 1, cluster.ns, configuration=cluster.configuration)
        wait_for(lambda: len(cluster.pods("catalog")) == 1, 10, "the scale-down")
        # From before the restore: the controller sees the change after it, and answers only
        # 0.3 s later, however long a loaded machine takes between the calls below.
        started = time.monotonic()
        k8s.restore_replicas("catalog", cluster.ns, configuration=cluster.configuration)
        assert k8s.deployment_ready("catalog", cluster.ns)["met"] is False
        state = k8s.wait_deployment_ready("catalog", cluster.ns, timeout_s=10)
    assert time.monotonic() - started >= 0.3  # the controller's delay, really waited for
    assert state["met"] and state["ready_pods"] == 3 and len(cluster.pods("catalog")) == 3


# --- deny_ingress ---


def test_deny_ingress_creates_a_policy_and_its_undo_deletes_exactly_it(cluster: Cluster) -> None:
    users = {"metadata": {"name": "users-policy"}, "spec": {"podSelector": {}}}
    cluster.fake.put(NETWORK_POLICIES, cluster.ns, users)
    result = k8s.deny_ingress(
        "app=orders,tier=backend", cluster.ns, configuration=cluster.configuration
    )

    policy = cluster.fake.get(NETWORK_POLICIES, cluster.ns, result["policy"])
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app": "orders", "tier": "backend"}},
        "policyTypes": ["Ingress"],
        "ingress": [],
    }
    assert policy["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "inoculate"}
    [record] = cluster.ledger.outstanding()
    assert record.undo["policy"] == result["policy"]

    k8s.allow_ingress(cluster.ns, "app=orders,tier=backend", configuration=cluster.configuration)
    assert cluster.fake.names(NETWORK_POLICIES, cluster.ns) == ["users-policy"]
    assert cluster.ledger.outstanding() == []


def test_a_neighbours_allow_ingress_leaves_this_runs_policy_in_place(cluster: Cluster) -> None:
    run_a = {**cluster.configuration, "inoculate_run_id": "run-a"}
    run_b = {**cluster.configuration, "inoculate_run_id": "run-b"}
    ours = k8s.deny_ingress("app=orders", cluster.ns, configuration=run_a)
    theirs = k8s.deny_ingress("app=orders", cluster.ns, configuration=run_b)
    k8s.allow_ingress(cluster.ns, "app=orders", configuration=run_b)
    assert cluster.fake.names(NETWORK_POLICIES, cluster.ns) == [ours["policy"]]
    assert theirs["policy"] != ours["policy"]
    assert [r.run_id for r in cluster.ledger.outstanding()] == ["run-a"]
    k8s.allow_ingress(cluster.ns, "app=orders", configuration=run_a)
    assert cluster.fake.names(NETWORK_POLICIES, cluster.ns) == []
    assert cluster.ledger.outstanding() == []


def test_deny_ingress_never_deletes_a_same_named_policy_it_did_not_create(cluster: Cluster) -> None:
    cluster.fake.put(NETWORK_POLICIES, cluster.ns, {"metadata": {"name": "taken"}, "spec": {}})
    with pytest.raises(
        FaultError, match=r"creating NetworkPolicy .*/taken: API server answered 409"
    ):
        k8s.deny_ingress(
            "app=orders", cluster.ns, name="taken", configuration=cluster.configuration
        )
    # The undo record was written before the create failed; its revert must spare the policy.
    reverted = k8s.allow_ingress(cluster.ns, configuration=cluster.configuration)
    assert "not created by this fault" in reverted["reverted"][0]["detail"]
    assert cluster.fake.names(NETWORK_POLICIES, cluster.ns) == ["taken"]
    assert cluster.ledger.outstanding() == []


@pytest.mark.parametrize("selector", ["app!=orders", "app in (a,b)", "", "app"])
def test_deny_ingress_rejects_selectors_a_policy_cannot_express(
    cluster: Cluster, selector: str
) -> None:
    with pytest.raises(FaultError, match="label_selector"):
        k8s.deny_ingress(selector, cluster.ns, configuration=cluster.configuration)
    assert cluster.ledger.outstanding() == []


# --- probes ---


def test_deployment_ready_counts_live_pods_not_only_a_lagging_status(cluster: Cluster) -> None:
    names = seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    assert k8s.deployment_ready("catalog", cluster.ns)["met"] is True
    cluster.fake.delete(PODS, cluster.ns, names[0])  # the status still says 3 ready
    state = k8s.deployment_ready("catalog", cluster.ns)
    assert state["ready_replicas"] == 3 and state["ready_pods"] == 2 and state["met"] is False


# --- recover from the ledger alone ---

CRASHING_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from inoculate.extensions import kubernetes as k8s
    ns, ledger = sys.argv[1], sys.argv[2]
    configuration = {"inoculate_ledger": ledger}
    k8s.kill_pods("app=catalog", ns, count=1, ready_timeout_s=20, configuration=configuration)
    k8s.scale_deployment("gateway", 0, ns, configuration=configuration)
    k8s.deny_ingress("app=orders", ns, configuration=configuration)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_recover_undoes_every_kubernetes_fault_after_a_sigkill(cluster: Cluster) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    seed_deployment(cluster.fake, "gateway", cluster.ns, 2, {"app": "gateway"})
    seed_deployment(cluster.fake, "orders", cluster.ns, 1, {"app": "orders"})
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, cluster.ns, str(cluster.ledger_path)],
        cwd=REPO,
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert cluster.replicas("gateway") == 0 and len(cluster.pods("catalog")) == 2
    assert len(cluster.fake.names(NETWORK_POLICIES, cluster.ns)) == 1
    assert len(cluster.ledger.outstanding()) == 3

    with FakeDeploymentController(cluster.fake, cluster.ns, delay_s=0.3):
        recovered = subprocess.run(
            [
                sys.executable,
                "-m",
                "inoculate.cli",
                "recover",
                "--ledger",
                str(cluster.ledger_path),
            ],
            cwd=REPO,
            env=cluster.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        assert "3 fault(s) reverted, 0 left" in recovered.stdout
        assert cluster.replicas("gateway") == 2
        assert cluster.fake.names(NETWORK_POLICIES, cluster.ns) == []
        assert k8s.deployment_ready("catalog", cluster.ns)["met"]
    assert cluster.ledger.outstanding() == []


INOCULATE = [sys.executable, "-m", "inoculate.cli"]


def test_recover_refuses_to_act_on_another_api_server(cluster: Cluster, tmp_path: Path) -> None:
    seed_deployment(cluster.fake, "catalog", cluster.ns, 3, {"app": "catalog"})
    k8s.scale_deployment("catalog", 1, cluster.ns, configuration=cluster.configuration)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(
        cluster.kubeconfig.read_text().replace(cluster.fake.url, "http://127.0.0.1:9")
    )
    recovered = subprocess.run(
        [*INOCULATE, "recover", "--include-live", "--ledger", str(cluster.ledger_path)],
        cwd=REPO,
        env={**cluster.env(), "KUBECONFIG": str(elsewhere)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert recovered.returncode == 3, recovered.stdout + recovered.stderr
    assert "now points at http://127.0.0.1:9" in recovered.stdout.replace("\n", "")
    assert cluster.replicas("catalog") == 1 and len(cluster.ledger.outstanding()) == 1


# --- the manifests, deployed into the fake; their containers run for real ---

MANIFESTS = REPO / "deploy" / "kind" / "shop.yaml"


def test_the_manifests_deploy_and_the_experiment_selectors_match_them(
    cluster: Cluster,
) -> None:
    api = kube_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    documents = [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d["kind"] != "Namespace"]
    for document in documents:
        document["metadata"]["namespace"] = cluster.ns
    utils.create_from_yaml(api, yaml_objects=documents, namespace=cluster.ns)
    assert cluster.fake.names(DEPLOYMENTS, cluster.ns) == ["catalog", "gateway", "orders"]

    with FakeDeploymentController(cluster.fake, cluster.ns, delay_s=0.0):
        k8s.wait_deployment_ready("catalog", cluster.ns, timeout_s=10)
        killed = k8s.kill_pods(
            "app=catalog", cluster.ns, percentage=34, configuration=cluster.configuration
        )
        assert len(killed["killed"]) == 1  # 34 % of the manifest's 3 catalog replicas
        k8s.ensure_pods_ready("app=catalog", cluster.ns, configuration=cluster.configuration)
    assert cluster.ledger.outstanding() == []
