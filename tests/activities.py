"""Activities of the test experiments (tests/experiments/*.yaml): plain Chaos Toolkit python
providers that stand for a user's own, e.g. a slow rollback."""

from __future__ import annotations

import time

__all__ = ["sleep"]


def sleep(seconds: float) -> dict[str, float]:
    """Block for ``seconds`` (a rollback that takes its time), then say how long it took."""
    started = time.monotonic()
    time.sleep(seconds)
    return {"slept_s": round(time.monotonic() - started, 3)}
