"""One canary per scope at a time: the file lock across real processes (one of them
SIGKILLed), and the Kubernetes Lease through the real ``kubernetes`` client against the API
emulator on 127.0.0.1 (tests/kubernetes_emulator.py), including a takeover race.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from kmock._internal.k8s import KubernetesError
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.rest import ApiException

from inoculate.canary.lock import (
    FileScopeLock,
    LeaseScopeLock,
    LockUnavailable,
    scope_lock,
    validate_scope,
)
from inoculate.model.errors import InoculateError, LockHeld
from tests.kubernetes_emulator import ApiFake, running_api_fake
from tests.support import REPO, free_port, wait_for

LEASES = "coordination.k8s.io/v1/leases"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY")

# --- the file lock, across processes ---

HOLDER = textwrap.dedent(
    """
    import select, sys
    from pathlib import Path
    from inoculate.canary.lock import FileScopeLock

    lock = FileScopeLock(sys.argv[1], Path(sys.argv[2]))
    lock.acquire()
    print("locked", flush=True)
    select.select([sys.stdin], [], [], 60)  # until told (a line, or EOF), at most 60 s
    lock.release()
    print("released", flush=True)
    """
)


class Holder:
    """A process that takes a file lock, then holds it until told to release it."""

    def __init__(self, scope: str, lock_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, scope, str(lock_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def expect(self, line: str, timeout_s: float = 20) -> None:
        """Wait (bounded) for the holder to print ``line``."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        got = self.proc.stdout.readline().strip() if ready else "(nothing)"
        if got != line:
            self.proc.kill()
            raise AssertionError(f"holder said {got!r}, expected {line!r}: {self.stderr()}")

    def stderr(self) -> str:
        self.proc.wait(timeout=10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("release\n")
        self.proc.stdin.flush()
        self.expect("released")
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Holder]:
    started = Holder("payments", tmp_path / "locks")
    try:
        started.expect("locked")
        yield started
    finally:
        started.stop()


def test_a_second_process_is_refused_at_once_naming_the_holder(
    holder: Holder, tmp_path: Path
) -> None:
    lock = FileScopeLock("payments", tmp_path / "locks")
    began = time.monotonic()
    with pytest.raises(LockHeld) as refused:
        lock.acquire()
    assert time.monotonic() - began < 2  # refused, not waited for
    who = f"@{socket.gethostname()} pid {holder.proc.pid}"
    assert refused.value.holder.endswith(who)
    assert refused.value.scope == "payments"
    message = str(refused.value)
    assert "canary scope 'payments' is locked by" in message and who in message
    since = datetime.fromisoformat(refused.value.since or "")
    assert abs(datetime.now(UTC) - since) < timedelta(seconds=30)
    assert f"since {refused.value.since}" in message
    assert str(tmp_path / "locks" / "payments.lock") in message
    # Another scope is another lock.
    with FileScopeLock("orders", tmp_path / "locks"):
        pass


def test_release_frees_the_lock_for_another_process(holder: Holder, tmp_path: Path) -> None:
    holder.release()
    assert holder.proc.returncode == 0
    assert (tmp_path / "locks" / "payments.lock").read_bytes() == b""  # no stale holder
    lock = FileScopeLock("payments", tmp_path / "locks")
    lock.acquire()
    try:
        record = json.loads((tmp_path / "locks" / "payments.lock").read_text())
        assert record["pid"] == os.getpid() and record["scope"] == "payments"
    finally:
        lock.release()


def test_a_sigkilled_holder_frees_the_lock_at_once(holder: Holder, tmp_path: Path) -> None:
    lock = FileScopeLock("payments", tmp_path / "locks")
    with pytest.raises(LockHeld):
        lock.acquire()
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(timeout=10)
    assert holder.proc.returncode == -signal.SIGKILL
    lock.acquire()  # no stale lock to clear, no wait: the kernel dropped it with the process
    try:
        record = json.loads((tmp_path / "locks" / "payments.lock").read_text())
        assert record["pid"] == os.getpid()  # the dead holder's record is overwritten
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            FileScopeLock("payments", tmp_path / "locks").acquire()
    finally:
        lock.release()


