"""``coldchain dashboards push``: upload the dashboards to an existing Grafana (grafana-client).

The Grafana edge: authenticate with a service-account token (``Authorization: Bearer``) or a user and
password (basic auth), find the folder by title or create it, then save each dashboard with
``POST /api/dashboards/db`` (``overwrite`` on, ``id`` null, so the fixed uid decides which dashboard is
replaced). grafana-client's exceptions stop here and come out as ``GrafanaPushError``.

Wire it into the command line with ``add_dashboards_command(subparsers)``. grafana-client is the optional
dependency ``coldchain[grafana]``: it is imported only when a push runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from coldchain import __version__

if TYPE_CHECKING:
    from grafana_client import GrafanaApi

DEFAULT_TIMEOUT = 10.0
GENERAL_FOLDER = ""
"""Grafana's root ("General" / "Dashboards") has the empty folder uid."""


class GrafanaPushError(Exception):
    """Grafana refused, or could not be reached; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Pushed:
    """A dashboard Grafana saved: its uid, where it lives, its new version."""

    uid: str
    title: str
    url: str
    version: int


def folder_uid_for(title: str) -> str:
    """The uid we give a folder we create: its title in lower case, runs of other characters as ``-``."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:40] or "coldchain"


@contextmanager
def _as_push_error(what: str) -> Iterator[None]:
    """Re-raise grafana-client's and niquests' errors as ``GrafanaPushError`` naming ``what`` failed."""
    from grafana_client.client import GrafanaException

    try:
        yield
    except GrafanaException as exc:
        status = exc.status_code
        message = exc.message or type(exc).__name__
        raise GrafanaPushError(f"{what}: HTTP {status}: {message}" if status else f"{what}: {message}") from exc
    except ValueError as exc:  # a 2xx answer that is not JSON (a proxy's page, say)
        raise GrafanaPushError(f"{what}: Grafana's answer is not JSON: {exc}") from exc
    except OSError as exc:  # connection refused, DNS, TLS: niquests' errors are OSErrors
        raise GrafanaPushError(f"{what}: cannot reach Grafana: {exc}") from exc


def connect(
    url: str,
    *,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> GrafanaApi:
    """A grafana-client API object for ``url`` (nothing is sent yet)."""
    try:
        from grafana_client import GrafanaApi
    except ImportError as exc:  # an optional dependency: the services' image goes without it
        raise GrafanaPushError("grafana-client is not installed: pip install 'coldchain[grafana]'") from exc

    parts = urlsplit(url)
    if not parts.path.endswith("/"):  # grafana-client appends "api" to the path: /grafana -> /grafana/api
        url = urlunsplit(parts._replace(path=parts.path + "/"))
    credential: str | tuple[str, str] | None
    if token:
        credential = token
    elif user:
        credential = (user, password or "")
    else:
        credential = None
    api: GrafanaApi = GrafanaApi.from_url(url, credential=credential, timeout=timeout)
    return api


def ensure_folder(api: GrafanaApi, title: str) -> str:
    """The uid of the folder titled ``title``, created if Grafana has none; ``""`` for no title."""
    if not title:
        return GENERAL_FOLDER
    with _as_push_error(f"folder {title!r}"):
        folders: list[dict[str, Any]] = api.folder.get_all_folders()
        for folder in folders:
            if folder.get("title") == title:
                return str(folder["uid"])
        created: dict[str, Any] = api.folder.create_folder(title, uid=folder_uid_for(title))
    return str(created["uid"])


def push_dashboards(
    api: GrafanaApi,
    dashboards: Iterable[dict[str, Any]],
    *,
    folder_uid: str = GENERAL_FOLDER,
    message: str = f"coldchain {__version__}: dashboards push",
) -> list[Pushed]:
    """Save each dashboard into the folder, replacing the one with the same uid; what Grafana answered."""
    pushed = []
    for board in dashboards:
        body = {
            "dashboard": {**board, "id": None},
            "folderUid": folder_uid,
            "overwrite": True,
            "message": message,
        }
        with _as_push_error(f"dashboard {board['uid']!r}"):
            answer: dict[str, Any] = api.dashboard.update_dashboard(body)
        pushed.append(
            Pushed(
                uid=str(answer.get("uid", board["uid"])),
                title=str(board["title"]),
                url=str(answer.get("url", "")),
                version=int(answer.get("version", 0)),
            )
        )
    return pushed


# -- command line ---------------------------------------------------------------------------
