"""What the Facebook Page and Instagram channels share: Meta's Graph API, its token and its answers.

Both channels call ``https://graph.facebook.com/<version>/...`` (``api_base`` and ``graph_version`` in their
section) with the Page access token as a Bearer header, never in a URL: URLs reach logs (urllib3's at DEBUG) and
exception messages. JSON bodies are sent as they are documented as form fields; the Graph API takes both.

How an answer is read (:meth:`GraphChannel.call`):

- a refusal carries ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``. Code 190 is a token
  that expired or was revoked: :class:`~carecast.errors.CredentialError` naming the channel's credential, so a
  person renews it and the publication is retried. Codes 4, 17, 32 and 613 (and the business-use-case codes
  80001-80014) are rate limits, answered with HTTP 400 or 403: transient, with the wait the
  ``X-Business-Use-Case-Usage`` header gives (``estimated_time_to_regain_access``, minutes), else an hour (Meta
  counts its limits over a rolling hour). A usage header at 100 % makes any refusal a rate limit too.
- codes 1 and 2 (Meta's "unknown" and "service" errors) and ``is_transient: true`` are transient; so is any
  answer without a Graph error code that the shared reading (:func:`carecast.channel.refusal`) calls transient: a
  429 or a 5xx from Meta's edge or a proxy (a 401 without code 190 is the credential). A 5xx is transient whatever
  its code; any other refusal with a code is permanent.
- a request that got no answer is transient. A post's (``lost="never"``) may have gone up: it is marked
  ``maybe_sent``, and :func:`carecast.inflight.send_once` asks the Page before posting it again (the Graph API
  has no idempotency key).

``check --live`` reads the token's own record through ``debug_token`` (inside a batch request, so the token being
inspected travels in a body, not a URL) and warns when it expires within 7 days.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import requests
from pydantic import Field, HttpUrl, field_validator

from carecast.plugin import (
    TRANSIENT_STATUSES,
    ChannelSettings,
    CredentialError,
    Engagement,
    PublishError,
    SecretRef,
    Strict,
    refusal,
    resolve,
    unreachable,
)
from carecast_channels.http import https_or_loopback, nothing_sent, retry_after
from carecast_channels.social import SocialChannel, bearer_session, token_expiry_words

GRAPH_API = "https://graph.facebook.com"
GRAPH_VERSION = "v25.0"
#: Graph error codes of a rate limit: app (4), user (17), Page (32), a feature's own (613), business use case.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
#: Graph error code of an access token that expired, was revoked or is malformed.
TOKEN_ERROR_CODE = 190
#: Graph error codes Meta documents as temporary: "API Unknown" and "API Service".
TEMPORARY_CODES = frozenset({1, 2})
#: Meta counts its rate limits over a rolling hour: the wait when no header says how long.
RATE_LIMIT_WAIT = 3600.0
USAGE_HEADERS = ("X-App-Usage", "X-Business-Use-Case-Usage")


class GraphCredentials(Strict):
    """A Page access token (long-lived: it does not expire while the user who made it keeps the Page role)."""

    access_token: SecretRef


class GraphConfig(ChannelSettings):
    """The keys of the channels that speak the Graph API."""

    credentials: GraphCredentials | None = Field(None, description="post with these; absent: write to the outbox")
    timeout: float = Field(30, gt=0, le=300, description="seconds one request to the Graph API may take")
    api_base: HttpUrl = Field(
        HttpUrl(GRAPH_API), description="the Graph API, or another base: a gateway, or a local test server"
    )
    graph_version: str = Field(GRAPH_VERSION, pattern=r"^v\d+\.\d+$", description="the Graph API version called")

    @field_validator("api_base")
    @classmethod
    def _secure(cls, value: HttpUrl) -> HttpUrl:
        # The token travels in every request: never in clear text, except to a local test server.
        return https_or_loopback(value)


class GraphChannel(SocialChannel):
    """A channel that posts through the Graph API; subclasses name the provider and their node (Page, IG user)."""

    config: GraphConfig

    def endpoint(self, method: str, path: str) -> str:
        """How the outbox and error messages name a call, e.g. ``POST /v25.0/1234/feed``."""
        return f"{method} /{self.config.graph_version}/{path}"

    def url(self, path: str) -> str:
        return "/".join(filter(None, [str(self.config.api_base).rstrip("/"), self.config.graph_version, path]))

    def session(self) -> requests.Session:
        """A session carrying the Page token; raises CredentialError when it cannot be read."""
        credentials = self.config.credentials
        assert credentials is not None  # callers check: no credentials means the outbox
        return bearer_session(credentials.access_token)

    def call(
        self,
        session: requests.Session,
        method: str,
        path: str,
        *,
        lost: Literal["retry", "never"],
        data: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One Graph API call with a JSON body (``data``), a form body (``form``) or none; its JSON answer.

        Raises CredentialError for code 190; PublishError, transient or not as the module docstring says.
        """
        step = self.endpoint(method, path)
        try:
            response = session.request(
                method, self.url(path), json=data, data=form, params=params, timeout=self.config.timeout
            )
        except requests.RequestException as exc:
            # A post's lost answer may follow the post going up: send_once asks the Page before posting again.
            maybe = lost == "never" and not nothing_sent(exc)
            reason = f"{step}: the Graph API answered nothing ({type(exc).__name__})"
            raise unreachable(self.instance, reason, maybe_sent=maybe) from exc
        answer = _json_object(response)
        if response.ok and answer is not None:
            return answer
        if response.ok:
            # A success without its id: for a post the post is up, so it is looked up rather than sent again.
            malformed = f"{step}: the Graph API answered {response.status_code} without a JSON object"
            raise PublishError(self.instance, malformed, transient=True, maybe_sent=lost == "never")
        error = (answer or {}).get("error")
        raise self.refusal(step, response, error if isinstance(error, dict) else {})

    def refusal(self, step: str, response: requests.Response, error: dict[str, Any]) -> PublishError:
        """The error for a Graph API refusal (the module docstring says which is which).

        Raises CredentialError for a token Meta no longer accepts (code 190).
        """
        code = error.get("code")
        message = str(error.get("message") or response.reason)
        subcode = f", subcode {error['error_subcode']}" if error.get("error_subcode") else ""
        said = f"{response.status_code}, code {code}{subcode}: {message}"
        if code == TOKEN_ERROR_CODE:
            where = f"channels.{self.instance}.credentials.access_token"
            raise CredentialError(where, f"{self.provider} no longer accepts the token ({said}); renew it")
        usage = _usage(response)
        if code in RATE_LIMIT_CODES or usage >= 100:
            reason = f"{step}: {self.provider} rate limit reached ({said})"
            return PublishError(self.instance, reason, transient=True, retry_after=_regain_access(response))
        reason = f"{step}: {self.provider} refused it ({said})"
        if code in TEMPORARY_CODES or error.get("is_transient") is True:
            return PublishError(self.instance, reason, transient=True)
        status = response.status_code
        if code is not None and status < 500 and status not in TRANSIENT_STATUSES:
            return PublishError(self.instance, reason, transient=False)
        # No Graph error code (a 429 or 5xx from Meta's edge or a proxy): the shared reading of the status decides.
        where = f"channels.{self.instance}.credentials.access_token"
        failure = refusal(self.instance, reason, status, credential=where, retry_after=retry_after(response.headers))
        if isinstance(failure, CredentialError):
            raise failure
        return failure

    #: The insights metrics read for each post (``/{id}/insights?metric=...``): the subclass's.
    insight_metrics: ClassVar[tuple[str, ...]] = ()

    def engagement(self, provider_ids: Sequence[str]) -> dict[str, Engagement]:
        """Each post's insights; a metric Meta refuses (a missing permission, a retired metric) is a problem of its
        answer. Raises CredentialError (code 190) and PublishError when the Graph API cannot be asked at all."""
        if self.config.credentials is None:
            return {}
        session = self.session()
        return {post_id: self._insights(session, post_id) for post_id in provider_ids}

    def _insights(self, session: requests.Session, post_id: str) -> Engagement:
        # All at once first; one refused metric fails the whole call, so then each alone, to say which.
        try:
            return Engagement(self._read_insights(session, post_id, self.insight_metrics))
        except PublishError as exc:
            if exc.transient:
                raise
        numbers: dict[str, int] = {}
        problems: dict[str, str] = {}
        for metric in self.insight_metrics:
            try:
                numbers |= self._read_insights(session, post_id, (metric,))
            except PublishError as exc:
                if exc.transient:
                    raise
                problems[metric] = insight_problem(exc.reason)
        return Engagement(numbers, problems)

    def _read_insights(self, session: requests.Session, post_id: str, metrics: Sequence[str]) -> dict[str, int]:
        path = f"{post_id}/insights"
        answer = self.call(session, "GET", path, lost="retry", params={"metric": ",".join(metrics)})
        numbers: dict[str, int] = {}
        for entry in answer.get("data", []):
            value = (entry.get("values") or [{}])[-1].get("value")
            if isinstance(value, dict):  # e.g. reactions by type: {"like": 3, "love": 1}
                numbers |= {f"{entry['name']}.{key}": int(count) for key, count in value.items()}
            elif isinstance(value, int):
                numbers[str(entry["name"])] = value
        return numbers

    def created_id(self, answer: dict[str, Any], *keys: str) -> str:
        """The id a creating call answered: the first of ``keys`` (default ``id``) it holds.

        Raises PublishError without one: transient and ``maybe_sent`` (what the call made may exist, so it is looked
        up rather than made again).
        """
        for key in keys or ("id",):
            if answer.get(key):
                return str(answer[key])
        reason = f"{self.provider} answered without an id; it is looked up before it is sent again"
        raise PublishError(self.instance, reason, transient=True, maybe_sent=True)

    def token_expiry(self, session: requests.Session) -> str:
        """What ``debug_token`` says of the configured token: when it expires, with a warning within 7 days.

        Raises CredentialError when the token cannot be read or Meta says it is no longer valid; PublishError as
        ``call`` does.
        """
        credentials = self.config.credentials
        assert credentials is not None
        token = resolve(credentials.access_token).get_secret_value()
        request = {"method": "GET", "relative_url": f"debug_token?input_token={token}"}
        batch = self.call(
            session, "POST", "", lost="retry", form={"batch": json.dumps([request]), "include_headers": "false"}
        )
        where = f"channels.{self.instance}.credentials.access_token"
        # A batch answers a list; call() reads an object, so the list arrives under the key "batch".
        answer = (batch.get("batch") or [{}])[0]
        body = _loads(answer.get("body")) if isinstance(answer, dict) else None
        record = body.get("data") if isinstance(body, dict) else None
        if not isinstance(record, dict) or answer.get("code") != 200 or not record.get("is_valid", False):
            raise CredentialError(where, f"{self.provider} says the token is not valid; renew it")
        expires_at = int(record.get("expires_at") or 0)
        if expires_at == 0:
            return "the token does not expire"
        return token_expiry_words(datetime.fromtimestamp(expires_at, UTC))


