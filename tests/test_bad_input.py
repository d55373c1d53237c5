"""Bad input of every kind: exit 2, a clear error, no traceback, nothing started or recorded.

Three parts (issue 8, items 8-10):

- explicit cases, one per class of defect: values that passed ``validate`` and started the
  system (undefined ``${name}``, unbounded pauses, timeouts, load and block times, missing
  or broken locustfiles, unknown strategies, controls that do not import, malformed var
  files), input that crashed with a traceback (wrong shapes, non-UTF-8 files, deep
  nesting), and resource bombs (YAML aliases, huge files, thousands of problems);
- a generated corpus: hypothesis mutates the demo experiments (experiments/shop and
  experiments/network) at a random place into a random hostile value, and validation must
  either accept the result or raise ``ExperimentInvalid`` — never anything else;
- end to end, as subprocesses with a private ledger, history and run folder: ``inoculate
  validate``/``run``/``report`` exit 2, print no traceback, spawn no process (a
  ``sitecustomize`` records every fork and exec), create no run directory or history, and
  leave the ledger byte for byte as it was.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inoculate.experiment.validation import validate_experiment
from inoculate.experiment.variables import load_variables
from inoculate.model.errors import ExperimentInvalid, ReportInputError
from inoculate.model.limits import (
    MAX_INPUT_BYTES,
    MAX_INPUT_DEPTH,
    MAX_LISTED_PROBLEMS,
    MAX_PROBLEM_CHARS,
)
from tests.support import REPO, wait_for

SHOP = REPO / "experiments" / "shop"
NETWORK = REPO / "experiments" / "network"
DEMOS = sorted(SHOP.glob("*.yaml")) + sorted(NETWORK.glob("*.yaml"))
BASE = SHOP / "catalog-kill-self-healing.yaml"
KILL = "method[0] (kill-catalog)"


# --------------------------------------------------------------------------- fixtures


def _demo_tree(root: Path) -> Path:
    """A copy of the demo folders (shop/ with its locustfile, network/), so that the
    relative locustfile paths of the experiments resolve as in the repository."""
    (root / "shop").mkdir(parents=True, exist_ok=True)
    (root / "network").mkdir(exist_ok=True)
    shutil.copy(SHOP / "locustfile.py", root / "shop" / "locustfile.py")
    return root


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return _demo_tree(tmp_path / "demo")


def _base() -> dict[str, Any]:
    return yaml.safe_load(BASE.read_text())


def _write_experiment(folder: Path, experiment: Any, name: str = "bad.yaml") -> Path:
    path = folder / name
    if name.endswith(".json"):
        path.write_text(json.dumps(experiment))
    else:
        path.write_text(yaml.safe_dump(experiment, sort_keys=False, allow_unicode=True))
    return path


def _mutated(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], Path]:
    def make(demo: Path) -> Path:
        experiment = _base()
        change(experiment)
        return _write_experiment(demo / "shop", experiment)

    return make


def _raw(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(demo: Path) -> Path:
        path = demo / "shop" / name
        path.write_bytes(content)
        return path

    return make


def _block(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda e: e["extensions"][0].update(fields)


def _load(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda e: e["extensions"][0]["load"].update(fields)


def _open_load(**fields: Any) -> Callable[[dict[str, Any]], None]:
    load = {"locustfile": "locustfile.py", "model": "open", **fields}
    return lambda e: e["extensions"][0].update(load=load)


def _kill(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda e: e["method"][0].update(fields)


def _arguments(value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda e: e["method"][0]["provider"].update(arguments=value)


def _control(module: str) -> Callable[[dict[str, Any]], None]:
    control = {"name": "extra", "provider": {"type": "python", "module": module}}
    return lambda e: e["controls"].append(control)


def _alias_bomb(levels: int = 8) -> str:
    lines = ['x-l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append(f"x-l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _bomb_in_block() -> bytes:
    # The bomb's top anchors sit in the inoculate block, where chaoslib's substitution and
    # pydantic walk every expanded value: 28 s and gigabytes before this change.
    text = BASE.read_text().replace("    recovery_objective_s: 5\n", "    knobs_doc: *l8\n")
    return (_alias_bomb() + text).encode()


def _large_yaml() -> bytes:
    filler = "".join(f"  key{i}: [{i}, {i + 1}, {i + 2}, 'value {i}']\n" for i in range(60_000))
    return (BASE.read_text() + "configuration:\n" + filler).encode()


def _large_json() -> bytes:
    experiment = _base()
    experiment["method"] = [
        {"type": "action", "name": f"a{i}", "provider": {"type": "python", "module": f"m{i}"}}
        for i in range(20_000)
    ]
    return json.dumps(experiment).encode()


def _deep_json(depth: int = 20_000) -> bytes:
    return (
        '{"title": "t", "description": "d", "method": ' + "[" * depth + "]" * depth + "}"
    ).encode()


# file maker → (field the message names, words it contains)
EXPERIMENT_CASES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # item 8: passed `validate`, then started the system
    "undefined-reference": (
        _mutated(_arguments({"service": "${undefined}", "signal": "SIGKILL"})),
        f"{KILL}.provider.arguments.service",
        "${undefined} names no value",
    ),
    "pause-after-negative": (
        _mutated(_kill(pauses={"after": -5})),
        f"{KILL}.pauses.after",
        "got -5",
    ),
    "pause-after-huge": (
        _mutated(_kill(pauses={"after": 1e300})),
        f"{KILL}.pauses.after",
        "≤ 86400",
    ),
    "pause-after-nan": (
        _mutated(_kill(pauses={"after": math.nan})),
        f"{KILL}.pauses.after",
        "got nan",
    ),
    "pause-before-negative": (
        _mutated(_kill(pauses={"before": -1})),
        f"{KILL}.pauses.before",
        "≥ 0",
    ),
    "pause-text": (_mutated(_kill(pauses={"after": "soon"})), f"{KILL}.pauses.after", "got str"),
    "timeout-negative": (_mutated(_kill(timeout=-1)), f"{KILL}.timeout", "> 0"),
    "timeout-infinite": (_mutated(_kill(timeout=math.inf)), f"{KILL}.timeout", "got inf"),
    "users-huge": (_mutated(_load(users=10**12)), "extensions[0].load.users", "10000"),
    "spawn-rate-huge": (_mutated(_load(spawn_rate=1e9)), "extensions[0].load.spawn_rate", "1000"),
    "processes-huge": (_mutated(_load(processes=10**6)), "extensions[0].load.processes", "64"),
    "open-rate-huge": (
        _mutated(_open_load(rate_rps=1e9)),
        "extensions[0].load.rate_rps",
        "100000",
    ),
    "open-in-flight-huge": (
        _mutated(_open_load(rate_rps=10, max_in_flight=10**9)),
        "extensions[0].load.max_in_flight",
        "100000",
    ),
    "open-without-rate": (_mutated(_open_load()), "extensions[0].load", "needs rate_rps"),
    "closed-with-a-rate": (
        _mutated(_load(rate_rps=50)),
        "extensions[0].load",
        "rate_rps belong to the open model",
    ),
    "warmup-huge": (_mutated(_load(warmup_s=1e12)), "extensions[0].load.warmup_s", "3600"),
    "max-duration-huge": (
        _mutated(_load(max_duration_s=1e12)),
        "extensions[0].load.max_duration_s",
        "86400",
    ),
    "request-timeout-infinite": (
        _mutated(_load(request_timeout_s=math.inf)),
        "extensions[0].load.request_timeout_s",
        "finite",
    ),
    "settle-huge": (_mutated(_block(settle_s=1e9)), "extensions[0].settle_s", "600"),
    "start-timeout-huge": (
        _mutated(lambda e: e["extensions"][0]["system"].update(start_timeout_s=1e9)),
        "extensions[0].system.start_timeout_s",
        "600",
    ),
    "recovery-objective-nan": (
        _mutated(_block(recovery_objective_s=math.nan)),
        "extensions[0].recovery_objective_s",
        "finite",
    ),
    "locustfile-missing": (
        _mutated(_load(locustfile="nosuch.py")),
        "extensions[0].load.locustfile",
        "nosuch.py: no such file",
    ),
    "locustfile-broken": (
        lambda demo: (
            (demo / "shop" / "broken.py").write_text("def f(:\n")
            and _mutated(_load(locustfile="broken.py"))(demo)
        ),
        "extensions[0].load.locustfile",
        "broken.py: line 1",
    ),
    "rollback-strategy-unknown": (
        _mutated(lambda e: e["runtime"]["rollbacks"].update(strategy="sometimes")),
        "runtime.rollbacks.strategy",
        "expected one of ['default', 'always', 'never', 'deviated'], got 'sometimes'",
    ),
    "hypothesis-strategy-unknown": (
        _mutated(lambda e: e["runtime"].update(hypothesis={"strategy": "often"})),
        "runtime.hypothesis.strategy",
        "got 'often'",
    ),
    "runtime-not-a-mapping": (_mutated(lambda e: e.update(runtime="always")), "runtime", "mapping"),
    "control-missing": (
        _mutated(_control("no_such_control_module")),
        "controls[1] (extra).provider.module",
        "cannot import 'no_such_control_module'",
    ),
    # item 9: tracebacks
    "arguments-string": (
        _mutated(_arguments("service=catalog")),
        f"{KILL}.provider.arguments",
        "expected a mapping of argument names to values, got str",
    ),
    "arguments-list": (
        _mutated(_arguments(["catalog"])),
        f"{KILL}.provider.arguments",
        "got list",
    ),
    "provider-string": (
        _mutated(lambda e: e["method"][0].update(provider="python")),
        f"{KILL}.provider",
        "expected a mapping, got str",
    ),
    "pauses-list": (_mutated(_kill(pauses=[8])), f"{KILL}.pauses", "got list"),
    "latin-1": (
        _raw("latin1.yaml", ("# café\n" + BASE.read_text()).encode("latin-1")),
        "",
        "not UTF-8 text (byte 0xe9 at offset 5",
    ),
    "utf-16": (
        _raw("utf16.yaml", ("\ufeff" + BASE.read_text()).encode("utf-16-le")),
        "",
        "is UTF-16 text (it starts with a byte-order mark); expected UTF-8",
    ),
    "deep-json": (_raw("deep.json", _deep_json()), "", "nested more than 100 levels deep"),
    "deep-yaml-flow": (
        _raw("deep.yaml", ("title: " + "[" * 20_000 + "]" * 20_000 + "\n").encode()),
        "",
        "nesting depth",  # libyaml's own limit (1000 flow levels) speaks first
    ),
    "deep-yaml-150": (
        _raw("deep150.yaml", ("title: " + "[" * 150 + "]" * 150 + "\n").encode()),
        "",
        "nested more than 100 levels deep",
    ),
    "deep-yaml-block": (
        _raw(
            "block.yaml",
            "".join(f"{'  ' * i}k{i}:\n" for i in range(300)).encode(),
        ),
        "",
        "nested more than 100 levels deep",
    ),
    "huge-integer-json": (
        _raw("int.json", b'{"title": ' + b"7" * 5000 + b"}"),
        "",
        "holds a value JSON cannot read",
    ),
    "huge-integer-yaml": (
        _raw("int.yaml", b"title: " + b"7" * 5000 + b"\n"),
        "",
        "holds a value YAML cannot build",
    ),
    "impossible-date": (_raw("date.yaml", b"title: 2001-02-30\n"), "", "day is out of range"),
    # item 10: resource bombs
    "alias-bomb": (
        _raw("bomb.yaml", _bomb_in_block()),
        "",
        "holds more than 100,000 values (YAML aliases counted as often as they are used)",
    ),
    "alias-recursive": (
        _raw("loop.yaml", b"title: &a [t, *a]\n"),
        "",
        "uses the alias *a inside its own anchor &a",
    ),
    "large-yaml": (_raw("large.yaml", _large_yaml()), "", "expected at most 1 MiB"),
    "large-json": (_raw("large.json", _large_json()), "", "expected at most 1 MiB"),
}


@pytest.mark.parametrize("case", sorted(EXPERIMENT_CASES))
def test_bad_experiments_are_refused_naming_file_field_and_expectation(
    demo: Path, case: str
) -> None:
    make, field, words = EXPERIMENT_CASES[case]
    path = make(demo)
    started = time.monotonic()
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(path)
    assert time.monotonic() - started < 10, "validation must stay fast on any input"
    message = str(caught.value)
    assert str(path) in message
    assert f"{field}: " in message if field else True, message
    assert words in message, message
    assert len(message) < 10_000


def test_a_control_that_fails_to_import_is_refused(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"inoculate_test_broken_control_{uuid.uuid4().hex[:8]}"
    (demo / f"{module}.py").write_text("raise RuntimeError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(demo))
    path = _mutated(_control(module))(demo)
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(path)
    assert "controls[1] (extra).provider.module: " in str(caught.value)
    assert "RuntimeError: broken on purpose" in str(caught.value)


def test_the_demo_experiments_still_validate() -> None:
    for path in DEMOS:
        validate_experiment(path)


def test_references_to_declared_values_secrets_and_runtime_keys_are_fine(demo: Path) -> None:
    experiment = _base()
    experiment["configuration"] = {"service_name": "catalog"}
    experiment["secrets"] = {"shop": {"signal_name": "SIGKILL"}}
    experiment["method"][0]["provider"]["arguments"] = {
        "service": "${service_name}",
        "signal": "${signal_name}",
    }
    experiment["method"][0]["pauses"] = {"after": "${pause_s}"}
    experiment["rollbacks"][0]["provider"]["arguments"] = {"service": "$${literal}"}
    path = _write_experiment(demo / "shop", experiment)
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(path)
    assert [e.field for e in caught.value.errors] == [f"{KILL}.pauses.after"]
    validate_experiment(path, {"pause_s": 2})
    with pytest.raises(ExperimentInvalid, match=r"pauses\.after: expected a number"):
        validate_experiment(path, {"pause_s": -2})


def test_many_problems_are_listed_up_to_a_bound(demo: Path) -> None:
    experiment = _base()
    huge = "x" * 50_000
    experiment["method"] = [
        {
            "type": "action",
            "name": f"a{i}",
            "provider": {"type": "python", "module": huge, "func": "f"},
        }
        for i in range(15)
    ] + [{"type": "action", "name": f"b{i}", "timeout": -i - 1} for i in range(500)]
    path = _write_experiment(demo / "shop", experiment, "many.json")
    with pytest.raises(ExperimentInvalid) as caught:
        validate_experiment(path)
    message = str(caught.value)
    assert len(caught.value.errors) > 500
    lines = message.splitlines()
    assert len(lines) == 1 + MAX_LISTED_PROBLEMS + 1
    assert (
        lines[-1].strip()
        == f"... and {len(caught.value.errors) - MAX_LISTED_PROBLEMS} more problem(s)"
    )
    assert all(len(line) <= len(str(path)) + MAX_PROBLEM_CHARS + 4 for line in lines[1:])


# --------------------------------------------------------------------------- var files


def _var_file(name: str, content: bytes | str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return make


VAR_FILE_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "yaml-list": (_var_file("vars.yaml", "- a\n- b\n"), "expected a mapping with `configuration`"),
    "json-list": (_var_file("vars.json", "[1, 2]"), "got list"),
    "yaml-invalid": (_var_file("vars.yaml", "configuration: {a: [1, \n"), "invalid YAML"),
    "json-invalid": (_var_file("vars.json", '{"configuration": {'), "invalid JSON"),
    "env-no-equals": (_var_file("vars.env", "GOOD=1\njust words\n"), "line 2: expected NAME=value"),
    "env-bad-name": (_var_file("vars.env", "export A=1\n"), "line 1: expected NAME=value"),
    "unknown-key": (
        _var_file("vars.yaml", "configurations: {a: 1}\n"),
        "configurations: unknown key",
    ),
    "configuration-list": (
        _var_file("vars.yaml", "configuration: [a, b]\n"),
        "configuration: expected a mapping of names to values",
    ),
    "secrets-flat": (
        _var_file("vars.yaml", "secrets: {token: abc}\n"),
        "secrets.token: expected a mapping of names to values",
    ),
    "latin-1": (_var_file("vars.yaml", "configuration: {a: café}\n".encode("latin-1")), "UTF-8"),
    "alias-bomb": (
        _var_file("vars.yaml", _alias_bomb() + "configuration: {a: *l8}\n"),
        "holds more than 100,000 values",
    ),
    "too-large": (_var_file("vars.env", "A=" + "x" * MAX_INPUT_BYTES + "\n"), "at most 1 MiB"),
    "missing": (lambda folder: folder / "missing.yaml", "--var-file: no such file"),
}


@pytest.mark.parametrize("case", sorted(VAR_FILE_CASES))
def test_bad_var_files_are_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    make, words = VAR_FILE_CASES[case]
    path = make(tmp_path)
    before = dict(os.environ)
    try:
        with pytest.raises(ExperimentInvalid) as caught:
            load_variables([str(path)])
    finally:  # a var file exported anyway must not leak into the other tests' processes
        exported = dict(os.environ) != before
        os.environ.clear()
        os.environ.update(before)
    assert str(path) in str(caught.value)
    assert words in str(caught.value), str(caught.value)
    assert not exported, "a var file was exported to the environment"


def test_good_var_files_feed_the_references(demo: Path) -> None:
    yaml_vars = demo / "vars.yaml"
    yaml_vars.write_text(
        "configuration: {service_name: catalog}\nsecrets: {shop: {sig: SIGKILL}}\n"
    )
    env_vars = demo / "vars.env"
    env_vars.write_text("# comment\n\nINOCULATE_TEST_VAR=1\n")
    loaded = load_variables([str(yaml_vars), str(env_vars)], {"pause_s": 3})
    assert loaded.configuration == {"service_name": "catalog", "pause_s": 3}
    assert loaded.secrets == {"shop": {"sig": "SIGKILL"}}
    assert loaded.environment == {"INOCULATE_TEST_VAR": "1"}
    experiment = _base()
    experiment["method"][0]["provider"]["arguments"] = {
        "service": "${service_name}",
        "signal": "${sig}",
    }
    experiment["method"][0]["pauses"] = {"after": "${pause_s}"}
    path = _write_experiment(demo / "shop", experiment)
    validate_experiment(path, loaded.configuration, loaded.secrets)


# --------------------------------------------------------------------------- reports


def test_a_deeply_nested_journal_is_bad_report_input(tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(
        '{"experiment": {}, "status": "completed", "run": [' + "[" * 20_000 + "]" * 20_000 + "]}"
    )
    from inoculate.reports.model import build_run_report

    with pytest.raises(ReportInputError, match="nested more than 200 levels deep"):
        build_run_report(journal)


# --------------------------------------------------------------------------- generated corpus

HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    -5,
    10**12,
    2**64,
    -(10**30),
    1e300,
    -1e300,
    math.nan,
    math.inf,
    -math.inf,
    "",
    " ",
    "${undefined}",
    "$${escaped}",
    "\u202e\u0000\ufffe",
    "x" * 100_000,
    [],
    [1, "two", None],
    {},
    {"unexpected": {"deeply": ["nested", 1]}},
]


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


hostile = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.none() | st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
    st.lists(st.integers() | st.text(max_size=5), max_size=4),
    st.dictionaries(st.text(max_size=8), st.integers() | st.none(), max_size=4),
    st.integers(min_value=1, max_value=2 * MAX_INPUT_DEPTH).map(_nested),
)


def _places(document: Any) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) to a value inside ``document``."""
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), document)]
    while stack:
        path, node = stack.pop()
        children = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, child in children:
            found.append((*path, key))
            stack.append(((*path, key), child))
    return sorted(found, key=repr)


