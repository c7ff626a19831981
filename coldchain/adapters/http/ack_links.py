"""Acknowledge links: unguessable, expiring tokens bound to one alert and one recipient.

A token is ``<alert id>.<recipient>.<expiry epoch s>.<HMAC-SHA256>`` in URL-safe base64, signed
with ``api.link_secret``, or, when none is configured, with a random key kept next to the
notification outbox (``load_link_key``) so links stay valid across restarts. It lets whoever holds
the notification open a page for that alert only, until it expires; the page (``ack_page.py``)
still asks for a note and a disposition before acknowledging.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from coldchain.config import ApiConfig

log = logging.getLogger("coldchain.ack_links")

KEY_FILE = "coldchain-link.key"
KEY_BYTES = 32
MIN_KEY_BYTES = 16


class LinkError(Exception):
    """The token is malformed, forged, for another alert, or expired."""


class LinkExpired(LinkError):
    """The token is genuine but its time is up."""


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a valid token says."""

    alert_id: str
    recipient: str
    expires: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Issues and checks tokens with one key."""

    def __init__(self, key: bytes, valid_for: timedelta) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError("the link key needs at least 16 bytes")
        self._key = key
        self.valid_for = valid_for

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"coldchain-ack-link\x00" + body, hashlib.sha256).digest()

    def issue(self, alert_id: str, recipient: str, now: datetime) -> str:
        """A token for ``alert_id`` sent to ``recipient``, valid from ``now`` for ``valid_for``."""
        expires = int((now + self.valid_for).timestamp())
        body = json.dumps([alert_id, recipient, expires], separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def check(self, token: str, now: datetime, alert_id: str | None = None) -> LinkClaim:
        """The claim of a genuine, unexpired token (for ``alert_id`` when given); LinkError otherwise."""
        try:
            body_text, mac_text = token.split(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError as exc:
            raise LinkError("malformed link") from exc
        if not hmac.compare_digest(mac, self._mac(body)):
            raise LinkError("link signature does not match")
        claim_id, recipient, expires = json.loads(body)
        claim = LinkClaim(str(claim_id), str(recipient), datetime.fromtimestamp(int(expires), tz=now.tzinfo))
        if alert_id is not None and not hmac.compare_digest(claim.alert_id, alert_id):
            raise LinkError("link is for another alert")
        if now >= claim.expires:
            raise LinkExpired("link has expired")
        return claim


def load_link_key(api: ApiConfig, state_dir: Path) -> bytes:
    """The key signing acknowledge links: ``api.link_secret`` when set, else ``<state_dir>/coldchain-link.key``.

    The file holds 32 random bytes, created once with mode 0600 (atomically: written to a temporary
    file, then linked into place, so two processes starting together agree on one key) and reused
    after restarts so links already sent keep working. ValueError when the configured secret is
    shorter than 16 bytes or the file is not a key this function wrote.
    """
    configured = api.link_secret.get_secret_value()
    if configured:
        key = configured.encode()
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"api.link_secret must be at least {MIN_KEY_BYTES} bytes long (it has {len(key)})")
        return key
    path = state_dir / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # fails if another process got there first: then its key wins
            log.info("created the acknowledge link key", extra={"path": str(path)})
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(state_dir)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    with path.open("rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        key = file.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte link key; remove it to create a new one "
            "(links already sent then stop working) or set api.link_secret"
        )
    if stat.S_IMODE(mode) & 0o077:
        log.warning("the acknowledge link key is readable by others; chmod 600 it", extra={"path": str(path)})
    return key


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