def insight_problem(reason: str) -> str:
    """What a refused insights metric means for staff: a permission to grant, or a metric Meta no longer gives."""
    if "code 10," in reason or "code 200" in reason or "permission" in reason.lower():
        return f"permission missing ({reason})"
    if "code 100" in reason:
        return f"retired or not available for this post ({reason})"
    return reason


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    """The JSON object an answer holds (a batch's list under ``"batch"``), None when it holds none."""
    data = _loads(response.text)
    if isinstance(data, list):
        return {"batch": data}
    return data


def _loads(text: Any) -> dict[str, Any] | list[Any] | None:
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return data if isinstance(data, dict | list) else None


def _usage_records(response: requests.Response) -> list[dict[str, Any]]:
    """Every usage record of ``X-App-Usage`` (one object) and ``X-Business-Use-Case-Usage`` (lists per business)."""
    records: list[dict[str, Any]] = []
    for header in USAGE_HEADERS:
        data = _loads(response.headers.get(header))
        if isinstance(data, dict) and header == "X-App-Usage":
            records.append(data)
        elif isinstance(data, dict):
            records += [entry for entries in data.values() if isinstance(entries, list) for entry in entries]
    return [record for record in records if isinstance(record, dict)]


def _usage(response: requests.Response) -> float:
    """The highest percentage of a limit the usage headers report (0 without them)."""
    shares = [
        float(value)
        for record in _usage_records(response)
        for key, value in record.items()
        if key in ("call_count", "total_time", "total_cputime") and isinstance(value, int | float)
    ]
    return max(shares, default=0.0)


def _regain_access(response: requests.Response) -> float:
    """Seconds until Meta lifts the limit: the longest ``estimated_time_to_regain_access`` (minutes), else an hour."""
    minutes = [
        float(record["estimated_time_to_regain_access"])
        for record in _usage_records(response)
        if isinstance(record.get("estimated_time_to_regain_access"), int | float)
    ]
    longest = max(minutes, default=0.0)
    return longest * 60 if longest > 0 else RATE_LIMIT_WAIT
