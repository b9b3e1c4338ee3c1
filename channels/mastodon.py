"""The Mastodon channel: one status per item, within the instance's character limit.

``compose`` renders ``templates/mastodon/post.txt.j2`` (title, summary, the UTM-tagged link, then the practice's
hashtags when they fit) and counts it as Mastodon does (:func:`mastodon_length`: grapheme clusters, every
``http(s)://`` URL as 23, a remote mention ``@user@domain`` as ``@user``). Over 500 characters the summary is
shortened on a word boundary and the link kept.

With ``credentials`` configured ``publish`` reads the instance's own limits from ``GET /api/v2/instance`` (once per
channel object), refuses a status over them, and posts it with ``POST /api/v1/statuses`` through ``requests``, with a
Bearer token and an ``Idempotency-Key`` naming the publication, claimed before it is sent
(:func:`carecast.inflight.send_once`): a publication already sent is not posted again, and a retry after a lost answer
(or a dead run) posts with the same key and gets the same status back instead of a second one. The instance keeps a
key for an hour only (``MastodonChannel.key_retention``): an attempt older than that is settled by reading the
account's statuses since it was made (:meth:`MastodonChannel.find_status`) before anything is posted again, under a new
key. Failures: 429 is transient until ``Retry-After`` (or ``X-RateLimit-Reset``); 5xx, timeouts, unreachable
instances and malformed answers are transient; a 401 is the token, a CredentialError retried once the staff fix it;
403, 422 and any other refusal are permanent (:func:`carecast.channel.refusal`). Without credentials it writes the
JSON request body to the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import regex
import requests
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
    Settings,
    Strict,
    as_numbers,
    now_utc,
    provider_time,
    refusal,
    resolve,
    send_once,
)
from carecast.plugin.text import find_urls, graphemes, html_to_text
from carecast_channels.http import https_or_loopback, retry_after
from carecast_channels.social import EmojiPolicy, one_post, post_copy

#: What Mastodon counts for any URL, and its default status length, when the instance does not say otherwise.
URL_WEIGHT = 23
MAX_CHARACTERS = 500
# Mastodon's Account::MENTION_RE, for remote mentions only: the domain part does not count.
REMOTE_MENTION = regex.compile(
    r"(?<![=/\w])@([a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)@\w+(?:[.-]+\w+)*", regex.IGNORECASE | regex.UNICODE
)
#: A link in a status: Mastodon shows it its own way (shortened, in spans), so a lookup compares the text around it.
LINK = regex.compile(r"https?://\S+")
#: How many characters of a status's text (normalised: :func:`comparable`) a lookup compares.
COMPARED = 100
#: Statuses read per page by a lookup (Mastodon's most), and pages read at most.
LOOKUP_PAGE = 40
LOOKUP_PAGES = 5


def mastodon_length(text: str, url_weight: int = URL_WEIGHT) -> int:
    """The length Mastodon checks against its limit: grapheme clusters, once every ``http(s)://`` URL is replaced
    by ``url_weight`` characters and every remote mention ``@user@domain`` by ``@user`` (Mastodon's
    StatusLengthValidator; a bare domain is no URL there)."""
    entities = [(start, end, "x" * url_weight) for start, end, _ in find_urls(text, without_protocol=False)]
    entities += [(m.start(), m.end(), f"@{m.group(1)}") for m in REMOTE_MENTION.finditer(text)]
    pieces, position = [], 0
    for start, end, replacement in sorted(entities):
        if start < position:  # overlaps an entity already counted (a mention inside a URL)
            continue
        pieces += [text[position:start], replacement]
        position = end
    pieces.append(text[position:])
    return graphemes("".join(pieces))


def comparable(text: str) -> str:
    """The start of ``text`` as a lookup compares it with a status's content made plain: links dropped, a remote
    mention without its domain (Mastodon shows ``@user``), whitespace collapsed, the first ``COMPARED``
    characters. Raises nothing."""
    text = REMOTE_MENTION.sub(lambda m: f"@{m.group(1)}", LINK.sub(" ", text))
    return " ".join(text.split())[:COMPARED]


@dataclass(frozen=True)
class Attempt:
    """The Idempotency-Key a publication's status is posted under, saved in its progress before the first post with
    it: ``at`` on the run's clock (``PublishContext.now``, for the key's age), ``sent_after`` on the wall clock (the
    instance dates a status on its own clock)."""

    key: str
    at: datetime
    sent_after: datetime

    @classmethod
    def saved(cls, progress: dict[str, Any]) -> Attempt | None:
        """The attempt ``progress`` holds, None when there is none (or it is unreadable: a new key is then used)."""
        saved = progress.get("attempt")
        if not isinstance(saved, dict):
            return None
        try:
            return cls(saved["key"], datetime.fromisoformat(saved["at"]), datetime.fromisoformat(saved["sent_after"]))
        except (TypeError, KeyError, ValueError):
            return None

    def progress(self) -> dict[str, Any]:
        """The publication's progress holding this attempt."""
        return {"attempt": {"key": self.key, "at": self.at.isoformat(), "sent_after": self.sent_after.isoformat()}}


