"""``coldchain export`` and ``coldchain audit verify`` against a real influxd seeded with a known scenario.

The scenario (UTC), written through ``InfluxStore.write``:

- fridge-a's t-001 reads every minute on 2025-03-10 and 11: 5.0 °C, except 10:00-10:19 at 9.0 and
  10:20-10:29 at 10.0 on the 10th (an excursion), and nothing from 03:00 to 03:59 on the 11th (a gap);
  its shake sensor s-001 reads 0.02 g every minute; fridge-b's t-002 reads 6.0 (filtered out by --unit);
- the temperature_high alert: opened at 10:15 (started 10:00), acknowledged by j.doe at 10:20
  (quarantined), resolved at 10:35; one notification sent by e-mail, one webhook attempt failed;
- bag B-1 diluted at 08:00 and infused at 12:00 (within 8 h); B-2 diluted at 09:00, infused at 18:00 (late);
- three audit events (config_loaded, bag_event, acknowledged) chained with ``next_event``.
"""

from __future__ import annotations

import atexit
import csv
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coldchain.adapters.store.influx import InfluxStore
from coldchain.config import InfluxConfig, Settings
from coldchain.core.alert import Alert, alert_id
from coldchain.core.audit_chain import next_event
from coldchain.core.records import AuditEvent, BagEvent, NotificationAttempt, ShakeReading, TemperatureReading
from coldchain.core.signature import Signer
from coldchain.core.signoff import Acknowledgement, acknowledge
from coldchain.reporting.export import run_export
from coldchain.reporting.manifest import canonical_manifest, signature
from coldchain.reporting.request import ExportError, ExportRequest
from coldchain.reporting.signing import ManifestSigner, fingerprint

pytestmark = pytest.mark.integration

