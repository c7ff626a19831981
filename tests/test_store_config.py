"""``[store] url`` and ``embedded://`` in the configuration, and the store the factory opens for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldchain.adapters.store.factory import describe_store, open_store
from coldchain.adapters.store.influx import InfluxStore
from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.config import ConfigError
from tests.config_files import load_config


@pytest.mark.parametrize(
    ("url", "store_type", "described"),
    [
        ("influx", InfluxStore, "InfluxDB http://127.0.0.1:8086 database coldchain"),  # the default
        ("sqlite:///var/cc.db", SqliteStore, "SQLite var/cc.db"),  # relative to the working directory
        ("sqlite:////srv/cc.db", SqliteStore, "SQLite /srv/cc.db"),  # four slashes: absolute, as in SQLAlchemy
    ],
)
def test_store_url_picks_the_adapter(
    env: pytest.MonkeyPatch, tmp_path: Path, url: str, store_type: type, described: str
) -> None:
    """``[store] url`` selects InfluxDB (``[influx]``) or a SQLite file."""
    settings = load_config(tmp_path, f'[store]\nurl = "{url}"\n')
    store = open_store(settings)
    assert type(store) is store_type
    assert describe_store(settings) == described
    store.close()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[store]\nurl = "postgres://x"\n', "store.url: must be"),  # no such adapter
        ('[store]\nurl = "sqlite:///"\n', "store.url: must be"),  # no path
        ('[store]\npath = "x.db"\n', "store.path: unknown key"),  # a typo names itself
        ('[mqtt]\nurl = "embeded://127.0.0.1:1883"\n', "mqtt.url: must look like"),
        ('[mqtt]\nurl = "embedded://127.0.0.1:1883"\nshared_group = "ingest"\n', "needs an MQTT 5 broker"),
    ],
)
def test_bad_store_or_broker_urls_name_the_key(
    env: pytest.MonkeyPatch, tmp_path: Path, text: str, problem: str
) -> None:
    """A wrong store URL, a mistyped scheme or shared subscriptions on the embedded broker are refused."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, text)
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_embedded_broker_url_and_environment_override(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``embedded://host:port`` is accepted and says so; COLDCHAIN_STORE__URL overrides the file."""
    env.setenv("COLDCHAIN_STORE__URL", "sqlite:///from-env.db")
    settings = load_config(tmp_path, '[mqtt]\nurl = "embedded://127.0.0.1:18830"\n')
    assert settings.mqtt.embedded and (settings.mqtt.host, settings.mqtt.port) == ("127.0.0.1", 18830)
    assert settings.store.sqlite_path == Path("from-env.db")
