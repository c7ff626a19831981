"""``coldchain users hash-password``: the argon2id hash of a signing password, for ``[[api.users]] password_hash``."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from coldchain.adapters.passwords import PasswordError, hash_password


def _read_password() -> str:
    """From a terminal: asked twice, never echoed. Otherwise: the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("signing password: ")
        if getpass.getpass("again: ") != first:
            raise PasswordError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_hash_password(args: argparse.Namespace) -> int:
    """Print the hash (exit 0), or why the password was refused (exit 1)."""
    try:
        print(hash_password(_read_password()))
    except PasswordError as exc:
        print(f"users hash-password: {exc}", file=sys.stderr)
        return 1
    return 0


def add_users_command(subparsers: Any) -> None:
    """``coldchain users hash-password``."""
    users = subparsers.add_parser("users", help="API users: make signing password hashes.", description=__doc__)
    actions = users.add_subparsers(dest="users_command", required=True)
    hashing = actions.add_parser(
        "hash-password",
        help="Read a signing password on stdin and print its argon2id hash.",
        description="Read a signing password on stdin (asked twice on a terminal) and print its argon2id hash "
        "for [[api.users]] password_hash. The password itself is never stored.",
    )
    hashing.set_defaults(func=cmd_hash_password)
