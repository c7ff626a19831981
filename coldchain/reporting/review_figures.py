"""What a unit's daily review covers, read from the store: the figures of ``core/review.py``.

``unit_figures`` reads the temperature readings of the unit's sensors in the window (and one gap
threshold before it, so the first stretch is judged by the reading standing then) and the unit's
alert episodes, and hands them to the pure functions. The HTTP API, the review page and the
recorded review all use it, so what is shown is what is signed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from coldchain.adapters.store.port import Store
from coldchain.config import Settings
from coldchain.core.excursions import TEMPERATURE_KINDS, fold_alerts
from coldchain.core.review import ReviewFigures, excursions_opened, local_date, sensor_figures, window_start
from coldchain.core.times import from_millis, to_millis

_ALERT_LOOKBACK = timedelta(days=31)
EXCURSION_KINDS = (*TEMPERATURE_KINDS, "agitation")
"""The alert kinds a review lists: what happened to the stock's temperature or handling."""


def unit_figures(
    store: Store, settings: Settings, unit_id: str, last_review: datetime | None, now: datetime
) -> ReviewFigures:
    """The review figures of ``unit_id`` as of ``now`` (KeyError for an unknown unit; StoreError when unreadable)."""
    inventory = settings.frozen_inventory()
    unit = inventory.unit(unit_id)
    if unit is None:
        raise KeyError(unit_id)
    site = inventory.site_of(unit)
    now = from_millis(to_millis(now))
    start = window_start(last_review, now)
    gap_ms = int(settings.export.gap_after.total_seconds() * 1000)
    start_ms, end_ms = to_millis(start), to_millis(now)
    sensors = []
    for sensor in inventory.sensors.values():
        if sensor.unit != unit_id or sensor.kind != "temperature":
            continue
        rows = store.read_range(
            "temperature", from_millis(start_ms - gap_ms), from_millis(end_ms + 1), {"sensor": sensor.id}
        )
        readings = [(to_millis(r["time"]), float(r["celsius"])) for r in rows if r.get("celsius") is not None]
        before = [r for r in readings if r[0] < start_ms]
        sensors.append(
            sensor_figures(
                sensor.id,
                readings,
                start_ms,
                end_ms,
                unit.profile.min_celsius,
                unit.profile.max_celsius,
                gap_ms,
                before[-1] if before else None,
            )
        )
    episodes = fold_alerts(
        store.read_range("alert", start - _ALERT_LOOKBACK, now + timedelta(seconds=1), {"unit": unit_id})
    )
    return ReviewFigures(
        unit=unit.id,
        site=unit.site,
        local_date=local_date(now, site.timezone),
        window_from=start,
        window_to=now,
        last_review_at=last_review,
        sensors=tuple(sensors),
        excursions=excursions_opened((e for e in episodes.values() if e.kind in EXCURSION_KINDS), start, now),
    )
