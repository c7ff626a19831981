"""Secret keys kept in files: read a configured one, or create one once under the state directory.

A created key is written with mode 0600 to a temporary file, fsynced, then linked into place, so two
processes starting together agree on one key (the second one's link fails and it reads the first's);
it is reused after every restart. The store's credentials never give these files: whoever can rewrite
the database still cannot recompute a MAC or forge a signature made with them.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("coldchain.keys")


def load_or_create(path: Path, make: Callable[[], bytes], what: str) -> bytes:
    """The bytes of ``path``; when it does not exist, ``make()`` written there first (mode 0600, atomically)."""
    try:
        return read_key(path, what)
    except FileNotFoundError:
        pass
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(make())
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # fails if another process got there first: then its key wins
            log.info("created the %s; keep a copy of it safe", what, extra={"path": str(path)})
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return read_key(path, what)


def read_key(path: Path, what: str) -> bytes:
    """The bytes of a key file (FileNotFoundError when absent); warns when others may read it."""
    with path.open("rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        data = file.read(1 << 16)
    if stat.S_IMODE(mode) & 0o077:
        log.warning("the %s is readable by others; chmod 600 it", what, extra={"path": str(path)})
    return data
