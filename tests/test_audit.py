"""The canary's audit log (issue 11): a hash chain that shows every edit, and its verifier.

Logs are written by :class:`AuditLog` itself, then tampered with byte by byte as a person
with write access would: each edit, removal, insertion, reordering and cut is found at the
line where the chain breaks. Two real processes append at once; a full disk is simulated
with a real file-size limit; the command runs as ``python -m inoculate.cli``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from inoculate.canary.audit import (
    GENESIS,
    AuditLog,
    AuditLogError,
    line_hash,
    policy_hash,
    verify_chain,
    who,
)
from inoculate.cli.app import cli
from tests.support import REPO

EVENTS = ("refused", "started", "guard", "guard", "skipped", "finished")


def _write_log(path: Path, count: int = 6) -> list[bytes]:
    log = AuditLog(path)
    for number in range(count):
        log.append(EVENTS[number % len(EVENTS)], step=number + 1, targets=[f"pod-{number}"])
    return path.read_bytes().splitlines()


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


# --------------------------------------------------------------------------- writing


def test_each_line_carries_its_number_and_the_hash_of_the_line_before(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "audit.jsonl"  # folders are created
    record = AuditLog(path).append(
        "started", policy="sha256:ab", targets=["pod-a", "pod-b"], note="é ☃"
    )
    lines = _write_log(path, 5)[1:]
    lines = _lines(path)
    assert len(lines) == 6
    records = [json.loads(line) for line in lines]
    assert record == records[0]  # append returns exactly what the file holds
    assert records[0]["prev"] == GENESIS and records[0]["seq"] == 1
    for number in range(1, 6):
        assert records[number]["seq"] == number + 1
        assert records[number]["prev"] == hashlib.sha256(lines[number - 1]).hexdigest()
    first = records[0]
    assert first["event"] == "started" and first["targets"] == ["pod-a", "pod-b"]
    assert first["time"].endswith("Z") and len(first["time"]) == len("2024-01-01T00:00:00.000Z")
    assert isinstance(first["unix"], float)
    assert first["who"]["pid"] == str(os.getpid()) and first["who"]["host"]
    # Sorted keys, compact separators, UTF-8 (not \u escapes): the exact bytes are canonical.
    assert lines[0] == json.dumps(first, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False).encode()  # fmt: skip
    assert "é ☃".encode() in lines[0]
    assert oct(path.stat().st_mode & 0o777) == oct(0o640 & ~_umask())


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_an_intact_chain_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _write_log(path, 6)
    check = verify_chain(path)
    assert check.ok, check.problem
    assert (check.lines, check.problem, check.line) == (6, None, None)
    assert check.first_time == json.loads(lines[0])["time"]
    assert check.last_time == json.loads(lines[-1])["time"]
    assert check.head == line_hash(lines[-1])


def test_empty_log_is_an_intact_chain_and_a_missing_one_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    check = verify_chain(empty)
    assert check.ok and check.lines == 0 and check.head is None
    with pytest.raises(AuditLogError, match=r"missing\.jsonl: cannot read the audit log: No such"):
        verify_chain(tmp_path / "missing.jsonl")


def test_an_unwritable_place_is_an_audit_log_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(AuditLogError, match=r"file/audit\.jsonl: cannot open the audit log: "):
        AuditLog(tmp_path / "file" / "audit.jsonl").append("started")


def test_the_caller_cannot_set_the_chain_fields(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(ValueError, match=r"\['prev', 'seq'\] are set by the audit log"):
        log.append("started", seq=1, prev=GENESIS)
    with pytest.raises(ValueError, match="non-empty string"):
        log.append("")
    assert not (tmp_path / "audit.jsonl").exists()


# --------------------------------------------------------------------------- tampering


def _edit_middle(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[2])
    record["targets"] = ["pod-the-auditor-should-not-see"]
    lines[2] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return lines


def _edit_first_prev(lines: list[bytes]) -> list[bytes]:
    lines[0] = lines[0].replace(GENESIS.encode(), b"1" * 64)
    return lines


def _delete(lines: list[bytes]) -> list[bytes]:
    del lines[2]
    return lines


def _insert_copy(lines: list[bytes]) -> list[bytes]:
    lines.insert(4, lines[1])  # a copy of line 2 after line 4
    return lines


def _insert_forged(lines: list[bytes]) -> list[bytes]:
    # A forger who knows the format: the right seq and prev for its place after line 3.
    forged = {"event": "finished", "outcome": "passed", "seq": 4, "prev": line_hash(lines[2])}
    lines.insert(3, json.dumps(forged, sort_keys=True, separators=(",", ":")).encode())
    return lines


def _reorder(lines: list[bytes]) -> list[bytes]:
    lines[2], lines[3] = lines[3], lines[2]
    return lines


TAMPERING: dict[str, tuple[Callable[[list[bytes]], list[bytes]], int, str]] = {
    "edit-a-middle-line": (
        _edit_middle, 4,
        "line 4: prev does not match line 3's hash: line 3 was edited, or a line was removed "
        "or inserted after it",
    ),
    "edit-line-1": (_edit_first_prev, 1, "line 1: prev is not 00000000... (64 zeros)"),
    "delete-a-line": (_delete, 3, "line 3: seq is 4, expected 3: 1 line(s) before it were removed"),
    "insert-a-copy": (_insert_copy, 5, "line 5: seq is 2, expected 5: a line was inserted"),
    "insert-forged-line": (_insert_forged, 5, "line 5: seq is 4, expected 5: a line was inserted"),
    "reorder-two-lines": (_reorder, 3, "line 3: seq is 4, expected 3: 1 line(s) before it were "
                          "removed, or lines were reordered (or its seq was edited)"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(TAMPERING))
def test_tampering_is_found_where_the_chain_breaks(tmp_path: Path, name: str) -> None:
    tamper, line, message = TAMPERING[name]
    path = tmp_path / "audit.jsonl"
    lines = tamper(_write_log(path, 6))
    _rewrite(path, lines)
    check = verify_chain(path)
    assert not check.ok
    assert check.line == line, check.problem
    assert check.problem is not None and check.problem.startswith(message), check.problem
    assert check.lines == len(lines) and check.head is None


def test_a_cut_last_line_is_found_and_never_chained_over(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write_log(path, 6)
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # power lost mid-write: half of line 6
    check = verify_chain(path)
    assert (check.ok, check.line, check.lines) == (False, 6, 6)
    assert check.problem == (
        "line 6: incomplete last line (no newline at its end): a writer died mid-line, or the "
        "file was cut"
    )
    with pytest.raises(AuditLogError) as caught:
        AuditLog(path).append("started")
    assert str(caught.value).startswith(f"{path}: line 6 is incomplete (no newline at its end")
    assert path.read_bytes() == data[:-20]  # nothing appended, nothing glued on


def test_a_last_line_cut_just_before_its_newline_is_incomplete_too(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write_log(path, 3)
    path.write_bytes(path.read_bytes()[:-1])
    assert verify_chain(path).line == 3
    with pytest.raises(AuditLogError, match="line 3 is incomplete"):
        AuditLog(path).append("started")


def test_append_refuses_a_last_line_that_is_not_an_audit_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write_log(path, 2)
    with path.open("ab") as handle:
        handle.write(b'{"note": "no seq here"}\n')
    with pytest.raises(AuditLogError, match=r"line 3 \(the last\) is not an audit line \(it has "):
        AuditLog(path).append("started")


def test_other_damage_is_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _write_log(path, 4)
    for damage, problem in (
        (b"", "line 2: empty line: not an audit line (an edit, or another file)"),
        (
            b"[1, 2]",
            "line 2: not a JSON object (list): not an audit line (an edit, or another file)",
        ),
        (b"\xff\xfe", "line 2: not UTF-8: not an audit line (an edit, or another file)"),
        (b'{"seq": "2"}', "line 2: no integer `seq`; expected 2"),
    ):
        _rewrite(path, [lines[0], damage, *lines[2:]])
        check = verify_chain(path)
        assert (check.line, check.problem, check.lines) == (2, problem, 4)


def test_what_a_chain_cannot_show_is_shown_by_its_head(tmp_path: Path) -> None:
    # Lines cut off the end leave a valid, shorter chain: only the head kept elsewhere tells.
    path = tmp_path / "audit.jsonl"
    lines = _write_log(path, 5)
    head = verify_chain(path).head
    _rewrite(path, lines[:3])
    check = verify_chain(path)
    assert check.ok and check.lines == 3 and check.head != head


# --------------------------------------------------------------------------- writers


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from inoculate.canary.audit import AuditLog
    path, go, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    Path(f"{go}.ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 20
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    log = AuditLog(path)
    for number in range(count):
        log.append("guard", step=number)
    """
)


