"""Prometheus metrics of the service, on a registry of its own (so tests can run several services)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _LastReadingCollector(Collector):
    """``coldchain_sensor_seconds_since_last_reading{sensor}``, computed when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "coldchain_sensor_seconds_since_last_reading",
            "Seconds since the newest reading (by sensor timestamp) stored for each sensor.",
            labels=["sensor"],
        )
        now = time.time()
        for sensor, ts in self._metrics.last_reading_snapshot().items():
            family.add_metric([sensor], max(0.0, now - ts))
        yield family


class Metrics:
    """Every metric coldchain exports. Counters only ever go up; nothing is dropped uncounted."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry

        def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(name, documentation, labels, registry=r)

        def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(name, documentation, labels, registry=r)

        self.messages_received = counter("coldchain_messages_received", "MQTT messages received on data topics.")
        self.records_stored = counter(
            "coldchain_records_stored", "Records written to the store, by measurement.", ["measurement"]
        )
        self.rejections = counter("coldchain_rejections", "Messages or records rejected, by reason.", ["reason"])
        self.write_errors = counter(
            "coldchain_write_errors",
            "Failed store writes by class: transient (retried), config (auth/db), refused (dead-lettered).",
            ["error_class"],
        )
        self.dropped = counter(
            "coldchain_dropped_records",
            "Dead letters the store refused to take even into 'rejected' (logged with their content).",
        )
        self.spool_full = counter("coldchain_spool_full", "Times a batch found the spool at its cap (acks held back).")
        self.spool_depth = gauge("coldchain_spool_depth_records", "Records waiting in the spool.")
        self.spool_oldest_age = gauge(
            "coldchain_spool_oldest_age_seconds", "Age of the oldest batch waiting in the spool."
        )
        self.spool_bytes = gauge("coldchain_spool_bytes", "Bytes of data waiting in the spool.")
        self.broker_connected = gauge("coldchain_broker_connected", "1 while connected to the MQTT broker.", ["role"])
        self.store_reachable = gauge("coldchain_store_reachable", "1 when the last store request succeeded.")
        self.acks_pending = gauge("coldchain_acks_pending", "Messages received but not yet acknowledged to the broker.")
        self.alert_transitions = counter(
            "coldchain_alert_transitions", "Alert transitions published, by kind and change.", ["kind", "change"]
        )
        self.alerts_open = gauge("coldchain_alerts_open", "Alerts currently open.")
        self.late_readings = gauge(
            "coldchain_rules_late_readings",
            "Readings older than the newest already judged for their sensor (stored, not re-judged).",
        )
        self.rollups_pending = gauge(
            "coldchain_rollups_pending",
            "Rollup intervals and days waiting to be recomputed from the stored readings (late readings).",
        )
        self.rollups_recomputed = gauge(
            "coldchain_rollups_recomputed", "Rollups recomputed from the stored readings since start."
        )
        self.fact_checks_skipped = gauge(
            "coldchain_fact_checks_skipped",
            "Batches or bags checked for rewrites on memory alone because the store could not be asked.",
        )
        self.rules_checkpoints = counter(
            "coldchain_rules_checkpoints",
            "Durable commits of the rules engine's state (a change record or a full snapshot).",
        )
        self.rules_acked = counter(
            "coldchain_rules_messages_acked",
            "Messages the rules worker judged and acknowledged to the broker (after the checkpoint covering them).",
        )
        self.rules_checkpoint_bytes = counter(
            "coldchain_rules_checkpoint_bytes",
            "Bytes of JSON the rules engine's checkpoints wrote (change records and full snapshots).",
            ["kind"],
        )
        self.rules_errors = counter("coldchain_rules_errors", "Batches the rules engine failed on.")
        self.role_errors = counter(
            "coldchain_role_errors",
            "Exceptions a role's loop survived (logged with the traceback; the loop backs off and goes on).",
            ["role"],
        )
        self.disk_full = counter(
            "coldchain_disk_full",
            "Writes of state files that failed for a full or failing disk (nothing depending on them was acked).",
            ["path"],
        )
        self.spool_dead_letters = counter(
            "coldchain_spool_dead_lettered_records",
            "Records of spooled batches that failed to replay spool.max_attempts times (kept in dead_letter).",
        )
        self.notifications_grouped = counter(
            "coldchain_notifications_grouped",
            "Alerts not notified on their own because an outage alert explains them (broker_unreachable).",
        )
        self.notifications = counter(
            "coldchain_notifications",
            "Notification delivery attempts, by channel and outcome (sent, failed, gave_up).",
            ["channel", "outcome"],
        )
        self.notifications_pending = gauge(
            "coldchain_notifications_pending", "Notices in the outbox still waiting to be delivered."
        )
        self.api_refusals = counter(
            "coldchain_api_refusals",
            "API calls refused, by reason (token, rate_limited, forbidden, signature_missing, signature_failed, "
            "signature_locked, cannot_sign).",
            ["reason"],
        )
        self.http_refused = counter(
            "coldchain_http_refused",
            "HTTP requests refused or clients dropped before their body was read, by reason.",
            ["reason"],
        )
        self.heartbeats = counter(
            "coldchain_watchdog_heartbeats",
            "Heartbeat URL turns, by outcome: sent, failed, withheld (not healthy).",
            ["outcome"],
        )
        self._last_reading: dict[str, float] = {}
        self._lock = threading.Lock()
        r.register(_LastReadingCollector(self))

    def saw_reading(self, sensor: str, ts: float) -> None:
        """Remember the newest reading timestamp (epoch seconds) of a sensor."""
        with self._lock:
            if ts > self._last_reading.get(sensor, float("-inf")):
                self._last_reading[sensor] = ts

    def last_reading_snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._last_reading)

    def bind_spool(
        self, depth: Callable[[], float], oldest_age: Callable[[], float], size: Callable[[], float]
    ) -> None:
        """Read the spool gauges from the spool itself at scrape time."""
        self.spool_depth.set_function(depth)
        self.spool_oldest_age.set_function(oldest_age)
        self.spool_bytes.set_function(size)

    def bind_outbox(self, pending: Callable[[], float]) -> None:
        """Read the pending-notifications gauge from the outbox at scrape time."""
        self.notifications_pending.set_function(pending)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
