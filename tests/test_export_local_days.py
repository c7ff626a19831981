"""Exports over DST changes: daily rows per site-local day with zone, offset and hours; calibration per day.

Two sites in one export, each judged in its own zone: main-pharmacy in Europe/Berlin (springs forward
on 2026-03-29) and ny-clinic in America/New_York (already on EDT since 2026-03-08). Every sensor reads
5.0 °C each minute from 2026-03-26 to 2026-04-02 UTC, in a real SQLite store; t-001's certificate
covers up to the end of 2026-03-29 (Berlin), t-002 has none.
"""

from __future__ import annotations

import csv
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.cli.main import main
from coldchain.config import Settings
from coldchain.core.records import TemperatureReading
from coldchain.reporting.export import run_export
from coldchain.reporting.request import ExportRequest
from coldchain.reporting.tables import csv_value

BERLIN_28 = datetime(2026, 3, 27, 23, tzinfo=UTC)
"""2026-03-28 00:00 CET."""
BERLIN_31 = datetime(2026, 3, 30, 22, tzinfo=UTC)
"""2026-03-31 00:00 CEST."""


def settings(tmp_path: Path) -> Settings:
    units: list[dict[str, Any]] = [
        {"id": "fridge-a", "site": "main-pharmacy", "name": "Infusion fridge A"},
        {"id": "fridge-b", "site": "ny-clinic", "name": "Clinic fridge"},
    ]
    sensors: list[dict[str, Any]] = [
        {
            "id": "t-001",
            "unit": "fridge-a",
            "kind": "temperature",
            "calibration_due": "2026-03-29",
            "calibration_certificate": "CERT-2025-0099",
        },
        {"id": "t-002", "unit": "fridge-b", "kind": "temperature"},
    ]
    return Settings(
        store={"url": f"sqlite:///{tmp_path / 'store.db'}"},
        sites=[
            {"id": "main-pharmacy", "timezone": "Europe/Berlin"},
            {"id": "ny-clinic", "timezone": "America/New_York"},
        ],
        units=units,
        sensors=sensors,
        rules={"state_path": str(tmp_path / "rules.sqlite")},
    )


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    config = settings(tmp_path)
    seed(tmp_path)
    store = SqliteStore(tmp_path / "store.db")
    out = tmp_path / "out"
    request = ExportRequest(BERLIN_28, BERLIN_31, out, formats=("csv", "json", "pdf"))
    run_export(store, config, request, datetime(2026, 5, 1, tzinfo=UTC))
    store.close()
    return out


