"""A local Mastodon instance for tests: a thin helper over the ``mastodon-mock`` package.

``mastodon_mock.testing.MockServer`` runs the real FastAPI app under uvicorn in a thread on a free 127.0.0.1 port,
backed by in-memory SQLite and seeded from a :class:`~mastodon_mock.config.SeedConfig`: each seeded account's
``access_token`` is accepted as a Bearer token, so no OAuth dance is needed. It honours ``Idempotency-Key`` on
``POST /api/v1/statuses`` and advertises ``max_characters`` and ``characters_reserved_per_url`` on
``GET /api/v2/instance``. Fault injection goes through its mock-only control plane ``/api/v1/_mock/faults``
(mastodon-mock's own ``FaultHandle`` needs ``httpx2``, so :meth:`MastodonInstance.fault` posts the rule with
``requests``)::

    with mastodon_instance() as instance:
        requests.post(f"{instance.url}/api/v1/statuses", headers=instance.auth_headers(), data={"status": "hi"})
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from mastodon_mock.config import SeedAccount, SeedConfig
from mastodon_mock.testing import MockServer

PRACTICE_USERNAME = "oakviewpt"
PRACTICE_TOKEN = "oakviewpt-test-token"


@dataclass(frozen=True)
class MastodonInstance:
    """A running instance: its base URL, the practice account's access token, and the mock-server handle."""

    url: str
    access_token: str
    server: MockServer

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
    seed = SeedConfig(accounts=[SeedAccount(username=username, display_name="Oakview PT", access_token=access_token)])
    with MockServer(seed=seed) as server:
        yield MastodonInstance(server.base_url, access_token, server)
