"""Fault kinds: the stable name a ledger record carries, and the reverter it resolves to.

A kind is ``<family>:<fault>`` (``process:freeze``, ``docker:remove``). Each family's
reverters are a read-only mapping from fault name to :class:`~inoculate.faults.protocol.Reverter`,
registered in the ``inoculate.faults`` entry-point group (pyproject.toml), so a record never
freezes a module path into data: a module can move without a ledger migration, and a
third-party package can add a family of faults that ``inoculate recover`` understands.

A family may also say which physical things a record holds (``TARGET_KEYS`` beside
``REVERTERS``: fault name → function of the record returning keys such as ``pid:42:<start>``),
so that when two runs hold the same target, the first to revert leaves it to the other; and
how to check that a fault's target is restored (``VERIFIERS``: fault name → function of the
record returning ``(restored, what was seen)``, restored None when it cannot be told).

Records written before kinds existed carry ``module`` + ``fault``;
:func:`inoculate.model.kinds.kind_from_legacy` maps them to their kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

__all__ = [
    "ENTRY_POINT_GROUP",
    "UnknownKind",
    "families",
    "reverter_for",
    "target_keys",
    "verifier_for",
]

ENTRY_POINT_GROUP = "inoculate.faults"


class UnknownKind(LookupError):
    """No reverter is registered for a fault kind."""


@cache
def families() -> Mapping[str, Any]:
    """The registered fault families: name → entry point (loaded on first use)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def reverter_for(kind: str) -> Callable[..., str]:
    """Return the reverter of ``kind``; raise :class:`UnknownKind` saying what is known."""
    family, _, fault = kind.partition(":")
    entry_point = families().get(family)
    if entry_point is None:
        raise UnknownKind(
            f"no fault family {family!r} is installed (entry-point group {ENTRY_POINT_GROUP}); "
            f"known: {sorted(families())}"
        )
    reverters: Mapping[str, Callable[..., str]] = entry_point.load()
    try:
        return reverters[fault]
    except KeyError:
        raise UnknownKind(
            f"the {family} family has no fault {fault!r}; known: {sorted(reverters)}"
        ) from None


def target_keys(record: Any) -> frozenset[str]:
    """The physical things ``record`` holds, per its family's ``TARGET_KEYS`` (none if the
    family does not say: its faults never share a target across runs)."""
    entry_point = families().get(record.family)
    if entry_point is None:
        return frozenset()
    module = importlib.import_module(entry_point.module)
    keys = getattr(module, "TARGET_KEYS", {}).get(record.fault)
    return frozenset(keys(record)) if keys is not None else frozenset()


def verifier_for(kind: str) -> Callable[[Any], tuple[bool | None, str]] | None:
    """The family's check that a fault of ``kind`` no longer holds its target, if it has one."""
    family, _, fault = kind.partition(":")
    entry_point = families().get(family)
    if entry_point is None:
        return None
    module = importlib.import_module(entry_point.module)
    verifier: Callable[[Any], tuple[bool | None, str]] | None = getattr(
        module, "VERIFIERS", {}
    ).get(fault)
    return verifier
