"""Invalid experiments: exit 2, a message naming file, field and expectation, nothing started."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from inoculate.experiment.validation import validate_experiment
from inoculate.model.errors import ExperimentInvalid
from tests.support import EXPERIMENTS, REPO, Workspace, processes_under

INVALID = REPO / "tests" / "experiments" / "invalid"

# file → (field the message must name, words the message must contain)
CORPUS = {
    "bad-yaml.yaml": ("line 3, column 7", "invalid YAML"),
    "bad-json.json": ("line 1, column 47", "invalid JSON"),
    "not-a-mapping.yaml": ("", "expected a mapping at the top level, got list"),
    "missing-title.yaml": ("title", "expected a non-empty string"),
    "null-rollbacks.yaml": ("rollbacks", "expected a list, got nothing"),
    "unknown-module.yaml": ("method[0] (kill-it)", "extensions.nosuchmodule"),
    "wrong-argument-type.yaml": (
        "method[0] (freeze-orders).provider.arguments.duration_s",
        "expected float | None, got 'five'",
    ),
    # Types strictly as the function receives them, and the bounds of our activities
    # (inoculate/experiment/arguments.py): both failed only at run time.
    "negative-duration.yaml": (
        "method[0] (freeze-orders).provider.arguments.duration_s",
        "expected a number of seconds (more than 0 and at most 86400), got -5",
    ),
    "exponent-read-as-string.yaml": (
        "method[0] (freeze-orders).provider.arguments.duration_s",
        "got '1e9' (Input should be a valid number); YAML reads 1e9 as a string: write 1.0e+9",
    ),
    "unknown-argument.yaml": ("method[0] (freeze-orders)", "argument 'seconds' is not part"),
    "missing-slo-field.yaml": ("extensions[0].slos[0].threshold_ms", "required field is missing"),
    "wrong-slo-type.yaml": ("extensions[0].slos[0].objective", "valid number"),
    "unknown-knob.yaml": ("extensions[0].system.knobs", "unknown knob 'restarts'"),
    "unknown-slo-reference.yaml": (
        "steady-state-hypothesis.probes[0] (p).provider.arguments",
        "unknown SLO 'checkout-availability'",
    ),
    # The process family's own checks (extensions/process/checks.py), before anything runs.
    "pattern-matches-everything.yaml": (
        "method[0] (kill-everything).provider.arguments.pattern",
        "'.*' matches every command line",
    ),
    "bad-regex.yaml": (
        "method[0] (kill-nginx).provider.arguments.pattern",
        "is not a valid regular expression: unterminated character set",
    ),
    "unknown-signal.yaml": (
        "method[0] (kill-catalog).provider.arguments.signal",
        "unknown signal 'SIGFOO'",
    ),
    "two-targets.yaml": (
        "method[0] (freeze-both).provider.arguments.service",
        "give exactly one target",
    ),
    "wait-for-typo.yaml": (
        "method[0] (start-server).provider.arguments.wait_for",
        "unknown key(s) ['prot']",
    ),
}


def test_the_corpus_covers_every_file() -> None:
    assert sorted(p.name for p in INVALID.iterdir()) == sorted(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_validate_names_file_field_and_expectation(name: str) -> None:
    field, words = CORPUS[name]
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(INVALID / name)
    message = str(caught.value)
    assert str(INVALID / name) in message
    assert f"{field}: " in message if field else True
    assert words in message


def test_every_problem_of_a_file_is_reported_together() -> None:
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(INVALID / "wrong-slo-type.yaml")
    fields = [error.field for error in caught.value.errors]
    assert fields == ["extensions[0].slos[0].objective", "extensions[0].slos[1].sli"]


@pytest.mark.parametrize(
    "name",
    [
        "bad-yaml.yaml",
        "unknown-module.yaml",
        "unknown-knob.yaml",
        "pattern-matches-everything.yaml",
        "negative-duration.yaml",
    ],
)
def test_run_of_an_invalid_experiment_exits_2_and_starts_nothing(
    workspace: Workspace, name: str
) -> None:
    result = workspace.run("run", str(INVALID / name))
    assert result.code == 2, result.stderr
    assert str(INVALID / name) in result.stderr
    assert "nothing was started or injected" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(result.out_dir.iterdir()) == []  # no run directory
    assert not workspace.ledger.exists()  # nothing injected
    assert not (workspace.root / "history.sqlite").exists()  # nothing recorded
    assert processes_under(workspace.root) == []


def test_validate_command_exit_codes(workspace: Workspace) -> None:
    good = workspace.run("validate", *map(str, sorted(EXPERIMENTS.glob("*.yaml"))))
    assert good.code == 0, good.stderr
    assert good.stdout.count("valid ") == len(list(EXPERIMENTS.glob("*.yaml")))
    mixed = workspace.run(
        "validate",
        str(EXPERIMENTS / "orders-freeze-protected.yaml"),
        str(INVALID / "unknown-knob.yaml"),
    )
    assert mixed.code == 2
    assert "unknown knob 'restarts'" in mixed.stderr


def test_bad_var_file_is_invalid_input(workspace: Workspace, tmp_path: Path) -> None:
    result = workspace.run(
        "run",
        str(EXPERIMENTS / "orders-freeze-protected.yaml"),
        "--var-file",
        str(tmp_path / "missing.yaml"),
    )
    assert result.code == 2, result.stderr
    assert "--var-file" in result.stderr
    assert list(result.out_dir.iterdir()) == []


def test_the_inoculate_block_takes_configuration_and_vars(tmp_path: Path) -> None:
    experiment = tmp_path / "vars.yaml"
    (tmp_path / "x.py").write_text("# a locustfile\n")
    experiment.write_text(
        "title: t\ndescription: d\n"
        "configuration: {users: 7}\n"
        "extensions:\n"
        "  - name: inoculate\n"
        "    load: {locustfile: x.py, users: '${users}', spawn_rate: 1, host: '${shop_url}'}\n"
        "method: []\n"
    )
    spec = validate_experiment(experiment, {"shop_url": "http://127.0.0.1:30080"}).spec
    assert spec is not None and spec.load is not None
    assert (spec.load.users, spec.load.host) == (7, "http://127.0.0.1:30080")
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(experiment)
    assert "extensions[0].load.host: " in str(caught.value)
    assert "${shop_url}" in str(caught.value)


def test_a_misspelt_activity_key_is_an_error_naming_the_closest_one(tmp_path: Path) -> None:
    # `pause:` for `pauses:` was silently ignored: the method lasted 21 ms and judged nothing.
    text = (EXPERIMENTS / "catalog-kill-self-healing.yaml").read_text()
    assert "    pauses: {after: 8}" in text
    typo = tmp_path / "typo.yaml"
    text = text.replace("    pauses: {after: 8}", "    pause: {after: 8}", 1)
    typo.write_text(text.replace("locustfile.py", str(EXPERIMENTS / "locustfile.py")))
    with pytest.raises(ExperimentInvalid) as error:
        validate_experiment(typo)
    [problem] = [e for e in error.value.errors if e.field.endswith(".pause")]
    assert problem.message == "unknown key; did you mean 'pauses'?"
    assert problem.field.startswith("method[0] (")


def test_a_dry_run_lists_what_each_fault_would_hit_and_touches_nothing(
    workspace: Workspace, sleeper: tuple[psutil.Process, str]
) -> None:
    proc, marker = sleeper
    experiment = REPO / "tests" / "experiments" / "freeze-pattern.yaml"
    result = workspace.run("run", str(experiment), "--var", f"sleeper_pattern={marker}",
                           "--dry-run")  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    assert f"pid {proc.pid}" in result.stdout
    assert "nothing was started, injected or recorded" in result.stdout
    assert proc.status() != psutil.STATUS_STOPPED
    assert not any(result.out_dir.iterdir())  # no run directory
    assert not workspace.ledger.exists() or workspace.outstanding_faults() == []
    targets = workspace.run("validate", "--targets", str(experiment), "--var",
                            f"sleeper_pattern={marker}")  # fmt: skip
    assert targets.code == 0 and f"pid {proc.pid}" in targets.stdout


def test_a_value_is_quoted_once_in_a_message(tmp_path: Path) -> None:
    experiment = tmp_path / "host.yaml"
    text = (EXPERIMENTS / "catalog-kill-self-healing.yaml").read_text()
    experiment.write_text(
        text.replace("request_timeout_s: 2.0}", "request_timeout_s: 2.0, host: ftp-x}")
    )
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(experiment)
    message = str(caught.value)
    assert "'ftp-x'" in message and message.count("'ftp-x'") == 1, message


def _one_activity(tmp_path: Path, module: str, func: str, arguments: str) -> Path:
    experiment = tmp_path / "activity.yaml"
    experiment.write_text(
        "title: t\ndescription: d\nconfiguration: {minus: -1}\nmethod:\n"
        "  - type: action\n    name: a\n"
        f"    provider: {{type: python, module: {module}, func: {func}, arguments: {arguments}}}\n"
    )
    return experiment


# One out-of-bounds argument per family: every family is checked by the one table.
OUT_OF_BOUNDS = [
    ("process", "restart", "{service: catalog, timeout_s: 0}", "timeout_s", "more than 0"),
    ("process", "freeze", "{service: catalog, duration_s: '${minus}'}", "duration_s",
     "got -1 (the value of ${minus})"),
    ("docker", "kill_containers", "{name: web, percentage: 150}", "percentage", "at most 100"),
    ("docker", "kill_containers", "{name: web, count: 0}", "count", "a count (at least 1)"),
    ("docker", "squeeze_resources", "{name: web, cpus: 0}", "cpus", "at least 0.01"),
    ("toxiproxy", "add_toxic", "{proxy: p, toxic_type: latency, toxicity: 2}", "toxicity",
     "a probability (at least 0 and at most 1)"),
    ("toxiproxy", "add_latency", "{proxy: p, latency_ms: -10}", "latency_ms", "at least 0"),
    ("toxiproxy", "fail_http_requests", "{proxy: p, status_code: 42}", "status_code",
     "an HTTP status"),
    ("host_network", "partition", "{port: 70000}", "port", "a TCP port"),
    ("host_network", "add_netem", "{loss_percent: 101}", "loss_percent", "at most 100"),
    ("kubernetes", "kill_pods", "{label_selector: app=x, count: -2}", "count", "at least 1"),
    ("kubernetes", "scale_deployment", "{name: x, replicas: -1}", "replicas", "at least 0"),
    ("kubernetes", "ensure_pods_ready", "{label_selector: app=x, timeout_s: -1}", "timeout_s",
     "more than 0"),
    ("kubernetes", "kill_pods", "{label_selector: app=x, count: true}", "count",
     "expected int | None, got True"),
]  # fmt: skip


@pytest.mark.parametrize(("family", "func", "arguments", "argument", "words"), OUT_OF_BOUNDS)
def test_arguments_out_of_bounds_are_refused_for_every_family(
    tmp_path: Path, family: str, func: str, arguments: str, argument: str, words: str
) -> None:
    module = f"inoculate.extensions.{family}"
    experiment = _one_activity(tmp_path, module, func, arguments)
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(experiment)
    [problem] = caught.value.errors
    assert problem.field == f"method[0] (a).provider.arguments.{argument}"
    assert words in problem.message
    assert str(experiment) in str(caught.value)


def test_arguments_within_bounds_and_typed_vars_are_valid(tmp_path: Path) -> None:
    module = "inoculate.extensions.process"
    arguments = "{service: catalog, duration_s: 1.0e+9}"
    with pytest.raises(ExperimentInvalid) as caught:  # a number, but more than a day
        validate_experiment(_one_activity(tmp_path, module, "freeze", arguments))
    assert "at most 86400), got 1000000000.0" in str(caught.value)
    arguments = "{service: catalog, duration_s: '${d}'}"
    validate_experiment(_one_activity(tmp_path, module, "freeze", arguments), {"d": 2})
    with pytest.raises(ExperimentInvalid) as caught:  # an untyped --var is a string
        validate_experiment(_one_activity(tmp_path, module, "freeze", arguments), {"d": "2"})
    assert "(the value of ${d}: write a number in `configuration`, or type the --var: " in str(
        caught.value
    )
    assert "--var d:float=5)" in str(caught.value)
    arguments = "{service: catalog, duration_s: 2, }"
    validate_experiment(_one_activity(tmp_path, module, "freeze", arguments))


def _block_experiment(tmp_path: Path, top: str, name: str = "block") -> Path:
    (tmp_path / "x.py").write_text("# a locustfile\n")
    experiment = tmp_path / f"{name}.yaml"
    experiment.write_text(
        f"title: t\ndescription: d\n{top}"
        "extensions:\n"
        "  - name: inoculate\n"
        "    load: {locustfile: x.py, users: 1, spawn_rate: 1, host: 'http://127.0.0.1:${hp}'}\n"
        "method: []\n"
    )
    return experiment


def test_a_secret_in_the_inoculate_block_is_refused_before_anything_runs(
    workspace: Workspace, tmp_path: Path
) -> None:
    # It validated, then Locust got the literal text `${hp}`: the block substitutes only
    # configuration and --var values (its values reach Locust's command line).
    experiment = _block_experiment(tmp_path, "secrets: {mine: {hp: '18080'}}\n")
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(experiment)
    [problem] = caught.value.errors
    assert problem.field == "extensions[0].load.host"
    assert problem.message.startswith("${hp} names a secret, and the inoculate block takes none")
    assert "give hp in `configuration` or with --var hp=..." in problem.message
    with pytest.raises(ExperimentInvalid, match="names a secret"):  # a var file's secret too
        validate_experiment(_block_experiment(tmp_path, "", "b"), None, {"s": {"hp": "18080"}})
    result = workspace.run("run", str(experiment))
    assert result.code == 2, result.stderr
    assert f"{experiment}: extensions[0].load.host: ${{hp}} names a secret" in result.stderr
    assert list(result.out_dir.iterdir()) == []  # no run directory
    assert not workspace.ledger.exists() and not (workspace.root / "history.sqlite").exists()
    configured = _block_experiment(tmp_path, "configuration: {hp: '18080'}\n", "c")
    spec = validate_experiment(configured).spec
    assert spec is not None and spec.load is not None
    assert spec.load.host == "http://127.0.0.1:18080"


def test_a_dotenv_value_named_as_a_reference_says_how_to_reach_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    # A .env var file only sets environment variables (as chaoslib's); the error pointed to
    # "a --var/--var-file value", which is just what the user had given.
    dotenv = tmp_path / "vars.env"
    dotenv.write_text("TOK_FILE=/tmp/inoculate-token-file\n")
    experiment = _one_activity(
        tmp_path, "inoculate.extensions.process", "kill", "{pattern: 'cat ${TOK_FILE}'}"
    )
    for command in ("validate", "run"):
        result = workspace.run(command, str(experiment), "--var-file", str(dotenv))
        assert result.code == 2, result.stderr
        assert (
            f"{experiment}: method[0] (a).provider.arguments.pattern: ${{TOK_FILE}} names no "
            "value: TOK_FILE is an environment variable (all a .env --var-file sets) and "
            "${name} does not read those: declare `secrets: {env: {TOK_FILE: {type: env, "
            "key: TOK_FILE}}}` (or the same under `configuration`)"
        ) in result.stderr
        assert "--var/--var-file value" not in result.stderr
    assert list(result.out_dir.iterdir()) == []
    declared = experiment.read_text().replace(
        "method:", "secrets: {env: {TOK_FILE: {type: env, key: TOK_FILE}}}\nmethod:"
    )
    experiment.write_text(declared)
    result = workspace.run("validate", str(experiment), "--var-file", str(dotenv))
    assert result.code == 0, result.stderr


def test_under_a_plain_chaos_run_the_session_refuses_a_secret_in_the_block(
    tmp_path: Path,
) -> None:
    from inoculate.experiment.validation import load_experiment_file
    from inoculate.session.run_session import _parse_spec

    experiment = load_experiment_file(
        _block_experiment(tmp_path, "secrets: {mine: {hp: '18080'}}\n")
    )
    spec, problem = _parse_spec(experiment, {"inoculate_run_dir": str(tmp_path)})
    assert spec is None and problem is not None
    assert "extensions[0].load.host: ${hp} names a secret" in problem


def test_a_dry_run_resolves_secrets_as_the_run_does_and_prints_none(
    workspace: Workspace,
    sleeper: tuple[psutil.Process, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The preview matched the literal `${tok_inline}` ("no process matches ... now") while
    # the run resolved it; resolved, the matched command line holds the secret: never shown.
    proc, marker = sleeper
    prefix, _, token = marker.rpartition("-")  # inoculate-test-sleeper-<32 hex digits>
    dotenv = tmp_path / "vars.env"
    dotenv.write_text(f"INOCULATE_TEST_TOKEN={token}\n")
    experiment = tmp_path / "secret-pattern.yaml"
    experiment.write_text(
        "title: t\ndescription: d\n"
        f"secrets: {{s: {{tok_inline: '{token}', "
        "tok_env: {type: env, key: INOCULATE_TEST_TOKEN}}}\n"
        "method:\n"
        "  - type: action\n    name: kill-inline\n"
        "    provider: {type: python, module: inoculate.extensions.process, func: kill, "
        f"arguments: {{pattern: '{prefix}-${{tok_inline}}'}}}}\n"
        "rollbacks:\n"
        "  - type: action\n    name: ensure-env\n"
        "    provider: {type: python, module: inoculate.extensions.process, "
        f"func: ensure_running, arguments: {{pattern: '{prefix}-${{tok_env}}'}}}}\n"
    )
    monkeypatch.setenv("COLUMNS", "400")  # the table's cells whole, not cut with "…"
    runs = [
        workspace.run("run", str(experiment), "--var-file", str(dotenv), "--dry-run"),
        workspace.run("validate", "--targets", str(experiment), "--var-file", str(dotenv)),
    ]
    for result in runs:
        output = result.stdout + result.stderr
        assert result.code == 0, output
        assert output.count(f"pid {proc.pid}") == 2, output  # both activities found it
        assert "no process matches" not in output and "${tok" not in output
        assert "***" in output
        pieces = {token[i : i + 8] for i in range(len(token) - 7)}
        assert not [piece for piece in pieces if piece in output], output  # not even folded
    assert proc.status() != psutil.STATUS_ZOMBIE and proc.is_running()
    assert not any(runs[0].out_dir.iterdir()) and not workspace.ledger.exists()


def test_a_var_file_secret_of_a_scope_the_experiment_does_not_declare_reaches_the_run(
    workspace: Workspace, sleeper: tuple[psutil.Process, str], tmp_path: Path
) -> None:
    # Validation accepted `${tok}` from a JSON var file's `secrets: {x: {tok: ...}}`, but
    # chaoslib loads only the scopes the experiment declares: the freeze got the literal
    # text, matched nothing, and the run failed.
    proc, marker = sleeper
    prefix, _, token = marker.rpartition("-")
    var_file = tmp_path / "secrets.json"
    var_file.write_text(json.dumps({"secrets": {"x": {"tok": token}}}))
    experiment = tmp_path / "var-file-secret.yaml"
    experiment.write_text(
        "title: t\ndescription: d\nmethod:\n"
        "  - type: action\n    name: freeze\n"
        "    provider: {type: python, module: inoculate.extensions.process, func: freeze, "
        f"arguments: {{pattern: '{prefix}-${{tok}}', duration_s: 0.2}}}}\n"
        "rollbacks:\n"
        "  - type: action\n    name: thaw\n"
        "    provider: {type: python, module: inoculate.extensions.process, func: thaw, "
        f"arguments: {{pattern: '{prefix}-${{tok}}'}}}}\n"
    )
    result = workspace.run("run", str(experiment), "--var-file", str(var_file), "--no-report")
    assert result.code == 0, result.stdout + result.stderr
    journal = (result.run_dir() / "journal.json").read_text()
    assert f'"pid": {proc.pid}' in journal and token not in journal
    assert proc.status() != psutil.STATUS_STOPPED
