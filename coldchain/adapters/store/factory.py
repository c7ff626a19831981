"""Opens the store the configuration names: ``[store] url = "influx"`` (the default) or ``sqlite:///path``."""

from __future__ import annotations

from coldchain.adapters.store.port import Store
from coldchain.config import Settings


def open_store(settings: Settings) -> Store:
    """The configured store, not yet prepared (the durable writer prepares it, retrying)."""
    path = settings.store.sqlite_path
    if path is not None:
        from coldchain.adapters.store.sqlite import SqliteStore

        return SqliteStore(path)
    from coldchain.adapters.store.influx import InfluxStore

    return InfluxStore(settings.influx)


def describe_store(settings: Settings) -> str:
    """One line naming where records go, for logs and ``check-config``."""
    path = settings.store.sqlite_path
    if path is not None:
        return f"SQLite {path}"
    return f"InfluxDB {settings.influx.url} database {settings.influx.database}"
