"""deploy/kind: the manifests hang together, and their containers' commands really serve the shop.

No cluster runs here, so each Deployment's container command and arguments are run as local
processes — the image's ``python3`` replaced by this interpreter, the port and the Services'
host names mapped to loopback — and probed on the readiness/liveness path; the gateway must
then serve through its upstreams. (The container runner listens on 0.0.0.0, as in a pod;
the test only ever connects to 127.0.0.1.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support import REPO, free_port, wait_for

KIND = REPO / "deploy" / "kind"
NAMESPACE = "inoculate-shop"


def _manifests() -> dict[tuple[str, str], dict[str, Any]]:
    documents = yaml.safe_load_all((KIND / "shop.yaml").read_text())
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def _deployments() -> dict[str, dict[str, Any]]:
    return {name: d for (kind, name), d in _manifests().items() if kind == "Deployment"}


def test_every_deployment_has_replicas_probes_and_the_makefile_image() -> None:
    deployments = _deployments()
    assert {n: d["spec"]["replicas"] for n, d in deployments.items()} == {
        "gateway": 2,
        "catalog": 3,
        "orders": 1,
    }
    for name, deployment in deployments.items():
        assert deployment["metadata"]["namespace"] == NAMESPACE
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        # `make kind-deploy` swaps this tag for $(SHOP_IMAGE), loaded by `kind load`.
        assert container["image"] == "inoculate/shop:latest", name
        assert container["imagePullPolicy"] == "Never", name
        assert container["ports"] == [{"name": "http", "containerPort": 8080}]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, name


def test_pdbs_and_services_select_the_deployments_pods() -> None:
    manifests = _manifests()
    labels = {
        name: d["spec"]["template"]["metadata"]["labels"] for name, d in _deployments().items()
    }

    def selected(selector: dict[str, str]) -> set[str]:
        return {name for name, pod in labels.items() if selector.items() <= pod.items()}

    pdbs = {name: d for (kind, name), d in manifests.items() if kind == "PodDisruptionBudget"}
    assert selected(pdbs["gateway"]["spec"]["selector"]["matchLabels"]) == {"gateway"}
    assert pdbs["gateway"]["spec"]["minAvailable"] == 1
    assert selected(pdbs["catalog"]["spec"]["selector"]["matchLabels"]) == {"catalog"}
    assert pdbs["catalog"]["spec"]["maxUnavailable"] == 1
    services = {name: d for (kind, name), d in manifests.items() if kind == "Service"}
    for name, service in services.items():
        assert selected(service["spec"]["selector"]) == {name}
        assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_gateway_nodeport_is_what_the_cluster_publishes_and_the_experiments_load() -> None:
    node_port = _manifests()["Service", "gateway"]["spec"]["ports"][0]["nodePort"]
    cluster = yaml.safe_load((KIND / "cluster.yaml").read_text())
    mappings = [m for node in cluster["nodes"] for m in node.get("extraPortMappings", [])]
    assert mappings == [
        {"containerPort": node_port, "hostPort": node_port, "listenAddress": "127.0.0.1",
         "protocol": "TCP"}
    ]  # fmt: skip
    for path in sorted((REPO / "experiments" / "kubernetes").glob("*.yaml")):
        experiment = yaml.safe_load(path.read_text())
        [block] = [e for e in experiment["extensions"] if e["name"] == "inoculate"]
        assert block["load"]["host"] == "${gateway_url}", path.name
        assert experiment["configuration"]["gateway_url"] == f"http://127.0.0.1:{node_port}"
        assert experiment["configuration"]["namespace"] == NAMESPACE, path.name


# --- the containers' commands, run as local processes ---


def _local_command(name: str, ports: dict[str, int], state_dir: Path) -> list[str]:
    """The container's command line as a local process runs it."""
    [container] = _deployments()[name]["spec"]["template"]["spec"]["containers"]
    assert container["command"][0] == "python3"  # the image's interpreter
    assert [e["name"] for e in container["env"]] == ["POD_NAME"]
    args = []
    for arg in container["args"]:
        arg = arg.replace("$(POD_NAME)", f"{name}-test-pod")  # kubelet expands $(VAR)
        arg = arg.replace("--port=8080", f"--port={ports[name]}")
        arg = arg.replace("--state-dir=/var/lib/shop", f"--state-dir={state_dir / name}")
        for service, port in ports.items():  # the Services' DNS names
            arg = arg.replace(f"http://{service}:8080", f"http://127.0.0.1:{port}")
        args.append(arg)
    return [sys.executable, *container["command"][1:], *args]


@pytest.fixture
def shop_from_manifests(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in ("orders", "catalog", "gateway")}
    processes = []
    try:
        for name in ports:
            (tmp_path / name).mkdir()
            command = _local_command(name, ports, tmp_path)
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            process = subprocess.Popen(
                command, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT
            )
            processes.append((process, log))
        yield ports
    finally:
        for process, log in processes:
            process.terminate()
            process.wait(timeout=10)
            log.close()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_the_containers_commands_serve_the_shop_through_the_gateway(
    shop_from_manifests: dict[str, int],
) -> None:
    for name, port in shop_from_manifests.items():
        wait_for(lambda port=port: _healthy(port), 20, f"{name}'s /health (its probes' path)")
    health = requests.get(f"http://127.0.0.1:{shop_from_manifests['catalog']}/health", timeout=2)
    assert health.json()["instance"] == "catalog-test-pod"
    gateway = f"http://127.0.0.1:{shop_from_manifests['gateway']}"
    products = requests.get(f"{gateway}/products", timeout=5)
    assert products.status_code == 200 and len(products.json()) == 20
    order = requests.post(f"{gateway}/orders", json={"product_id": 3, "quantity": 1}, timeout=5)
    assert order.status_code == 201, order.text
