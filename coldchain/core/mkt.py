"""Mean kinetic temperature (USP <1079.2>), pure.

    MKT = (ΔH / R) / -ln( (1/n) · Σ exp(-ΔH / (R · T_i)) )        T_i in kelvin

with ΔH = 83.144 kJ/mol (the activation energy USP prescribes) and R = 8.3144598 J/(mol·K), over
the n readings of a period (equally spaced readings are assumed, as the formula does). The result
is returned in °C. The sum is scaled by the warmest term seen (a running log-sum-exp), so a
long period neither underflows nor needs more than constant memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

DELTA_H = 83_144.0
"""Activation energy, J/mol (USP <1079.2>)."""
R = 8.3144598
"""Universal gas constant, J/(mol·K)."""
KELVIN = 273.15
"""0 °C in kelvin."""
_RATIO = DELTA_H / R


class MktAccumulator:
    """Streaming MKT in constant memory: ``add`` each reading (°C), then ``celsius()``.

    Keeps the largest exponent seen and the sum of every term scaled by it (a running log-sum-exp).
    """

    __slots__ = ("_count", "_scaled", "_top")

    def __init__(self) -> None:
        self._count = 0
        self._top = -math.inf
        self._scaled = 0.0

    def add(self, celsius: float) -> None:
        """One reading in °C."""
        x = -_RATIO / (celsius + KELVIN)
        if x > self._top:
            self._scaled = self._scaled * math.exp(self._top - x) + 1.0
            self._top = x
        else:
            self._scaled += math.exp(x - self._top)
        self._count += 1

    @property
    def count(self) -> int:
        return self._count

    def celsius(self) -> float | None:
        """The MKT of the readings so far in °C, or None without readings."""
        if not self._count:
            return None
        return -_RATIO / (self._top + math.log(self._scaled / self._count)) - KELVIN


def mkt_celsius(readings: Iterable[float]) -> float | None:
    """MKT in °C of temperature readings in °C (None for no readings)."""
    accumulator = MktAccumulator()
    for celsius in readings:
        accumulator.add(celsius)
    return accumulator.celsius()