class MastodonCredentials(Strict):
    """The posting account's access token (Preferences → Development → an application with ``write:statuses``)."""

    access_token: SecretRef


class MastodonConfig(ChannelSettings):
    """``channels.<name>`` of type ``mastodon``."""

    instance_url: HttpUrl = Field(description="the account's instance, e.g. https://mastodon.social")
    visibility: Literal["public", "unlisted", "private"] = Field("public", description="who sees the statuses")
    hashtags: bool = Field(True, description="append the practice's hashtags when they fit")
    emoji: EmojiPolicy = Field("keep", description="keep the emoji of an item's text, or drop them")
    credentials: MastodonCredentials | None = Field(
        None, description="post to the instance with these; absent: write to the outbox"
    )
    timeout: float = Field(30, gt=0, le=300, description="seconds one request to the instance may take")

    @field_validator("instance_url")
    @classmethod
    def _secure(cls, value: HttpUrl) -> HttpUrl:
        # The access token travels in every request: never in clear text, except to a local test instance.
        return https_or_loopback(value)

    @property
    def base_url(self) -> str:
        return str(self.instance_url).rstrip("/")


@dataclass(frozen=True)
class InstanceLimits:
    """What ``GET /api/v2/instance`` says of statuses."""

    max_characters: int
    url_weight: int


