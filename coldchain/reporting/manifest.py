"""An export's manifest: every file's SHA-256, what was exported, and its signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


MANIFEST_FORMAT = "coldchain-export/1"


def sha256_file(path: Path) -> str:
    """The SHA-256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes the signature covers: the manifest without ``signature``, as canonical JSON."""
    body = {key: value for key, value in manifest.items() if key != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_id(key: bytes) -> str:
    """A short public name of a signing key (the start of its SHA-256), to tell keys apart."""
    return hashlib.sha256(key).hexdigest()[:16]


def signature(manifest: Mapping[str, Any], key: bytes) -> dict[str, str]:
    """The ``signature`` object: HMAC-SHA256 over ``canonical_manifest``."""
    mac = hmac.new(key, canonical_manifest(manifest), hashlib.sha256).hexdigest()
    return {"algorithm": "HMAC-SHA256", "key_id": key_id(key), "value": mac}
