"""A fault's target in words, for descriptions, findings and plain-text reports.

Targets are recorded exactly (a ``pattern`` is the regular expression the user wrote, with
its backslashes); people read them here: ``catalog\\.py --port \\d+`` reads
``catalog.py --port …``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Reach", "reach_of", "readable_pattern", "target_words"]

_NAMED_BY = ("service", "container", "pod", "name")
_WILDCARDS = re.compile(r"(?<!\\)(?:\.[*+]\??|\\[dDsSwW][*+]?|\[[^\]]*\][*+]?)")
_QUANTIFIERS = re.compile(r"(?<!\\)(?:[*+?]|\{\d*,?\d*\})")


def readable_pattern(pattern: str) -> str:
    """``pattern`` for people: anchors dropped, wildcards and classes shown as ``…``,
    escapes removed. For reading only; matching always uses the pattern itself."""
    text = pattern.removeprefix("^")
    if text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1]
    text = _WILDCARDS.sub("…", text)
    text = _QUANTIFIERS.sub("", text)
    text = re.sub(r"(?<!\\)\\[bBAZ]", "", text)  # word and string anchors
    text = re.sub(r"\\(.)", r"\1", text)
    return re.sub(r"…+", "…", text).strip() or pattern


def target_words(target: Mapping[str, Any] | None) -> str | None:
    """The target as a person names it: the service, container, pod or name; a pattern
    made readable; else its keys and values."""
    if not isinstance(target, Mapping) or not target:
        return None
    for key in _NAMED_BY:
        if target.get(key):
            return str(target[key])
    if target.get("pattern"):
        return f"processes matching “{readable_pattern(str(target['pattern']))}”"
    return ", ".join(f"{k}={v}" for k, v in target.items())


@dataclass(frozen=True)
class Reach:
    """The most a fault could hit, worked out before it runs (a canary's blast radius).

    ``most``: targets it could hit at most; ``percent``: the most, in % of what its
    selector matches; None where it cannot be told now. ``why`` says how it was worked out,
    in words a refusal can quote.
    """

    kind: str
    most: int | None
    percent: float | None
    why: str
    problem: str | None = None  # why the fault would fail if it ran now (nothing to hit ...)


def reach_of(
    kind: str,
    matched: int | None,
    count: Any = None,
    percentage: Any = None,
    what: str = "target",
) -> Reach:
    """The reach of a fault that picks ``count`` or ``percentage`` % (rounded down) of the
    ``matched`` candidates, or all of them (None: the candidates cannot be listed now)."""
    seen = "cannot be listed now" if matched is None else f"{matched} match now"
    problem = f"no {what} matches now: it would fail, hitting nothing" if matched == 0 else None
    if isinstance(count, int) and not isinstance(count, bool) and count >= 1:
        percent = None if not matched else 100.0 * min(count, matched) / matched
        return Reach(kind, count, percent, f"count {count} of the {what}s ({seen})", problem)
    if isinstance(percentage, int | float) and not isinstance(percentage, bool):
        most = None if matched is None else math.floor(matched * percentage / 100 + 1e-9)
        if most == 0 and matched:
            problem = f"{percentage:g} % of the {matched} matching {what}s rounds down to none"
        why = f"{percentage:g} % of the {what}s ({seen})"
        return Reach(kind, most, float(percentage), why, problem)
    percent = None if matched is None else 100.0
    return Reach(kind, matched, percent, f"every matching {what} ({seen})", problem)