def seed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    store.prepare()
    first = datetime(2026, 3, 26, tzinfo=UTC)
    records = [
        TemperatureReading(sensor, unit, site, first + timedelta(minutes=m), 5.0)
        for m in range(7 * 1440)
        for sensor, unit, site in (("t-001", "fridge-a", "main-pharmacy"), ("t-002", "fridge-b", "ny-clinic"))
    ]
    for i in range(0, len(records), 5000):
        assert not store.write(records[i : i + 5000]).refused
    store.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows with their real values (a "+01:00" cell is written '+01:00, spreadsheet-safe)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [{key: csv_value(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def test_daily_rows_are_site_local_days(exported: Path) -> None:
    """Each site's rows are its own local days: date, zone, offset (with the change), hours and minutes agree."""
    columns = ("sensor", "date", "timezone", "utc_offset", "hours", "readings", "minutes_in_range", "minutes_unknown")
    rows = [tuple(r[c] for c in columns) for r in read_csv(exported / "daily.csv")]
    assert rows == [
        ("t-001", "2026-03-28", "Europe/Berlin", "+01:00", "24", "1440", "1440.0", "0.0"),
        ("t-001", "2026-03-29", "Europe/Berlin", "+01:00→+02:00", "23", "1380", "1380.0", "0.0"),
        ("t-001", "2026-03-30", "Europe/Berlin", "+02:00", "24", "1440", "1440.0", "0.0"),
        # New York's days overlapping the window, only their part inside it (the window is Berlin's)
        ("t-002", "2026-03-27", "America/New_York", "-04:00", "24", "300", "300.0", "0.0"),  # from 19:00 EDT
        ("t-002", "2026-03-28", "America/New_York", "-04:00", "24", "1440", "1440.0", "0.0"),
        ("t-002", "2026-03-29", "America/New_York", "-04:00", "24", "1440", "1440.0", "0.0"),
        ("t-002", "2026-03-30", "America/New_York", "-04:00", "24", "1080", "1080.0", "0.0"),  # to 18:00 EDT
    ]
    change_day = json.loads((exported / "daily.json").read_text())[1]
    assert (change_day["utc_offset"], change_day["hours"], change_day["in_calibration"]) == ("+01:00→+02:00", 23, "yes")
    assert (exported / "daily.csv").read_text().count("'+01:00→+02:00") == 1  # spreadsheet-safe in the CSV


def test_calibration_per_day_and_per_sensor(exported: Path) -> None:
    """daily.csv says per sensor-day whether its certificate covered it; calibration.csv lists the certificates."""
    days = [(r["sensor"], r["date"], r["in_calibration"]) for r in read_csv(exported / "daily.csv")]
    assert days[:3] == [("t-001", "2026-03-28", "yes"), ("t-001", "2026-03-29", "yes"), ("t-001", "2026-03-30", "no")]
    assert {flag for sensor, _, flag in days if sensor == "t-002"} == {""}
    assert read_csv(exported / "calibration.csv") == [
        {
            "site": "main-pharmacy",
            "unit": "fridge-a",
            "sensor": "t-001",
            "kind": "temperature",
            "certificate": "CERT-2025-0099",
            "calibration_due": "2026-03-29",
            "timezone": "Europe/Berlin",
            "out_of_calibration_from": "2026-03-29T22:00:00Z",
            "days_in_calibration": "2",
            "days_out_of_calibration": "1",
            "status": "OUT OF CALIBRATION on 1 day(s)",
        },
        {
            "site": "ny-clinic",
            "unit": "fridge-b",
            "sensor": "t-002",
            "kind": "temperature",
            "certificate": "",
            "calibration_due": "",
            "timezone": "America/New_York",
            "out_of_calibration_from": "",
            "days_in_calibration": "",
            "days_out_of_calibration": "",
            "status": "not tracked (no calibration_due configured)",
        },
    ]


def test_report_says_dst_days_and_out_of_calibration(exported: Path) -> None:
    """report.pdf names each unit's zone, the 23-hour day, the certificate and the day out of calibration."""
    text = subprocess.run(
        ["pdftotext", str(exported / "report.pdf"), "-"], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    words = " ".join(text.split())
    assert "Date (local)" in words
    assert "local to main-pharmacy, Europe/Berlin" in words and "local to ny-clinic, America/New_York" in words
    assert "2026-03-29 23-hour day (DST)" in words
    assert words.count("OUT OF CALIBRATION") >= 2  # the guide, and t-001's row for 2026-03-30
    assert "CERT-2025-0099 covers up to the end of 2026-03-29" in words


CONFIG = """
[store]
url = "sqlite:///{db}"
[rules]
state_path = "{state}"
[[sites]]
id = "main-pharmacy"
timezone = "Europe/Berlin"
[[sites]]
id = "ny-clinic"
timezone = "America/New_York"
[[units]]
id = "fridge-a"
site = "main-pharmacy"
[[units]]
id = "fridge-b"
site = "ny-clinic"
[[sensors]]
id = "t-001"
unit = "fridge-a"
kind = "temperature"
[[sensors]]
id = "t-002"
unit = "fridge-b"
kind = "temperature"
"""


@pytest.mark.parametrize(
    ("selection", "rows"),
    [
        (["--site", "main-pharmacy"], [("t-001", "2026-03-28", "1440"), ("t-001", "2026-03-29", "1380")]),
        (["--unit", "fridge-b"], [("t-002", "2026-03-28", "1440"), ("t-002", "2026-03-29", "1440")]),
        # two zones: the dates are UTC midnights, so each site's first and last local days are partial
        ([], None),
    ],
)
def test_cli_dates_are_the_selections_local_days(tmp_path: Path, selection: list[str], rows: object) -> None:
    """--from/--to dates mean the selection's local midnights (its sites' zone), so each day is whole."""
    seed(tmp_path)
    config = tmp_path / "coldchain.toml"
    config.write_text(CONFIG.format(db=tmp_path / "store.db", state=tmp_path / "rules.sqlite"))
    out = tmp_path / "cli"
    args = ["export", "--config", str(config), "--from", "2026-03-28", "--to", "2026-03-29", "--out", str(out)]
    assert main([*args, "--format", "csv", *selection]) == 0
    daily = read_csv(out / "daily.csv")
    if rows is not None:
        assert [(r["sensor"], r["date"], r["minutes_in_range"].split(".")[0]) for r in daily] == rows
    else:
        berlin = [(r["date"], r["minutes_in_range"]) for r in daily if r["sensor"] == "t-001"]
        assert berlin == [("2026-03-28", "1380.0"), ("2026-03-29", "1380.0"), ("2026-03-30", "120.0")]
