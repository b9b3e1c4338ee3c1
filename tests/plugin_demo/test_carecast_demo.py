"""The demo channel's own tests, as its author would write them: CareCast's contract kit, run against a fake
notice board built from the kit's provider parts."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from carecast.testing import SECRET_ENV, ChannelContract, LocalHttpServer, RecordedRequest, Reply


class NoticeBoard(LocalHttpServer):
    """The notice board's API: ``POST /notices`` (a text body, a bearer token) answers 201 with the notice."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self._ids = itertools.count(1)

    def handle(self, request: RecordedRequest) -> Reply:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return Reply(401, {"error": "unauthorized"})
        if (request.method, request.path) != ("POST", "/notices"):
            return Reply(404, {"error": "no such endpoint"})
        notice = next(self._ids)
        return Reply(201, {"id": notice, "url": f"{self.url}/notices/{notice}"})


class TestDemoChannel(ChannelContract):
    channel_type = "demo"
    section: ClassVar[dict[str, Any]] = {"max_age_days": 3650}

    def provider(self, secret: str) -> NoticeBoard:
        return NoticeBoard(secret)

    def live_section(self, provider_url: str) -> dict[str, Any]:
        return {**self.section, "api_base": provider_url, "credentials": {"env": SECRET_ENV}}
