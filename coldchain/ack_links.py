"""Acknowledge links: unguessable, expiring tokens bound to one alert and one recipient.

A token is ``<alert id>.<recipient>.<expiry epoch s>.<HMAC-SHA256>`` in URL-safe base64, signed
with ``api.link_secret``. It lets whoever holds the notification open a page for that alert only,
until it expires; the page still asks for a note and a disposition before acknowledging.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta


class LinkError(Exception):
    """The token is malformed, forged, for another alert, or expired."""


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
        if len(key) < 16:
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
            raise LinkError("link has expired")
        return claim
