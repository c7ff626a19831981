"""``coldchain demo``: the whole system in one process, on embedded defaults, in about a minute.

The embedded MQTT broker, a SQLite store, ingest, the rules worker, notifications to the console
and the HTTP API run as one ``Service`` on the packaged configuration (``demo.toml``: one pharmacy,
two fridges), while the simulator (``simulate.py``) publishes the scripted scenario at high speed.
Simulator and rules share one ``SimClock``, so event times and the rules' ``now`` advance together.
A live terminal view shows the units, the open alerts and the bag countdowns; once the scenario is
over the demo writes the audit export and says where it is.

Everything it writes lives under ``--data`` (default ``var/demo``, emptied at each start) and
``--out`` (default ``var/demo-export``).
"""

from __future__ import annotations

import csv
import logging
import shutil
import threading
import time
import tomllib
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coldchain.adapters.logs import TextFormatter, configure_logging
from coldchain.adapters.mqtt import PublishError
from coldchain.adapters.store.port import Store, StoreError
from coldchain.config import Settings
from coldchain.core.alert import Alert
from coldchain.core.times import format_time
from coldchain.core.wording import say_clock
from coldchain.demo.simulate import EXPECTED_ALERTS, INCIDENTS, SCENARIO_LENGTH, Message, Publisher, SimClock
from coldchain.demo.simulate import build_scenario as build_messages

if TYPE_CHECKING:
    from coldchain.roles.rules_worker import RulesWorker
    from coldchain.roles.service import Service

log = logging.getLogger("coldchain.demo")

MARKER = ".coldchain-demo"
"""A file in the data directory saying the demo made it (and may empty it)."""
MAX_ALERT_ROWS = 10
SETTLE_TIMEOUT = 30.0
"""Wall seconds the demo waits, after the last message, for every expected alert."""


class DemoError(Exception):
    """The demo cannot run (e.g. its data directory is not its own)."""


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What a demo run produced."""

    alert_kinds: frozenset[str]
    """Kinds of every alert stored, whatever their state now."""
    export: Path
    database: Path
    complete: bool
    """Every scripted alert kind was raised."""


def demo_settings(data: Path, mqtt_port: int | None = None, api_port: int | None = None) -> Settings:
    """The packaged demo configuration with every file under ``data`` (environment overrides apply)."""
    config: dict[str, Any] = tomllib.loads(resources.files("coldchain.demo").joinpath("demo.toml").read_text("utf-8"))
    config["store"]["url"] = f"sqlite:///{data / 'coldchain.db'}"
    config["spool"] = {"path": str(data / "spool.sqlite")}
    config["rules"]["state_path"] = str(data / "rules.sqlite")
    config["rules"]["spool_path"] = str(data / "rules-spool.sqlite")
    config["notify"]["state_path"] = str(data / "notify.sqlite")
    config["rollups"] = {**config.get("rollups", {}), "state_path": str(data / "rollups.sqlite")}
    if mqtt_port is not None:
        config["mqtt"]["url"] = f"embedded://127.0.0.1:{mqtt_port}"
    if api_port is not None:
        config["api"]["listen"] = f"127.0.0.1:{api_port}"
    return Settings(**config)


def fresh_data_dir(data: Path) -> None:
    """Empty ``data`` for a new run if the demo made it; create it if missing; refuse anything else."""
    if data.exists() and any(data.iterdir()):
        if not (data / MARKER).exists():
            raise DemoError(f"{data} is not empty and was not made by the demo; choose another --data")
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    (data / MARKER).write_text("made by coldchain demo; emptied at each demo start\n", encoding="utf-8")


# -- the export (issue 6) --------------------------------------------------------------------------


def write_export(settings: Settings, store: Store, start: datetime, end: datetime, out: Path) -> tuple[Path, str]:
    """The audit export of [start, end) into a new directory under ``out``: (where it is, what it is).

    Falls back to the alert list as CSV when ``coldchain.export`` is not available or refuses.
    """
    target = out / f"demo-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    try:
        from coldchain.reporting.export import ExportError, ExportRequest, run_export
    except ImportError:
        return _alerts_csv(store, start, end, target), "alert list (CSV; the audit export is unavailable)"
    try:
        result = run_export(store, settings, ExportRequest(start=start, end=end, out=target), now=datetime.now(UTC))
    except ExportError as exc:
        log.error("audit export failed (%s); writing the alert list instead", exc)
        return _alerts_csv(store, start, end, target), f"alert list (CSV; the audit export failed: {exc})"
    return result.out, "audit export"


def _alerts_csv(store: Store, start: datetime, end: datetime, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    path = target / "alerts.csv"
    columns = ["time", "id", "kind", "subject", "state", "severity", "site", "unit", "started_at", "resolved_at"]
    columns += ["value", "message", "affected_bags"]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in store.read_range("alert", start, end):
            writer.writerow({**row, "time": format_time(row["time"])})
    return path


# -- the live view ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the live view shows at one moment (plain data, so the view is a pure function of it)."""

    now: datetime
    start: datetime
    speed: float
    units: Sequence[tuple[str, str]]
    """(unit id, display name)."""
    sensors: Sequence[tuple[str, str, str]]
    """(sensor id, unit id, kind)."""
    latest: dict[str, dict[str, Any]]
    """Newest stored row per sensor."""
    alerts: Sequence[Alert]
    """Open and acknowledged alerts, then recently resolved ones."""
    bags: Sequence[tuple[str, str, datetime, datetime]]
    """Running bags: (bag, unit, diluted at, deadline)."""
    notices: Sequence[str]
    """Last console notifications (titles)."""
    published: int
    total: int


