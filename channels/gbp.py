"""The Google Business Profile channel: one local post per item on the practice's profile (Maps, local search).

``compose`` renders ``templates/gbp/post.txt.j2`` into the post's ``summary`` (at most 1,500 characters: the
summary is shortened on a word boundary) and decides the rest of the request, kept in ``Draft.details``:

- ``topicType``: ``EVENT`` for an observance (its title and its first and last day as the schedule), ``OFFER`` for
  an item tagged ``offer_tag`` (its link as the redeem URL, ``offer_days`` long), ``STANDARD`` otherwise;
- ``callToAction`` (not on offers, which Google ignores it on): ``LEARN_MORE`` with the item's UTM-tagged link
  (the practice's site when the item has none), ``BOOK`` with ``booking_url``, or ``CALL``, which dials the
  location's own number;
- an item's image goes as ``media`` by URL (``sourceUrl``, ``PHOTO``): Google fetches it.

Google refuses a post whose text holds a phone number, so ``compose`` takes any number out of the item's summary
(``phone_numbers: strip``, the draft's ``measures`` say so) or refuses the item (``refuse``), and ``enforce`` refuses
any text that still has one (from a title, a template, an edit at approval): the ``CALL`` button is how a post gives
the number.

With ``credentials`` (an OAuth 2.0 client and the refresh token of a user who manages the location, scope
``business.manage``) ``publish`` gets an access token from Google's token endpoint through ``google-auth`` and sends
``POST /v4/accounts/{account}/locations/{location}/localPosts``. Failures: a 429 (``RESOURCE_EXHAUSTED``) waits and
sends again within ``retry_budget`` seconds (``Retry-After`` when Google gives one, else 1, 2, 4 ... seconds), then
is transient; a 5xx and a request that got no answer are transient; a refused or expired refresh token and a 401
are a CredentialError naming the channel's credentials (retried once fixed); any other refusal is permanent (the
shared reading, :func:`carecast.channel.refusal`). Google takes no idempotency key, so the post is claimed before it
is sent (:func:`carecast.inflight.send_once`): one whose answer was lost, or whose run died with it in flight, is
looked up among the location's posts (its summary) before it is posted again. Without credentials ``publish``
writes the exact request to the outbox.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

import google.auth.exceptions
import phonenumbers
import requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials
from pydantic import Field, HttpUrl, field_validator

from carecast.plugin import (
    Channel,
    ChannelSettings,
    ContentItem,
    CredentialError,
    Draft,
    Engagement,
    MeasureError,
    PublishContext,
    PublishError,
    Receipt,
    RenderError,
    SecretRef,
    Strict,
    claim_time,
    made_since,
    now_utc,
    provider_time,
    refusal,
    resolve,
    send_once,
    unreachable,
)
from carecast.plugin.text import flatten, shorten
from carecast_channels.http import https_or_loopback, nothing_sent, retry_after, wait_out_rate_limits
from carecast_channels.social import EXPIRY_WARNING

# google-auth logs every request with its headers (the Bearer token) at DEBUG: credentials never reach a log,
# whatever level a deployment sets on the root logger.
logging.getLogger("google.auth").setLevel(logging.INFO)

MAX_CHARACTERS = 1500
#: How many of the location's newest posts are read to find one an earlier try made.
LOOKUP_POSTS = 100
PERFORMANCE_API = "https://businessprofileperformance.googleapis.com"
#: The location's daily numbers the report shows (the Performance API's ``DailyMetric`` names).
DAILY_METRICS = (
    "BUSINESS_IMPRESSIONS_MOBILE_MAPS",
    "BUSINESS_IMPRESSIONS_MOBILE_SEARCH",
    "WEBSITE_CLICKS",
    "CALL_CLICKS",
    "BUSINESS_DIRECTION_REQUESTS",
)
#: The OAuth scope that lets a user's token post on the locations they manage.
SCOPE = "https://www.googleapis.com/auth/business.manage"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GBP_API = "https://mybusiness.googleapis.com"
#: What introduces a phone number, in English and Spanish, taken out with it.
_PHONE_INTRO = re.compile(
    r"(?:\b(?:call|text|phone|ring|dial|reach|contact)\b(?:\s+(?:us|me|them|(?:the|our)\s+[\w-]+(?:\s+[\w-]+)?))?"
    r"\s+(?:at|on)\s*|\b(?:ll[aá]m(?:e|enos|anos)|marque|escr[ií]banos|cont[aá]ctenos)\b(?:\s+(?:al|a|en))?\s*"
    r"|\b(?:at|on|al|tel[.:]?|phone:|tel[eé]fono:?)\s*)$",
    re.IGNORECASE,
)
_DOUBLE_STOP = re.compile(r"([.!?,;:])\s*\.(?=\s|$)")
_LEFT_CONJUNCTION = re.compile(r"(^|[.!?]\s+)(?:or|and|o|y)\s+(\w)")
PHONE_REASON = "Google refuses a post with a phone number in its text; the CALL button dials the practice"


class GbpCredentials(Strict):
    """An OAuth 2.0 client of the practice's Google Cloud project and a manager's refresh token, by reference."""

    client_id: str = Field(description="the OAuth client's id (…apps.googleusercontent.com); not a secret")
    client_secret: SecretRef
    refresh_token: SecretRef
    refresh_token_expires: date | None = Field(
        None, description="when the refresh token stops working, if it does (an app in Testing status: 7 days)"
    )
    token_uri: HttpUrl = Field(HttpUrl(GOOGLE_TOKEN_URI), description="Google's token endpoint (a local test server)")

    @field_validator("token_uri")
    @classmethod
    def _secure(cls, value: HttpUrl) -> HttpUrl:
        # The client secret and refresh token travel to it: never in clear text, except to a local test server.
        return https_or_loopback(value)


class GbpConfig(ChannelSettings):
    """``channels.<name>`` of type ``gbp``."""

    account_id: str = Field(pattern=r"^[0-9]+$", description="the Business Profile account's number (accounts/N)")
    location_id: str = Field(pattern=r"^[0-9]+$", description="the location's number (locations/N)")
    call_to_action: Literal["LEARN_MORE", "BOOK", "CALL"] = Field(
        "LEARN_MORE", description="the post's button: the item's link, booking_url, or the location's phone"
    )
    booking_url: HttpUrl | None = Field(None, description="where BOOK leads (the item's link when absent)")
    phone_numbers: Literal["strip", "refuse"] = Field(
        "strip", description="a phone number in an item's text: take it out, or refuse the item"
    )
    offer_tag: str = Field("offer", min_length=1, description="items with this tag are posted as offers")
    offer_days: int = Field(30, ge=1, le=366, description="how long an offer runs from the item's date")
    language: str = Field("en-US", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="the post's languageCode")
    credentials: GbpCredentials | None = Field(None, description="post with these; absent: write to the outbox")
    api_base: HttpUrl = Field(HttpUrl(GBP_API), description="the API's base URL (a local test server)")
    performance_base: HttpUrl = Field(
        HttpUrl(PERFORMANCE_API), description="the Business Profile Performance API's base URL (a local test server)"
    )
    timeout: float = Field(30, gt=0, le=300, description="seconds one request to Google may take")
    retry_budget: float = Field(10, ge=0, le=300, description="seconds a publish may wait out rate limits")

    @field_validator("api_base", "performance_base")
    @classmethod
    def _secure(cls, value: HttpUrl) -> HttpUrl:
        # Every request carries the access token: never in clear text, except to a local test server.
        return https_or_loopback(value)

    @property
    def location(self) -> str:
        return f"accounts/{self.account_id}/locations/{self.location_id}"

    @property
    def endpoint(self) -> str:
        return f"{str(self.api_base).rstrip('/')}/v4/{self.location}/localPosts"


def _date(day: date) -> dict[str, int]:
    """A date as Google's API writes one."""
    return {"year": day.year, "month": day.month, "day": day.day}