def _containers(document: Any) -> list[tuple[Any, ...]]:
    places = [(), *_places(document)]
    return [p for p in places if isinstance(_at(document, p), dict)]


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


@dataclass(frozen=True)
class Mutation:
    """One change to a demo experiment: replace a value, delete a key, or add one."""

    source: Path
    kind: str
    path: tuple[Any, ...]
    value: Any
    file_format: str

    def apply(self) -> Any:
        document = yaml.safe_load(self.source.read_text())
        parent = _at(document, self.path[:-1]) if self.path else None
        if self.kind == "replace" and self.path:
            parent[self.path[-1]] = copy.deepcopy(self.value)
        elif self.kind == "replace":
            document = copy.deepcopy(self.value)
        elif self.kind == "delete" and isinstance(parent, dict):
            del parent[self.path[-1]]
        elif self.kind == "add":
            target = _at(document, self.path)
            target[f"unknown-{len(target)}"] = copy.deepcopy(self.value)
        return document

    def write(self, root: Path) -> Path:
        folder = root / self.source.parent.name
        path = folder / f"mutant.{self.file_format}"
        document = self.apply()
        if self.file_format == "json":
            path.write_text(json.dumps(document, ensure_ascii=False))
        else:
            try:
                path.write_text(yaml.safe_dump(document, allow_unicode=True))
            except RecursionError:  # PyYAML's emitter recurses; JSON is YAML too
                path.write_text(json.dumps(document))
        return path


