"""The quality gate's rule (`decide`) at and around its boundaries.

Exactness: the boundaries below are sums of powers of two (0.75 + 0.125 = 0.875, floor 0.5),
so champion + min_delta is computed without rounding and the challenger F1 can sit exactly
on it; math.nextafter gives the neighbouring doubles, one ulp either side. Where the
production min_delta (0.002) is used, the boundary is computed by the same expression the
code evaluates (champion_f1 + min_delta), so the test and the code compare the same double.
"""

from __future__ import annotations

import math

import pytest

from prodcat.training.gate import decide

FLOOR, CHAMPION, DELTA = 0.5, 0.75, 0.125
BOUNDARY = 0.875  # CHAMPION + DELTA, exact in binary


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def test_the_boundary_is_exact():
    assert CHAMPION + DELTA == BOUNDARY
    assert below(BOUNDARY) < BOUNDARY < above(BOUNDARY)


@pytest.mark.parametrize(
    ("challenger", "promote"),
    [(below(BOUNDARY), False), (BOUNDARY, True), (above(BOUNDARY), True)],
)
def test_the_champion_must_be_beaten_by_at_least_min_delta(challenger, promote):
    assert decide(challenger, CHAMPION, DELTA, FLOOR)[0] is promote


@pytest.mark.parametrize(
    ("challenger", "promote"), [(below(FLOOR), False), (FLOOR, True), (above(FLOOR), True)]
)
def test_the_floor_itself_is_enough_without_a_champion(challenger, promote):
    assert decide(challenger, None, DELTA, FLOOR)[0] is promote


def test_with_the_production_delta_the_computed_boundary_promotes():
    champion, delta = 0.8, 0.002
    boundary = champion + delta  # the very double the code compares with
    assert decide(boundary, champion, delta, FLOOR)[0] is True
    assert decide(below(boundary), champion, delta, FLOOR)[0] is False


def test_a_challenger_above_the_floor_but_worse_than_the_champion_is_refused():
    promote, reason = decide(0.7, 0.8, 0.002, FLOOR)
    assert promote is False
    assert reason == "challenger F1 0.7000 does not beat champion 0.8000 by 0.0020"


def test_an_equal_challenger_is_refused_and_a_zero_delta_lets_it_through():
    assert decide(0.8, 0.8, 0.002, FLOOR)[0] is False
    assert decide(0.8, 0.8, 0.0, FLOOR)[0] is True


def test_the_floor_comes_first_even_when_the_champion_is_worse():
    promote, reason = decide(0.4, 0.3, 0.002, FLOOR)
    assert promote is False
    assert reason == "challenger F1 0.4000 is below the floor 0.5000"


def test_without_a_champion_a_challenger_above_the_floor_is_promoted():
    promote, reason = decide(0.6, None, 0.002, FLOOR)
    assert promote is True
    assert reason == "no champion yet; challenger F1 0.6000 clears the floor"


def test_a_better_challenger_is_promoted_with_the_margin_in_the_reason():
    promote, reason = decide(0.85, 0.8, 0.002, FLOOR)
    assert promote is True
    assert reason == "challenger F1 0.8500 beats champion 0.8000 by at least 0.0020"


def test_a_champion_scoring_zero_is_still_compared():
    # 0.0 is falsy: a champion F1 of zero must not read as "no champion".
    promote, reason = decide(0.6, 0.0, 0.002, FLOOR)
    assert promote is True and "beats champion 0.0000" in reason


MAX_ECE = 0.0625  # a power of two: at, below and above it are exact doubles


@pytest.mark.parametrize(
    ("ece", "promote"),
    [
        (None, True),
        (0.0, True),
        (MAX_ECE, True),
        (above(MAX_ECE), False),
        (0.5, False),
        (math.nan, False),
    ],
)
def test_a_challenger_whose_confidence_is_off_by_more_than_max_ece_is_refused(ece, promote):
    decision, reason = decide(0.95, 0.75, DELTA, FLOOR, challenger_ece=ece, max_ece=MAX_ECE)
    assert decision is promote
    assert ("ECE" in reason) is not promote


def test_a_refusal_for_calibration_says_by_how_much_and_why_it_matters():
    promote, reason = decide(0.95, 0.75, DELTA, FLOOR, challenger_ece=0.5, max_ece=MAX_ECE)
    assert (promote, reason) == (
        False,
        "challenger ECE 0.5000 exceeds the maximum 0.0625: its confidence cannot be trusted",
    )


def test_the_floor_is_checked_before_calibration():
    promote, reason = decide(0.4, None, DELTA, FLOOR, challenger_ece=0.9, max_ece=MAX_ECE)
    assert not promote and "below the floor" in reason


def test_a_calibrated_challenger_must_still_beat_the_champion():
    promote, reason = decide(0.76, 0.75, DELTA, FLOOR, challenger_ece=0.0, max_ece=MAX_ECE)
    assert not promote and "does not beat champion" in reason
