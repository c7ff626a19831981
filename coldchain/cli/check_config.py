"""``coldchain check-config``: every problem of a configuration, or a summary of its inventory."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from coldchain.adapters.store.factory import describe_store
from coldchain.adapters.store.retention import retention_lines
from coldchain.cli.loading import load_or_exit
from coldchain.config import config_warnings

_LISTED = 50
"""Units listed one by one; a fleet's others are counted."""


def cmd_check_config(args: argparse.Namespace) -> int:
    """Print every problem (exit 1) or a summary of the inventory (exit 0)."""
    settings = load_or_exit(args.config)
    print(f"{args.config or '<defaults>'}: OK")
    print(f"  mqtt   {settings.mqtt.url} (client id {settings.mqtt.client_id}, prefix {settings.mqtt.topic_prefix})")
    print(f"  store  {describe_store(settings)}")
    retention, too_short = retention_lines(settings)
    print(f"  retention  {retention}")
    print(f"  profiles: {', '.join(sorted(settings.profiles))}")
    kinds_by_unit: dict[str, Counter[str]] = {unit.id: Counter() for unit in settings.units}
    for sensor in settings.sensors:
        kinds_by_unit[sensor.unit][sensor.kind] += 1
    print(f"  {len(settings.units)} units, {len(settings.sensors)} sensors")
    for unit in settings.units[:_LISTED]:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds_by_unit[unit.id].items())) or "no sensors"
        print(f"    {unit.site}/{unit.id} ({unit.display_name}): profile {unit.profile}; {kinds}")
    if len(settings.units) > _LISTED:
        print(f"    … and {len(settings.units) - _LISTED} more units")
    for sensor in settings.sensors:
        if sensor.format != "coldchain":
            print(f"  device {sensor.id} ({sensor.kind}, {sensor.unit}): {sensor.format} on {sensor.topic!r}")
    if settings.homeassistant.discovery:
        print(f"  Home Assistant discovery under {settings.homeassistant.prefix}/")
    for warning in [*config_warnings(settings), *([too_short] if too_short else [])]:
        print(f"WARNING {warning}", file=sys.stderr)
    return 0
