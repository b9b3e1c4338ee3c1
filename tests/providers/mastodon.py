"""A local Mastodon instance for tests: a thin helper over the ``mastodon-mock`` package.

``mastodon_mock.testing.MockServer`` runs the real FastAPI app under uvicorn in a thread on a free 127.0.0.1 port,
backed by in-memory SQLite and seeded from a :class:`~mastodon_mock.config.SeedConfig`: each seeded account's
``access_token`` is accepted as a Bearer token, so no OAuth dance is needed. It honours ``Idempotency-Key`` on
``POST /api/v1/statuses`` and advertises ``max_characters`` and ``characters_reserved_per_url`` on
``GET /api/v2/instance``. Fault injection goes through its mock-only control plane ``/api/v1/_mock/faults``
(mastodon-mock's own ``FaultHandle`` needs ``httpx2``, so :meth:`MastodonInstance.fault` posts the rule with
``requests``).

mastodon-mock checks a status's raw length against ``max_characters``, where Mastodon (StatusLengthValidator)
counts every URL as ``characters_reserved_per_url`` (23), whatever its length: a post with a long UTM link that
Mastodon takes would get a 422 "Text is too long". Importing this module wraps mastodon-mock's check so it
measures what Mastodon measures (:func:`countable_text`); its other checks (blank text, media count) are its own.
It has no setting for this. Its fault rules act before a request is handled; to hold back the answer to a status
it made (a client that dies or gives up then loses it), :meth:`MastodonInstance.hold_next_answer` wraps the step
after its commit. These two wraps are the only changes made to the package. mastodon-mock keeps an Idempotency-Key
for good, where Mastodon forgets it after an hour, and dates a status when it is made:
:meth:`MastodonInstance.forget_idempotency_keys` and :meth:`MastodonInstance.backdate` change its database for a test
that needs an hour or a day gone by. :class:`RecordedInstance` puts a
recording :class:`~tests.providers.LocalHttpServer` in front of an instance, for the contract kit (which watches
each request arrive)::

    with mastodon_instance() as instance:
        requests.post(f"{instance.url}/api/v1/statuses", headers=instance.auth_headers(), data={"status": "hi"})

Run by hand with ``python -m tests.providers.mastodon --port 8028``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

import requests
import uvicorn
from fastapi.responses import JSONResponse
from mastodon_mock.app import create_app
from mastodon_mock.config import DatabaseConfig, MastodonMockConfig, SeedAccount, SeedConfig
from mastodon_mock.routers import statuses
from mastodon_mock.streaming_events import flush_stream_notifications
from mastodon_mock.testing import MockServer
from twitter_text.extract_urls import extract_urls_with_indices

from tests.providers import LOOPBACK, LocalHttpServer, RecordedRequest, Reply

PRACTICE_USERNAME = "oakviewpt"
PRACTICE_TOKEN = "oakviewpt-test-token"
#: What Mastodon counts for any URL: the ``characters_reserved_per_url`` mastodon-mock advertises.
URL_PLACEHOLDER = "x" * 23


def countable_text(text: str) -> str:
    """``text`` as Mastodon's StatusLengthValidator measures it: each URL (found by twitter-text, as Mastodon finds
    them, protocol required) replaced by 23 characters. Remote mentions are not shortened here (the channels
    post none)."""
    pieces, position = [], 0
    for start, end in (url["indices"] for url in extract_urls_with_indices(text, False)):
        pieces += [text[position:start], URL_PLACEHOLDER]
        position = end
    return "".join([*pieces, text[position:]])


_raw_length_check = statuses._validate_status_params


def _validate_as_mastodon(params: dict[str, Any]) -> JSONResponse | None:
    status = params.get("status")
    return _raw_length_check({**params, "status": countable_text(status)} if isinstance(status, str) else params)


statuses._validate_status_params = _validate_as_mastodon


@dataclass(frozen=True)
class AnswerHold:
    """The answer to the next status posted, held back once the status is made (committed, with its
    Idempotency-Key): ``made`` is set then, and the answer goes once :meth:`release` is called or ``timeout``
    seconds passed. The instance's event loop waits meanwhile, so it answers nothing else."""

    timeout: float
    made: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Let the held answer go."""
        self.released.set()


#: Holds armed per instance, by its config's identity (what mastodon-mock hands the step after a status's commit).
_HOLDS: dict[int, AnswerHold] = {}


def _flush_or_hold(app: Any, session: Any, config: MastodonMockConfig) -> None:
    hold = _HOLDS.pop(id(config), None)
    if hold is not None:
        hold.made.set()
        hold.released.wait(hold.timeout)
    flush_stream_notifications(app, session, config)


# Called by POST /api/v1/statuses right after its commit, before the answer is written.
statuses.flush_stream_notifications = _flush_or_hold


@dataclass(frozen=True)
class MastodonInstance:
    """A running instance: its base URL, the practice account's access token, and the mock-server handle."""

    url: str
    access_token: str
    server: MockServer
    config: MastodonMockConfig

    def hold_next_answer(self, timeout: float = 30.0) -> AnswerHold:
        """Hold back the answer to the next status this instance makes (:class:`AnswerHold`)."""
        hold = AnswerHold(timeout)
        _HOLDS[id(self.config)] = hold
        return hold

    def forget_idempotency_keys(self) -> None:
        """Forget every Idempotency-Key, as Mastodon does an hour after the status it names."""
        with self._database() as database:
            database.execute("DELETE FROM idempotency")

    def backdate(self, status_id: str, by: timedelta) -> None:
        """Date status ``status_id`` ``by`` earlier (the API lets no client date a status)."""
        with self._database() as database:
            [(made,)] = database.execute("SELECT created_at FROM statuses WHERE id = ?", (int(status_id),))
            earlier = datetime.fromisoformat(made) - by
            database.execute(
                "UPDATE statuses SET created_at = ? WHERE id = ?", (f"{earlier:%Y-%m-%d %H:%M:%S.%f}", int(status_id))
            )

    @contextmanager
    def _database(self) -> Iterator[sqlite3.Connection]:
        """The instance's own SQLite database, committed and closed on leaving."""
        database = sqlite3.connect(self.config.database.path, timeout=10)
        try:
            with database:
                yield database
        finally:
            database.close()

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for the practice account."""
        return {"Authorization": f"Bearer {self.access_token}"}

    def fault(
        self,
        path: str,
        *,
        status: int = 503,
        methods: tuple[str, ...] = ("POST",),
        count: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> str:
        """Make the next ``count`` matching requests answer ``status`` (429 adds the X-RateLimit headers and
        Retry-After, as mastodon-mock's ``ratelimit`` effect does) and return the rule id.

        Raises:
            requests.HTTPError: the control plane refused the rule.
        """
        effect: dict[str, Any] = {"type": "ratelimit" if status == 429 else "status", "status": status}
        if headers is not None:
            effect["headers"] = dict(headers)
        if body is not None:
            effect["body"] = body
        rule = {"match": {"methods": list(methods), "path": path}, "effect": effect, "count": count}
        response = requests.post(f"{self.url}/api/v1/_mock/faults", json=rule, timeout=5)
        response.raise_for_status()
        return str(response.json()["id"])


@contextmanager
def mastodon_instance(
    username: str = PRACTICE_USERNAME, access_token: str = PRACTICE_TOKEN
) -> Iterator[MastodonInstance]:
    """Start a fresh in-memory instance with one account, yield it, and stop it.

    Raises:
        TimeoutError: the server did not come up within mastodon-mock's startup timeout.
    """
    # Its database and media in a folder of our own: its default temp files outlive the server in /tmp.
    with tempfile.TemporaryDirectory(prefix="mastodon-fake-") as folder:
        config = MastodonMockConfig(
            database=DatabaseConfig(path=str(Path(folder) / "mastodon.sqlite")),
            media_storage_path=str(Path(folder) / "media"),
            seed=_seed(username, access_token),
        )
        with MockServer(config=config) as server:
            try:
                yield MastodonInstance(server.base_url, access_token, server, config)
            finally:
                _HOLDS.pop(id(config), None)


class RecordedInstance(LocalHttpServer):
    """A fresh instance (:func:`mastodon_instance`) behind a local server that records each request and passes it
    on as it came, answering what the instance answered."""

    #: The request headers passed on (the ones the Mastodon channel sends and the instance reads).
    PASSED = ("Authorization", "Content-Type", "Idempotency-Key", "Accept")

    def __init__(self, access_token: str = PRACTICE_TOKEN) -> None:
        super().__init__()
        self.access_token = access_token
        self._stack = ExitStack()
        self.instance: MastodonInstance | None = None

    def start(self) -> Self:
        if self.instance is None:
            self.instance = self._stack.enter_context(mastodon_instance(access_token=self.access_token))
        return super().start()

    def stop(self) -> None:
        super().stop()
        self._stack.close()
        self.instance = None

    def handle(self, request: RecordedRequest) -> Reply:
        """Pass ``request`` on to the instance and answer what it answered; raises as ``requests`` does when the
        instance cannot be reached (the client then sees its connection dropped)."""
        assert self.instance is not None
        headers = {name: request.headers[name] for name in self.PASSED if name in request.headers}
        answer = requests.request(
            request.method,
            f"{self.instance.url}{request.path}",
            params=list(request.query_pairs),
            data=request.raw,
            headers=headers,
            timeout=30,
        )
        kept = {
            name: value
            for name, value in answer.headers.items()
            if name.lower().startswith(("content-type", "x-ratelimit", "retry-after", "link"))
        }
        return Reply(answer.status_code, answer.content, kept)


def _seed(username: str, access_token: str) -> SeedConfig:
    return SeedConfig(accounts=[SeedAccount(username=username, display_name="Oakview PT", access_token=access_token)])


def _serve_by_hand() -> None:
    # MockServer always binds a free port; by hand the port is chosen, so uvicorn serves the app directly.
    parser = argparse.ArgumentParser(description="Local Mastodon instance (mastodon-mock, URLs counted as 23)")
    parser.add_argument("--port", type=int, default=8028, help="port on 127.0.0.1 (default: %(default)s)")
    port = parser.parse_args().port
    config = MastodonMockConfig(database=DatabaseConfig(path=":memory:"), seed=_seed(PRACTICE_USERNAME, PRACTICE_TOKEN))
    print(f"Mastodon fake (mastodon-mock) on http://{LOOPBACK}:{port}\naccess_token={PRACTICE_TOKEN}", flush=True)
    uvicorn.run(create_app(config), host=LOOPBACK, port=port, log_level="warning")


if __name__ == "__main__":
    _serve_by_hand()