def test_two_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    path, go = tmp_path / "audit.jsonl", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(go), "200"], env=env)
        for _ in range(2)
    ]
    deadline = time.monotonic() + 20  # both imported and waiting: then they start together
    while len(list(tmp_path.glob("go.ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    go.touch()
    for writer in writers:
        assert writer.wait(timeout=30) == 0
    check = verify_chain(path)
    assert check.ok, check.problem
    assert check.lines == 400
    pids = [json.loads(line)["who"]["pid"] for line in _lines(path)]
    assert sorted({pids.count(pid) for pid in set(pids)}) == [200]
    switches = sum(1 for before, after in itertools.pairwise(pids) if before != after)
    assert switches > 1, "the writers never overlapped: the test proved nothing"


FULL_DISK = textwrap.dedent(
    """
    import os, resource, sys
    from pathlib import Path
    from inoculate.canary.audit import AuditLog, AuditLogError
    path = Path(sys.argv[1])
    limit = path.stat().st_size + 40  # room for 40 bytes of the next line, not all of it
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        AuditLog(path).append("finished", outcome="x" * 200)
    except AuditLogError as exc:
        print(exc)
        sys.exit(7)
    """
)


def test_a_write_that_fails_half_way_is_cut_back_off(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write_log(path, 3)
    before = path.read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 7, done.stderr
    assert f"{path}: cannot write the audit log: File too large" in done.stdout
    assert path.read_bytes() == before
    AuditLog(path).append("finished", outcome="passed")
    assert verify_chain(path).lines == 4


# --------------------------------------------------------------------------- secrets and who


def test_no_secret_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    token, password = "tok-7f3a9c1e", 'pa"ss wörd'
    AuditLog(path).append(
        "refused",
        secrets=[token, password],
        reason=f"webhook https://approve.example/?key={token} said no",
        targets=[{"pod": "a", "auth": f"Bearer {token}"}],
        error=ValueError(f"login failed for {password}"),  # not JSON: written as its str
        **{f"header-{token}": "x"},
    )
    AuditLog(path).append(f"finished-{token}", secrets=token, outcome=f"done {token}")  # a str
    data = path.read_bytes()
    for secret in (token, password):
        for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)):
            assert form.encode() not in data, form
    records = [json.loads(line) for line in data.splitlines()]
    assert records[0]["reason"] == "webhook https://approve.example/?key=*** said no"
    assert records[0]["error"] == "login failed for ***"
    assert "header-***" in records[0]
    assert (records[1]["event"], records[1]["outcome"]) == ("finished-***", "done ***")
    assert verify_chain(path).ok


def test_who_names_the_github_actions_job_and_nothing_else_from_the_environment() -> None:
    environ = {
        "GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "9876543210", "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_JOB": "canary", "GITHUB_WORKFLOW": "nightly chaos",
        "GITHUB_REPOSITORY": "shop/infra", "GITHUB_ACTOR": "sre-bot",
        "GITHUB_TOKEN": "ghs_must_never_be_recorded", "AWS_SECRET_ACCESS_KEY": "also-not",
    }  # fmt: skip
    found = who(environ)
    assert _from_environment(found) == {
        "ci": "github-actions",
        "github_run_id": "9876543210",
        "github_run_attempt": "2",
        "github_job": "canary",
        "github_workflow": "nightly chaos",
        "github_repository": "shop/infra",
        "github_actor": "sre-bot",
    }
    assert found["pid"] == str(os.getpid()) and found["uid"] == str(os.geteuid())
    assert found["user"] and found["host"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"GITLAB_CI": "true", "CI_JOB_ID": "4711", "CI_PIPELINE_ID": "99",
          "CI_PROJECT_PATH": "shop/infra", "GITLAB_USER_LOGIN": "ana", "CI_JOB_TOKEN": "x1x2"},
         {"ci": "gitlab", "gitlab_job_id": "4711", "gitlab_pipeline_id": "99",
          "gitlab_project": "shop/infra", "gitlab_user": "ana"}),
        ({"JENKINS_URL": "https://ci.example/", "BUILD_TAG": "jenkins-canary-42"},
         {"ci": "jenkins", "jenkins_build_tag": "jenkins-canary-42"}),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "canary-28512345-x7k2p",
          "POD_NAMESPACE": "chaos", "INOCULATE_JOB_NAME": "canary-28512345"},
         {"k8s_pod": "canary-28512345-x7k2p", "k8s_namespace": "chaos",
          "k8s_job": "canary-28512345"}),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "short", "POD_NAME": "full-name"},
         {"k8s_pod": "full-name"}),
        ({"HOSTNAME": "not-in-kubernetes", "INVOCATION_ID": "0f1e2d3c"},
         {"systemd_invocation_id": "0f1e2d3c"}),
        ({"BUILD_TAG": "not-jenkins-without-its-url", "GITHUB_RUN_ID": "1"}, {}),
    ],
    ids=["gitlab", "jenkins", "kubernetes-cronjob", "kubernetes-pod-name", "systemd", "none"],
)  # fmt: skip
def test_who_names_other_ci_systems_pods_and_units(
    environ: dict[str, str], expected: dict[str, str]
) -> None:
    assert _from_environment(who(environ)) == expected


