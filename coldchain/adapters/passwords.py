"""Signing passwords: argon2id hashes (argon2-cffi), made by ``coldchain users hash-password``, checked at the edge.

Only the hash is configured (``password_hash``). ``verify`` answers True or False and never raises
for a wrong password; a hash argon2 cannot read is a ``PasswordError`` (the configuration checks
hashes at load, so that means a bug or a damaged file). Hashing costs the argon2-cffi defaults
(RFC 9106 low-memory profile: 64 MiB, 3 passes, 4 lanes): one check took about 0.2 s on the shared
2-core development machine, slow for an attacker with a stolen hash, unnoticeable for a person signing.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD = 8
"""The shortest signing password ``hash_password`` accepts."""

_hasher = PasswordHasher()


class PasswordError(Exception):
    """A password that cannot be hashed, or a hash that cannot be read."""


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (a fresh salt each time)."""
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"a signing password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    """Whether ``password`` is the one ``hashed`` was made from."""
    try:
        return _hasher.verify(hashed, password)
    except VerificationError:  # the mismatch, or a hash whose check failed
        return False
    except InvalidHashError as exc:
        raise PasswordError(f"unreadable password hash: {exc}") from exc
