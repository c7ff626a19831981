"""``coldchain users hash-password``: a signing password on stdin becomes an argon2id hash the configuration accepts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from coldchain.adapters.passwords import verify_password
from coldchain.config.api import ApiUser


def hash_password_cli(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", "users", "hash-password"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_printed_hash_verifies_the_password_and_loads_as_password_hash() -> None:
    """The hash of the first stdin line verifies that password (not another) and is a valid password_hash."""
    done = hash_password_cli("correct horse battery\n")
    assert done.returncode == 0, done.stderr
    hashed = done.stdout.strip()
    assert hashed.startswith("$argon2id$") and "correct horse" not in done.stdout
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "correct horse battery\n") and not verify_password(hashed, "wrong")
    assert ApiUser(name="j.doe", token="token-of-j-doe", password_hash=hashed).can_sign


def test_a_short_password_is_refused_with_the_reason() -> None:
    """Fewer than 8 characters: exit 1, nothing on stdout, the reason on stderr."""
    done = hash_password_cli("short\n")
    assert done.returncode == 1 and done.stdout == ""
    assert "at least 8 characters" in done.stderr


def test_a_password_hash_that_is_not_argon2_is_a_configuration_error() -> None:
    """A plain password or another hash put into password_hash fails at load, naming the user."""
    with pytest.raises(ValidationError, match=r"j\.doe.*not an argon2 hash"):
        ApiUser(name="j.doe", token="token-of-j-doe", password_hash="hunter2hunter2")