def render(snapshot: Snapshot) -> Any:
    """The live view of ``snapshot`` as a rich renderable."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    elapsed = snapshot.now - snapshot.start
    header = Text.assemble(
        ("coldchain demo", "bold"),
        f"  simulated {snapshot.now:%Y-%m-%d %H:%M} UTC  +{say_clock(elapsed)} of {say_clock(SCENARIO_LENGTH)}",
        f"  ({snapshot.speed:.0f}x)  messages {snapshot.published}/{snapshot.total}",
    )
    by_unit: dict[str, list[Alert]] = {}
    for alert in snapshot.alerts:
        if alert.state != "resolved":
            by_unit.setdefault(alert.unit, []).append(alert)
    units = Table(title="Units", expand=True)
    for column in ("unit", "temperature", "shake", "battery", "state"):
        units.add_column(column)
    for unit, name in snapshot.units:
        temperature, shake, battery = "-", "-", "-"
        for sensor, sensor_unit, kind in snapshot.sensors:
            row = snapshot.latest.get(sensor)
            if sensor_unit != unit or row is None:
                continue
            if kind == "temperature":
                temperature = f"{row['celsius']:.1f} °C"
                battery = f"{row['battery_pct']:.0f}%" if "battery_pct" in row else battery
            else:
                shake = f"{row['peak_g']:.2f} g"
        kinds = sorted({alert.kind for alert in by_unit.get(unit, [])})
        state = Text(", ".join(kinds), style="bold red") if kinds else Text("ok", style="green")
        units.add_row(name, temperature, shake, battery, state)
    alerts = Table(title="Alerts (open first, then recently resolved)", expand=True)
    for column in ("kind", "subject", "state", "since", "until", "value", "message"):
        alerts.add_column(column, overflow="fold")
    active = sorted((a for a in snapshot.alerts if a.state != "resolved"), key=lambda a: a.started_at)
    resolved = sorted((a for a in snapshot.alerts if a.state == "resolved"), key=lambda a: a.updated_at, reverse=True)
    for alert in (active + resolved)[:MAX_ALERT_ROWS]:
        value = "" if alert.value is None else f"{alert.value:g}"
        style = "dim" if alert.state == "resolved" else "red" if alert.severity == "critical" else "yellow"
        until = "" if alert.resolved_at is None else f"+{say_clock(alert.resolved_at - snapshot.start)}"
        alerts.add_row(
            Text(alert.kind, style=style),
            alert.subject,
            Text(alert.state, style=style),
            f"+{say_clock(alert.started_at - snapshot.start)}",
            until,
            value,
            Text(alert.message, style=style),
        )
    bags = Table(title="Diluted bags", expand=True)
    for column in ("bag", "unit", "diluted", "time left"):
        bags.add_column(column)
    for bag, unit, diluted, deadline in snapshot.bags:
        left = deadline - snapshot.now
        style = "red" if left <= timedelta(0) else "yellow" if left <= timedelta(hours=1) else "green"
        bags.add_row(bag, unit, f"+{say_clock(diluted - snapshot.start)}", Text(say_clock(left), style=style))
    notices = Panel("\n".join(snapshot.notices) or "(none yet)", title="Notifications (console)")
    return Group(header, units, alerts, bags, notices)


class _NoticeBuffer(logging.Handler):
    """Keeps the first lines of console notifications (and other warnings) for the live view,
    stamped with the simulated time since the scenario began."""

    def __init__(self, clock: SimClock, size: int = 8) -> None:
        super().__init__(logging.WARNING)
        self.clock = clock
        self.lines: deque[str] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        first = message.splitlines()[0] if message else ""
        self.lines.append(f"+{say_clock(self.clock.elapsed())} {first}")


# -- the run ---------------------------------------------------------------------------------------


def run_demo(
    *,
    duration: float = 45.0,
    speed: float | None = None,
    headless: bool = False,
    out: Path = Path("var/demo-export"),
    data: Path = Path("var/demo"),
    mqtt_port: int | None = None,
    api_port: int | None = None,
    seed: int = 7,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Run the scenario end to end and write the export; the kinds of alert it raised."""
    from coldchain.roles.service import Service

    fresh_data_dir(data)
    settings = demo_settings(data, mqtt_port, api_port)
    speed = speed if speed is not None else max(1.0, SCENARIO_LENGTH.total_seconds() / duration)
    clock = SimClock(speed)
    notices = _NoticeBuffer(clock)
    if headless:
        configure_logging(settings.log)
    else:
        _log_to_file_and_view(data / "demo.log", notices)
    messages = build_messages(settings, clock.start, seed=seed)
    service = Service(settings, ("ingest", "rules", "api"), clock=clock)
    publisher = Publisher(settings.mqtt, client_id="coldchain-demo-sensors")
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(publisher, messages, clock, stop), name="simulator", daemon=True)
    echo(
        f"coldchain demo: {len(settings.units)} fridges, {len(messages)} sensor messages, "
        f"{SCENARIO_LENGTH} of simulated time at {speed:.0f}x (about {SCENARIO_LENGTH.total_seconds() / speed:.0f} s)"
    )
    service.start()
    try:
        connections = [role.connection for role in (service.ingest, service.rules) if role is not None]
        if not _wait(lambda: all(c.connected.is_set() for c in connections), 15):
            raise DemoError(f"ingest and rules did not connect to the embedded broker {settings.mqtt.url}")
        if service.http is not None:
            echo(f"  HTTP API on http://127.0.0.1:{service.http.port}/ (token demo-token); MQTT {settings.mqtt.url}")
        publisher.connect()
        clock.run()
        feeder.start()
        assert service.rules is not None
        if headless:
            _wait_until_done(service.rules, clock, feeder, SETTLE_TIMEOUT)
        else:
            _live(service, service.rules, settings, clock, feeder, notices, len(messages), publisher)
    except KeyboardInterrupt:
        stop.set()
        echo("interrupted")
        raise
    finally:
        stop.set()
        if feeder.is_alive():
            feeder.join(timeout=15)
        publisher.close()
        service.stop()
    return _finish(settings, clock, out, echo)