@st.composite
def mutations(draw: st.DrawFn) -> Mutation:
    source = draw(st.sampled_from(DEMOS))
    document = yaml.safe_load(source.read_text())
    kind = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    places = _containers(document) if kind == "add" else [(), *_places(document)]
    path = draw(st.sampled_from(places))
    value = draw(hostile)
    return Mutation(source, kind, path, value, draw(st.sampled_from(["yaml", "json"])))


def _seeded_mutations(seed: int) -> Iterator[Mutation]:
    rng = random.Random(seed)
    while True:
        source = rng.choice(DEMOS)
        document = yaml.safe_load(source.read_text())
        kind = rng.choice(["replace", "delete", "add"])
        places = _containers(document) if kind == "add" else _places(document)
        yield Mutation(
            source,
            kind,
            rng.choice(places),
            rng.choice(HOSTILE_VALUES),
            rng.choice(["yaml", "json"]),
        )


@pytest.fixture(scope="module")
def mutant_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _demo_tree(tmp_path_factory.mktemp("mutants"))


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutation=mutations())
def test_a_mutated_demo_experiment_is_valid_or_refused_never_a_crash(
    mutant_root: Path, mutation: Mutation
) -> None:
    path = mutation.write(mutant_root)
    try:
        validate_experiment(path)
    except ExperimentInvalid as exc:
        message = str(exc)
        assert str(path) in message
        assert len(message) < 10_000
        assert exc.errors and all(isinstance(e.message, str) and e.message for e in exc.errors)


