"""``coldchain export verify``'s check: every file against the manifest, the signature, the audit chain in audit.csv.

The outcome has three levels (the command's exit codes): ``ok`` (0) when every file matches and the
signature checks against a trusted key; ``problems`` (1) when anything is altered, missing, extra or
badly signed; ``untrusted`` (2) when the files are intact but trust could not be established: the
export is unsigned, or no trusted key was given to check its signature with (``trust_note`` says which).
Exports signed with the legacy HMAC-SHA256 are checked with the configured ``export.signing_key``.
"""

from __future__ import annotations

import csv
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coldchain.core.audit_chain import event_from_row, verify_chain
from coldchain.core.records import AuditEvent
from coldchain.reporting.manifest import MANIFEST, canonical_manifest, key_id, sha256_file, signature
from coldchain.reporting.signing import ALGORITHM, check
from coldchain.reporting.tables import csv_value


@dataclass(slots=True)
class Verification:
    """What ``verify_export`` found: problems make it fail; notes are said either way."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0
    trusted: bool = False
    """The signature checked against a trusted key."""
    trust_note: str = ""
    """Why trust could not be established (unsigned, no trusted key), when it could not."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        """0 intact and trusted, 1 altered, missing, extra or badly signed, 2 intact but not trusted."""
        if self.problems:
            return 1
        return 0 if self.trusted else 2


def verify_export(directory: Path, key: bytes | None, public_key: Ed25519PublicKey | None = None) -> Verification:
    """Recompute every file's SHA-256 against ``manifest.json``, name altered, missing and extra files,
    check the signature (Ed25519 against ``public_key``; legacy HMAC with ``key``), and walk ``audit.csv``'s
    hash chain."""
    result = Verification()
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        result.problems.append(f"{MANIFEST}: missing (is {directory} an export?)")
        return result
    except (OSError, ValueError) as exc:
        result.problems.append(f"{MANIFEST}: unreadable ({exc})")
        return result
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict):
        result.problems.append(f"{MANIFEST}: has no file list")
        return result
    for name, entry in sorted(listed.items()):
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", "..", MANIFEST):
            result.problems.append(f"{MANIFEST}: lists an invalid file name {name!r}")
            continue
        path = directory / name
        if not path.is_file():
            result.problems.append(f"{name}: MISSING")
            continue
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if sha256_file(path) != expected:
            result.problems.append(f"{name}: ALTERED (its SHA-256 differs from the manifest)")
        else:
            result.files += 1
    for path in sorted(directory.iterdir()):
        if path.name != MANIFEST and path.name not in listed:
            result.problems.append(f"{path.name}: EXTRA (not in the manifest)")
    _check_signature(result, manifest, key, public_key)
    audit_csv = directory / "audit.csv"
    if audit_csv.is_file():
        problem = verify_chain(_audit_events(audit_csv))
        if problem is not None:
            result.problems.append(f"audit.csv: hash chain BROKEN at {problem}")
        else:
            result.notes.append("audit.csv: hash chain intact")
    return result


def _check_signature(
    result: Verification, manifest: dict[str, Any], key: bytes | None, public_key: Ed25519PublicKey | None
) -> None:
    sig = manifest.get("signature")
    algorithm = sig.get("algorithm") if isinstance(sig, dict) else None
    if sig is None:
        result.trust_note = "UNSIGNED: nothing shows who made this export"
    elif algorithm == ALGORITHM:
        trust = check(manifest, canonical_manifest(manifest), public_key)
        if trust.verdict == "bad":
            result.problems.append(trust.message)
        elif trust.verdict == "unknown":
            result.trust_note = trust.message
        else:
            result.trusted = True
            result.notes.append(trust.message)
    elif algorithm != "HMAC-SHA256":
        result.problems.append(f"{MANIFEST}: unknown signature format")
    elif not key:
        result.trust_note = (
            f"signed with HMAC-SHA256 (key id {sig.get('key_id', '?')}), but no export.signing_key is configured"
            " to check it"
        )
    elif not hmac.compare_digest(str(sig.get("value", "")), signature(manifest, key)["value"]):
        why = "another key signed it" if sig.get("key_id") != key_id(key) else "the manifest was edited"
        result.problems.append(f"{MANIFEST}: SIGNATURE DOES NOT MATCH ({why})")
    else:
        result.trusted = True
        result.notes.append(f"signature valid (legacy HMAC-SHA256, key id {sig.get('key_id')})")


def _audit_events(path: Path) -> Iterator[AuditEvent]:
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield event_from_row({key: csv_value(value or "") for key, value in row.items()})
