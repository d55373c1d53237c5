#!/usr/bin/env python3
"""Build the demo shop's image without a container registry (``make docker-image``).

    .venv/bin/python deploy/docker/build_offline_image.py [--cache-dir DIR] [--force]

1. A Debian bookworm root filesystem with python3 — ``debootstrap --variant=minbase`` from
   the machine's own Debian mirror —, plus the shop's Python dependencies installed by pip
   from wheels (``deploy/docker/requirements.txt``: Debian's aiohttp, uvloop and pydantic
   are too old for the shop). Docs, man pages, locales and apt lists are dropped. Cached as
   a tarball in the cache directory, keyed by a hash of this script and the requirements.
2. That tarball plus the shop's code under /opt/shop, streamed to ``docker import`` with
   the image's environment: ``inoculate/shop:<hash of the image inputs>`` (see
   ``inoculate.demo.shop_docker.image``). An existing image of that tag is reused.

Needs root (debootstrap) and a reachable Debian mirror and PyPI on the first build only.
For machines with a registry, ``deploy/docker/Dockerfile`` builds the same image.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker

from inoculate.demo.shop_docker.image import APP_DIR, REPO_ROOT, image_files, image_tag

REPO = REPO_ROOT

SUITE = "bookworm"  # python3.11: the version the wheels below are chosen for
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ["python3"]
REQUIREMENTS = REPO / "deploy" / "docker" / "requirements.txt"
PIP_PLATFORM = ["--implementation", "cp", "--python-version", "3.11", "--abi", "cp311"]
PIP_PLATFORM += [
    arg
    for tag in ("manylinux_2_36", "manylinux_2_28", "manylinux_2_17", "manylinux2014")
    for arg in ("--platform", f"{tag}_x86_64")
]
PRUNED = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"]
EMPTIED = ["var/cache/apt", "var/lib/apt/lists", "var/log"]
IMAGE_CHANGES = [
    f"ENV PYTHONPATH={APP_DIR}",
    "ENV PYTHONUNBUFFERED=1",
    "ENV LANG=C.UTF-8",
    f"WORKDIR {APP_DIR}",
    'CMD ["python3", "-m", "inoculate.demo.shop_docker.serve", "--help"]',
]


def default_cache_dir() -> Path:
    """``$INOCULATE_CACHE_DIR``, else /var/cache/inoculate (root) or ~/.cache/inoculate."""
    configured = os.environ.get("INOCULATE_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path("/var/cache/inoculate") if os.geteuid() == 0 else Path.home() / ".cache/inoculate"


def log(message: str) -> None:
    print(f"[docker-image] {message}", flush=True)


def debian_mirror() -> str:
    """The first Debian mirror in the machine's apt sources (deb822 or one-line format)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for source in sources:
        with contextlib.suppress(OSError):
            text = source.read_text(encoding="utf-8")
            for url in re.findall(r"(?:^URIs:|^deb)\s+(\S+)", text, flags=re.MULTILINE):
                if url.rstrip("/").endswith("/debian"):
                    return url
    return DEFAULT_MIRROR


def rootfs_key() -> str:
    """A hash of everything that decides the root filesystem's content."""
    recipe = repr((SUITE, DEBIAN_PACKAGES, PIP_PLATFORM, PRUNED, EMPTIED, requirements()))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def build_rootfs(cache_dir: Path) -> Path:
    """Return the cached root filesystem tarball, building it first when missing."""
    tarball = cache_dir / f"rootfs-{SUITE}-{rootfs_key()}.tar"
    if tarball.exists():
        log(f"root filesystem cached: {tarball}")
        return tarball
    if os.geteuid() != 0:
        sys.exit("building the root filesystem needs root (debootstrap); run as root once")
    if shutil.which("debootstrap") is None:
        sys.exit("debootstrap is missing: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="rootfs-") as work:
        root = Path(work) / "root"
        mirror = debian_mirror()
        log(f"debootstrap {SUITE} from {mirror} (a minute or two)")
        run(["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
             SUITE, str(root), mirror])  # fmt: skip
        site = root / "usr/local/lib/python3.11/dist-packages"
        log(f"pip: {', '.join(requirements())}")
        run([sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir",
             "--disable-pip-version-check", "--target", str(site), "--only-binary=:all:",
             *PIP_PLATFORM, "-r", str(REQUIREMENTS)])  # fmt: skip
        for relative in PRUNED:
            shutil.rmtree(root / relative, ignore_errors=True)
        for relative in EMPTIED:
            for child in (root / relative).glob("*"):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."])
        partial.replace(tarball)
    for stale in cache_dir.glob(f"rootfs-{SUITE}-*.tar"):
        if stale != tarball:
            stale.unlink()
    log(f"root filesystem cached: {tarball} ({tarball.stat().st_size // 2**20} MiB)")
    return tarball


def requirements() -> list[str]:
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def run(command: list[str]) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{command[0]} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")


def image_tarball(rootfs: Path, destination: Path) -> None:
    """Write the root filesystem plus the shop's code (under APP_DIR) as one tarball."""
    shutil.copyfile(rootfs, destination)
    with tarfile.open(destination, "a") as archive:
        app = Path(APP_DIR.strip("/"))
        files = {app / installed: REPO / source for source, installed in image_files(REPO)}
        present = {Path(name) for name in archive.getnames()}  # tar lists ./opt/ as opt
        wanted = {parent for f in files for parent in f.parents} - {Path(".")}
        for directory in sorted(wanted - present):
            info = tarfile.TarInfo(f"./{directory}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            archive.addfile(info)
        for path, source in files.items():
            data = source.read_bytes()
            info = tarfile.TarInfo(f"./{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def build_lock(cache_dir: Path) -> Iterator[None]:
    # Two builds at once (CI and a developer's `make`) would both debootstrap.
    with open(cache_dir / "build.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    args = parser.parse_args()
    tag = image_tag(REPO)
    client = docker.from_env(timeout=600)
    if not args.force and client.images.list(name=tag):
        log(f"{tag} is up to date")
        return 0
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(args.cache_dir):
        rootfs = build_rootfs(args.cache_dir)
        with tempfile.TemporaryDirectory(dir=args.cache_dir, prefix="image-") as work:
            bundle = Path(work) / "image.tar"
            image_tarball(rootfs, bundle)
            repository, version = tag.split(":")
            client.api.import_image(
                src=str(bundle), repository=repository, tag=version, changes=IMAGE_CHANGES
            )
    client.api.tag(tag, f"{tag.split(':')[0]}:latest")
    log(f"built {tag} (also tagged latest)")
    remove_older_builds(client, tag)
    return 0


KEEP_BUILDS = 3


def remove_older_builds(client: docker.DockerClient, current: str) -> None:
    """Drop the images of earlier builds (each is a full root filesystem) beyond the
    ``KEEP_BUILDS`` newest: two checkouts side by side (two branches, a CI job beside a
    developer) each keep theirs. One that a container still uses is kept (the daemon
    refuses to remove it)."""
    repository = current.split(":")[0]
    images = sorted(
        client.images.list(name=repository), key=lambda i: i.attrs.get("Created", ""), reverse=True
    )
    for image in images[KEEP_BUILDS:]:
        for tag in image.tags:
            if tag not in (current, f"{repository}:latest"):
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_image(tag)
                    log(f"removed the older build {tag}")


if __name__ == "__main__":
    sys.exit(main())
