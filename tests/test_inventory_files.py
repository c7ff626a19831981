"""``[inventory]`` CSV files: rows add to the TOML's sites, units and sensors; every problem names file and line."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldchain.config import ConfigError, load_settings
from coldchain.contract.parser import MessageParser
from tests.samples import ONE_FRIDGE

TOML = """
[inventory]
sites = "assets/sites.csv"
units = "assets/units.csv"
sensors = "assets/sensors.csv"
""" + ONE_FRIDGE


def write(tmp_path: Path, sites: str, units: str, sensors: str, toml: str = TOML) -> Path:
    (tmp_path / "assets").mkdir(exist_ok=True)
    (tmp_path / "assets" / "sites.csv").write_text(sites, encoding="utf-8")
    (tmp_path / "assets" / "units.csv").write_text(units, encoding="utf-8")
    (tmp_path / "assets" / "sensors.csv").write_text(sensors, encoding="utf-8")
    config = tmp_path / "coldchain.toml"
    config.write_text(toml, encoding="utf-8")
    return config


SITES = "id,name,timezone,workdays,review_due\nward-3,Ward 3,Europe/Berlin,Mon Tue Wed,10:00\n"
UNITS = (
    "id,site,name,offline_after,overrides.max_celsius\nfridge-x,ward-3,,30m,7.5\nfridge-y,main-pharmacy,Fridge Y,,\n"
)
SENSORS = "id,unit,kind\nt-101,fridge-x,temperature\ns-101,fridge-x,shake\nt-102,fridge-y,temperature\n"


def test_csv_rows_add_to_the_toml_entries_with_defaults_for_empty_cells(tmp_path: Path) -> None:
    """Units and sensors from CSV join the TOML's; empty cells take defaults; overrides columns apply."""
    loaded = load_settings(write(tmp_path, SITES, "\ufeff" + UNITS, SENSORS))  # a spreadsheet's byte order mark
    assert [unit.id for unit in loaded.units] == ["fridge-a", "fridge-x", "fridge-y"]
    assert [sensor.id for sensor in loaded.sensors] == ["t-001", "t-101", "s-101", "t-102"]
    inventory = loaded.frozen_inventory()
    x, y = inventory.units["fridge-x"], inventory.units["fridge-y"]
    assert (x.offline_after, x.profile.max_celsius, x.profile.min_celsius, x.name) == (
        timedelta(minutes=30),
        7.5,
        2.0,
        "",
    )
    assert (y.offline_after, y.profile.max_celsius, y.name) == (timedelta(minutes=15), 8.0, "Fridge Y")
    site = inventory.site("ward-3")
    assert (site.timezone, sorted(site.workdays), str(site.review_due)) == ("Europe/Berlin", [0, 1, 2], "10:00:00")
    assert inventory.sensors["s-101"].kind == "shake"


def test_a_moderately_sized_csv_inventory_loads_and_routes(tmp_path: Path) -> None:
    """5,000 sensors in 1,000 units from CSV: all in the frozen inventory and the parser's subscriptions work."""
    units = "id,site\n" + "".join(f"f-{u:04d},site-{u % 7}\n" for u in range(1000))
    sensors = "id,unit,kind\n" + "".join(f"t-{s:05d},f-{s // 5:04d},temperature\n" for s in range(5000))
    loaded = load_settings(write(tmp_path, "id\n", units, sensors))
    inventory = loaded.frozen_inventory()
    assert (len(inventory.units), len(inventory.sensors)) == (1001, 5001)
    payload = b'{"ts":"2026-12-01T10:00:00Z","celsius":5.0}'
    received = datetime(2026, 12, 1, 10, 0, 1, tzinfo=UTC)
    parsed = MessageParser(loaded).parse("coldchain/sensors/t-04999/temperature", payload, received)
    assert isinstance(parsed, list) and parsed[0].unit == "f-0999"