def test_the_lock_is_a_context_manager_and_release_is_idempotent(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    with FileScopeLock("eu-west-1.checkout", lock_dir) as lock:
        assert lock.holder == f"{_user()}@{socket.gethostname()} pid {os.getpid()}"
        with pytest.raises(LockHeld, match=re.escape(lock.holder)):
            FileScopeLock("eu-west-1.checkout", lock_dir).acquire()  # another open file
    lock.release()  # again: nothing to do
    with pytest.raises(RuntimeError, match="boom"), FileScopeLock("eu-west-1.checkout", lock_dir):
        raise RuntimeError("boom")
    again = FileScopeLock("eu-west-1.checkout", lock_dir)  # freed by the exception's exit
    again.acquire()
    again.release()
    again.acquire()  # a released lock can be taken again
    again.release()


def test_a_lock_file_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "locks"
    not_a_dir.write_text("a file where the lock directory should be")
    with pytest.raises(LockUnavailable, match=r"cannot open the lock file .*payments\.lock"):
        FileScopeLock("payments", not_a_dir).acquire()


@pytest.mark.parametrize(
    "scope",
    ["", "Payments", "a_b", "a b", "a/b", "../etc", ".hidden", "-a", "a-", "a..b", "a.", "x" * 64],
)
def test_bad_scope_names_are_refused_naming_the_rule(scope: str, tmp_path: Path) -> None:
    rule = "expected at most 63 lowercase letters, digits, '-' and '.'"
    with pytest.raises(ValueError, match=re.escape(rule)) as refused:
        FileScopeLock(scope, tmp_path)
    assert repr(scope) in str(refused.value)
    with pytest.raises(ValueError, match=re.escape(rule)):
        LeaseScopeLock(scope, "default", client.CoordinationV1Api(client.ApiClient()))
    with pytest.raises(ValueError, match=re.escape(rule)):
        scope_lock(scope, tmp_path, environ={})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scope", ["payments", "eu-west-1.checkout", "a", "0", "x" * 63])
def test_good_scope_names_are_valid_for_a_file_and_a_lease(scope: str) -> None:
    assert validate_scope(scope) == scope
    lease_name = f"inoculate-canary-{scope}"
    subdomain = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    assert re.fullmatch(subdomain, lease_name) and len(lease_name) <= 253


# --- the Lease, against the API emulator ---


@pytest.fixture(scope="module")
def api_fake() -> Iterator[ApiFake]:
    with running_api_fake() as fake:
        yield fake


class Kube:
    """One test's namespace on the emulator, its kubeconfig and a Lease API client."""

    def __init__(self, fake: ApiFake, tmp_path: Path) -> None:
        self.fake = fake
        self.ns = f"t-{uuid.uuid4().hex[:8]}"
        self.kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        self.api = client.CoordinationV1Api(
            kube_config.new_client_from_config(config_file=str(self.kubeconfig))
        )

    def lease(self, scope: str = "payments") -> dict[str, Any]:
        """The Lease as the emulator stores it; fails the test when there is none."""
        lease = self.find(scope)
        assert lease is not None, f"no Lease inoculate-canary-{scope} in {self.ns}"
        return lease

    def find(self, scope: str = "payments") -> dict[str, Any] | None:
        return self.fake.get(LEASES, self.ns, f"inoculate-canary-{scope}")

    def create_expired(self, holder: str, scope: str = "payments") -> client.V1Lease:
        """A Lease whose holder stopped renewing it 4 minutes ago (duration 30 s)."""
        long_ago = datetime.now(UTC) - timedelta(minutes=5)
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(name=f"inoculate-canary-{scope}", namespace=self.ns),
            spec=client.V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=30,
                acquire_time=long_ago,
                renew_time=long_ago + timedelta(seconds=60),
                lease_transitions=2,
            ),
        )
        return self.api.create_namespaced_lease(namespace=self.ns, body=lease)

    def lock(self, scope: str = "payments", duration_s: int = 30) -> LeaseScopeLock:
        return LeaseScopeLock(scope, self.ns, self.api, duration_s=duration_s)

    def take_over(self, holder: str, scope: str = "payments") -> client.V1Lease:
        """What another canary does: read the Lease and replace it with itself as holder."""
        name = f"inoculate-canary-{scope}"
        lease = self.api.read_namespaced_lease(name=name, namespace=self.ns)
        lease.spec.holder_identity = holder
        lease.spec.acquire_time = lease.spec.renew_time = datetime.now(UTC)
        return self.api.replace_namespaced_lease(name=name, namespace=self.ns, body=lease)


