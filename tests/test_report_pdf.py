"""``report_pdf.write_report`` on constructed ``ReportData``: what a person reading report.pdf sees.

The PDF's text is read back with ``pdftotext -layout`` (poppler-utils), one string per page.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

from coldchain.config import Sensor
from coldchain.core.times import to_millis
from coldchain.reporting.report_pdf import Envelope, ReportData, UnitSection, chart_range, write_report

DAY = datetime(2026, 12, 1, tzinfo=UTC)
DATE_AND_TIME = re.compile(r"\d{4}-\d{2}-\d{2}\s+\d")
WHOLE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}\s\d{2}:\d{2}:\d{2}Z")


def iso(minutes: float) -> str:
    """The export's RFC 3339 text (milliseconds included) of ``minutes`` after DAY."""
    return (DAY + timedelta(minutes=minutes)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def section(**more: object) -> UnitSection:
    fields: dict[str, object] = {
        "unit": "fridge-a",
        "name": "Infusion fridge A",
        "site": "main-pharmacy",
        "profile": "natalizumab",
        "low": 2.0,
        "high": 8.0,
        "temperature_sensors": ["t-001"],
        "other_sensors": ["s-001"],
        "summary": [("readings", "1,000")],
    }
    return UnitSection(**{**fields, **more})  # type: ignore[arg-type]


def report(units: list[UnitSection], start: datetime = DAY, days: int = 1) -> ReportData:
    start_ms, end_ms = to_millis(start), to_millis(start + timedelta(days=days))
    envelope = Envelope(start_ms, end_ms)
    for minute in range(0, days * 1440, 5):
        envelope.add("t-001", start_ms + minute * 60_000, 5.0)
    return ReportData(
        title="Cold-chain temperature record",
        period=f"{iso(0)} to {iso(days * 1440)}",
        exported_at=iso(days * 1440 + 0.5),
        version="0.1.0",
        selection="every unit",
        gap_after="10m",
        audit="no operator action recorded up to the end of the period.",
        signed=False,
        start_ms=start_ms,
        end_ms=end_ms,
        envelope=envelope,
        units=units,
        overview=[["Unit", "Readings"], ["Infusion fridge A", "1,000"]],
    )


def pages(tmp_path: Path, data: ReportData, layout: bool = True) -> list[str]:
    """The text of each page of the report written from ``data`` (as laid out, or in reading order)."""
    path = tmp_path / "report.pdf"
    write_report(path, data)
    done = subprocess.run(
        ["pdftotext", *(["-layout"] if layout else []), str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.split("\f")[:-1]


def excursion(minute: float, ack: str = "not acknowledged") -> list[str]:
    return ["temperature high", "t-001", iso(minute), iso(minute + 39), "39", "19.72", "34", "233.8", "10.12", ack,
            "2 sent (email:oncall)"]  # fmt: skip


def bag(minute: float) -> list[str]:
    return ["B-1001", "L2026-11", iso(minute), "a.smith", iso(minute + 480), iso(minute + 40), iso(minute + 140),
            "yes", "infusion completed within the limit"]  # fmt: skip


def test_times_show_whole_seconds_and_never_wrap(tmp_path: Path) -> None:
    """Every time in the PDF reads 'YYYY-MM-DD HH:MM:SSZ' on one line, in tables and in acknowledgements."""
    ack = f"j.doe at {iso(780.4)}: quarantined — moved stock to fridge B"
    unit = section(excursions=[excursion(774.5124, ack)], bags=[bag(758.5)])
    text = "\n".join(pages(tmp_path, report([unit])))
    for clock in ["12:54:30", "13:33:30", "13:00:24", "12:38:30", "20:38:30", "13:18:30", "14:58:30"]:
        assert f"2026-12-01 {clock}Z" in text
    assert not re.search(r"\d{2}:\d{2}\.\d", text)  # no fractions of a second
    assert "T12:" not in text and "T13:" not in text
    starts = [m.start() for m in DATE_AND_TIME.finditer(text)]
    assert starts and all(WHOLE_TIME.match(text, i) for i in starts), text


def test_time_column_headers_name_utc(tmp_path: Path) -> None:
    """Every column of times says its zone, '(UTC)', the bag table's infusion columns included."""
    unit = section(excursions=[excursion(600)], bags=[bag(480)])
    words = " ".join("\n".join(pages(tmp_path, report([unit]), layout=False)).split())
    for header in ["Start (UTC)", "End (UTC)", "Diluted (UTC)", "Deadline (UTC)", "Infusion started (UTC)",
                   "Ended (UTC)"]:  # fmt: skip
        assert header in words


def daily(sensor: str, low: str, high: str, mean: str) -> list[str]:
    return ["2026-12-01", sensor, "500", low, high, mean, "497.72", "2", "0.28", "1", "out of range"]


def test_readings_carry_their_unit(tmp_path: Path) -> None:
    """Min, max, mean and peak say °C for a temperature sensor and g for a shake sensor sharing the table."""
    agitation = ["agitation", "s-001", iso(60), iso(66), "6", "1.3", "2", "—", "—", "not acknowledged", "1 sent"]
    unit = section(
        excursions=[excursion(600), agitation],
        daily=[daily("s-001", "0.01", "1.3", "0.02"), daily("t-001", "3.79", "19.72", "6")],
    )
    lines = "\n".join(pages(tmp_path, report([unit]))).splitlines()
    rows = {" ".join(line.split()[:2]): " ".join(line.split()) for line in lines}
    assert "3.79 °C 19.72 °C 6 °C" in rows["2026-12-01 t-001"]
    assert "0.01 g 1.3 g 0.02 g" in rows["2026-12-01 s-001"]
    assert "19.72 °C" in rows["temperature t-001"] and "1.3 g" in rows["agitation s-001"]


def test_every_sensor_kind_has_a_unit_in_the_report() -> None:
    """The report knows the unit of each kind of sensor the configuration allows (temperature °C, shake g)."""
    kinds = set(get_args(Sensor.model_fields["kind"].annotation))
    assert kinds == {"temperature", "shake"}  # a new kind needs its unit in UnitSection.value_units


def daily_rows(count: int) -> list[list[str]]:
    return [[(DAY + timedelta(days=d)).strftime("%Y-%m-%d"), "t-001", "288", "3.8", "6.2", "5", "1440", "0", "0",
             "0", "in range"] for d in range(count)]  # fmt: skip


DAILY_ROW = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s+t-001\s")


def test_a_small_table_stays_on_the_page_that_has_room(tmp_path: Path) -> None:
    """A unit's chart, excursions, bag and two-day summary share one page; the summary is not stranded."""
    unit = section(excursions=[excursion(600), excursion(900)], bags=[bag(480)], daily=daily_rows(2))
    text = pages(tmp_path, report([unit], days=2))
    assert len(text) == 2 and "Daily summary" in text[1], [len(p) for p in text]


def test_no_page_holds_a_stray_few_rows_of_a_table(tmp_path: Path) -> None:
    """However long the daily table, a page holds none or at least five of its rows, never its heading alone."""
    for count in range(6, 140, 9):
        unit = section(excursions=[excursion(600), excursion(900), excursion(1200)], daily=daily_rows(count))
        text = pages(tmp_path, report([unit], days=count))
        per_page = [sum(1 for line in page.splitlines() if DAILY_ROW.match(line)) for page in text]
        assert sum(per_page) == count
        assert all(n == 0 or n >= 5 for n in per_page), (count, per_page)
        assert all(n > 0 for page, n in zip(text, per_page, strict=True) if "Daily summary" in page), (count, per_page)


def test_the_chart_fits_the_readings_within_the_period() -> None:
    """Half an hour of readings in a one-day export gets an axis of about that half hour, inside the period."""
    start, end = to_millis(DAY), to_millis(DAY + timedelta(days=1))
    first, last = (
        to_millis(DAY + timedelta(hours=12, minutes=10, seconds=3)),
        to_millis(DAY + timedelta(hours=12, minutes=40)),
    )
    envelope = Envelope(start, end)
    for t in range(first, last, 30_000):
        envelope.add("t-001", t, 5.0)
    low, high = chart_range(envelope, ["t-001"], start, end)
    assert start <= low <= first - 5 * 60_000 and last + 5 * 60_000 <= high <= end
    assert high - low <= 50 * 60_000 and low % 60_000 == 0 and high % 60_000 == 0
    assert chart_range(envelope, ["t-002"], start, end) == (start, end)  # no readings: the whole period
    envelope.add("t-001", start + 60_000, 5.0)  # readings near the period's start: clamped to it
    assert chart_range(envelope, ["t-001"], start, end)[0] == start
    envelope.add("t-001", end - 60_000, 5.0)  # readings across the period: all of it
    assert chart_range(envelope, ["t-001"], start, end) == (start, end)


def test_a_narrowed_chart_says_what_it_shows(tmp_path: Path) -> None:
    """Below a chart narrowed to the readings, the report names the stretch shown and minute ticks label it."""
    data = report([section()])
    data.envelope = Envelope(data.start_ms, data.end_ms)
    for minute in range(730, 760):
        data.envelope.add("t-001", data.start_ms + minute * 60_000, 5.0)
    words = " ".join(pages(tmp_path, data)[1].split())
    assert "The chart shows 2026-12-01 12:04:00Z to 2026-12-01 12:47:00Z" in words
    assert "12:10 12:15 12:20" in words and "2026-12-01 (UTC)" in words