@pytest.mark.parametrize(
    ("units", "sensors", "expected"),
    [
        # a cell that is not a valid value: the row's line, the entry's id and the key
        (
            "id,site\nfridge-x,ward-3\n",
            "id,unit,kind\nt-101,fridge-x,humidity\n",
            "assets/sensors.csv:2: sensors (id 't-101').kind: Input should be 'temperature' or 'shake'",
        ),
        # a required key left empty
        ("id,site\nfridge-x,\n", "id,unit,kind\n", "assets/units.csv:2: units (id 'fridge-x').site: Field required"),
        # a header naming a key the table does not have
        ("id,site,colour\nfridge-x,ward-3,blue\n", "id,unit,kind\n", "assets/units.csv:1: unknown column 'colour'"),
        # a reference to a unit that exists nowhere (the cross-check), on its own line
        (
            "id,site\nfridge-x,ward-3\n",
            "id,unit,kind\nt-101,fridge-x,temperature\nt-102,fridge-q,temperature\n",
            "assets/sensors.csv:3: sensors (id 't-102').unit: unknown unit 'fridge-q'",
        ),
        # the same id in the TOML and in the CSV file
        (
            "id,site\nfridge-a,ward-3\n",
            "id,unit,kind\n",
            "assets/units.csv:2: units (id 'fridge-a'): duplicate unit id",
        ),
        # the same id twice in the file: the second one is named
        (
            "id,site\nfridge-x,ward-3\n\nfridge-x,ward-3\n",
            "id,unit,kind\n",
            "assets/units.csv:4: units (id 'fridge-x'): duplicate unit id",
        ),
        # more cells than the header names
        (
            "id,site\nfridge-x,ward-3,extra\n",
            "id,unit,kind\n",
            "assets/units.csv:2: 3 cells but the header names 2 columns",
        ),
        # an override that the profile refuses (cross-field check of the unit's profile)
        (
            "id,site,overrides.min_celsius\nfridge-x,ward-3,9\n",
            "id,unit,kind\n",
            "assets/units.csv:2: units (id 'fridge-x').overrides: min_celsius (9.0) must be below max_celsius (8.0)",
        ),
        # a duration that is not one
        (
            "id,site,offline_after\nfridge-x,ward-3,soon\n",
            "id,unit,kind\n",
            "assets/units.csv:2: units (id 'fridge-x').offline_after:",
        ),
    ],
)
def test_problems_name_the_file_and_line(tmp_path: Path, units: str, sensors: str, expected: str) -> None:
    """Each problem of a CSV row is reported with its file, line, table, id and key."""
    sites = "id\nward-3\n"
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, sites, units, sensors))
    assert any(problem.startswith(expected) for problem in raised.value.problems), raised.value.problems


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    """A CSV file that cannot be read is named as the configuration wrote it."""
    config = tmp_path / "coldchain.toml"
    config.write_text('[inventory]\nsensors = "nowhere.csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert raised.value.problems[0].startswith("nowhere.csv: cannot read: No such file or directory")


def test_a_column_wrong_in_every_row_lists_a_bounded_number_of_problems(tmp_path: Path) -> None:
    """10,000 bad rows give 50 problems and a count of the rest, not 10,000 lines."""
    sensors = "id,unit,kind\n" + "".join(f"t-{s},fridge-a,thermo\n" for s in range(10_000))
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, "id\n", "id,site\n", sensors))
    assert len(raised.value.problems) == 51
    assert raised.value.problems[-1] == "assets/sensors.csv: … and 9950 more problems"


CELL = st.text(alphabet=string.ascii_letters + string.digits + ' -_./:+#é"', max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(CELL, CELL, CELL), min_size=1, max_size=6))
def test_any_cells_load_or_every_problem_names_a_line_of_the_file(
    tmp_path: Path, rows: list[tuple[str, str, str]]
) -> None:
    """Whatever the cells hold, the inventory loads or each problem names a CSV file and line (or the header)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "unit", "kind"])
    writer.writerows(rows)
    try:
        loaded = load_settings(write(tmp_path, "id\n", "id,site\nfridge-x,ward-3\n", buffer.getvalue()))
    except ConfigError as exc:
        lines = {str(n) for n in range(1, len(rows) + 2)}
        for problem in exc.problems:
            head = problem.split(": ", 1)[0]
            file, _, line = head.partition(":")
            assert file == "assets/sensors.csv" and (line in lines or line == ""), problem
    else:
        assert len(loaded.sensors) == 1 + sum(1 for row in rows if "".join(row).strip())  # blank rows skipped