DAY1 = datetime(2025, 3, 10, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
KEY = "an-inspectors-signing-key-0123456789"
UNITS = [
    {"id": "fridge-a", "site": "main-pharmacy", "name": "Infusion fridge A"},
    {"id": "fridge-b", "site": "main-pharmacy", "name": "Infusion fridge B"},
]
SENSORS = [
    {"id": "t-001", "unit": "fridge-a", "kind": "temperature"},
    {"id": "s-001", "unit": "fridge-a", "kind": "shake"},
    {"id": "t-002", "unit": "fridge-b", "kind": "temperature"},
]
EXCURSION_START = DAY1 + timedelta(hours=10)
EXCURSION_END = DAY1 + timedelta(hours=10, minutes=35)
ACK_AT = DAY1 + timedelta(hours=10, minutes=20)
JANE = Signer("j.doe", "Jane Doe, PharmD")


def t001(minute: int) -> float | None:
    """The scenario's t-001 reading at ``minute`` after DAY1 (None: no reading)."""
    if 600 <= minute < 620:
        return 9.0
    if 620 <= minute < 630:
        return 10.0
    if 1440 + 180 <= minute < 1440 + 240:
        return None
    return 5.0


def scenario_records() -> list[Any]:
    records: list[Any] = []
    for minute in range(2 * 1440):
        ts = DAY1 + timedelta(minutes=minute)
        value = t001(minute)
        if value is not None:
            records.append(TemperatureReading("t-001", "fridge-a", "main-pharmacy", ts, value))
        records.append(ShakeReading("s-001", "fridge-a", "main-pharmacy", ts, 0.02))
        records.append(TemperatureReading("t-002", "fridge-b", "main-pharmacy", ts, 6.0))
    ident = alert_id("temperature_high", "t-001", EXCURSION_START)
    opened = Alert(
        ident,
        "temperature_high",
        "t-001",
        "open",
        "critical",
        "main-pharmacy",
        "fridge-a",
        "t-001",
        None,
        EXCURSION_START,
        EXCURSION_START + timedelta(minutes=15),
        None,
        9.0,
        "Infusion fridge A above 8.0 °C for 15 min",
    )
    quarantine = Acknowledgement(opened.id, "j.doe", "moved stock to fridge B", "quarantined", JANE)
    acked = dataclasses.replace(
        acknowledge(opened, quarantine, ACK_AT),
        updated_at=ACK_AT,
    )
    resolved = dataclasses.replace(
        acked, state="resolved", updated_at=EXCURSION_END, resolved_at=EXCURSION_END, value=10.0
    )
    records += [opened, acked, resolved]
    for seconds, target, channel, outcome, error in [
        (61, "pharmacy-hook", "webhook", "failed", "HTTP 502"),
        (62, "oncall", "email", "sent", None),
    ]:
        records.append(
            NotificationAttempt(
                ident,
                "temperature_high",
                "critical",
                "main-pharmacy",
                "fridge-a",
                target,
                channel,
                "page",
                1,
                outcome,
                error,
                1,
                EXCURSION_START + timedelta(minutes=15, seconds=seconds),  # type: ignore[arg-type]
            )
        )
    for bag, event, hours, by in [
        ("B-1", "diluted", 8, "a.smith"),
        ("B-1", "infusion_started", 12, "j.doe"),
        ("B-1", "infusion_completed", 14, "j.doe"),
        ("B-2", "diluted", 9, "a.smith"),
        ("B-2", "infusion_started", 18, "j.doe"),
    ]:
        unit = "fridge-a" if event == "diluted" else None
        site = "main-pharmacy" if unit else None
        records.append(BagEvent(bag, event, DAY1 + timedelta(hours=hours), unit, site, "natalizumab", "L1", by))  # type: ignore[arg-type]
    records += audit_chain()
    return records


AUDIT_KEY = b"the-pharmacys-audit-key-0123456789"


def audit_chain(key: bytes | None = AUDIT_KEY) -> list[AuditEvent]:
    first = next_event(
        None, DAY1 + timedelta(hours=7), "coldchain", "config_loaded", "/etc/coldchain.toml", {"units": 2}, key
    )
    second = next_event(first, DAY1 + timedelta(hours=8), "a.smith", "bag_event", "B-1", {"event": "diluted"}, key)
    ident = alert_id("temperature_high", "t-001", EXCURSION_START)
    signature = {
        "id": f"{ident}-s1",
        "signed_by": "j.doe",
        "full_name": "Jane Doe, PharmD",
        "signed_at": "2025-03-10T10:20:00Z",
        "meaning": "disposition: quarantined",
        "supersedes": None,
    }
    details = {"note": "moved stock to fridge B", "disposition": "quarantined", "kind": "temperature_high"}
    details |= {"unit": "fridge-a", "site": "main-pharmacy", "subject": "t-001", "signature": signature}
    third = next_event(second, ACK_AT, "j.doe", "acknowledged", ident, details, key)
    return [first, second, third]


@pytest.fixture
def seeded(influx_config: InfluxConfig) -> Iterator[InfluxStore]:
    store = InfluxStore(influx_config)
    store.prepare()
    records = scenario_records()
    for i in range(0, len(records), 5000):
        assert not store.write(records[i : i + 5000]).refused
    yield store
    store.close()


STATE = Path(tempfile.mkdtemp(prefix="coldchain-export-state-"))
"""Where the exports' signing key is created once (removed when the tests end)."""
atexit.register(shutil.rmtree, STATE, True)


def settings_for(config: InfluxConfig, **export: Any) -> Settings:
    rules = {"state_path": str(STATE / "rules.sqlite")}
    return Settings(influx=config, units=UNITS, sensors=SENSORS, export=export, rules=rules)  # type: ignore[arg-type]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def formula_mkt(celsius: list[float]) -> float:
    """USP <1079.2>: (ΔH/R) / -ln(mean of exp(-ΔH/(R·T))) in kelvin, back to °C."""
    ratio = 83_144 / 8.3144598
    mean = sum(math.exp(-ratio / (c + 273.15)) for c in celsius) / len(celsius)
    return ratio / -math.log(mean) - 273.15


def run(tmp_path: Path, store: InfluxStore, settings: Settings, name: str = "out", **options: Any) -> Path:
    out = tmp_path / name
    request = ExportRequest(DAY1, DAY1 + timedelta(days=2), out, formats=("csv", "json", "pdf"), **options)
    run_export(store, settings, request, NOW)
    return out


def test_export_writes_the_exact_rows(tmp_path: Path, seeded: InfluxStore, influx_config: InfluxConfig) -> None:
    """Readings, daily rows, gaps, the excursion (MKT from the formula), bags and audit are exactly the scenario's."""
    out = run(tmp_path, seeded, settings_for(influx_config), unit="fridge-a")

    readings = read_csv(out / "readings.csv")
    assert len(readings) == (2880 - 60) + 2880  # t-001 without its gap, s-001; fridge-b's t-002 left out
    assert readings[0] == {
        "time": "2025-03-10T00:00:00Z",
        "site": "main-pharmacy",
        "unit": "fridge-a",
        "sensor": "s-001",
        "kind": "shake",
        "value": "0.02",
    }
    assert {r["sensor"] for r in readings} == {"t-001", "s-001"}
    assert [r["time"] for r in readings] == sorted(r["time"] for r in readings)

    daily = {(r["sensor"], r["date"]): r for r in read_csv(out / "daily.csv")}
    assert set(daily) == {(s, d) for s in ("t-001", "s-001") for d in ("2025-03-10", "2025-03-11")}
    columns = ["readings", "readings_out_of_range", "min", "max", "mean", "minutes_in_range",
               "minutes_out_of_range", "minutes_unknown", "gaps", "status"]  # fmt: skip
    assert [daily["t-001", "2025-03-10"][c] for c in columns] == [
        "1440", "30", "5.0", "10.0", str(round((1410 * 5 + 20 * 9 + 10 * 10) / 1440, 3)),
        "1410.0", "30.0", "0.0", "0", "out of range",
    ]  # fmt: skip
    # the 60 missing readings leave 61 minutes (02:59 to 04:00) unknown, never in range
    assert [daily["t-001", "2025-03-11"][c] for c in columns] == [
        "1380", "0", "5.0", "5.0", "5.0", "1379.0", "0.0", "61.0", "1", "incomplete data",
    ]  # fmt: skip
    assert [daily["s-001", "2025-03-10"][c] for c in columns] == [
        "1440", "0", "0.02", "0.02", "0.02", "1440.0", "0.0", "0.0", "0", "in range",
    ]  # fmt: skip
    assert read_csv(out / "gaps.csv") == [
        {
            "site": "main-pharmacy",
            "unit": "fridge-a",
            "sensor": "t-001",
            "kind": "temperature",
            "start": "2025-03-11T02:59:00Z",
            "end": "2025-03-11T04:00:00Z",
            "minutes": "61.0",
            "status": "unknown",
        }
    ]

    (excursion,) = read_csv(out / "excursions.csv")
    window = [t001(m) for m in range(0, 635)]  # the 24 h ending at 10:35 hold the readings since midnight
    expected_mkt = formula_mkt([v for v in window if v is not None])
    assert float(excursion.pop("mkt_celsius")) == pytest.approx(expected_mkt, abs=0.0006)
    assert excursion == {
        "id": alert_id("temperature_high", "t-001", EXCURSION_START),
        "kind": "temperature_high",
        "severity": "critical",
        "site": "main-pharmacy",
        "unit": "fridge-a",
        "sensor": "t-001",
        "subject": "t-001",
        "started_at": "2025-03-10T10:00:00Z",
        "ended_at": "2025-03-10T10:35:00Z",
        "state": "resolved",
        "duration_minutes": "35.0",
        "peak": "10.0",
        "limit": "8.0",
        "minutes_beyond_limit": "30.0",
        "degree_minutes": "40.0",  # 20 min at 1 °C over + 10 min at 2 °C over
        "minutes_unknown": "0.0",
        "mkt_window_start": "2025-03-09T10:35:00Z",
        "mkt_window_end": "2025-03-10T10:35:00Z",
        "mkt_readings": "635",
        "acknowledged_by": "j.doe",
        "acknowledged_at": "2025-03-10T10:20:00Z",
        "note": "moved stock to fridge B",
        "disposition": "quarantined",
        "notifications_sent": "1",
        "notifications": "2025-03-10T10:16:01Z webhook:pharmacy-hook page tier 1 attempt 1: failed (HTTP 502) | "
        "2025-03-10T10:16:02Z email:oncall page tier 1 attempt 1: sent",
        "message": "Infusion fridge A above 8.0 °C for 15 min",
    }

    bags = {r["bag"]: r for r in read_csv(out / "bags.csv")}
    assert (bags["B-1"]["deadline"], bags["B-1"]["used_within_limit"], bags["B-1"]["outcome"]) == (
        "2025-03-10T16:00:00Z",
        "yes",
        "infusion completed within the limit",
    )
    assert (bags["B-1"]["diluted_by"], bags["B-1"]["started_by"], bags["B-1"]["infusion_completed_at"]) == (
        "a.smith",
        "j.doe",
        "2025-03-10T14:00:00Z",
    )
    assert (bags["B-2"]["used_within_limit"], bags["B-2"]["outcome"]) == ("no", "infusion started after the deadline")

    audit = read_csv(out / "audit.csv")
    assert [(r["seq"], r["action"], r["actor"], r["in_period"]) for r in audit] == [
        ("1", "config_loaded", "coldchain", "yes"),
        ("2", "bag_event", "a.smith", "yes"),
        ("3", "acknowledged", "j.doe", "yes"),
    ]
    assert [r["hash"] for r in audit] == [e.hash for e in audit_chain()]

    assert read_csv(out / "signatures.csv") == [
        {
            "signed_at": "2025-03-10T10:20:00Z",
            "signed_by": "j.doe",
            "full_name": "Jane Doe, PharmD",
            "meaning": "disposition: quarantined",
            "disposition": "quarantined",
            "alert_id": alert_id("temperature_high", "t-001", EXCURSION_START),
            "kind": "temperature_high",
            "site": "main-pharmacy",
            "unit": "fridge-a",
            "subject": "t-001",
            "note": "moved stock to fridge B",
            "acknowledged_by": "j.doe",
            "signature_id": alert_id("temperature_high", "t-001", EXCURSION_START) + "-s1",
            "supersedes": "",
            "audit_seq": "3",
        }
    ]
    other_unit = run(tmp_path, seeded, settings_for(influx_config), name="b", unit="fridge-b")
    assert read_csv(other_unit / "signatures.csv") == []  # fridge-a's signature is not fridge-b's

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["row_counts"] == {
        "audit": 3, "bags": 2, "calibration": 2, "daily": 4, "excursions": 1, "gaps": 1, "readings": 5700,
        "reviews": 0, "signatures": 1,
    }  # fmt: skip
    assert set(manifest["files"]) == {p.name for p in out.iterdir()} - {"manifest.json"}
    assert manifest["parameters"]["unit"] == "fridge-a" and manifest["signature"]["algorithm"] == "Ed25519"
    assert manifest["audit_chain"]["intact"] is True and manifest["audit_chain"]["head_seq"] == 3
    assert json.loads((out / "excursions.json").read_text())[0]["degree_minutes"] == 40.0


def test_the_pdf_renders_and_names_the_unit(tmp_path: Path, seeded: InfluxStore, influx_config: InfluxConfig) -> None:
    """report.pdf renders with pdftoppm; its text names the unit and excursion, with whole-second times and units."""
    out = run(tmp_path, seeded, settings_for(influx_config), unit="fridge-a")
    subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-r", "40", "-png", str(out / "report.pdf"), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    (page,) = tmp_path.glob("page*.png")
    assert page.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and page.stat().st_size > 1000
    text = subprocess.run(
        ["pdftotext", str(out / "report.pdf"), "-"], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert "Infusion fridge A" in text
    words = " ".join(text.split())  # table cells wrap
    assert "temperature high" in words and "moved stock to fridge B" in words
    assert "quarantined (signed by Jane Doe, PharmD (j.doe); meaning: disposition: quarantined)" in words
    assert "2025-03-10 10:00:00Z" in words and "10 °C" in words and "T10:00" not in words  # times for people, units
    assert "Infusion fridge B" not in text  # --unit fridge-a


def write_config(tmp_path: Path, config: InfluxConfig) -> Path:
    lines = ["[influx]", f'url = "{config.url}"', f'database = "{config.database}"']
    lines += ["[rules]", f'state_path = "{tmp_path / "state" / "rules.sqlite"}"']
    for unit in UNITS:
        lines += ["[[units]]", *(f'{k} = "{v}"' for k, v in unit.items())]
    for sensor in SENSORS:
        lines += ["[[sensors]]", *(f'{k} = "{v}"' for k, v in sensor.items())]
    path = tmp_path / "coldchain.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    if key is not None:
        env["COLDCHAIN_EXPORT__SIGNING_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_export_signs_and_verify_names_the_altered_file(
    tmp_path: Path, seeded: InfluxStore, influx_config: InfluxConfig
) -> None:
    """The CLI signs with Ed25519; verify exits 0 only against the trusted key, 2 without one, 1 for any
    altered, removed or extra file and for a manifest edited or re-signed with another key."""
    config = write_config(tmp_path, influx_config)
    out = tmp_path / "signed"
    done = cli("export", "--config", str(config), "--from", "2025-03-10", "--to", "2025-03-11", "--unit", "fridge-a",
               "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "5,700 readings" in done.stdout and "(signed)" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["signature"]["algorithm"] == "Ed25519"
    private = serialization.load_pem_private_key((tmp_path / "state/coldchain-export-ed25519.pem").read_bytes(), None)
    assert isinstance(private, Ed25519PrivateKey)
    assert manifest["signer"]["fingerprint"] == fingerprint(private.public_key())
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(manifest["signer"]["public_key_pem"])
    pinned = ("--public-key", str(trusted))

    verified = cli("export", "verify", str(out), *pinned)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "signature valid (Ed25519" in verified.stdout and "audit.csv: hash chain intact" in verified.stdout
    unchecked = cli("export", "verify", str(out))
    assert unchecked.returncode == 2 and "NOT VERIFIED" in unchecked.stdout and "no trusted key" in unchecked.stdout

    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    text = (tampered / "readings.csv").read_text()
    (tampered / "readings.csv").write_text(text.replace("10.0\n", "7.9\n", 1))
    (tampered / "gaps.csv").unlink()
    (tampered / "notes.txt").write_text("added later")
    result = cli("export", "verify", str(tampered), *pinned)
    assert result.returncode == 1
    assert "readings.csv: ALTERED" in result.stdout
    assert "gaps.csv: MISSING" in result.stdout
    assert "notes.txt: EXTRA" in result.stdout
    assert "daily.csv" not in result.stdout
    assert cli("export", "verify", str(tampered)).returncode == 1  # altered is altered, trusted key or not

    forged = tmp_path / "forged"
    shutil.copytree(out, forged)
    manifest["row_counts"]["excursions"] = 0
    (forged / "manifest.json").write_text(json.dumps(manifest))
    result = cli("export", "verify", str(forged))
    assert result.returncode == 1 and "SIGNATURE DOES NOT MATCH (the manifest was edited)" in result.stdout

    forger = Ed25519PrivateKey.generate()  # a copy of the export and a key of one's own: re-signed
    manifest["signer"] = ManifestSigner(forger).describe()
    manifest["signature"] = ManifestSigner(forger).sign(canonical_manifest(manifest))
    (forged / "manifest.json").write_text(json.dumps(manifest))
    result = cli("export", "verify", str(forged), *pinned)
    assert result.returncode == 1 and "NOT SIGNED BY THE TRUSTED KEY" in result.stdout
    assert cli("export", "verify", str(forged)).returncode == 2  # only a trusted key tells it from the real one

    del manifest["signature"]
    (forged / "manifest.json").write_text(json.dumps(manifest))
    result = cli("export", "verify", str(forged), *pinned)
    assert result.returncode == 2 and "UNSIGNED" in result.stdout


def test_legacy_hmac_exports_stay_verifiable(tmp_path: Path, seeded: InfluxStore, influx_config: InfluxConfig) -> None:
    """An export signed with HMAC-SHA256 (before Ed25519) verifies with its key (0), is unproven without (2)."""
    out = run(tmp_path, seeded, settings_for(influx_config), unit="fridge-a")
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["signer"], manifest["signature"]
    manifest["signature"] = signature(manifest, KEY.encode())
    (out / "manifest.json").write_text(json.dumps(manifest))
    verified = cli("export", "verify", str(out), key=KEY)
    assert verified.returncode == 0 and "legacy HMAC-SHA256" in verified.stdout, verified.stdout
    assert cli("export", "verify", str(out)).returncode == 2
    wrong = cli("export", "verify", str(out), key="another-key-of-sixteen-bytes-or-more")
    assert wrong.returncode == 1 and "another key signed it" in wrong.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--from", "2026-13-01", "--to", "2026-12-31"], 2,
         "--from: '2026-13-01' is not a valid date (month must be in 1..12)"),
        (["--from", "2025-03-11", "--to", "2025-03-10"], 2, "--to 2025-03-10 is before --from 2025-03-11"),
        (["--from", "2025-03-10T00:00:00", "--to", "2025-03-11"], 2, "has no UTC offset"),
        (["--from", "2025-03-10", "--to", "2025-03-11", "--unit", "fridge-z"], 2,
         "unknown unit 'fridge-z' (known: fridge-a, fridge-b)"),
        (["--from", "2025-03-10", "--to", "2025-03-11", "--site", "annex"], 2,
         "unknown site 'annex' (known: main-pharmacy)"),
        (["--from", "2025-03-10", "--to", "2025-03-11", "--format", "csv,xml"], 2, "unknown format xml"),
        (["--from", "2024-01-01", "--to", "2024-01-31", "--unit", "fridge-a"], 1,
         "no readings of unit fridge-a (Infusion fridge A) at site main-pharmacy between 2024-01-01T00:00:00Z and "
         "2024-02-01T00:00:00Z (the newest reading of this selection is from 2025-03-11T23:59:00Z)"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_requests_in_one_line(
    tmp_path: Path, seeded: InfluxStore, influx_config: InfluxConfig, args: list[str], code: int, message: str
) -> None:
    """Bad dates, reversed ranges, unknown units, sites and formats, and empty ranges fail clearly, writing nothing."""
    config = write_config(tmp_path, influx_config)
    out = tmp_path / "export"
    result = cli("export", "--config", str(config), *args, "--out", str(out))
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coldchain export: ") and message in lines[0], lines
    assert not out.exists() and list(tmp_path.iterdir()) == [config]


def test_an_export_never_overwrites(tmp_path: Path, seeded: InfluxStore, influx_config: InfluxConfig) -> None:
    """A non-empty output directory is refused (exit 2), an empty one is used."""
    settings = settings_for(influx_config)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "old.csv").write_text("x")
    with pytest.raises(ExportError) as refused:
        run(tmp_path, seeded, settings, name="busy", unit="fridge-a")
    assert refused.value.code == 2 and "not empty" in str(refused.value)
    (tmp_path / "empty").mkdir()
    assert (run(tmp_path, seeded, settings, name="empty", unit="fridge-a") / "manifest.json").is_file()


def test_audit_verify_finds_the_edited_event(tmp_path: Path, seeded: InfluxStore, influx_config: InfluxConfig) -> None:
    """audit verify passes on the seeded chain; after seq 2 is edited in the store it names seq 2 and exits 1."""
    config = write_config(tmp_path, influx_config)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "coldchain-audit.key").write_bytes(AUDIT_KEY + b"\n")
    ok = cli("audit", "verify", "--config", str(config), "--no-broker")
    assert ok.returncode == 0, ok.stderr
    assert "audit chain OK: 3 events, seq 1..3" in ok.stdout and audit_chain()[-1].hash in ok.stdout
    assert "every MAC under the audit key holds" in ok.stdout
    (tmp_path / "state" / "coldchain-audit.key").unlink()
    unproven = cli("audit", "verify", "--config", str(config), "--no-broker")
    assert unproven.returncode == 2 and "NOT VERIFIED: no audit key" in unproven.stdout
    (tmp_path / "state" / "coldchain-audit.key").write_bytes(AUDIT_KEY + b"\n")

    second = audit_chain()[1]
    edited = dataclasses.replace(second, actor="someone.else")  # same series and time: overwrites the point
    assert not seeded.write([edited]).refused
    broken = cli("audit", "verify", "--config", str(config), "--no-broker")
    assert broken.returncode == 1
    assert "audit chain BROKEN at seq 2 (bag_event by someone.else" in broken.stderr
    assert "the event was edited" in broken.stderr

    out = run(tmp_path, seeded, settings_for(influx_config), unit="fridge-a")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["audit_chain"]["intact"] is False and manifest["audit_chain"]["first_break"].startswith("seq 2")


def test_coldchain_run_records_operator_actions_in_the_chain(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """A running service records config_loaded, a bag event and an acknowledgement once each; audit verify passes."""
    import httpx

    from tests.publishing import wait_for
    from tests.test_rules_integration import AlertWorld
    from tests.world import SIGNING_PASSWORD, TWO_USERS, iso

    world = AlertWorld(tmp_path, mosquitto, influxd, extra=TWO_USERS)
    try:
        world.service.start()
        api = world.service.api
        smith = {"Authorization": "Bearer token-of-a-smith-456"}
        posted = httpx.post(
            f"{api}/api/bags/B-0042/events", headers=smith, json={"event": "diluted", "unit": "fridge-a", "lot": "L9"}
        )
        assert posted.status_code == 202, posted.text
        world.publisher_for().send(world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": -1.5})
        opened = world.wait_alert("freezing", "t-001", "open")
        acked = httpx.post(
            f"{api}/api/alerts/{opened['id']}/ack",
            headers={"Authorization": "Bearer token-of-j-doe-123"},
            json={
                "note": "moved stock to fridge B",
                "disposition": "quarantined",
                "signature": {"password": SIGNING_PASSWORD},
            },
            timeout=15,
        )
        assert acked.status_code == 200, acked.text

        def audit_rows() -> list[dict[str, Any]]:
            rows = world.rows('SELECT * FROM "audit" ORDER BY time')
            return rows if len(rows) >= 3 else []

        rows = wait_for(audit_rows, 20, "three audit events in the store")
        assert [(r["seq"], r["action"], r["actor"], r["subject"]) for r in rows] == [
            (1, "config_loaded", "coldchain", str(world.config.resolve())),
            (2, "bag_event", "a.smith", "B-0042"),
            (3, "acknowledged", "j.doe", opened["id"]),
        ]
        assert json.loads(rows[1]["details"])["lot"] == "L9"
        signed_at = acked.json()["signed_at"]
        assert json.loads(rows[2]["details"]) == {
            "disposition": "quarantined",
            "kind": "freezing",
            "note": "moved stock to fridge B",
            "site": "main-pharmacy",
            "state": "acknowledged",
            "subject": "t-001",
            "unit": "fridge-a",
            "signature": {
                "id": f"{opened['id']}-s1",
                "signed_by": "j.doe",
                "full_name": "Jane Doe, PharmD",
                "signed_at": signed_at,
                "meaning": "disposition: quarantined",
                "supersedes": None,
            },
        }
        verified = cli("audit", "verify", "--config", str(world.config))
        assert verified.returncode == 0, verified.stderr
        assert "audit chain OK: 3 events" in verified.stdout
    finally:
        world.close()
