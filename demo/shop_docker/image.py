"""The shop's container image: its name, and the files it is built from.

The tag is a hash of every file that goes into the image or decides how it is built, so
a build is reused until one of them changes (``make docker-image`` is then a no-op), and
an experiment always runs the image of the code it was checked out with.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["IMAGE_REPOSITORY", "REPO_ROOT", "build_inputs", "image_files", "image_tag"]

IMAGE_REPOSITORY = "inoculate/shop"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Where the shop's code lives inside the image (on PYTHONPATH).
APP_DIR = "/opt/shop"


def image_files(root: Path = REPO_ROOT) -> list[tuple[Path, Path]]:
    """The repository files copied into the image: (path in the repository, path under
    :data:`APP_DIR`). The demo keeps its installed name there, ``inoculate.demo``, beside
    the package's light ``__init__`` (it imports nothing); no other part of inoculate is in
    the image."""
    shop = sorted(
        p.relative_to(root) for p in (root / "demo" / "shop").glob("*.py") if p.name != "system.py"
    )
    sources = [
        Path("inoculate/__init__.py"),
        Path("demo/__init__.py"),
        Path("demo/shop_docker/__init__.py"),
        Path("demo/shop_docker/serve.py"),
        *shop,
    ]
    return [(source, _installed(source)) for source in sources]


def _installed(source: Path) -> Path:
    return source if source.parts[0] == "inoculate" else Path("inoculate") / source


def build_inputs(root: Path = REPO_ROOT) -> list[Path]:
    """The files that decide how the image is built (relative to ``root``)."""
    return [Path("deploy/docker/build_offline_image.py"), Path("deploy/docker/requirements.txt")]


def image_tag(root: Path = REPO_ROOT) -> str:
    """``inoculate/shop:<hash>`` of this checkout's image inputs."""
    digest = hashlib.sha256()
    inputs = {source for source, _ in image_files(root)} | set(build_inputs(root))
    for relative in sorted(inputs):
        digest.update(str(relative).encode() + b"\0")
        digest.update((root / relative).read_bytes() + b"\0")
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:12]}"
