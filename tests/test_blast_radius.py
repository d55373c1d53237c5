"""Blast radius properties: never more than asked, the seed reproduces the choice."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inoculate.faults.blast_radius import allowed, select
from inoculate.model.errors import BlastRadiusError

names = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True)
counts = st.integers(min_value=1, max_value=100)
percentages = st.floats(min_value=0.01, max_value=100, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@given(names, counts, seeds)
def test_a_count_is_a_ceiling(candidates: list[str], count: int, seed: int) -> None:
    selection = select(candidates, count=count, seed=seed, key=str)
    assert len(selection.chosen) == min(count, len(candidates))
    assert len(set(selection.chosen)) == len(selection.chosen)
    assert set(selection.chosen) <= set(candidates)


@given(names, percentages, seeds)
def test_a_percentage_rounds_down_and_never_selects_nothing(
    candidates: list[str], percentage: float, seed: int
) -> None:
    ceiling = len(candidates) * percentage / 100
    try:
        selection = select(candidates, percentage=percentage, seed=seed, key=str)
    except BlastRadiusError as exc:
        assert "rounds down to none" in str(exc)
        assert math.floor(ceiling + 1e-9) == 0
        return
    assert 1 <= len(selection.chosen) <= ceiling + 1e-9
    assert len(selection.chosen) == math.floor(ceiling + 1e-9)


@given(names, counts, seeds, st.randoms(use_true_random=False))
def test_the_seed_reproduces_the_choice_whatever_the_listing_order(
    candidates: list[str], count: int, seed: int, shuffler: random.Random
) -> None:
    first = select(candidates, count=count, seed=seed, key=str)
    shuffled = list(candidates)
    shuffler.shuffle(shuffled)
    again = select(shuffled, count=count, seed=seed, key=str)
    assert again.chosen == first.chosen and again.seed == seed


@given(names, counts)
def test_an_unseeded_choice_records_a_seed_that_replays_it(
    candidates: list[str], count: int
) -> None:
    first = select(candidates, count=count, key=str)
    assert select(candidates, count=count, seed=first.seed, key=str).chosen == first.chosen
    assert first.to_json()["seed"] == first.seed
    assert first.to_json()["selected"] == list(first.chosen)


def test_no_radius_means_every_candidate_and_the_record_says_what_matched() -> None:
    selection = select(["b", "a", "c"], seed=3, key=str)
    assert selection.chosen == ("a", "b", "c")
    assert selection.to_json() == {
        "matched": 3,
        "candidates": ["a", "b", "c"],
        "selected": ["a", "b", "c"],
        "count": None,
        "percentage": None,
        "seed": 3,
    }


def test_different_seeds_choose_differently() -> None:
    candidates = [f"c{i}" for i in range(20)]
    choices = {select(candidates, count=3, seed=s, key=str).chosen for s in range(50)}
    assert len(choices) > 40  # not a constant choice dressed up as random


def test_without_a_key_the_given_order_is_kept() -> None:
    pods = [object() for _ in range(10)]
    selection = select(pods, count=4, seed=11)
    positions = [pods.index(p) for p in selection.chosen]
    assert positions == sorted(positions)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"count": 1, "percentage": 10}, "not both"),
        ({"count": 0}, "count"),
        ({"count": True}, "count"),
        ({"percentage": 0}, "percentage"),
        ({"percentage": 100.5}, "percentage"),
        ({"seed": -1}, "seed"),
    ],
)
def test_malformed_radii_are_refused(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(BlastRadiusError, match=message):
        select(["a", "b"], **arguments)  # type: ignore[arg-type]


def test_nothing_to_choose_from_is_an_error() -> None:
    with pytest.raises(BlastRadiusError, match="no target matches"):
        select([], count=1)
    assert allowed(0) == 0 and allowed(10, percentage=7) == 0 and allowed(100, percentage=7) == 7
