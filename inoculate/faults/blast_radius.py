"""Blast radius: which of the matching targets a fault hits — a count or a percentage of them,
chosen at random with a seed that the action's output (hence the journal) records.

Pure functions, no I/O; shared by the Docker and Kubernetes faults. The rules:

- never more than asked: ``count`` caps the choice and ``percentage`` rounds *down*
  (40 % of 4 containers is 1, not 2); neither given means every candidate;
- an empty choice is an error (nothing matched, or the percentage rounds down to none),
  so a fault never silently injects nothing;
- the choice depends only on the seed and the candidates' keys: with ``key`` the candidates
  are sorted first, so the order an API listed them in does not change the choice and a
  recorded seed replays a run against the same targets;
- without a seed one is drawn and recorded, so every choice can be reproduced.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from inoculate.model.errors import BlastRadiusError

__all__ = ["Selection", "allowed", "select"]

T = TypeVar("T")
SEED_BITS = 32


@dataclass(frozen=True)
class Selection(Generic[T]):
    """The outcome of a choice: what matched, what was chosen, and how to reproduce it."""

    candidates: tuple[T, ...]
    chosen: tuple[T, ...]
    seed: int
    count: int | None
    percentage: float | None

    def to_json(self, name: Callable[[T], str] = str) -> dict[str, Any]:
        """The record for an action's output (and so the journal), items shown by ``name``."""
        return {
            "matched": len(self.candidates),
            "candidates": [name(item) for item in self.candidates],
            "selected": [name(item) for item in self.chosen],
            "count": self.count,
            "percentage": self.percentage,
            "seed": self.seed,
        }


def allowed(matched: int, count: int | None = None, percentage: float | None = None) -> int:
    """The most targets a blast radius allows out of ``matched`` candidates (validates it)."""
    if count is not None and percentage is not None:
        raise BlastRadiusError("give `count` or `percentage`, not both")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise BlastRadiusError(f"`count` must be a whole number >= 1, got {count!r}")
        return min(count, matched)
    if percentage is not None:
        if isinstance(percentage, bool) or not 0 < percentage <= 100:
            raise BlastRadiusError(f"`percentage` must be in (0, 100], got {percentage!r}")
        # The epsilon keeps float noise from costing a target: 7 % of 100 is 7.000000000000001.
        return min(matched, math.floor(matched * percentage / 100 + 1e-9))
    return matched


def select(
    candidates: Iterable[T],
    count: int | None = None,
    percentage: float | None = None,
    seed: int | None = None,
    key: Callable[[T], str] | None = None,
) -> Selection[T]:
    """Choose among ``candidates`` within the blast radius; raise if it selects nothing.

    With ``key`` (a unique name per candidate) the candidates are sorted by it before
    sampling; without, they are used in the order given, which the caller keeps stable.
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise BlastRadiusError(f"`seed` must be a whole number >= 0, got {seed!r}")
    pool = tuple(sorted(candidates, key=key) if key is not None else candidates)
    limit = allowed(len(pool), count, percentage)
    if not pool:
        raise BlastRadiusError("no target matches")
    if limit == 0:
        raise BlastRadiusError(
            f"{percentage}% of {len(pool)} target(s) rounds down to none; "
            "raise the percentage or give a count"
        )
    seed = seed if seed is not None else secrets.randbits(SEED_BITS)
    # Sample indices, then keep the pool's order: the chosen list is as stable as the pool.
    picked = sorted(random.Random(seed).sample(range(len(pool)), limit))
    return Selection(pool, tuple(pool[i] for i in picked), seed, count, percentage)
