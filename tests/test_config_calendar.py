"""The calendar's configuration: [[sites]], calibration certificates and [[reports]] (CONTRACT §1)."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from coldchain.config import load_settings
from coldchain.core.inventory import Site
from tests.test_config import VALID, problems_of, write

CALENDAR = """
[[sites]]
id = "main-pharmacy"
name = "Main pharmacy"
timezone = "Europe/Berlin"
workdays = ["Mon", "Tue", "Wed", "Thu", "Sat"]
review_due = "10:00"

[[reports]]
name = "monthly-qa"
every = "month"
site = "main-pharmacy"
targets = ["log"]
"""


def test_sites_calibration_and_reports_reach_the_core_inventory(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The site's zone, workdays (Monday = 0) and deadline, a sensor's certificate, and a report's default dir."""
    text = (
        VALID.replace(
            'kind = "temperature"',
            'kind = "temperature"\ncalibration_due = "2027-03-01"\ncalibration_certificate = "CERT-2026-0142"',
        )
        + CALENDAR
    )
    settings = load_settings(write(tmp_path, text))
    inventory = settings.frozen_inventory()
    assert inventory.site("main-pharmacy") == Site(
        "main-pharmacy", "Main pharmacy", "Europe/Berlin", frozenset({0, 1, 2, 3, 5}), time(10, 0)
    )
    assert inventory.site_of(inventory.units["fridge-a"]).timezone == "Europe/Berlin"
    sensor = inventory.sensors["t-001"]
    assert (sensor.calibration_due, sensor.calibration_certificate) == (date(2027, 3, 1), "CERT-2026-0142")
    assert settings.reports[0].directory == Path("var/reports/monthly-qa")
    assert settings.rules.calibration_warn_before.days == 30


def test_a_site_without_an_entry_gets_the_defaults(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """UTC, Monday to Friday, and no review deadline (so no review_missed) for a site only units name."""
    site = load_settings(write(tmp_path, VALID)).frozen_inventory().site("main-pharmacy")
    assert (site.timezone, sorted(site.workdays), site.review_due) == ("UTC", [0, 1, 2, 3, 4], None)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('timezone = "Europe/Berlin"', "sites[0].timezone: unknown time zone 'Mars/Base'"),
        ('review_due = "10:00"', "sites[0].review_due: '25:00' is not a time of day"),
        ('workdays = ["Mon", "Tue", "Wed", "Thu", "Sat"]', "sites[0].workdays[0]: Input should be 'Mon'"),
        ('id = "main-pharmacy"\nname', "sites[0] (id 'elsewhere'): no unit is at this site"),
        ('every = "month"', "reports[0].every: "),
        ('targets = ["log"]', "reports[0] (name 'monthly-qa').targets: unknown notify target 'qa-mail'"),
        ('site = "main-pharmacy"\ntargets', "reports[0] (name 'monthly-qa').site: no unit is at site 'annex'"),
    ],
)
def test_calendar_problems_name_their_entry(env: pytest.MonkeyPatch, tmp_path: Path, change: str, problem: str) -> None:
    """A bad zone, time, weekday, period, target or site names the entry and the key."""
    broken = {
        'timezone = "Europe/Berlin"': 'timezone = "Mars/Base"',
        'review_due = "10:00"': 'review_due = "25:00"',
        'workdays = ["Mon", "Tue", "Wed", "Thu", "Sat"]': 'workdays = ["Monday"]',
        'id = "main-pharmacy"\nname': 'id = "elsewhere"\nname',
        'every = "month"': 'every = "quarter"',
        'targets = ["log"]': 'targets = ["qa-mail"]',
        'site = "main-pharmacy"\ntargets': 'site = "annex"\ntargets',
    }[change]
    path = write(tmp_path, VALID + CALENDAR.replace(change, broken))
    problems = problems_of(path)
    assert any(p.startswith(f"{path}: {problem}") for p in problems), problems


def test_two_sites_with_one_id_are_an_error(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A site listed twice is named as a duplicate."""
    path = write(tmp_path, VALID + CALENDAR + '\n[[sites]]\nid = "main-pharmacy"\n')
    assert f"{path}: sites[1] (id 'main-pharmacy'): duplicate site id" in problems_of(path)
