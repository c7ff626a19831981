"""check-config and retention: a real InfluxDB 1.6 whose retention policy is shorter than store.keep_for warns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from coldchain.adapters.store.retention import go_duration
from coldchain.cli.main import main
from tests.samples import ONE_FRIDGE
from tests.servers import Influxd, free_ports


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[str, list[str]]:
    """check-config's retention line and its WARNING lines; it always exits 0."""
    path = tmp_path / "coldchain.toml"
    path.write_text(text + ONE_FRIDGE)
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    (line,) = [line.strip() for line in out.splitlines() if line.strip().startswith("retention")]
    return line, [w for w in err.splitlines() if w.startswith("WARNING store.keep_for")]


@pytest.fixture
def database(influxd: Influxd) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    influxd.query(f'CREATE DATABASE "{name}"')
    yield name
    influxd.query(f'DROP DATABASE "{name}"')


# (retention policies created: (name, duration, default), [influx] retention_policy, store.keep_for,
#  warned, words in the retention line) — why
CASES = [
    ([("month", "30d", True)], "", None, True, "'month'"),  # the default policy keeps 30 days: too short
    ([("three_years", "1095d", True)], "", None, False, "for 1095d"),  # exactly three years: enough
    ([], "", None, False, "forever"),  # the database's own autogen keeps everything
    ([("month", "30d", False)], "month", None, True, "'month'"),  # the configured policy is the one judged
    ([("month", "30d", True)], "autogen", None, False, "forever"),  # ... even when another is the default
    ([("year", "365d", True)], "", '"365d"', False, "for 365d"),  # a site that must keep one year only
]


@pytest.mark.integration
@pytest.mark.parametrize(("policies", "policy", "keep_for", "warned", "words"), CASES)
def test_retention_against_influxdb(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    influxd: Influxd,
    database: str,
    policies: list[tuple[str, str, bool]],
    policy: str,
    keep_for: str | None,
    warned: bool,
    words: str,
) -> None:
    """check-config reads the policy coldchain writes to and warns only when it keeps less than keep_for."""
    for name, duration, default in policies:
        influxd.query(
            f'CREATE RETENTION POLICY "{name}" ON "{database}" DURATION {duration} REPLICATION 1'
            + (" DEFAULT" if default else "")
        )
    text = f'[influx]\nurl = "{influxd.url}"\ndatabase = "{database}"\nretention_policy = "{policy}"\n'
    if keep_for is not None:
        text += f"[store]\nkeep_for = {keep_for}\n"
    line, warnings = check(tmp_path, capsys, text)
    assert words in line
    if warned:
        (warning,) = warnings
        assert warning.startswith("WARNING store.keep_for: InfluxDB's retention policy 'month'")
        assert "keeps records for only 30d, less than 1095d" in warning
    else:
        assert warnings == []


def test_unreachable_influxdb_says_it_could_not_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Offline, check-config still passes and says it could not check the retention (no warning)."""
    (port,) = free_ports()
    line, warnings = check(tmp_path, capsys, f'[influx]\nurl = "http://127.0.0.1:{port}"\n')
    assert line.startswith("retention  could not check InfluxDB's retention") and "1095d" in line
    assert warnings == []


def test_sqlite_keeps_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With SQLite nothing is deleted: no check, no warning."""
    line, warnings = check(tmp_path, capsys, f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n')
    assert line.startswith("retention  SQLite deletes nothing") and warnings == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),  # InfluxDB's "forever"
        ("720h0m0s", timedelta(days=30)),
        ("26280h0m0s", timedelta(days=1095)),
        ("1h30m0s", timedelta(hours=1, minutes=30)),
    ],
)
def test_go_durations(text: str, expected: timedelta) -> None:
    """InfluxDB's duration column parses exactly."""
    assert go_duration(text) == expected