def _feed(publisher: Publisher, messages: list[Message], clock: SimClock, stop: threading.Event) -> None:
    try:
        publisher.run(messages, clock, stop)
        publisher.flush()
    except PublishError as exc:
        log.error("simulator: %s", exc)


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _raised(rules: RulesWorker) -> set[str]:
    """Alert kinds the rules worker has raised so far (open, acknowledged or recently resolved)."""
    return {alert.kind for alert in rules.view.alerts}


def _settled(rules: RulesWorker, clock: SimClock, feeder: threading.Thread) -> bool:
    return clock.finished and not feeder.is_alive() and _raised(rules) >= EXPECTED_ALERTS


def _wait_until_done(rules: RulesWorker, clock: SimClock, feeder: threading.Thread, settle: float) -> None:
    _wait(lambda: clock.finished and not feeder.is_alive(), clock.length.total_seconds() / clock.speed + 60)
    if not _wait(lambda: _settled(rules, clock, feeder), settle):
        log.warning("demo: not every scripted alert was raised: missing %s", sorted(EXPECTED_ALERTS - _raised(rules)))


def _live(
    service: Service,
    rules: RulesWorker,
    settings: Settings,
    clock: SimClock,
    feeder: threading.Thread,
    notices: _NoticeBuffer,
    total: int,
    publisher: Publisher,
) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    units = [(unit.id, unit.display_name) for unit in settings.units]
    sensors = [(sensor.id, sensor.unit, sensor.kind) for sensor in settings.sensors]

    def snapshot() -> Snapshot:
        latest: dict[str, dict[str, Any]] = {}
        try:
            for measurement in ("temperature", "shake"):
                latest.update(service.store.latest(measurement, "sensor"))
        except StoreError:
            pass
        view = rules.view
        return Snapshot(
            now=clock(),
            start=clock.start,
            speed=clock.speed,
            units=units,
            sensors=sensors,
            latest=latest,
            alerts=view.alerts,
            bags=view.bags,
            notices=list(notices.lines),
            published=publisher.sent,
            total=total,
        )

    settle_deadline: float | None = None
    with Live(render(snapshot()), console=console, refresh_per_second=4, transient=False) as live:
        while True:
            time.sleep(0.25)
            live.update(render(snapshot()))
            if _settled(rules, clock, feeder):
                break
            if clock.finished and not feeder.is_alive():
                settle_deadline = settle_deadline or time.monotonic() + SETTLE_TIMEOUT
                if time.monotonic() > settle_deadline:
                    break
        live.update(render(snapshot()))


