"""Activities of the test experiments (tests/experiments/*.yaml): plain Chaos Toolkit python
providers that stand for a user's own, e.g. a slow rollback."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["echo", "fail_with", "sleep"]


def sleep(seconds: float, started_file: str | None = None) -> dict[str, float]:
    """Block for ``seconds`` (a rollback that takes its time), then say how long it took;
    ``started_file`` is created first, so a test knows the activity is under way."""
    if started_file:
        Path(started_file).touch()
    started = time.monotonic()
    time.sleep(seconds)
    return {"slept_s": round(time.monotonic() - started, 3)}


def echo(message: str) -> dict[str, str]:
    """Return ``message`` (an action output the journal records)."""
    return {"message": message}


def fail_with(message: str) -> None:
    """Fail with ``message`` (an activity error chaoslib logs and journals)."""
    raise RuntimeError(f"cleanup refused: {message}")
