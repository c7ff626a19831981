"""Mean kinetic temperature (USP <1079.2>): the formula, table-driven, against an independent recomputation."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import pytest

from coldchain.core.mkt import DELTA_H, KELVIN, MktAccumulator, R, mkt_celsius


def reference_mkt(readings: list[float]) -> float:
    """MKT recomputed from the formula in 50-digit decimal arithmetic (no shared code with coldchain.mkt)."""
    getcontext().prec = 50
    ratio = Decimal("83144") / Decimal("8.3144598")
    terms = [(-ratio / (Decimal(str(c)) + Decimal("273.15"))).exp() for c in readings]
    mean = sum(terms, Decimal(0)) / len(terms)
    return float(ratio / -mean.ln() - Decimal("273.15"))


CASES = [
    # constant temperature: the MKT is that temperature
    ([5.0] * 1440, 5.0),
    ([2.0], 2.0),
    ([-20.0] * 3, -20.0),
    # worked by hand: ΔH/R = 9999.93 K; e^(-9999.93/293.15) and e^(-9999.93/303.15) average to
    # e^(-33.3988), so MKT = 9999.93/33.3988 K = 299.41 K = 26.26 °C (above the 25.0 °C mean)
    ([20.0, 30.0], 26.26),
    # a fridge at 5 °C with one hour at 15 °C in 24 h: the MKT rises well above the 5.42 °C mean
    ([5.0] * 1380 + [15.0] * 60, 5.76),
]


@pytest.mark.parametrize(("readings", "expected"), CASES)
def test_mkt_matches_the_formula(readings: list[float], expected: float) -> None:
    """MKT equals the hand-worked value and the high-precision recomputation of the formula."""
    got = mkt_celsius(readings)
    assert got is not None
    assert got == pytest.approx(expected, abs=0.005)
    assert got == pytest.approx(reference_mkt(readings), abs=1e-9)


def test_constants_are_usps() -> None:
    """ΔH is 83.144 kJ/mol and R 8.3144598 J/(mol·K), so ΔH/R is 10,000 K to four digits."""
    assert (DELTA_H, R, KELVIN) == (83_144.0, 8.3144598, 273.15)
    assert pytest.approx(10_000, rel=1e-5) == DELTA_H / R


def test_no_readings_have_no_mkt() -> None:
    """Without readings there is no MKT (None), never 0 °C."""
    assert mkt_celsius([]) is None
    assert MktAccumulator().celsius() is None


def test_streaming_is_order_independent_and_at_least_the_mean() -> None:
    """Feeding readings one by one in any order gives the same MKT, never below the arithmetic mean."""
    readings = [4.0 + (i % 37) / 5 for i in range(10_000)] + [14.5] * 30
    forward, backward = MktAccumulator(), MktAccumulator()
    for value in readings:
        forward.add(value)
    for value in reversed(readings):
        backward.add(value)
    assert forward.count == len(readings)
    assert forward.celsius() == pytest.approx(backward.celsius(), abs=1e-9)
    assert forward.celsius() == pytest.approx(reference_mkt(readings), abs=1e-9)
    assert forward.celsius() >= sum(readings) / len(readings)  # type: ignore[operator]


def test_a_year_of_minutes_stays_finite() -> None:
    """A year of 1-minute readings neither underflows nor overflows."""
    accumulator = MktAccumulator()
    for i in range(525_600):
        accumulator.add(5.0 + math.sin(i / 500))
    value = accumulator.celsius()
    assert value is not None and 5.0 < value < 5.3