@pytest.fixture
def kube(api_fake: ApiFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kube:
    for variable in ("KUBERNETES_CONTEXT", *PROXY_VARIABLES):
        monkeypatch.delenv(variable, raising=False)  # only loopback traffic, to the emulator
    return Kube(api_fake, tmp_path)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_acquire_creates_the_lease_with_its_fields(kube: Kube) -> None:
    lock = kube.lock(duration_s=30)
    before = datetime.now(UTC) - timedelta(seconds=1)
    lock.acquire()
    try:
        lease = kube.lease()
        assert lease is not None
        assert lease["metadata"]["name"] == "inoculate-canary-payments"
        assert lease["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "inoculate"}
        assert lease["metadata"]["resourceVersion"]
        spec = lease["spec"]
        assert spec["holderIdentity"] == lock.holder
        user_host = f"{_user()}@{socket.gethostname()}"
        assert re.fullmatch(rf"{re.escape(user_host)}/{os.getpid()}/[0-9a-f]{{8}}", lock.holder)
        assert spec["leaseDurationSeconds"] == 30
        assert spec["leaseTransitions"] == 0
        acquired, renewed = _when(spec["acquireTime"]), _when(spec["renewTime"])
        assert before <= acquired <= datetime.now(UTC) and renewed == acquired
        assert lock.lost is None
    finally:
        lock.release()


def test_a_second_holder_is_refused_naming_the_first(kube: Kube) -> None:
    first, second = kube.lock(), kube.lock()
    assert first.holder != second.holder  # same user, host and pid; another random part
    with first:
        version = kube.lease()["metadata"]["resourceVersion"]
        began = time.monotonic()
        with pytest.raises(LockHeld) as refused:
            second.acquire()
        assert time.monotonic() - began < 5
        assert refused.value.holder == first.holder
        message = str(refused.value)
        assert f"locked by {first.holder} since {refused.value.since}" in message
        assert f"Lease {kube.ns}/inoculate-canary-payments" in message
        assert "unless renewed" in message
        lease = kube.lease()
        assert lease["spec"]["holderIdentity"] == first.holder
        assert lease["metadata"]["resourceVersion"] == version
        second.release()  # never held: nothing to delete
        assert kube.find() is not None


def test_an_expired_lease_is_taken_over_with_its_resource_version(kube: Kube) -> None:
    created = kube.create_expired(holder="ghost@gone/1/deadbeef")
    lock = kube.lock()
    lock.acquire()
    try:
        spec = kube.lease()["spec"]
        assert spec["holderIdentity"] == lock.holder
        assert spec["leaseTransitions"] == 3
        assert _when(spec["acquireTime"]) > datetime.now(UTC) - timedelta(seconds=10)
        replace = kube.fake.requests("PUT", f"/namespaces/{kube.ns}/leases/")
        assert [r.data["metadata"]["resourceVersion"] for r in replace] == [
            created.metadata.resource_version
        ]
    finally:
        lock.release()


def test_of_two_canaries_racing_for_an_expired_lease_one_wins(kube: Kube) -> None:
    """The rival replaces the Lease between our read and our replace: ours carries the
    resourceVersion we read, the API server answers 409 and we name the rival."""
    rival = "rival@elsewhere/7/cafef00d"

    class RivalFirst(client.CoordinationV1Api):
        def replace_namespaced_lease(self, **arguments: Any) -> Any:  # type: ignore[override]
            body = arguments["body"].model_copy(deep=True)
            body.spec.holder_identity = rival
            super().replace_namespaced_lease(
                name=arguments["name"], namespace=arguments["namespace"], body=body
            )
            return super().replace_namespaced_lease(**arguments)

    kube.create_expired(holder="ghost@gone/1/deadbeef")
    racer = LeaseScopeLock("payments", kube.ns, RivalFirst(kube.api.api_client))
    with pytest.raises(LockHeld) as refused:
        racer.acquire()
    assert refused.value.holder == rival
    assert kube.lease()["spec"]["holderIdentity"] == rival
    racer.release()
    assert kube.lease()["spec"]["holderIdentity"] == rival


def test_renewals_advance_renew_time_and_keep_the_lease(kube: Kube) -> None:
    lock = kube.lock(duration_s=3)  # renewed every second
    with lock:
        first = kube.lease()
        renewed = wait_for(
            lambda: (
                (lease := kube.lease())
                and lease["spec"]["renewTime"] != first["spec"]["renewTime"]
                and lease
            ),
            5,
            "a renewal",
        )
        assert _when(renewed["spec"]["renewTime"]) > _when(first["spec"]["renewTime"])
        assert renewed["spec"]["acquireTime"] == first["spec"]["acquireTime"]
        assert renewed["spec"]["holderIdentity"] == lock.holder
        time.sleep(3.5)  # longer than the duration: only the renewals keep it held
        with pytest.raises(LockHeld, match=re.escape(lock.holder)):
            kube.lock(duration_s=3).acquire()
        assert lock.lost is None
    assert kube.find() is None


def test_release_deletes_the_lease_with_a_precondition(kube: Kube) -> None:
    lock = kube.lock()
    lock.acquire()
    version = kube.lease()["metadata"]["resourceVersion"]
    lock.release()
    assert kube.find() is None
    deletes = kube.fake.requests("DELETE", f"/namespaces/{kube.ns}/leases/")
    assert [r.data["preconditions"]["resourceVersion"] for r in deletes] == [version]
    lock.release()  # idempotent: no second request
    assert len(kube.fake.requests("DELETE", f"/namespaces/{kube.ns}/leases/")) == 1
    with kube.lock():  # free for the next canary
        pass


def test_release_leaves_a_lease_someone_else_took_over(kube: Kube) -> None:
    lock = kube.lock()
    lock.acquire()
    kube.take_over("other@host/2/0000beef")
    lock.release()
    lease = kube.lease()
    assert lease is not None and lease["spec"]["holderIdentity"] == "other@host/2/0000beef"
    assert kube.fake.requests("DELETE", f"/namespaces/{kube.ns}/leases/") == []


def test_a_renewal_does_not_overwrite_a_takeover_and_reports_the_loss(kube: Kube) -> None:
    lock = kube.lock(duration_s=3)
    lock.acquire()
    try:
        taken = kube.take_over("other@host/2/0000beef")
        lost = wait_for(lambda: lock.lost, 5, "the renewer to notice the takeover")
        assert "taken over by other@host/2/0000beef" in lost
        lease = kube.lease()
        assert lease["spec"]["holderIdentity"] == "other@host/2/0000beef"
        assert lease["metadata"]["resourceVersion"] == taken.metadata.resource_version
    finally:
        lock.release()
    assert kube.find() is not None


def test_failing_renewals_report_the_loss_and_release_only_warns(
    kube: Kube, caplog: pytest.LogCaptureFixture
) -> None:
    api = client.CoordinationV1Api(
        kube_config.new_client_from_config(config_file=str(kube.kubeconfig))
    )
    lock = LeaseScopeLock("payments", kube.ns, api, duration_s=3)
    lock.acquire()
    api.api_client.configuration.host = f"http://127.0.0.1:{free_port()}"  # the API is gone
    assert lock.lost is None
    lost = wait_for(lambda: lock.lost, 6, "the lock to say it is no longer renewed")
    assert "has not been renewed for" in lost and "another canary may hold it now" in lost
    assert "no answer from the Kubernetes API server" in caplog.text  # each failed renewal
    lock.release()  # logs, does not raise: the Lease expires by itself
    assert "expires by itself 3s after its last renewal" in caplog.text
    assert kube.lease()["spec"]["holderIdentity"] == lock.holder
    with kube.lock():  # expired: the next canary takes it over
        pass


def test_the_emulator_refuses_a_stale_delete_precondition(kube: Kube) -> None:
    with kube.lock():
        with pytest.raises(ApiException) as refused:
            kube.api.delete_namespaced_lease(
                name="inoculate-canary-payments",
                namespace=kube.ns,
                body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(resource_version="stale")
                ),
            )
        assert refused.value.status == 409
        assert kube.find() is not None


# --- choosing the lock ---


def _with_namespace(kubeconfig: Path, namespace: str | None) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    if namespace:
        config["contexts"][0]["context"]["namespace"] = namespace
    kubeconfig.write_text(yaml.safe_dump(config))
    return kubeconfig


def test_scope_lock_takes_a_lease_when_kubeconfig_is_set(kube: Kube, tmp_path: Path) -> None:
    environ = {"KUBECONFIG": str(_with_namespace(kube.kubeconfig, kube.ns))}
    lock = scope_lock("payments", tmp_path / "locks", environ=environ)
    assert isinstance(lock, LeaseScopeLock) and lock.namespace == kube.ns  # the context's
    with lock:
        assert kube.lease()["spec"]["holderIdentity"] == lock.holder
        assert not (tmp_path / "locks").exists()
    explicit = scope_lock("payments", tmp_path, namespace="elsewhere", environ=environ)
    assert isinstance(explicit, LeaseScopeLock) and explicit.namespace == "elsewhere"


def test_scope_lock_defaults_to_the_default_namespace(kube: Kube, tmp_path: Path) -> None:
    lock = scope_lock("payments", tmp_path, environ={"KUBECONFIG": str(kube.kubeconfig)})
    assert isinstance(lock, LeaseScopeLock) and lock.namespace == "default"


@pytest.mark.parametrize("environ", [{}, {"KUBECONFIG": ""}])
def test_scope_lock_takes_a_file_lock_without_kubeconfig(
    environ: dict[str, str], tmp_path: Path
) -> None:
    lock = scope_lock("payments", tmp_path / "locks", environ=environ)
    assert isinstance(lock, FileScopeLock)
    with lock:
        assert (tmp_path / "locks" / "payments.lock").stat().st_size > 0


def test_an_unreadable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    with pytest.raises(LockUnavailable, match=re.escape(f"cannot load the kubeconfig {missing}")):
        scope_lock("payments", tmp_path, environ={"KUBECONFIG": str(missing)})


def test_an_unreachable_api_server_is_a_clear_error(
    kube: Kube, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    kubeconfig = tmp_path / "unreachable"
    kubeconfig.write_text(
        kube.kubeconfig.read_text().replace(kube.fake.url, f"http://127.0.0.1:{port}")
    )
    lock = scope_lock("payments", tmp_path, environ={"KUBECONFIG": str(kubeconfig)})
    began = time.monotonic()
    with pytest.raises(LockUnavailable) as failed:
        lock.acquire()
    assert time.monotonic() - began < 30
    message = str(failed.value)
    assert message.startswith("creating the Lease default/inoculate-canary-payments")
    assert f"no answer from the Kubernetes API server http://127.0.0.1:{port}" in message
    assert "Connection refused" in message and "Traceback" not in message
    assert isinstance(failed.value, InoculateError)
    lock.release()  # never held: nothing to do, nothing raised


@attrs.frozen
class Forbidden(KubernetesError):
    """What an API server answers a user without RBAC rights on leases."""

    status: int = 403
    reason: str = "Forbidden"
    message: str = (
        'leases.coordination.k8s.io is forbidden: User "canary" cannot create resource '
        '"leases" in API group "coordination.k8s.io"'
    )


def test_an_api_error_status_is_a_clear_error(kube: Kube) -> None:
    path = f"post /apis/coordination.k8s.io/v1/namespaces/{kube.ns}/leases"
    kube.fake.call(lambda: kube.fake.emulator[path] << Forbidden)
    with pytest.raises(LockUnavailable) as refused:
        kube.lock().acquire()
    message = str(refused.value)
    assert message.startswith(f"creating the Lease {kube.ns}/inoculate-canary-payments on ")
    assert (
        "the API server answered 403 Forbidden: leases.coordination.k8s.io is forbidden" in message
    )
    assert "needs get, create, update and delete on leases.coordination.k8s.io" in message
    assert "Traceback" not in message and "HTTP response headers" not in message


def _user() -> str:
    return getpass.getuser()