def _log_to_file_and_view(path: Path, notices: _NoticeBuffer) -> None:
    """Live view: the full log goes to ``path``; warnings (alerts, console notifications) to the view."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler, notices]
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "amqtt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _finish(settings: Settings, clock: SimClock, out: Path, echo: Callable[[str], None]) -> DemoResult:
    from coldchain.adapters.store.factory import open_store

    database = settings.store.sqlite_path
    assert database is not None
    store = open_store(settings)
    try:
        end = clock.end + timedelta(milliseconds=1)
        alerts = list(store.read_range("alert", clock.start - timedelta(days=1), end))
        kinds = frozenset(row["kind"] for row in alerts)
        export, what = write_export(settings, store, clock.start, end, out)
    finally:
        store.close()
    tally = Counter(row["kind"] for row in alerts if row["state"] == "open")
    echo("")
    echo("scripted incidents and the alerts they raised:")
    for incident in INCIDENTS:
        marks = ", ".join(f"{kind} {'✓' if kind in kinds else '✗ MISSING'}" for kind in incident.alerts)
        echo(f"  +{str(timedelta(seconds=incident.at))[:-3]}  {incident.what}{'  -> ' + marks if marks else ''}")
    echo(f"alerts opened: {sum(tally.values())} ({', '.join(f'{k} {n}' for k, n in sorted(tally.items()))})")
    echo(f"store:  {database} (SQLite, WAL; every reading, alert and notification; view point_rows)")
    echo(f"export: {export} ({what})")
    complete = kinds >= EXPECTED_ALERTS
    if not complete:
        echo(f"WARNING: missing alert kinds: {', '.join(sorted(EXPECTED_ALERTS - kinds))}")
    return DemoResult(kinds, export, database, complete)
