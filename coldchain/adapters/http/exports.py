"""``GET /api/exports``: the audit export of ``coldchain export`` (``reporting/export.py``), zipped for download.

The query is ``from``, ``to`` (``YYYY-MM-DD`` or RFC 3339, as the command takes them), optional
``site``, ``unit`` and ``format`` (default ``csv,pdf``). The export is written into a temporary
directory, zipped under one folder named for the period (``coldchain-export-<from>-<to>/``) and the
directory removed; the zip holds the same files, manifest and signature as the command's directory,
so ``coldchain export verify`` checks it once unzipped.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from datetime import datetime
from io import BytesIO
from pathlib import Path

from coldchain.adapters.store.port import Store, StoreError
from coldchain.config import Settings
from coldchain.reporting.export import run_export
from coldchain.reporting.request import ExportError, typed_request

_SAFE = re.compile(r"[^0-9A-Za-z_.-]+")


class ExportRefused(Exception):
    """The export cannot be made as asked: the HTTP status and the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ExportRefused(400, f"{name} is given more than once")
    return values[0]


def export_zip(store: Store, settings: Settings, query: dict[str, list[str]], now: datetime) -> tuple[bytes, str]:
    """The zip's bytes and its file name; ``ExportRefused`` 400 for a wrong query, 404 without data."""
    from_text, to_text = _one(query, "from"), _one(query, "to")
    if not from_text or not to_text:
        raise ExportRefused(400, "from and to are required (YYYY-MM-DD or RFC 3339)")
    name = _SAFE.sub("_", f"coldchain-export-{from_text}-{to_text}")
    with tempfile.TemporaryDirectory(prefix="coldchain-export-") as tmp:
        out = Path(tmp) / name
        site, unit, format_text = _one(query, "site"), _one(query, "unit"), _one(query, "format")
        try:
            request = typed_request(settings, from_text, to_text, out, site, unit, format_text)
        except ValueError as exc:
            raise ExportRefused(400, str(exc)) from None
        try:
            run_export(store, settings, request, now)
        except ExportError as exc:
            raise ExportRefused(400 if exc.code == 2 else 404, str(exc)) from None
        except StoreError as exc:
            raise ExportRefused(503, f"cannot read the store: {exc}") from None
        buffer = BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.iterdir()):
                archive.write(path, f"{name}/{path.name}")
    return buffer.getvalue(), f"{name}.zip"
