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


def image_files(root: Path = REPO_ROOT) -> list[Path]:
    """The repository files copied into the image (relative to ``root``)."""
    files = [Path("demo/__init__.py"), Path("demo/shop_docker/__init__.py")]
    files.append(Path("demo/shop_docker/serve.py"))
    files += sorted(p.relative_to(root) for p in (root / "demo" / "shop").glob("*.py"))
    return files


def build_inputs(root: Path = REPO_ROOT) -> list[Path]:
    """The files that decide how the image is built (relative to ``root``)."""
    return [Path("deploy/docker/build_offline_image.py"), Path("deploy/docker/requirements.txt")]


def image_tag(root: Path = REPO_ROOT) -> str:
    """``inoculate/shop:<hash>`` of this checkout's image inputs."""
    digest = hashlib.sha256()
    for relative in sorted({*image_files(root), *build_inputs(root)}):
        digest.update(str(relative).encode() + b"\0")
        digest.update((root / relative).read_bytes() + b"\0")
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:12]}"
