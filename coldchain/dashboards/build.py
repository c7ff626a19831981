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

Write the JSON files with ``python -m coldchain.dashboards [DIR]`` (default ``dashboards``);
``tests/test_dashboards.py`` fails when the committed files differ from what this module builds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from coldchain.dashboards.boards import alerts_dashboard, overview, unit_dashboard
from coldchain.dashboards.parts import DATASOURCE, DATASOURCE_UID, Json

# -- panels and variables -------------------------------------------------------------------


# -- shared pieces --------------------------------------------------------------------------


# -- Cold chain — overview ------------------------------------------------------------------


# -- Cold chain — unit ----------------------------------------------------------------------


# -- Cold chain — alerts and audit ----------------------------------------------------------


# -- all of them ----------------------------------------------------------------------------


def build_dashboards() -> dict[str, Json]:
    """Every dashboard by uid."""
    boards = [overview(), unit_dashboard(), alerts_dashboard()]
    return {board["uid"]: board for board in boards}


def render(board: Json) -> str:
    """A dashboard as the committed file's text (stable: 2-space indent, key order as built, final newline)."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def file_name(uid: str) -> str:
    return f"{uid}.json"


def write_dashboards(directory: Path) -> list[Path]:
    """Write every dashboard as ``<uid>.json`` into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, board in build_dashboards().items():
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
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else Path("dashboards")
    for path in write_dashboards(directory):
        print(path)
    return 0
