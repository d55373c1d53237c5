"""The offline image builder keeps the newest builds, so checkouts side by side coexist."""

from __future__ import annotations

import importlib.util
import io
import tarfile
import time
import uuid
from types import ModuleType

import docker
import pytest

from tests.docker_support import BUILD_SCRIPT, docker_client_fixture  # noqa: F401

pytestmark = pytest.mark.docker


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_offline_image", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_image(client: docker.DockerClient, repository: str, tag: str) -> None:
    """An image of one small file, imported offline (no registry)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        content = tag.encode()
        info = tarfile.TarInfo("build-id")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    client.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag)


def test_older_builds_beyond_the_newest_three_are_removed(
    docker_client: docker.DockerClient,
) -> None:
    builder = _builder()
    repository = f"inoculate-test-builds-{uuid.uuid4().hex[:8]}"
    tags = [f"build{n}" for n in range(5)]
    try:
        for tag in tags:
            _tiny_image(docker_client, repository, tag)
            time.sleep(1.1)  # Created has a one-second resolution in some daemons
        builder.remove_older_builds(docker_client, f"{repository}:{tags[-1]}")
        left = sorted(t.split(":")[1] for i in docker_client.images.list(name=repository)
                      for t in i.tags)  # fmt: skip
        assert left == tags[-builder.KEEP_BUILDS :], left
    finally:
        for image in docker_client.images.list(name=repository):
            for tag in image.tags:
                docker_client.api.remove_image(tag, force=True)
