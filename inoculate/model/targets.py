"""A fault's target in words, for descriptions, findings and plain-text reports.

Targets are recorded exactly (a ``pattern`` is the regular expression the user wrote, with
its backslashes); people read them here: ``catalog\\.py --port \\d+`` reads
``catalog.py --port …``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["readable_pattern", "target_words"]

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
