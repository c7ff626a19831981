"""The Grafana dashboards, built from code and committed as JSON under ``dashboards/``.

Three dashboards over coldchain's InfluxDB schema, every query raw InfluxQL:

- ``coldchain-overview`` "Cold chain — overview": the pharmacy's wall screen (1920x1080, refresh 30 s);
- ``coldchain-unit`` "Cold chain — unit": one fridge's temperatures, shakes, alerts and daily extremes;
- ``coldchain-alerts`` "Cold chain — alerts and audit": alert history, acknowledgements, notifications,
  rejected messages.

Every panel reads the datasource ``DATASOURCE_UID``, which ``deploy/grafana/provisioning`` defines (and
``coldchain dashboards push --datasource-uid`` rewrites for a Grafana whose InfluxDB has another uid).
Uids are fixed, so provisioning, pushes and links always address the same dashboards.

The thresholds drawn (2 and 8 °C, the freezing line at 0 °C, agitation at 0.5 g) are the natalizumab
label's: unit profiles live in coldchain's TOML configuration, not in InfluxDB, so the panels use these
constants and their descriptions say so.

Write the JSON files with ``python -m coldchain.dashboards [DIR] [--timezone ZONE]`` (default ``dashboards``,
UTC; a site's zone makes the unit dashboard show that zone and its Daily min/max local days);
``tests/test_dashboards.py`` fails when the committed files differ from what this module builds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from coldchain.dashboards.boards import alerts_dashboard, overview, unit_dashboard
from coldchain.dashboards.parts import DATASOURCE, DATASOURCE_UID, Json

# -- all of them ----------------------------------------------------------------------------


def build_dashboards(timezone: str = "UTC") -> dict[str, Json]:
    """Every dashboard by uid; ``timezone`` is the unit dashboard's (its Daily min/max days), the others stay UTC."""
    boards = [overview(), unit_dashboard(timezone), alerts_dashboard()]
    return {board["uid"]: board for board in boards}


def render(board: Json) -> str:
    """A dashboard as the committed file's text (stable: 2-space indent, key order as built, final newline)."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def file_name(uid: str) -> str:
    return f"{uid}.json"


def write_dashboards(directory: Path, timezone: str = "UTC") -> list[Path]:
    """Write every dashboard as ``<uid>.json`` into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, board in build_dashboards(timezone).items():
        path = directory / file_name(uid)
        path.write_text(render(board), encoding="utf-8")
        written.append(path)
    return written


def with_datasource(board: Json, uid: str) -> Json:
    """A copy of ``board`` whose InfluxDB datasource references name ``uid``."""

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == DATASOURCE["type"] and node.get("uid") == DATASOURCE_UID and len(node) == 2:
                return {"type": DATASOURCE["type"], "uid": uid}
            return {key: swap(value) for key, value in node.items()}
        if isinstance(node, list):
            return [swap(item) for item in node]
        return node

    result: Json = swap(board)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m coldchain.dashboards [DIR] [--timezone ZONE]`` (the committed files are UTC)."""
    parser = argparse.ArgumentParser(prog="python -m coldchain.dashboards")
    parser.add_argument("directory", nargs="?", type=Path, default=Path("dashboards"))
    parser.add_argument("--timezone", type=zone_name, default="UTC", help="the unit dashboard's zone (default UTC)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    for path in write_dashboards(args.directory, args.timezone):
        print(path)
    return 0


def zone_name(text: str) -> str:
    """An IANA zone name (argparse type): ArgumentTypeError for one zoneinfo does not know."""
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r} (an IANA name like Europe/Berlin)") from exc
    return text
