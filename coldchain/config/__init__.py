"""Settings and inventory: one TOML file, overridable by ``COLDCHAIN_*`` environment variables.

One module per table (Frigate's ``config/`` shape): ``mqtt``, ``store``, ``rules``, ``notify``, ``api``,
``inventory``, ``homeassistant``, ``watchdog``; ``settings`` joins them and checks references across
tables; ``loading`` reads the file and the environment and names the source of every problem. Imported by
adapters, roles and the CLI, never by ``coldchain.core``.
"""

from coldchain.config.api import ApiConfig, ApiUser, LogConfig
from coldchain.config.homeassistant import HomeAssistantConfig
from coldchain.config.inventory import SENSOR_FORMATS, Scanner, Sensor, Unit
from coldchain.config.inventory_table import InventoryConfig
from coldchain.config.loading import ConfigError, load_settings
from coldchain.config.mqtt import MqttConfig
from coldchain.config.notify import LOG_TARGET, NotifyConfig, NotifyTarget, OncallConfig, Shift
from coldchain.config.reports import ReportConfig
from coldchain.config.rollups import RollupsConfig
from coldchain.config.settings import Settings, config_warnings, no_config_loaded
from coldchain.config.state import StateConfig
from coldchain.config.store import InfluxConfig
from coldchain.config.watchdog import WatchdogConfig

__all__ = [
    "LOG_TARGET",
    "SENSOR_FORMATS",
    "ApiConfig",
    "ApiUser",
    "ConfigError",
    "HomeAssistantConfig",
    "InfluxConfig",
    "InventoryConfig",
    "LogConfig",
    "MqttConfig",
    "NotifyConfig",
    "NotifyTarget",
    "OncallConfig",
    "ReportConfig",
    "RollupsConfig",
    "Scanner",
    "Sensor",
    "Settings",
    "Shift",
    "StateConfig",
    "Unit",
    "WatchdogConfig",
    "config_warnings",
    "load_settings",
    "no_config_loaded",
]
