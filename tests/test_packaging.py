"""The distribution claims one import name, and the layers run one way (ARCHITECTURE.md).

The wheel is built from a copy of the checkout (an in-tree ``build/`` could hold stale
modules), then checked as a user would meet it: its contents, an install next to a user's
own ``reports`` and ``extensions`` packages, and the import-linter contracts of
``.importlinter`` run on the installed tree, where every folder sits at its installed place.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

# repository folder → where its modules are installed
MAPPED = {
    "inoculate": "inoculate",
    "extensions": "inoculate/extensions",
    "steady_state": "inoculate/steady_state",
    "reports": "inoculate/reports",
    "demo": "inoculate/demo",
}
_NOT_SOURCES = (".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built from a clean copy of it."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*_NOT_SOURCES, ".inoculate"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(root), source],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = root.glob("inoculate-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked, as ``pip install --target`` would lay it out."""
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def _top_level(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = {name.split("/", 1)[0] for name in archive.namelist()}
    return {name for name in names if not name.endswith(".dist-info")}


def test_the_wheel_claims_exactly_one_import_name(wheel: Path) -> None:
    assert _top_level(wheel) == {"inoculate"}


def _sources() -> Iterator[tuple[str, str]]:
    for folder, installed_as in MAPPED.items():
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".j2", ".css", ".json") and "__pycache__" not in path.parts:
                yield (
                    str(path.relative_to(REPO)),
                    f"{installed_as}/{path.relative_to(REPO / folder)}",
                )


def test_every_module_and_template_of_the_mapped_folders_is_in_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = [source for source, installed in _sources() if installed not in shipped]
    assert not missing, f"not in the wheel (add the package to pyproject's list): {missing}"
    assert not [n for n in shipped if n.startswith("inoculate/") and "synthetic" in n], (
        "test fixtures must not ship"
    )


def test_the_entry_points_name_the_fault_families_and_the_demo_systems(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(name).decode()
    for family in ("process", "docker", "toxiproxy", "host_network", "kubernetes"):
        assert f"{family} = inoculate.extensions.{family}.reverters:REVERTERS" in text
    assert "shop = inoculate.demo.shop.system:ShopSystem" in text


def test_a_users_own_reports_and_extensions_packages_neither_shadow_nor_are_shadowed(
    installed: Path, tmp_path: Path
) -> None:
    project = tmp_path / "experiments-repo"  # where a team keeps experiments, and its code
    for name in ("reports", "extensions", "steady_state", "demo"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"OWNER = 'the team: {name}'\n")
    probe = (
        "import reports, extensions, steady_state, demo\n"
        "import inoculate.reports.formats, inoculate.extensions.process\n"
        "import inoculate.steady_state.slo\n"
        "print(reports.OWNER, extensions.OWNER, steady_state.OWNER, demo.OWNER)\n"
        "print(inoculate.reports.formats.__file__)\n"
        "print(inoculate.extensions.process.kill.__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project,
        env={"PYTHONPATH": f"{project}:{installed}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        lines[0] == "the team: reports the team: extensions the team: steady_state the team: demo"
    )
    assert lines[1].startswith(str(installed / "inoculate" / "reports"))
    assert lines[2] == "inoculate.extensions.process.actions"


def test_a_folder_imported_under_its_bare_name_refuses_loudly() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import extensions"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "is the package inoculate.extensions: import it by that name" in result.stderr


def test_the_layers_run_one_way(installed: Path) -> None:
    # lint-imports puts its working directory first on the path: run it where there is no
    # checkout, so it analyses the installed tree.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), str(REPO / ".importlinter")],
        cwd=installed,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout or "broken" not in result.stdout, result.stdout
    assert "Layers run one way" in result.stdout and "KEPT" in result.stdout


def test_the_layers_are_checked_from_the_checkout_too() -> None:
    # `lint-imports` in the repository: the links inoculate/<folder> -> ../<folder> put every
    # mapped folder where the wheel puts it, so the checkout is analysed as installed.
    for folder, installed_as in MAPPED.items():
        if folder == installed_as:
            continue
        link = REPO / installed_as
        assert link.is_symlink() and link.resolve() == (REPO / folder).resolve(), link
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout, result.stdout


def test_an_upward_import_breaks_the_build(installed: Path, tmp_path: Path) -> None:
    broken = tmp_path / "site"
    shutil.copytree(installed, broken)
    model = broken / "inoculate" / "model" / "errors.py"
    model.write_text(model.read_text() + "\nimport inoculate.session.run_session  # upward\n")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), str(REPO / ".importlinter")],
        cwd=broken,
        env={"PYTHONPATH": str(broken), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "inoculate.model.errors -> inoculate.session.run_session" in result.stdout