# --------------------------------------------------------------------------- end to end

SPAWN_RECORDER = """
import os, subprocess, sys
_log = os.environ.get("INOCULATE_TEST_SPAWN_LOG")
if _log:
    def _record(what):
        with open(_log, "a") as handle:
            handle.write(f"{what}\\n")
    _popen_init = subprocess.Popen.__init__
    def _init(self, args, *rest, **kwargs):
        _record(f"Popen {args!r}")
        _popen_init(self, args, *rest, **kwargs)
    subprocess.Popen.__init__ = _init
    _fork = os.fork
    def _recorded_fork():
        _record("fork")
        return _fork()
    os.fork = _recorded_fork
    _spawn = os.posix_spawn
    def _recorded_spawn(path, *rest, **kwargs):
        _record(f"posix_spawn {path}")
        return _spawn(path, *rest, **kwargs)
    os.posix_spawn = _recorded_spawn
"""


@dataclass
class Sandbox:
    """A private ledger, history and run folder, and a record of every process spawned."""

    root: Path

    def __post_init__(self) -> None:
        (self.root / "site").mkdir(parents=True)
        (self.root / "site" / "sitecustomize.py").write_text(SPAWN_RECORDER)
        self.runs.mkdir()
        self.ledger.write_text('{"untouched": true}\n')
        self.ledger_before = (self.ledger.read_bytes(), self.ledger.stat().st_mtime_ns)
        self.marker = uuid.uuid4().hex

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def history(self) -> Path:
        return self.root / "history.sqlite"

    @property
    def spawn_log(self) -> Path:
        return self.root / "spawned.log"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(self.root / "site"),
            "INOCULATE_TEST_SPAWN_LOG": str(self.spawn_log),
            "INOCULATE_TEST_MARKER": self.marker,
            "INOCULATE_LEDGER": str(self.ledger),
            "INOCULATE_HISTORY": str(self.history),
            "INOCULATE_RUNBOOK_FEEDBACK": "off",
        }

    def inoculate(self, *args: str) -> subprocess.CompletedProcess[str]:
        extra = ["--out", str(self.runs)] if args[0] in ("run", "report", "gate") else []
        return self.python("-m", "inoculate.cli", *args, *extra)

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def assert_refused_without_side_effects(self, result: subprocess.CompletedProcess[str]) -> None:
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "Traceback" not in output, output
        assert len(result.stderr) < 10_000
        assert not self.spawn_log.exists(), self.spawn_log.read_text()
        assert self.marked_processes() == []
        assert list(self.runs.iterdir()) == [], "a run directory or report was written"
        assert not self.history.exists(), "a history row was recorded"
        assert (self.ledger.read_bytes(), self.ledger.stat().st_mtime_ns) == self.ledger_before

    def marked_processes(self) -> list[int]:
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if proc.environ().get("INOCULATE_TEST_MARKER") == self.marker:
                    found.append(proc.pid)
            except psutil.Error:
                continue
        return found


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


