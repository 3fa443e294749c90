"""The store's address: never printed with its credentials; checked the way MLflow's
client connects (proxies included), and fast when nothing answers."""

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import free_port

from pipeline.errors import PipelineError
from pipeline.tracking import store

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                   "NO_PROXY", "all_proxy", "ALL_PROXY")


def test_a_uri_is_shown_without_its_credentials() -> None:
    assert store.shown("https://alice:pw@mlflow.example.com:8443/base") == (
        "https://mlflow.example.com:8443/base")
    assert store.shown("http://token@10.0.0.1/") == "http://10.0.0.1/"
    assert store.shown("http://[::1]:5000") == "http://[::1]:5000"
    assert store.shown("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


class Answering(BaseHTTPRequestHandler):
    """A forward proxy's stand-in that answers every request 200 and notes its target."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Answering.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def proxy() -> Iterator[str]:
    """Serve Answering on a free port; yield its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Answering)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_check_goes_through_http_proxy_and_honours_no_proxy(
        no_proxy_settings: pytest.MonkeyPatch) -> None:
    uri = "http://alice:pw@mlflow.invalid:5000"  # resolvable by the proxy alone
    Answering.seen.clear()
    with proxy() as url:
        for name in ("http_proxy", "HTTP_PROXY"):
            no_proxy_settings.setenv(name, url)
        store.check_reachable(uri)
        assert Answering.seen == ["http://mlflow.invalid:5000/health"]
        for name in ("no_proxy", "NO_PROXY"):
            no_proxy_settings.setenv(name, "mlflow.invalid")
        with pytest.raises(PipelineError) as raised:
            store.check_reachable(uri)
    message = str(raised.value)
    assert "MLflow tracking server http://mlflow.invalid:5000 is not reachable" in message
    assert "pw" not in message and len(message.splitlines()) == 1


def test_a_server_that_does_not_answer_fails_within_seconds(
        no_proxy_settings: pytest.MonkeyPatch) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(PipelineError, match=f"{uri} is not reachable"):
        store.check_reachable(uri)
    assert time.monotonic() - started < store.CONNECT_TIMEOUT_SECONDS + 1


@pytest.mark.parametrize("users", [None, "5"])
def test_mlflow_buffers_async_logging_unless_the_user_says_otherwise(
        users: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Unbuffered, every flush of MLflow's async logger waits out a 1 s queue poll.
    variable = "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"
    monkeypatch.setenv(variable, users or "")  # restored after the test, either way
    if users is None:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    store.connect()
    assert os.environ[variable] == (users or store.ASYNC_LOGGING[variable])
