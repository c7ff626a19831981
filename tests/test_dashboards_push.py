"""``coldchain dashboards push`` against a local HTTP server that answers as Grafana's HTTP API documents.

The fake Grafana (stdlib ``http.server`` on 127.0.0.1:0) serves the three endpoints the command uses and
checks each request the way Grafana would: ``Authorization: Bearer <service account token>`` or basic
auth (401 otherwise), ``Content-Type: application/json`` on bodies (400 otherwise), and the documented
fields of ``POST /api/folders`` (title, optional uid) and ``POST /api/dashboards/db`` (dashboard with a
title, a null id and a valid uid; folderUid of an existing folder or "" for the root; overwrite;
message), answering with the documented bodies (``id``, ``uid``, ``url``, ``status``, ``version``,
``slug``) or errors (``{"message": …}``).
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from coldchain.cli.dashboards import main
from coldchain.dashboards.build import build_dashboards
from coldchain.dashboards.parts import DATASOURCE_UID
from coldchain.dashboards.push import folder_uid_for
from tests.servers import free_ports

TOKEN = "glsa_coldchain_test_token_1234"
USER, PASSWORD = "admin", "s3cret pass:word"
UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGrafana:
    """What the fake Grafana holds and what it was asked."""

    folders: dict[str, str] = field(default_factory=dict)
    """uid -> title"""
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    """uid -> {"dashboard", "folderUid", "version", "id", "message"}"""
    forbidden: set[str] = field(default_factory=set)
    """dashboard uids this user may not save (403)"""
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    prefix: str = ""
    """the sub-path Grafana is served under (root_url with serve_from_sub_path), e.g. /grafana"""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def authorized(self, header: str | None) -> bool:
        if header == f"Bearer {TOKEN}":
            return True
        if header and header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (user, password) == (USER, PASSWORD)
        return False

    def handle(self, request: Request) -> tuple[int, Any]:
        """Grafana's answer to one request: (status, JSON body)."""
        with self.lock:
            self.requests.append(request)
            if not self.authorized(request.headers.get("authorization")):
                return 401, {"message": "Unauthorized"}
            if request.method == "POST" and not request.headers.get("content-type", "").startswith("application/json"):
                return 400, {"message": "bad request data: Content-Type must be application/json"}
            path = request.path.split("?")[0]
            if not path.startswith(f"{self.prefix}/api/"):
                return 404, {"message": "Not found"}
            route = (request.method, path.removeprefix(self.prefix))
            if route == ("GET", "/api/folders"):
                return 200, [{"id": i + 1, "uid": uid, "title": t} for i, (uid, t) in enumerate(self.folders.items())]
            if route == ("POST", "/api/folders"):
                return self.create_folder(request.body)
            if route == ("POST", "/api/dashboards/db"):
                return self.save_dashboard(request.body)
            return 404, {"message": "Not found"}

    def create_folder(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"]:
            return 400, {"message": "folder title cannot be empty"}
        uid = body.get("uid") or f"auto{len(self.folders)}"
        if not UID.match(uid):
            return 400, {"message": "uid contains illegal characters"}
        if uid in self.folders or body["title"] in self.folders.values():
            return 409, {"message": "a folder with the same name or uid already exists"}
        self.folders[uid] = body["title"]
        slug = re.sub(r"[^a-z0-9]+", "-", body["title"].lower()).strip("-")
        return 200, {"id": len(self.folders), "uid": uid, "title": body["title"], "url": f"/dashboards/f/{uid}/{slug}"}

    def save_dashboard(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            return 400, {"message": "bad request data: dashboard is required"}
        board = body["dashboard"]
        if not isinstance(board.get("title"), str) or not board["title"].strip():
            return 400, {"message": "Dashboard title cannot be empty", "status": "empty-name"}
        uid = board.get("uid")
        if not isinstance(uid, str) or not UID.match(uid):
            return 400, {"message": "uid contains illegal characters", "status": "bad-uid"}
        if board.get("id") is not None and all(d["id"] != board["id"] for d in self.dashboards.values()):
            return 404, {"message": "Dashboard not found", "status": "not-found"}
        folder_uid = body.get("folderUid", "")
        if folder_uid and folder_uid not in self.folders:
            return 400, {"message": "folder not found", "status": "folder-not-found"}
        if not isinstance(body.get("overwrite", False), bool) or not isinstance(body.get("message", ""), str):
            return 400, {"message": "bad request data"}
        if uid in self.forbidden:
            return 403, {"message": "Access denied to save dashboard"}
        existing = self.dashboards.get(uid)
        if existing is not None and not body.get("overwrite"):
            return 412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
        version = existing["version"] + 1 if existing else 1
        dashboard_id = existing["id"] if existing else len(self.dashboards) + 1
        self.dashboards[uid] = {
            "dashboard": board,
            "folderUid": folder_uid,
            "version": version,
            "id": dashboard_id,
            "message": body.get("message", ""),
        }
        slug = re.sub(r"[^a-z0-9]+", "-", board["title"].lower()).strip("-")
        return 200, {
            "id": dashboard_id,
            "uid": uid,
            "url": f"/d/{uid}/{slug}",
            "status": "success",
            "version": version,
            "slug": slug,
        }


def handler_for(grafana: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, answer = 400, {"message": "bad request data: invalid JSON"}
            else:
                headers = {key.lower(): value for key, value in self.headers.items()}
                status, answer = grafana.handle(Request(self.command, self.path, headers, body))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    """A fake Grafana on a free loopback port, stopped after the test."""
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-grafana", daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture(autouse=True)
def _no_grafana_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    monkeypatch.delenv("GRAFANA_PASSWORD", raising=False)


def saves(grafana: FakeGrafana) -> list[Request]:
    return [r for r in grafana.requests if (r.method, r.path) == ("POST", "/api/dashboards/db")]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_grafana_under_a_sub_path(grafana: FakeGrafana, suffix: str) -> None:
    """A Grafana served under /grafana is reached at /grafana/api/…, with or without a trailing slash."""
    grafana.prefix = "/grafana"
    assert main(["push", "--grafana-url", f"{grafana.url}/grafana{suffix}", "--token", TOKEN]) == 0
    assert {r.path for r in grafana.requests} == {"/grafana/api/dashboards/db"}
    assert len(grafana.dashboards) == 3


def test_push_with_a_token_creates_the_folder_and_saves_every_dashboard(
    grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service account token is sent as Bearer; the missing folder is created; each dashboard is POSTed."""
    code = main(["push", "--grafana-url", grafana.url, "--token", TOKEN, "--folder", "Cold chain"])
    assert code == 0, capsys.readouterr().err
    assert [(r.method, r.path) for r in grafana.requests[:2]] == [("GET", "/api/folders"), ("POST", "/api/folders")]
    assert grafana.requests[1].body == {"title": "Cold chain", "uid": "cold-chain"}
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in grafana.requests)
    expected = build_dashboards()
    assert sorted(grafana.dashboards) == sorted(expected)
    for request in saves(grafana):
        assert request.headers["content-type"].startswith("application/json")
        body = request.body
        assert body["folderUid"] == "cold-chain" and body["overwrite"] is True
        assert body["message"].startswith("coldchain ")
        board = body["dashboard"]
        assert board["id"] is None
        assert board == {**expected[board["uid"]], "id": None}
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert "coldchain-overview version 1: Cold chain — overview at /d/coldchain-overview/" in "\n".join(out)


def test_pushing_again_replaces_by_uid_in_the_existing_folder(
    grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second push finds the folder by its title and overwrites each dashboard (version 2, same id)."""
    grafana.folders["abc123"] = "Pharmacy"
    args = ["push", "--grafana-url", grafana.url, "--token", TOKEN, "--folder", "Pharmacy"]
    assert main(args) == 0
    ids = {uid: saved["id"] for uid, saved in grafana.dashboards.items()}
    grafana.requests.clear()
    assert main(args) == 0
    assert [(r.method, r.path) for r in grafana.requests].count(("POST", "/api/folders")) == 0
    assert {uid: saved["version"] for uid, saved in grafana.dashboards.items()} == dict.fromkeys(ids, 2)
    assert {uid: saved["id"] for uid, saved in grafana.dashboards.items()} == ids
    assert {saved["folderUid"] for saved in grafana.dashboards.values()} == {"abc123"}
    assert "version 2" in capsys.readouterr().out


def test_push_with_user_and_password_into_the_root_folder(grafana: FakeGrafana) -> None:
    """--user/--password go as basic auth; without --folder the dashboards land in the root (folderUid "")."""
    assert main(["push", "--grafana-url", grafana.url, "--user", USER, "--password", PASSWORD]) == 0
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert grafana.requests and all(r.headers["authorization"] == expected for r in grafana.requests)
    assert [r.path for r in grafana.requests] == ["/api/dashboards/db"] * 3  # no folder lookups
    assert {saved["folderUid"] for saved in grafana.dashboards.values()} == {""}


def test_credentials_can_come_from_the_environment(grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch) -> None:
    """GRAFANA_TOKEN (or GRAFANA_PASSWORD with --user) keeps secrets off the command line."""
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert main(["push", "--grafana-url", grafana.url]) == 0
    assert grafana.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    monkeypatch.delenv("GRAFANA_TOKEN")
    monkeypatch.setenv("GRAFANA_PASSWORD", PASSWORD)
    assert main(["push", "--grafana-url", grafana.url, "--user", USER]) == 0
    assert grafana.requests[-1].headers["authorization"].startswith("Basic ")


def test_datasource_uid_is_rewritten(grafana: FakeGrafana) -> None:
    """--datasource-uid points every query at that Grafana's own InfluxDB datasource."""
    assert main(["push", "--grafana-url", grafana.url, "--token", TOKEN, "--datasource-uid", "influx-prod"]) == 0
    text = json.dumps([saved["dashboard"] for saved in grafana.dashboards.values()])
    assert '"uid": "influx-prod"' in text and DATASOURCE_UID not in text


def test_timezone_sets_the_unit_dashboards_days(grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]) -> None:
    """--timezone gives the unit dashboard the site's zone and local days; an unknown zone is refused (exit 2)."""
    assert main(["push", "--grafana-url", grafana.url, "--token", TOKEN, "--timezone", "America/New_York"]) == 0
    zones = {uid: saved["dashboard"]["timezone"] for uid, saved in grafana.dashboards.items()}
    assert zones == {"coldchain-overview": "utc", "coldchain-unit": "America/New_York", "coldchain-alerts": "utc"}
    assert "tz('America/New_York')" in json.dumps(grafana.dashboards["coldchain-unit"]["dashboard"])
    with pytest.raises(SystemExit) as exit_info:
        main(["push", "--grafana-url", grafana.url, "--token", TOKEN, "--timezone", "Mars/Olympus"])
    assert exit_info.value.code == 2 and "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err


def test_a_wrong_token_is_reported(grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]) -> None:
    """Grafana's 401 ends the push with exit 1 and says so; nothing is saved."""
    assert main(["push", "--grafana-url", grafana.url, "--token", "glsa_wrong", "--folder", "Cold chain"]) == 1
    err = capsys.readouterr().err
    assert "push failed" in err and "HTTP 401" in err and "Cold chain" in err
    assert grafana.dashboards == {}


def test_a_refused_dashboard_is_named(grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]) -> None:
    """A 403 on one dashboard names it and Grafana's message; the ones before it are saved."""
    grafana.forbidden.add("coldchain-unit")
    assert main(["push", "--grafana-url", grafana.url, "--token", TOKEN]) == 1
    err = capsys.readouterr().err
    assert "'coldchain-unit'" in err and "HTTP 403" in err and "Access denied" in err
    assert "coldchain-overview" in grafana.dashboards


def test_an_unreachable_grafana_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    """A closed port gives exit 1 and 'cannot reach Grafana', not a traceback."""
    (port,) = free_ports(1)
    assert main(["push", "--grafana-url", f"http://127.0.0.1:{port}", "--token", TOKEN, "--timeout", "2"]) == 1
    assert "cannot reach Grafana" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give --token"),
        (["--token", TOKEN, "--user", USER, "--password", PASSWORD], "not both"),
        (["--user", USER], "needs --password"),
    ],
)
def test_bad_credentials_usage_exits_2(
    grafana: FakeGrafana, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    """Missing or conflicting credentials are a usage error (exit 2) and nothing is sent."""
    assert main(["push", "--grafana-url", grafana.url, *args]) == 2
    assert says in capsys.readouterr().err
    assert grafana.requests == []


def test_folder_uid_is_the_titles_slug() -> None:
    """A folder we create gets a uid derived from its title, so provisioning and pushes agree."""
    assert folder_uid_for("Cold chain") == "cold-chain"
    assert folder_uid_for("Pharmacy — Ward 3") == "pharmacy-ward-3"
    assert folder_uid_for("***") == "coldchain"
    assert len(folder_uid_for("x" * 100)) == 40


def test_without_grafana_client_the_command_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """grafana-client is optional (coldchain[grafana]); without it the push explains, exit 1, no traceback."""
    monkeypatch.setitem(sys.modules, "grafana_client", None)
    assert main(["push", "--grafana-url", "http://127.0.0.1:9", "--token", TOKEN]) == 1
    assert "pip install 'coldchain[grafana]'" in capsys.readouterr().err
