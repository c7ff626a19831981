"""Ed25519 signatures of export manifests: only the holder of the private key signs; anyone verifies.

The private key is ``export.private_key_file`` (PEM, PKCS#8) or ``coldchain-export-ed25519.pem``
in the state directory, created once. The manifest names its signer (``signer``: the public key and
its fingerprint, covered by the signature); ``report.pdf`` prints the fingerprint on its first page
and ``GET /api/keys/export`` serves the public key, so an inspector can pin it once and check every
export against it (``coldchain export verify DIR --public-key F``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from coldchain.adapters.key_files import load_or_create, read_key
from coldchain.config import Settings

KEY_FILE = "coldchain-export-ed25519.pem"
ALGORITHM = "Ed25519"


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public: Ed25519PublicKey) -> str:
    """``SHA256:`` and the first 16 bytes of the SHA-256 of the raw public key, in groups of four hex digits."""
    digest = hashlib.sha256(_raw(public)).hexdigest()[:32]
    return "SHA256:" + " ".join(digest[i : i + 4] for i in range(0, 32, 4))


@dataclass(frozen=True, slots=True)
class ManifestSigner:
    """The export signing key."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def describe(self) -> dict[str, str]:
        """The public key as the manifest and ``GET /api/keys/export`` give it."""
        pem = self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {
            "algorithm": ALGORITHM,
            "public_key": base64.b64encode(_raw(self.public)).decode(),
            "fingerprint": self.fingerprint,
            "public_key_pem": pem.decode(),
        }

    def sign(self, body: bytes) -> dict[str, str]:
        """The manifest's ``signature`` object over ``body`` (its canonical bytes)."""
        value = base64.b64encode(self.private.sign(body)).decode()
        return {"algorithm": ALGORITHM, "key_id": self.fingerprint, "value": value}


def _new_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_signer(settings: Settings) -> ManifestSigner:
    """The configured key, or the one created once under the state directory. ValueError when unusable."""
    configured = settings.export.private_key_file
    path = configured if configured is not None else settings.rules.state_dir / KEY_FILE
    what = "export signing key (Ed25519)"
    try:
        pem = read_key(path, what) if configured is not None else load_or_create(path, _new_pem, what)
    except OSError as exc:
        raise ValueError(f"cannot read the export signing key {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return ManifestSigner(key)


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """A trusted public key from what an inspector saved: ``GET /api/keys/export``'s JSON, a PEM file, or the
    base64 of the raw 32 bytes. ValueError when it is none of those."""
    text = data.strip()
    if text.startswith(b"{"):
        try:
            text = str(json.loads(text)["public_key_pem"]).encode()
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError("JSON without public_key_pem") from exc
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(text)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ValueError("neither PEM nor base64") from exc
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True, slots=True)
class Trust:
    """What a manifest's Ed25519 signature establishes: ``ok`` (signed by the trusted key), ``bad`` (altered
    or signed by another key than the trusted one) or ``unknown`` (no trusted key to compare with)."""

    verdict: str
    message: str


def check(manifest: Mapping[str, Any], body: bytes, trusted: Ed25519PublicKey | None) -> Trust:
    """Check the ``signature`` of ``manifest`` (whose canonical bytes are ``body``) against ``trusted``."""
    sig = manifest.get("signature")
    signer = manifest.get("signer")
    try:
        value = base64.b64decode(str(sig["value"]), validate=True)  # type: ignore[index]
        embedded = Ed25519PublicKey.from_public_bytes(base64.b64decode(str(signer["public_key"]), validate=True))  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return Trust("bad", "manifest.json: Ed25519 signature or signer malformed")
    key = trusted if trusted is not None else embedded
    try:
        key.verify(value, body)
    except InvalidSignature:
        if trusted is not None and _raw(trusted) != _raw(embedded):
            return Trust("bad", f"manifest.json: NOT SIGNED BY THE TRUSTED KEY (signed as {fingerprint(embedded)})")
        return Trust("bad", "manifest.json: SIGNATURE DOES NOT MATCH (the manifest was edited)")
    if trusted is None:
        return Trust(
            "unknown",
            f"signature valid for the key the manifest carries ({fingerprint(embedded)}), but no trusted key was"
            " given: compare that fingerprint with GET /api/keys/export, or pass --public-key",
        )
    return Trust("ok", f"signature valid (Ed25519, trusted key {fingerprint(trusted)})")


def public_key_file(path: Path) -> Ed25519PublicKey:
    """``load_public_key`` of a file, ValueError naming the file."""
    try:
        return load_public_key(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ValueError(f"{path} holds no Ed25519 public key ({exc})") from exc
