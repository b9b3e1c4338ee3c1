"""Fixtures of the flow tests: one real ``prefect server`` process for the session, and a webhook receiver (a real
HTTP server on 127.0.0.1) that keeps every JSON body POSTed to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.prefect_server import Api, PrefectServer, start_prefect

Webhook = tuple[str, list[dict[str, Any]]]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real ``prefect server start`` for the session, without its UI and with its scheduler off (only the API
    starts runs). Its triggers service runs automations (the failure webhook); paused runs expire within 1 s of
    their timeout."""
    with start_prefect(
        tmp_path_factory.mktemp("prefect-server"),
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED="true",
        PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS="1",
        PREFECT_LOGGING_LEVEL="INFO",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def api(prefect_server: PrefectServer) -> Api:
    return prefect_server.api


@contextmanager
def _receiving() -> Iterator[Webhook]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """The receiver's URL and what it received, for one test."""
    with _receiving() as hook:
        yield hook


@pytest.fixture(scope="module")
def module_webhook() -> Iterator[Webhook]:
    """The receiver's URL and what it received, for a module whose practice is served once."""
    with _receiving() as hook:
        yield hook