class GbpChannel(Channel):
    """Posts on the practice's Google Business Profile: one item a local post."""

    name = "gbp"
    Config = GbpConfig
    utm_source = "gbp"
    utm_medium = "organic"
    limits: ClassVar[dict[str, int]] = {"max_characters": MAX_CHARACTERS}
    #: The Business Profile APIs' default quota: 300 requests a minute (developers.google.com/my-business/content/
    #: limits); a local post is one request, so posts are counted (``paces_requests``).
    rate: ClassVar[tuple[int, float] | None] = (300, 60.0)
    paces_requests: ClassVar[bool] = False

    config: GbpConfig

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a local post: its summary, topic, call to action and image.

        Raises RenderError when ``items`` is not exactly one item, when its text holds a phone number and
        ``phone_numbers`` is ``refuse``, or when not even one word of the summary fits in 1,500 characters.
        """
        if len(items) != 1:
            raise RenderError(
                self.instance,
                f"a Business Profile post is for exactly one item, not {len(items)}",
                [i.id for i in items],
            )
        item = items[0]
        # A post without a link of its own (an observance) leads to the practice's site, tagged the same way.
        link = self.link(item) or str(self.link(replace(item, url=str(self.practice.website))))
        topic, details = self._topic(item, link)
        budget = self.limit("max_characters") or MAX_CHARACTERS

        def post(body: str) -> str:
            return self.template("post.txt.j2", item=item, body=body, topic=topic)

        body, removed = self._without_phone_numbers(flatten(item.summary_text), item)  # rows end as sentences
        try:
            if self.count_characters(text := post(body)) > budget:
                text = post(shorten(body, lambda cut: self.count_characters(post(cut)) <= budget))
        except MeasureError as exc:
            raise RenderError(self.instance, f"does not fit in {budget} characters: {exc}", [item.id]) from exc
        measures = {"notes": [f"removed {removed} phone number(s): {PHONE_REASON}"]} if removed else {}
        return Draft(
            channel=self.instance,
            item_ids=(item.id,),
            parts=(text,),
            image_url=item.image_url,
            link=link,
            details={"topicType": topic, **details} | ({"languageCode": item.language} if item.language else {}),
            measures=measures,
        )

    def enforce(self, draft: Draft) -> Draft:
        """The base's limits, and no phone number in the text (a text edited at approval included).

        Raises RenderError naming the rule broken.
        """
        checked = super().enforce(draft)
        if self._phone_numbers(draft.text):
            raise RenderError(self.instance, f"the text holds a phone number: {PHONE_REASON}", draft.item_ids)
        return checked

    def _topic(self, item: ContentItem, link: str) -> tuple[str, dict[str, Any]]:
        """The post's topicType and the request fields that go with it (event, offer, callToAction)."""
        start = item.published.astimezone(self.practice.zone).date()
        if item.kind == "observance":
            schedule = {"startDate": _date(start), "endDate": _date(item.last_day or start)}
            return "EVENT", {"event": {"title": item.title, "schedule": schedule}, **self._call_to_action(link)}
        if self.config.offer_tag in item.tags:
            end = start + timedelta(days=self.config.offer_days - 1)
            schedule = {"startDate": _date(start), "endDate": _date(end)}
            # Google ignores callToAction on an offer: its link is the offer's own redeem URL.
            return "OFFER", {"event": {"title": item.title, "schedule": schedule}, "offer": {"redeemOnlineUrl": link}}
        return "STANDARD", self._call_to_action(link)

    def _call_to_action(self, link: str) -> dict[str, Any]:
        action = self.config.call_to_action
        if action == "CALL":
            return {"callToAction": {"actionType": "CALL"}}
        url = str(self.config.booking_url) if action == "BOOK" and self.config.booking_url else link
        return {"callToAction": {"actionType": action, "url": url}}

    def _phone_numbers(self, text: str) -> list[phonenumbers.PhoneNumberMatch]:
        return list(phonenumbers.PhoneNumberMatcher(text, self.practice.address.country))

    def _without_phone_numbers(self, text: str, item: ContentItem) -> tuple[str, int]:
        """``text`` (one line) without its phone numbers, and how many were taken out.

        Raises RenderError when there is one and ``phone_numbers`` is ``refuse``.
        """
        found = self._phone_numbers(text)
        if not found:
            return text, 0
        if self.config.phone_numbers == "refuse":
            raise RenderError(self.instance, f"the text holds a phone number: {PHONE_REASON}", [item.id])
        for match in reversed(found):
            # The words that introduce the number go with it ("call us at", "llame al"): never a dangling "at".
            intro = _PHONE_INTRO.search(text[: match.start])
            text = text[: intro.start() if intro else match.start] + text[match.end :]
        text = " ".join(text.split()).replace(" .", ".").replace(" ,", ",")
        # The full stop after a number taken out stays once: "Questions?." and "Para una cita,." end as they should.
        text = _DOUBLE_STOP.sub(lambda found: found.group(1) if found.group(1) in ".!?" else ".", text)
        # A clause left opening on its conjunction ("… or email us") starts the sentence with its verb.
        text = _LEFT_CONJUNCTION.sub(lambda found: found.group(1) + found.group(2).upper(), text)
        return text.strip(), len(found)

    # -- publishing --------------------------------------------------------------------------------------------

    def request_body(self, draft: Draft) -> dict[str, Any]:
        """The ``localPosts`` request body for ``draft``: what Google gets, and what the outbox holds."""
        body: dict[str, Any] = {"languageCode": self.config.language, "summary": draft.text, **draft.details}
        if draft.image_url:
            body["media"] = [{"mediaFormat": "PHOTO", "sourceUrl": draft.image_url}]
        return body

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Create the local post when credentials are configured, else write its request to the outbox.

        Raises CredentialError when a credential cannot be read (nothing was sent), or when Google refuses the
        refresh token or the access token (401). Raises PublishError: transient for a 429 whose wait no longer fits
        in ``retry_budget`` (with ``retry_after``), a 5xx, a request that got no answer (looked up next time), a full
        or read-only outbox; permanent for any other refusal and when the outbox file exists already.
        """
        body = self.request_body(draft)
        if self.config.credentials is None:
            payload = {
                "endpoint": "POST /v4/accounts/{account}/locations/{location}/localPosts",
                "url": self.config.endpoint,
                "account": self.config.account,
                "request": body,
            }
            return context.outbox.receipt(context.outbox.write_json(self.instance, context.key, payload))
        session = self._session()

        def attempt(number: int) -> requests.Response:
            return self._request(session, "POST", "creating the post", number, json=body)

        def send() -> Receipt:
            response = wait_out_rate_limits(attempt, self.config.retry_budget, self.instance)
            return _receipt(self._json(response, "creating the post", posted=True))

        def lookup() -> Receipt | None:
            claimed = claim_time(context)
            # The location's newest posts: one with this summary, made since the claim, is the post an earlier
            # try made.
            response = self._request(session, "GET", "looking for the post", 1, params={"pageSize": LOOKUP_POSTS})
            posts = self._json(response, "looking for the post").get("localPosts")
            for post in posts if isinstance(posts, list) else []:
                if not isinstance(post, dict) or post.get("summary") != body["summary"] or not post.get("name"):
                    continue
                if made_since(provider_time(post.get("createTime")), claimed, self.lookup_skew):
                    return _receipt(post)
            return None

        return send_once(self.instance, context, send, lookup)

    def verify(self) -> str:
        """Get an access token and read the location's posts (``GET .../localPosts?pageSize=1``), posting nothing;
        warn when the refresh token expires within 7 days.

        Raises CredentialError when a credential cannot be read or Google refuses it, PublishError when Google
        cannot be reached or refuses the location.
        """
        credentials = self.config.credentials
        if credentials is None:
            return super().verify()
        session = self._session()
        listing = self._json(
            self._request(session, "GET", "reading the location's posts", 1, params={"pageSize": 1}), "reading posts"
        )
        read = len(listing.get("localPosts", []))
        said = f"Google Business Profile: signed in; {self.config.location} answers ({read} recent post(s) read)"
        expires = credentials.refresh_token_expires
        if expires is not None:
            left = expires - now_utc().astimezone(self.practice.zone).date()
            if left <= EXPIRY_WARNING:
                said += (
                    f"; WARNING: the refresh token expires on {expires.isoformat()} (in {left.days} days): "
                    "authorize again and update it"
                )
        return said

    # -- transport ---------------------------------------------------------------------------------------------

    def engagement(self, provider_ids: Sequence[str]) -> dict[str, Engagement]:
        """The location's daily numbers summed over ``report.metrics_days`` (the Performance API's
        ``fetchMultiDailyMetricsTimeSeries``): Google gives them per location, not per post, so one answer under
        the location's name. A 403 (no permission, the API not enabled) is its problem. Raises CredentialError and
        PublishError as ``publish`` does."""
        if self.config.credentials is None or not provider_ids:
            return {}
        today = now_utc().date()
        start = today - timedelta(days=self.settings.report.metrics_days)
        params: list[tuple[str, str | int]] = [("dailyMetrics", metric) for metric in DAILY_METRICS]
        for edge, day in (("start_date", start), ("end_date", today)):
            params += [(f"dailyRange.{edge}.{part}", value) for part, value in _date(day).items()]
        base = str(self.config.performance_base).rstrip("/")
        url = f"{base}/v1/locations/{self.config.location_id}:fetchMultiDailyMetricsTimeSeries"
        step = "reading the location's numbers"
        try:
            response = self._request(self._session(), "GET", step, 1, url=url, params=params)
        except PublishError as exc:
            if exc.transient or "403" not in exc.reason:
                raise
            why = f"permission missing, or the Performance API is not enabled ({exc.reason})"
            return {self.config.location: Engagement({}, {"daily_metrics": why})}
        numbers: dict[str, int] = {}
        for series in self._json(response, step).get("multiDailyMetricTimeSeries") or []:
            for daily in series.get("dailyMetricTimeSeries") or []:
                values = (daily.get("timeSeries") or {}).get("datedValues") or []
                numbers[daily["dailyMetric"].lower()] = sum(int(value.get("value", 0)) for value in values)
        return {self.config.location: Engagement(numbers)}

    @property
    def _where(self) -> str:
        return f"channels.{self.instance}.credentials"

    def _session(self) -> AuthorizedSession:
        """A session that gets (and renews) the access token from the refresh token.

        Raises CredentialError when a credential cannot be read.
        """
        credentials = self.config.credentials
        assert credentials is not None  # callers check: no credentials means the outbox
        google = Credentials(
            token=None,
            refresh_token=resolve(credentials.refresh_token).get_secret_value(),
            token_uri=str(credentials.token_uri),
            client_id=credentials.client_id,
            client_secret=resolve(credentials.client_secret).get_secret_value(),
            scopes=[SCOPE],
        )
        return AuthorizedSession(google, refresh_timeout=self.config.timeout)

    def _request(
        self, session: AuthorizedSession, method: str, step: str, attempt: int, url: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """One request to the location's posts; the response when Google accepted it.

        Raises CredentialError when the token is refused or cannot be had; PublishError: transient with
        ``retry_after`` for a 429 (Google's ``Retry-After``, else ``2 ** (attempt - 1)`` seconds), transient for a
        5xx or a request that got no answer (``maybe_sent`` for a POST), permanent for any other refusal.
        """
        try:
            response = session.request(method, url or self.config.endpoint, timeout=self.config.timeout, **kwargs)
        except google.auth.exceptions.RefreshError as exc:
            # Google's token endpoint refused the client or the refresh token (revoked, expired, wrong scope).
            raise CredentialError(self._where, f"Google refused the refresh token ({_oauth_error(exc)})") from exc
        except google.auth.exceptions.TransportError as exc:
            reason = f"{step}: Google's token endpoint cannot be reached ({type(exc.__cause__ or exc).__name__})"
            raise PublishError(self.instance, reason, transient=True) from exc
        except requests.RequestException as exc:
            # Google takes no idempotency key: a post whose answer was lost may be up, so it is looked up first.
            maybe = method == "POST" and not nothing_sent(exc)
            reason = f"{step}: Google answered nothing ({type(exc).__name__})"
            raise unreachable(self.instance, reason, maybe_sent=maybe) from exc
        if response.ok:
            return response
        status, why = response.status_code, _google_error(response)
        if status == 429:
            wait = retry_after(response.headers)
            wait = float(2 ** (attempt - 1)) if wait is None else wait
            raise PublishError(
                self.instance, f"{step}: Google answered {why}: rate limit", transient=True, retry_after=wait
            )
        raise refusal(self.instance, f"{step}: Google answered {why}", status, credential=self._where)

    def _json(self, response: requests.Response, step: str, *, posted: bool = False) -> dict[str, Any]:
        """The JSON object Google answered. Raises PublishError (transient) when there is none; ``maybe_sent`` for a
        post Google accepted (it is up: looked up, not posted again)."""
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PublishError(
                self.instance, f"{step}: Google answered malformed JSON", transient=True, maybe_sent=posted
            )
        return data


def _receipt(post: dict[str, Any]) -> Receipt:
    name = str(post.get("name", ""))
    return Receipt(location=str(post.get("searchUrl") or name), sent_at=now_utc(), provider_ids=(name,))


def _google_error(response: requests.Response) -> str:
    """``401 UNAUTHENTICATED``: the status and Google's canonical error code, never its message (it may quote
    what was sent)."""
    try:
        error = response.json().get("error", {})
        status = error.get("status") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        status = None
    return f"{response.status_code} {status}" if isinstance(status, str) else str(response.status_code)


def _oauth_error(exc: google.auth.exceptions.RefreshError) -> str:
    """The OAuth error code of a refused refresh (``invalid_grant``), never the token endpoint's whole answer."""
    details = exc.args[1] if len(exc.args) > 1 else None
    code = details.get("error") if isinstance(details, dict) else None
    return str(code) if code else "refused"
