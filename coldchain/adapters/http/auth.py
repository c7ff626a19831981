"""Who is calling, whether their role allows it, and electronic signatures (CONTRACT §5, 21 CFR Part 11).

``Gatekeeper`` is the HTTP edge's one door:

- ``caller``: the bearer token's user, compared as SHA-256 digests in constant time against every
  configured user (``token`` or ``token_sha256``). Failed token checks are counted per client
  address; 10 in a row refuse that address for a minute (429 with ``Retry-After``), logged and counted.
- ``authorize``: the role table of ``core/access.py``; a call outside the caller's role is a 403,
  logged and counted, and changes nothing.
- ``sign``: a disposition is an electronic signature: the signer's signing password, checked
  against its argon2id hash (``adapters/passwords.py``). Missing: 401 with the reason; wrong: 401
  "signature failed"; 5 failures in a row lock that user's signing for 15 minutes (423, even with
  the right password). Every failure and every lockout is reported to ``security`` (the rules
  worker audits it; a lockout also raises the ``signing_locked`` alert, which notifies the admins).

The failure state machines (``core/lockout.py``) get ``now`` from the injected clock; their state
lives in this process (a restart forgets failures, never the audit records of them).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.passwords import hash_password, verify_password
from coldchain.config.api import ApiUser
from coldchain.core.access import Action, Caller, allowed, with_article
from coldchain.core.lockout import (
    SIGNING_FAILURES,
    SIGNING_LOCK,
    TOKEN_FAILURES,
    TOKEN_FORGET,
    TOKEN_LOCK,
    FailureLimiter,
)
from coldchain.core.signature import Signer
from coldchain.core.times import format_time

log = logging.getLogger("coldchain.api.auth")

SecuritySink = Callable[[str, str, dict[str, Any]], None]
"""``(action, user, details)``: ``signature_failed`` or ``signing_locked``, to be audited."""

SIGNATURE_FAILED = "signature failed"


class Refusal(Exception):
    """A call refused at the door: the status, the reason shown, the metric's label, extra headers."""

    def __init__(
        self, status: HTTPStatus, message: str, reason: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Gatekeeper:
    """Tokens, roles and signatures of the configured ``[[api.users]]``."""

    def __init__(
        self,
        users: Sequence[ApiUser],
        metrics: Metrics,
        clock: Callable[[], datetime] = _utc_now,
        security: SecuritySink | None = None,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.security = security
        self._tokens = [(user.token_digest, _caller_of(user)) for user in users]
        self._callers = {caller.name: caller for _, caller in self._tokens}
        self._hashes = {user.name: user.password_hash.get_secret_value() for user in users if user.can_sign}
        self.signing = FailureLimiter(SIGNING_FAILURES, SIGNING_LOCK)
        self.token_checks = FailureLimiter(TOKEN_FAILURES, TOKEN_LOCK, TOKEN_FORGET)
        self._decoy_hash: str | None = None
        self._lock = threading.Lock()  # requests arrive on many threads; the state machines are not thread-safe

    def _refuse(self, refusal: Refusal, text: str, **extra: Any) -> Refusal:
        self.metrics.api_refusals.labels(refusal.reason).inc()
        log.warning("refused: %s", text, extra={"status": int(refusal.status), "reason": refusal.reason, **extra})
        return refusal

    # -- who -------------------------------------------------------------------------------

    def caller(self, authorization: str, client: str) -> Caller | None:
        """The user whose bearer token ``authorization`` carries; None (401) when it names nobody.

        Raises ``Refusal`` (429) while ``client`` is throttled for failed token checks.
        """
        now = self.clock()
        with self._lock:
            until = self.token_checks.locked_until(client, now)
        if until is not None:
            wait = max(1, int((until - now).total_seconds() + 0.999))
            raise self._refuse(
                Refusal(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    f"too many failed token checks from this address: try again in {wait} s",
                    "rate_limited",
                    (("Retry-After", str(wait)),),
                ),
                f"{client} is throttled after failed token checks",
                client=client,
            )
        scheme, _, token = authorization.partition(" ")
        found: Caller | None = None
        if scheme.lower() == "bearer" and token.strip():
            given = hashlib.sha256(token.strip().encode()).digest()
            for digest, caller in self._tokens:  # every digest is compared: no early exit to time
                if hmac.compare_digest(given, digest) and found is None:
                    found = caller
        with self._lock:
            if found is not None:
                self.token_checks.succeeded(client)
                return found
            locked = self.token_checks.failed(client, now)
        self.metrics.api_refusals.labels("token").inc()
        log.warning("missing or wrong bearer token", extra={"client": client, "status": 401})
        if locked is not None:
            log.warning(
                "%s throttled after %d failed token checks in a row",
                client,
                TOKEN_FAILURES,
                extra={"client": client, "until": format_time(locked)},
            )
        return None

    def user(self, name: str) -> Caller | None:
        return self._callers.get(name)

    # -- what ------------------------------------------------------------------------------

    def authorize(self, caller: Caller, action: Action, what: str) -> None:
        """Refuse (403) what the caller's role does not allow; ``what`` says it in words."""
        if not allowed(caller.role, action):
            raise self._refuse(
                Refusal(
                    HTTPStatus.FORBIDDEN,
                    f"{caller.name} is {caller.role}: {with_article(caller.role)} may not {what}",
                    "forbidden",
                ),
                f"{caller.name} ({caller.role}) may not {action}",
                user=caller.name,
                role=caller.role,
                action=action,
            )

    # -- signatures ------------------------------------------------------------------------

    def sign(
        self, name: str, password: str | None, client: str, subject: str, action: Action = "sign_disposition"
    ) -> Signer:
        """The signer after checking ``name``'s signing password for a signature on ``subject``
        (``action``: what is signed, ``sign_disposition`` or ``sign_review``).

        Raises ``Refusal``: 401 missing or wrong (``signature failed``), 403 a role that may not sign,
        423 while the user's signing is locked.
        """
        now = self.clock()
        caller = self._callers.get(name)
        if caller is not None and not allowed(caller.role, action):
            what = "a disposition" if action == "sign_disposition" else "a review"
            raise self._refuse(
                Refusal(
                    HTTPStatus.FORBIDDEN,
                    f"{name} is {caller.role}: {with_article(caller.role)} may not sign {what}",
                    "forbidden",
                ),
                f"{name} ({caller.role}) may not sign",
                user=name,
                subject=subject,
            )
        if caller is not None and name not in self._hashes:
            raise self._refuse(
                Refusal(
                    HTTPStatus.UNAUTHORIZED,
                    f"{name} has no signing password (password_hash): ask an admin to set one; "
                    "without it you can acknowledge but not set a disposition",
                    "cannot_sign",
                ),
                f"{name} cannot sign: no password_hash",
                user=name,
                subject=subject,
            )
        if not password:
            raise self._refuse(
                Refusal(
                    HTTPStatus.UNAUTHORIZED,
                    "signature missing: a disposition or a review is an electronic signature: "
                    'send "signature": {"password": "<your signing password>"}',
                    "signature_missing",
                ),
                f"signature missing for {name}",
                user=name,
                subject=subject,
            )
        with self._lock:
            until = self.signing.locked_until(name, now)
        if until is not None:
            raise self._refuse(
                Refusal(
                    HTTPStatus.LOCKED,
                    f"signing is locked for {name} until {format_time(until)} after {SIGNING_FAILURES} failed "
                    "signatures in a row",
                    "signature_locked",
                ),
                f"signing locked for {name}",
                user=name,
                subject=subject,
            )
        hashed = self._hashes.get(name)
        if hashed is None:  # an unknown signer costs the same time as a wrong password: names are not probed
            verify_password(self._decoy(), password)
        elif verify_password(hashed, password):
            with self._lock:
                self.signing.succeeded(name)
            assert caller is not None  # a hash is configured only for known users
            return Signer(caller.name, caller.printed_name)
        with self._lock:
            locked = self.signing.failed(name, now) if caller is not None else None
            failures = self.signing.failures(name, now)
        details = {
            "subject": subject,
            "client": client,
            "failures_in_a_row": failures,
            "known_user": caller is not None,
        }
        self._report("signature_failed", name, details)
        message = SIGNATURE_FAILED
        if locked is not None:
            message += f"; signing is now locked for {name} until {format_time(locked)}"
            self._report("signing_locked", name, {**details, "until": format_time(locked)})
        raise self._refuse(
            Refusal(HTTPStatus.UNAUTHORIZED, message, "signature_failed"),
            f"signature failed for {name}",
            user=name,
            subject=subject,
            client=client,
        )

    def _decoy(self) -> str:
        if self._decoy_hash is None:
            self._decoy_hash = hash_password(secrets.token_urlsafe(16))
        return self._decoy_hash

    def _report(self, action: str, name: str, details: dict[str, Any]) -> None:
        if self.security is None:
            log.error("no audit trail in this process: %s of %s is only logged", action, name, extra=details)
            return
        try:
            self.security(action, name, details)
        except Exception:  # the refusal stands; the failure to audit it is loud
            log.exception("could not audit %s of %s", action, name)


def _caller_of(user: ApiUser) -> Caller:
    return Caller(user.name, user.full_name, user.role, user.can_sign)