def test_the_sandbox_sees_what_a_command_spawns(sandbox: Sandbox) -> None:
    # The checks below could pass by never seeing anything: a spawn and a survivor show.
    spawner = (
        "import subprocess; subprocess.Popen(['sleep', '30'], start_new_session=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    )
    spawned = sandbox.python("-c", spawner)
    assert spawned.returncode == 0, spawned.stderr
    assert "Popen ['sleep', '30']" in sandbox.spawn_log.read_text()
    survivors = wait_for(sandbox.marked_processes, 10, "the marked sleep process")
    assert len(survivors) == 1
    for pid in survivors:
        psutil.Process(pid).kill()
        psutil.Process(pid).wait(timeout=10)


END_TO_END = [
    "alias-bomb",
    "undefined-reference",
    "locustfile-missing",
    "deep-json",
    "latin-1",
    "arguments-string",
    "users-huge",
]


@pytest.mark.parametrize("case", END_TO_END)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_the_cli_refuses_bad_experiments_and_starts_nothing(
    sandbox: Sandbox, demo: Path, case: str, command: str
) -> None:
    make, _, words = EXPERIMENT_CASES[case]
    path = make(demo)
    result = sandbox.inoculate(command, str(path))
    sandbox.assert_refused_without_side_effects(result)
    assert str(path) in result.stderr and words in result.stderr
    if command == "run":
        assert "nothing was started or injected" in result.stderr


@pytest.mark.parametrize("case", ["yaml-list", "json-invalid", "env-no-equals"])
def test_run_and_gate_refuse_a_bad_var_file_before_anything(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    make, words = VAR_FILE_CASES[case]
    var_file = make(tmp_path)
    for command in ("run", "gate"):
        result = sandbox.inoculate(command, str(BASE), "--var-file", str(var_file))
        sandbox.assert_refused_without_side_effects(result)
        assert str(var_file) in result.stderr and words in result.stderr


def test_report_refuses_a_deeply_nested_journal(sandbox: Sandbox, tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(
        '{"experiment": {}, "status": "completed", "run": [' + "[" * 20_000 + "]" * 20_000 + "]}"
    )
    result = sandbox.inoculate("report", str(journal), "--record")
    sandbox.assert_refused_without_side_effects(result)
    assert "nested more than 200 levels deep" in result.stderr


def test_generated_bad_experiments_are_refused_end_to_end(sandbox: Sandbox, demo: Path) -> None:
    refused = []
    for mutation in _seeded_mutations(seed=8):
        path = mutation.write(demo)
        try:
            validate_experiment(path)
        except ExperimentInvalid:
            refused.append(mutation)
            if len(refused) == 3:
                break
    for mutation in refused:
        path = mutation.write(demo)
        for command in ("validate", "run"):
            result = sandbox.inoculate(command, str(path))
            sandbox.assert_refused_without_side_effects(result)
