"""A local Google Business Profile API and Google OAuth 2.0 token endpoint, on one server.

Endpoints, as Google documents them:

- ``POST /token`` (``https://oauth2.googleapis.com/token``): the refresh-token grant (form ``grant_type=refresh_token``,
  ``client_id``, ``client_secret``, ``refresh_token``) answers a Bearer ``access_token`` living ``expires_in`` 3599
  seconds; a wrong client is ``401 invalid_client``, a revoked or expired refresh token ``400 invalid_grant``.
- ``POST /v4/accounts/{a}/locations/{l}/localPosts``: creates a LocalPost (``name``, ``searchUrl``, ``state``
  ``LIVE``) after checking what Google checks: a summary of at most 1,500 characters with no phone number, a known
  ``topicType``, an event (title, schedule with start and end dates) for EVENT and OFFER, a call to action with a URL
  unless it is CALL, media as ``{mediaFormat: PHOTO, sourceUrl}``. Refusals are ``400 INVALID_ARGUMENT``.
- ``GET`` of the same path lists the location's posts (``localPosts``).
- ``GET /v1/locations/{l}:fetchMultiDailyMetricsTimeSeries`` (the Performance API): each ``dailyMetrics`` over
  ``dailyRange``, a value on each of the last three days (``DAILY_VALUES``); 403 ``PERMISSION_DENIED`` when
  ``performance_allowed`` is False.

Requests need a Bearer token the server issued and has not expired (``401 UNAUTHENTICATED``) and the account and
location it serves (``404 NOT_FOUND``). ``throttle(n)`` answers the next ``n`` post creations with Google's rate
limit: ``429 RESOURCE_EXHAUSTED``, without ``Retry-After`` (Google sends none). ``revoke()`` makes the refresh token
``invalid_grant``; ``expire_access_tokens()`` makes every access token issued so far ``UNAUTHENTICATED``.

Run by hand with ``python -m tests.providers.gbp --port 8029``.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import phonenumbers

from tests.providers import LocalHttpServer, RecordedRequest, Reply, serve_by_hand

TOPICS = frozenset({"STANDARD", "EVENT", "OFFER", "ALERT"})
ACTIONS = frozenset({"BOOK", "ORDER", "SHOP", "LEARN_MORE", "SIGN_UP", "CALL"})


@dataclass(frozen=True)
class GbpAccount:
    """The OAuth client, refresh token, account and location the server accepts. Test values, not secrets."""

    client_id: str = "1234-test.apps.googleusercontent.com"
    client_secret: str = "test-client-secret"
    refresh_token: str = "1//test-refresh-token"
    account_id: str = "1234567890"
    location_id: str = "9876543210"

    @property
    def posts_path(self) -> str:
        return f"/v4/accounts/{self.account_id}/locations/{self.location_id}/localPosts"


#: What each Performance API daily metric counts on each of the last three days of a range.
DAILY_VALUES = {
    "BUSINESS_IMPRESSIONS_MOBILE_MAPS": 40,
    "BUSINESS_IMPRESSIONS_MOBILE_SEARCH": 25,
    "WEBSITE_CLICKS": 6,
    "CALL_CLICKS": 2,
    "BUSINESS_DIRECTION_REQUESTS": 3,
}


class GbpServer(LocalHttpServer):
    """Google's token endpoint and the Business Profile ``localPosts`` API for one location."""

    def __init__(self, account: GbpAccount | None = None, port: int = 0) -> None:
        super().__init__(port)
        self.account = account or GbpAccount()
        self.posts: list[dict[str, Any]] = []
        self._tokens: set[str] = set()
        self._revoked = False
        self._throttled = 0
        self._ids = itertools.count(1)
        self._state = threading.Lock()
        #: False: the Performance API answers 403 PERMISSION_DENIED (not enabled, or no access to the location).
        self.performance_allowed = True

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def add_post(self, summary: str, created: datetime) -> dict[str, Any]:
        """A live post of the location made at ``created`` (by hand, or long ago), older than every post so far."""
        post = self._made({"summary": summary, "topicType": "STANDARD", "languageCode": "en-US"}, created)
        with self._state:
            self.posts.insert(0, post)
        return post

    def throttle(self, times: int = 1) -> None:
        """Answer the next ``times`` post creations with 429 RESOURCE_EXHAUSTED."""
        with self._state:
            self._throttled += times

    def revoke(self) -> None:
        """The refresh token is revoked (or expired): the token endpoint answers ``invalid_grant``."""
        with self._state:
            self._revoked = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far has expired."""
        with self._state:
            self._tokens.clear()

    def handle(self, request: RecordedRequest) -> Reply:
        if (request.method, request.path) == ("POST", "/token"):
            return self._token(request)
        performance = request.path.endswith(":fetchMultiDailyMetricsTimeSeries")
        if not request.path.endswith("/localPosts") and not performance:
            return _error(404, "NOT_FOUND", "Requested entity was not found.")
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self._tokens:
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if performance and request.method == "GET":
            return self._daily_metrics(request)
        if request.path != self.account.posts_path:
            return _error(404, "NOT_FOUND", "Requested entity was not found.")
        if request.method == "GET":
            return Reply(200, {"localPosts": list(reversed(self.posts))[: int(request.query.get("pageSize", 100))]})
        if request.method != "POST":
            return _error(405, "INVALID_ARGUMENT", "Method not allowed.")
        with self._state:
            if self._throttled:
                self._throttled -= 1
                return _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Requests per minute'.")
        return self._create(request)

    def _daily_metrics(self, request: RecordedRequest) -> Reply:
        """``GET /v1/locations/{l}:fetchMultiDailyMetricsTimeSeries``: each asked ``dailyMetrics`` over
        ``dailyRange``, one dated value a day (int64 as a string; a day without any is left out, as Google does)."""
        if request.path != f"/v1/locations/{self.account.location_id}:fetchMultiDailyMetricsTimeSeries":
            return _error(404, "NOT_FOUND", "Requested entity was not found.")
        if not self.performance_allowed:
            return _error(403, "PERMISSION_DENIED", "The caller does not have permission")
        query = dict(request.query_pairs)
        try:
            start, end = (
                date(*(int(query[f"dailyRange.{edge}.{part}"]) for part in ("year", "month", "day")))
                for edge in ("start_date", "end_date")
            )
        except (KeyError, ValueError):
            return _error(400, "INVALID_ARGUMENT", "dailyRange must name a start_date and an end_date.")
        metrics = [value for name, value in request.query_pairs if name == "dailyMetrics"]
        if unknown := [metric for metric in metrics if metric not in DAILY_VALUES]:
            return _error(400, "INVALID_ARGUMENT", f"Invalid value at 'daily_metrics' ({unknown[0]})")
        days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
        series = [
            {
                "dailyMetric": metric,
                "timeSeries": {
                    "datedValues": [
                        {
                            "date": {"year": day.year, "month": day.month, "day": day.day},
                            "value": str(DAILY_VALUES[metric]),
                        }
                        for day in days[-3:]  # the last three days had some; the others none (left out)
                    ]
                },
            }
            for metric in metrics
        ]
        return Reply(200, {"multiDailyMetricTimeSeries": [{"dailyMetricTimeSeries": series}]})

    def _token(self, request: RecordedRequest) -> Reply:
        form = request.body if isinstance(request.body, dict) else {}
        if (form.get("client_id"), form.get("client_secret")) != (self.account.client_id, self.account.client_secret):
            return Reply(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
        if form.get("grant_type") != "refresh_token":
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."})
        if self._revoked or form.get("refresh_token") != self.account.refresh_token:
            return Reply(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
        token = f"ya29.test-{secrets.token_hex(8)}"
        with self._state:
            self._tokens.add(token)
        scope = "https://www.googleapis.com/auth/business.manage"
        return Reply(200, {"access_token": token, "expires_in": 3599, "scope": scope, "token_type": "Bearer"})

    def _create(self, request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        problem = _invalid(body)
        if problem is not None:
            return _error(400, "INVALID_ARGUMENT", problem)
        post = self._made(body, datetime.now(UTC))
        with self._state:
            self.posts.append(post)
        return Reply(200, post)

    def _made(self, body: dict[str, Any], created: datetime) -> dict[str, Any]:
        """A LocalPost as Google keeps it: ``body`` with its name, state, link and times (RFC 3339, nanoseconds)."""
        number = next(self._ids)
        name = f"accounts/{self.account.account_id}/locations/{self.account.location_id}/localPosts/{number}"
        stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        return {
            **body,
            "name": name,
            "state": "LIVE",
            "searchUrl": f"https://local.google.com/place?id={self.account.location_id}&use=posts&lpsid={number}",
            "createTime": stamp,
            "updateTime": stamp,
        }


def _invalid(body: dict[str, Any]) -> str | None:
    """What Google would refuse in a LocalPost body, or None."""
    summary = body.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        return "summary is required"
    if len(summary) > 1500:
        return "summary is longer than 1500 characters"
    if any(True for _ in phonenumbers.PhoneNumberMatcher(summary, "US")):
        return "summary must not contain a phone number"
    topic = body.get("topicType")
    if topic not in TOPICS:
        return f"topicType {topic!r} is invalid"
    if topic in ("EVENT", "OFFER"):
        event = body.get("event") or {}
        schedule = event.get("schedule") or {}
        if not event.get("title") or not {"startDate", "endDate"} <= set(schedule):
            return f"an {topic} post needs event.title and event.schedule with startDate and endDate"
    action = body.get("callToAction")
    if action is not None:
        if action.get("actionType") not in ACTIONS:
            return "callToAction.actionType is invalid"
        if action["actionType"] != "CALL" and not str(action.get("url", "")).startswith(("https://", "http://")):
            return "callToAction.url is required"
    for media in body.get("media", []):
        if media.get("mediaFormat") != "PHOTO" or not str(media.get("sourceUrl", "")).startswith("http"):
            return "media needs mediaFormat PHOTO and a sourceUrl"
    return None


def _error(status: int, code: str, message: str) -> Reply:
    """Google's JSON error body."""
    return Reply(status, {"error": {"code": status, "message": message, "status": code}})


def _banner(server: GbpServer) -> str:
    account = server.account
    return (
        f"Google Business Profile fake on {server.url} (token endpoint {server.token_uri})\n"
        f"account_id={account.account_id} location_id={account.location_id} client_id={account.client_id}\n"
        f"client_secret={account.client_secret} refresh_token={account.refresh_token}"
    )


if __name__ == "__main__":
    serve_by_hand(
        "Local Google Business Profile API and OAuth token endpoint", lambda port: GbpServer(port=port), _banner
    )