class MastodonChannel(Channel):
    """Posts a status on a Mastodon instance: one item a status."""

    name = "mastodon"
    Config = MastodonConfig
    utm_source = "mastodon"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_characters": MAX_CHARACTERS}
    #: Mastodon's default: 300 requests per 5 minutes per account, all endpoints (docs.joinmastodon.org/api/
    #: rate-limits); an instance may set its own, which ``rate`` in the config then says.
    rate: ClassVar[tuple[int, float] | None] = (300, 300.0)
    #: How long the instance answers a repeated Idempotency-Key with the status it made: Mastodon's PostStatusService
    #: stores it with ``redis.setex(idempotency_key, 3_600, @status.id)`` (app/services/post_status_service.rb; the
    #: API docs for POST /api/v1/statuses: "stored for up to 1 hour"). An attempt older than this, less
    #: ``lookup_skew``, is looked up instead of posted again with its key.
    key_retention: ClassVar[timedelta] = timedelta(hours=1)
    #: Allowed between our clock and the instance's: a status dated this much before its attempt is still its.
    lookup_skew: ClassVar[timedelta] = timedelta(minutes=5)

    config: MastodonConfig

    def __init__(self, instance: str, config: ChannelSettings, settings: Settings) -> None:
        super().__init__(instance, config, settings)
        self._instance_limits: InstanceLimits | None = None

    def count_characters(self, text: str) -> int:
        """Characters as Mastodon counts them (see :func:`mastodon_length`)."""
        return mastodon_length(text)

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a status, its summary shortened on a word boundary when it is over the limit.

        The hashtags stay when the shortened summary leaves room for them; else they go, with a note in the draft's
        ``measures["notes"]``.

        Raises RenderError when ``items`` is not exactly one item, or when not even one word of the summary fits
        beside title and link.
        """
        if len(items) != 1:
            raise RenderError(
                self.instance, f"a Mastodon status is for exactly one item, not {len(items)}", [i.id for i in items]
            )
        item = items[0]
        link = self.link(item)
        budget = self.limit("max_characters") or MAX_CHARACTERS
        copy = post_copy(
            item, self.practice.voice.hashtags_for(item.language) if self.config.hashtags else (), self.config.emoji
        )

        def post(body: str, tags: Sequence[str] = ()) -> str:
            return self.template("post.txt.j2", item=item, title=copy.title, body=body, link=link, hashtags=tags)

        def fits(text: str) -> bool:
            return self.count_characters(text) <= budget

        try:
            text, notes = one_post(post, copy, fits)
        except MeasureError as exc:
            raise RenderError(self.instance, f"does not fit in {budget} characters: {exc}", [item.id]) from exc
        return Draft(
            channel=self.instance,
            item_ids=(item.id,),
            parts=(text,),
            measures={"notes": notes} if notes else {},
            # The item's own language (a post in Spanish on an English practice's account), for the request.
            details={"language": item.language} if item.language else {},
        )

    # -- publishing --------------------------------------------------------------------------------------------

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Post ``draft`` as a status when credentials are configured, else write its request body to the outbox.

        Raises CredentialError, as it is, when the token cannot be read (nothing was sent) or the instance refuses
        it (401). Raises PublishError: transient for 429 (``retry_after`` as the instance asked), 5xx, timeouts, an
        unreachable instance, a malformed answer or a full or read-only outbox; permanent when the status is over the
        instance's limit, for any other refusal (403, 422) and when the outbox file exists already.
        """
        language = draft.details.get("language") or self.practice.language
        body = {"status": draft.text, "visibility": self.config.visibility, "language": language}
        key = self.idempotency_key(draft, context)
        if self.config.credentials is None:
            payload = {
                "endpoint": "POST /api/v1/statuses",
                "instance": self.config.base_url,
                "account": self.config.account,
                "idempotency_key": key,
                "request": body,
            }
            return context.outbox.receipt(context.outbox.write_json(self.instance, context.key, payload))
        session = self._session()
        if self._instance_limits is None:
            context.pace()
        limits = self.instance_limits(session)
        length = mastodon_length(draft.text, limits.url_weight)
        if length > limits.max_characters:
            reason = f"the status has {length} of the instance's {limits.max_characters} characters"
            raise PublishError(self.instance, reason, transient=False)
        context.stop_if_asked(self.instance)
        attempt = Attempt.saved(context.ledger.progress(context.publication_id))

        def post() -> Receipt:
            nonlocal attempt
            if attempt is None or context.now - attempt.at >= self.key_retention - self.lookup_skew:
                if attempt is not None:
                    # The instance may have forgotten the key: a status made under it is found by its text instead.
                    found = self.find_status(session, draft.text, attempt.sent_after - self.lookup_skew, context)
                    if found is not None:
                        return found
                attempt = self._new_attempt(draft, context, renewed=attempt is not None)
            context.pace()
            response = self._check(
                self._send(session, "POST", "/api/v1/statuses", json=body, headers={"Idempotency-Key": attempt.key})
            )
            return self._receipt(self._json(response, "posting"))

        # Claimed before it is sent; one in doubt is asked about by posting it again with the same Idempotency-Key,
        # which the instance answers with the status it made (or makes it, when it has none); once the key may be
        # forgotten, by reading the account's statuses first.
        return send_once(self.instance, context, post, post)

    def find_status(
        self, session: requests.Session, text: str, since: datetime, context: PublishContext
    ) -> Receipt | None:
        """The receipt of the account's status made at or after ``since`` that says ``text`` (compared as
        :func:`comparable` says) with the channel's visibility, replies and boosts aside; None when there is none.

        Reads ``GET /api/v1/accounts/verify_credentials`` for the account's id, then its statuses newest first
        (``GET /api/v1/accounts/:id/statuses``, ``LOOKUP_PAGE`` a page, up to ``LOOKUP_PAGES`` pages). Raises
        PublishError and CredentialError as ``publish`` does when the instance cannot be asked.
        """
        context.pace()
        account = self._json(self._check(self._send(session, "GET", "/api/v1/accounts/verify_credentials")), "lookup")
        wanted = comparable(text)
        query = {"limit": str(LOOKUP_PAGE), "exclude_replies": "true", "exclude_reblogs": "true"}
        for _ in range(LOOKUP_PAGES):
            context.pace()
            path = f"/api/v1/accounts/{account.get('id')}/statuses"
            statuses = self._statuses(self._check(self._send(session, "GET", path, params=query)))
            for status in statuses:
                if self._says(status, wanted, since):
                    return self._receipt(status)
            oldest = provider_time(statuses[-1].get("created_at")) if statuses else None
            if len(statuses) < LOOKUP_PAGE or oldest is None or oldest < since:
                return None
            query["max_id"] = str(statuses[-1].get("id"))
        # More than LOOKUP_PAGES pages since the attempt: a status this far down is taken for not made.
        return None

    def _statuses(self, response: requests.Response) -> list[dict[str, Any]]:
        """The statuses a page of an account's statuses holds; raises PublishError (transient) when it holds none."""
        try:
            page = response.json()
        except ValueError:
            page = None
        if not isinstance(page, list) or not all(isinstance(status, dict) for status in page):
            reason = f"reading the account's statuses: {self.config.base_url} answered malformed JSON"
            raise PublishError(self.instance, reason, transient=True)
        return page

    def _says(self, status: dict[str, Any], wanted: str, since: datetime) -> bool:
        """Whether ``status`` was made at or after ``since`` with the channel's visibility and says ``wanted`` (its
        content made plain, :func:`comparable`)."""
        made = provider_time(status.get("created_at"))
        if made is None or made < since or status.get("visibility") != self.config.visibility:
            return False
        return comparable(html_to_text(str(status.get("content") or ""))) == wanted

    def _new_attempt(self, draft: Draft, context: PublishContext, renewed: bool) -> Attempt:
        """The attempt a status is posted under from now on, saved before the post: a resumed attempt knows its key
        and whether the instance still keeps it. ``renewed``: an earlier key is forgotten and its status was not
        found, so the key is a new one."""
        key = self.idempotency_key(draft, context)
        attempt = Attempt(f"{key}:{context.now:%Y%m%dT%H%M%S}" if renewed else key, context.now, now_utc())
        context.ledger.save_progress(context.publication_id, attempt.progress())
        return attempt

    def _receipt(self, status: dict[str, Any]) -> Receipt:
        """The receipt of a status the instance answered; raises PublishError (transient) when it lacks its url or
        id."""
        try:
            return Receipt(location=str(status["url"]), sent_at=now_utc(), provider_ids=(str(status["id"]),))
        except KeyError as exc:
            raise PublishError(
                self.instance, f"{self.config.base_url} answered a status without {exc}", transient=True
            ) from exc

    def engagement(self, provider_ids: Sequence[str]) -> dict[str, Engagement]:
        """Each status's counts (``GET /api/v1/statuses/:id``: replies, boosts, favourites); a status gone (404) is a
        problem of its answer. Raises PublishError when the instance cannot be asked, CredentialError for the token.
        """
        if self.config.credentials is None:
            return {}
        session, answers = self._session(), {}
        for status_id in provider_ids:
            response = self._send(session, "GET", f"/api/v1/statuses/{status_id}")
            if response.status_code == 404:
                answers[status_id] = Engagement({}, {"status": "deleted, or no longer visible to the account"})
                continue
            status = self._json(self._check(response), "reading a status")
            counts = {name: status.get(name) for name in ("replies_count", "reblogs_count", "favourites_count")}
            answers[status_id] = Engagement(as_numbers(counts))
        return answers

    def idempotency_key(self, draft: Draft, context: PublishContext) -> str:
        """Names one publication of one draft on this channel: every attempt at it sends the same key."""
        return f"carecast:{self.instance}:{context.key}:{draft.key}"

    def instance_limits(self, session: requests.Session | None = None) -> InstanceLimits:
        """The instance's status limits from ``GET /api/v2/instance``, read once per channel object.

        An instance that advertises none gets Mastodon's defaults. Raises PublishError as ``publish`` does when
        the instance cannot be asked.
        """
        if self._instance_limits is None:
            response = self._check(self._send(session or requests.Session(), "GET", "/api/v2/instance"))
            statuses = (self._json(response, "reading the instance's limits").get("configuration") or {}).get(
                "statuses"
            ) or {}
            self._instance_limits = InstanceLimits(
                max_characters=int(statuses.get("max_characters", MAX_CHARACTERS)),
                url_weight=int(statuses.get("characters_reserved_per_url", URL_WEIGHT)),
            )
        return self._instance_limits

    def verify(self) -> str:
        """Sign in with the access token (``GET /api/v1/accounts/verify_credentials``), posting nothing.

        Raises CredentialError when the token cannot be read or the instance refuses it (401, 403), PublishError
        when the instance cannot be reached or fails.
        """
        credentials = self.config.credentials
        if credentials is None:
            return super().verify()
        session = self._session()
        response = self._send(session, "GET", "/api/v1/accounts/verify_credentials")
        if response.status_code in (401, 403):
            raise CredentialError(
                credentials.access_token.where, f"{self.config.base_url} refused it ({response.status_code})"
            )
        account = self._json(self._check(response), "signing in")
        limits = self.instance_limits(session)
        return (
            f"Mastodon: signed in as @{account.get('acct')} on {self.config.base_url}; "
            f"statuses up to {limits.max_characters} characters"
        )

    # -- transport ---------------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        """A session carrying the account's Bearer token; raises CredentialError when it cannot be read."""
        credentials = self.config.credentials
        assert credentials is not None  # callers check: no credentials means the outbox
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {resolve(credentials.access_token).get_secret_value()}"
        return session

    def _send(self, session: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to the instance; raises PublishError (transient) when it cannot be reached or times out."""
        # Transient even when the answer was lost after the status was sent (unlike SMS and X): the retry carries
        # the same Idempotency-Key, so the instance returns the status it made instead of posting a second one.
        try:
            return session.request(method, self.config.base_url + path, timeout=self.config.timeout, **kwargs)
        except requests.RequestException as exc:
            reason = f"{method} {path}: {self.config.base_url} cannot be reached ({type(exc).__name__})"
            raise PublishError(self.instance, reason, transient=True) from exc

    def _check(self, response: requests.Response) -> requests.Response:
        """``response`` when it is a success; raises PublishError saying what the instance answered, CredentialError
        for a 401."""
        if response.ok:
            return response
        status = response.status_code
        where = f"{response.request.method} {response.request.path_url}"
        reason = f"{where}: {self.config.base_url} answered {status} {_error_text(response)}".rstrip()
        where = f"channels.{self.instance}.credentials.access_token"
        raise refusal(self.instance, reason, status, credential=where, retry_after=retry_after(response.headers))

    def _json(self, response: requests.Response, step: str) -> dict[str, Any]:
        """The JSON object ``response`` holds; raises PublishError (transient: the Idempotency-Key makes a retry
        safe) when it holds none."""
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PublishError(self.instance, f"{step}: {self.config.base_url} answered malformed JSON", transient=True)
        return data


def _error_text(response: requests.Response) -> str:
    """Mastodon's ``{"error": ...}`` message of a refusal, if it sent one."""
    try:
        data = response.json()
    except ValueError:
        return ""
    return f"({data['error']})" if isinstance(data, dict) and isinstance(data.get("error"), str) else ""
