"""A failed run tells the practice's webhook (a real HTTP server on 127.0.0.1) the practice, channel and reason."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config

pytestmark = pytest.mark.prefect


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
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
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_a_failed_publish_run_notifies_the_webhook(
    prefect_api: None, tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    from flows.pipeline import publish

    url, received = webhook
    config = write_config(tmp_path, {"notify": {"webhook": url}})
    with pytest.raises(KeyError):
        publish(practice=str(config), channels=["fax"])
    (payload,) = received
    assert payload["practice"] == "Oakview Physical Therapy"
    assert payload["channels"] == ["fax"]
    assert payload["state"] == "FAILED" and "fax" in payload["reason"]
    assert "Oakview Physical Therapy" in payload["text"] and "fax" in payload["text"]


def test_without_a_webhook_a_failure_is_only_logged(
    prefect_api: None, tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    from flows.pipeline import publish

    _, received = webhook
    with pytest.raises(KeyError):
        publish(practice=str(write_config(tmp_path)), channels=["fax"])
    assert received == []
