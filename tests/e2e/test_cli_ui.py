"""``hotmesh-sync ui``: the dashboard served by the command line, spoken to over HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlencode

import pytest
from e2e_support import HERE, cli_env

from hotmesh_sync import MemFlow


def ui_env(**extra: str) -> dict[str, str]:
    env = cli_env()
    env.pop("HOTMESH_UI_TOKEN", None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_ui(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hotmesh_sync", "ui", *args],
                          capture_output=True, text=True, timeout=timeout, env=ui_env(),
                          cwd=str(HERE), check=False)


@dataclass
class Answer:
    status: int
    headers: Message
    body: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is an answer to look at, not to follow


_opener = urllib.request.build_opener(_NoRedirects)


def http(url: str, form: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> Answer:
    data = None if form is None else urlencode(form).encode()
    try:
        with _opener.open(urllib.request.Request(url, data=data, headers=headers or {}),
                          timeout=30) as response:
            return Answer(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers, exc.read().decode())


class UiServer:
    """``hotmesh-sync ui --port P ...`` in a subprocess; ready once it answers."""

    def __init__(self, dsn: str, app_id: str, *args: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotmesh_sync", "ui", "--port", str(self.port), *args,
             "--dsn", dsn, "--app-id", app_id],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ui_env(**env),
            cwd=str(HERE))
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                urllib.request.urlopen(self.url + "/static/style.css", timeout=5).close()
                return
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.1)

    def interrupt(self) -> tuple[int, str, str]:
        """SIGINT (Ctrl-C): the exit status and what it printed."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="module")
def mf(pg_dsn: str, module_app_id: str) -> Iterator[MemFlow]:
    with MemFlow.init(app_id=module_app_id, dsn=pg_dsn, pool_size=2) as memflow:
        yield memflow


@pytest.fixture
def serve_ui(pg_dsn: str, module_app_id: str) -> Iterator[Callable[..., UiServer]]:
    """``serve_ui("--token", "t", VAR="value")`` starts the command (VAR in its
    environment); killed after the test if still up."""
    started: list[UiServer] = []

    def start(*args: str, **env: str) -> UiServer:
        started.append(UiServer(pg_dsn, module_app_id, *args, env=env))
        return started[-1]

    yield start
    for server in started:
        server.kill()


def test_open_binding_without_a_token_is_refused_before_connecting() -> None:
    # Port 1 has no database: a command that tried to connect would say so.
    done = run_ui("--host", "0.0.0.0", "--dsn", "host=127.0.0.1 port=1 connect_timeout=20",
                  timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("hotmesh-sync: the dashboard binds to 0.0.0.0")
    assert "--token" in line and "HOTMESH_UI_TOKEN" in line


def test_a_port_out_of_range_is_bad_usage() -> None:
    done = run_ui("--port", "70000", "--dsn", "host=127.0.0.1 port=1 connect_timeout=20",
                  timeout=30)
    assert done.returncode == 2
    assert done.stderr == "hotmesh-sync: --port must be between 0 and 65535, not 70000\n"


def test_a_port_in_use_is_refused(pg_dsn: str, module_app_id: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_ui("--port", str(port), "--dsn", pg_dsn, "--app-id", module_app_id)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"hotmesh-sync: cannot serve on 127.0.0.1:{port}: ")
    assert "in use" in line


def test_serves_the_workflows_and_stops_on_ctrl_c(mf: MemFlow,
                                                  serve_ui: Callable[..., UiServer]) -> None:
    handle = mf.workflow.start("nobody_runs_this", ["x"], task_queue="ui-cli",
                               entity="invoice")
    server = serve_ui()
    page = http(server.url + "/")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert handle.workflow_id in page.body and "nobody_runs_this" in page.body
    assert f'href="/workflow?id={handle.workflow_id}"' in page.body
    one = http(server.url + f"/workflow?id={handle.workflow_id}")
    assert one.status == 200 and "invoice" in one.body
    assert http(server.url + "/nowhere").status == 404
    status, out, err = server.interrupt()
    assert status == 0, err
    assert out == (f"Dashboard of app {mf.app_id!r} at http://127.0.0.1:{server.port}/ "
                   "(Ctrl-C stops it)\n")


def test_a_token_guards_the_dashboard(mf: MemFlow, serve_ui: Callable[..., UiServer]) -> None:
    handle = mf.workflow.start("nobody_runs_this", ["y"], task_queue="ui-cli")
    server = serve_ui("--host", "0.0.0.0", "--token", "s3cret")

    anonymous = http(server.url + "/")
    assert anonymous.status == 303
    assert anonymous.headers["Location"] == "/signin?next=%2F"
    assert http(server.url + "/events").status == 401
    assert http(server.url + "/signin").status == 200

    wrong = http(server.url + "/signin", {"token": "guess", "next": "/"})
    assert wrong.status == 401
    assert not [c for c in wrong.headers.get_all("Set-Cookie") or [] if "hotmesh_ui" in c]
    assert "That token is not the dashboard" in wrong.body

    right = http(server.url + "/signin", {"token": "s3cret", "next": "/"})
    assert right.status == 303 and right.headers["Location"] == "/"
    [cookie] = [c for c in right.headers.get_all("Set-Cookie") or []
                if c.startswith("hotmesh_ui=")]
    assert "HttpOnly" in cookie and "Path=/;" in cookie
    assert "s3cret" not in cookie  # a keyed hash of the token, not the token
    pair = cookie.split(";", 1)[0]
    signed_in = http(server.url + "/", headers={"Cookie": pair})
    assert signed_in.status == 200 and handle.workflow_id in signed_in.body
    assert http(server.url + "/", headers={"Cookie": "hotmesh_ui=forged"}).status == 303

    bearer = http(server.url + "/", headers={"Authorization": "Bearer s3cret"})
    assert bearer.status == 200 and handle.workflow_id in bearer.body
    assert http(server.url + "/", headers={"Authorization": "Bearer nope"}).status == 303

    status, _, err = server.interrupt()
    assert status == 0, err


def test_the_token_from_the_environment(serve_ui: Callable[..., UiServer]) -> None:
    server = serve_ui("--host", "0.0.0.0", HOTMESH_UI_TOKEN="from-env")
    assert http(server.url + "/").status == 303
    assert http(server.url + "/", headers={"Authorization": "Bearer from-env"}).status == 200
    status, _, err = server.interrupt()
    assert status == 0, err