def _from_environment(found: dict[str, str]) -> dict[str, str]:
    """What ``who`` took from the environment: all but the process's own identity."""
    return {key: value for key, value in found.items() if key not in ("user", "uid", "host", "pid")}


def test_policy_hash_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"windows: []\n" * 10_000)
    expected = hashlib.sha256(policy.read_bytes()).hexdigest()
    assert policy_hash(policy) == f"sha256:{expected}"


# --------------------------------------------------------------------------- the command


def _verify(path: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", str(path)])
    return result.exit_code, result.stdout, result.stderr


def test_verify_command_says_intact_broken_or_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _write_log(path, 4)
    code, out, err = _verify(path)
    first, last = json.loads(lines[0])["time"], json.loads(lines[-1])["time"]
    assert (code, err) == (0, "")
    assert out == (f"{path}: chain intact, 4 line(s), first at {first}, last at {last}\n"
                   f"head (SHA-256 of line 4): {line_hash(lines[-1])}\n")  # fmt: skip

    _rewrite(path, _edit_middle(lines))
    code, out, err = _verify(path)
    assert (code, out) == (1, "")
    assert err == (f"{path}: chain broken at line 4: prev does not match line 3's hash: line 3 "
                   "was edited, or a line was removed or inserted after it\n")  # fmt: skip

    code, out, err = _verify(tmp_path / "missing.jsonl")
    assert (code, out) == (2, "")
    assert (
        err == f"{tmp_path / 'missing.jsonl'}: cannot read the audit log: No such file or "
        "directory\n"
    )

    code, out, err = _verify(tmp_path)  # a folder
    assert code == 2 and "cannot read the audit log: Is a directory" in err

    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert _verify(tmp_path / "empty.jsonl")[:2] == (0, f"{tmp_path}/empty.jsonl: empty audit "
                                                     "log, 0 lines\n")  # fmt: skip


def test_the_installed_command_runs_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write_log(path, 2)
    done = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "audit", "verify", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{path}: chain intact, 2 line(s)" in done.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "audit" in listed.stdout


def test_a_head_kept_elsewhere_shows_an_edited_last_line_and_a_cut_tail(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from inoculate.cli.audit import command

    log = AuditLog(tmp_path / "audit.jsonl")
    for n in range(4):
        log.append("guard", n=n)
    runner = CliRunner()
    first = runner.invoke(command, ["verify", str(log.path)])
    head = first.output.strip().splitlines()[-1].split(": ")[-1]
    assert runner.invoke(command, ["verify", str(log.path), "--head", head]).exit_code == 0
    log.append("finished", outcome="aborted")  # a later line: the old head is still there
    assert runner.invoke(command, ["verify", str(log.path), "--head", head]).exit_code == 0
    kept = runner.invoke(command, ["verify", str(log.path)]).output.strip().split(": ")[-1]
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(lines[:-1]) + lines[-1].replace('"aborted"', '"passed"'))
    # The chain alone cannot see an edited last line; the head kept elsewhere does.
    assert runner.invoke(command, ["verify", str(log.path)]).exit_code == 0
    forged = runner.invoke(command, ["verify", str(log.path), "--head", kept])
    assert forged.exit_code == 1 and "edited" in forged.output
    log.path.write_text("".join(lines[:-2]))  # nor lines cut off the end
    cut = runner.invoke(command, ["verify", str(log.path), "--head", head])
    assert cut.exit_code == 1 and "cut off" in cut.output
