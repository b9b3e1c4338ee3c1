"""The X (Twitter) channel: one post per item, a teaser or a short numbered thread when it is too long for one.

``compose`` renders ``templates/x/post.txt.j2`` (title, summary, the UTM-tagged link, then the practice's hashtags
when they fit) and measures it with X's own weighting (:func:`carecast.text.x_measure`). Over the limit it posts a
teaser (``too_long: teaser``, the default: the title, the opening sentences of the post's own paragraphs that fit,
whole, and the link), or threads (``too_long: thread``: split on sentences, else words; each post numbered
``1/3 ...``; the link stays where the template puts it; a teaser instead when the thread would need more than
``max_thread_parts``), or shortens the summary on a word boundary and keeps the link (``too_long: shorten``). No item
is refused for its length alone. An item's image goes along as ``Draft.image_url``.

With ``credentials`` configured ``publish`` posts through tweepy (``Client.create_tweet``, OAuth 1.0a user context,
never ``wait_on_rate_limit``): each part replies to the one before, and each posted part's id is saved in the
ledger's progress at once, so a retry resumes the thread at the first part not yet up instead of posting it again.
Each part is claimed in the ledger before it is posted (as ``part N``): one left ``unknown`` by a run that died
posting it, or whose answer was lost, is looked up on the account's timeline before it is posted again
(:mod:`carecast_channels.x_lookup`), and the thread goes on from it; while X cannot be asked the thread waits for a
later run. An image is fetched (:func:`carecast.images.fetch_image`: public addresses only unless
``image_allow_private`` allows them, size and time limits, its real type and size checked with Pillow), uploaded with
X's v2 media endpoint (``POST /2/media/upload``, then ``POST /2/media/metadata`` for its alt text) through tweepy's
signed session, and attached to the first part; when it cannot be had, the post goes without it and the receipt says so.
Failures: 429 is transient until ``x-rate-limit-reset``; 5xx and a connection that could not be made are transient; a
401 is the keys, a CredentialError retried once the staff fix them; any other refusal (403 duplicate content, 400) is
permanent (:func:`carecast.channel.refusal`). A post whose answer was lost after it was sent (a read timeout, the
connection dropped) is transient: X may have it and takes no idempotency key, so the retry looks it up first.

``api_base`` sends every call for ``api.twitter.com`` and ``upload.twitter.com`` to another base URL instead (an
API gateway, or a local test server): :class:`ApiBaseAdapter`, mounted on tweepy's own sessions, rewrites the
scheme and host (and prefixes the base's path) after OAuth 1.0a has signed the request for X's own URL.

Without credentials ``publish`` writes to the outbox the exact ``POST /2/tweets`` request bodies, each reply
pointing at ``{previous}``: the id the post before it gets (and ``{media}`` for an image's id).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import ClassVar, Literal

import requests
import tweepy
from pydantic import Field, HttpUrl, IPvAnyNetwork, StrictBool, field_validator

from carecast.plugin import (
    LOST,
    AlreadyClaimed,
    Channel,
    ChannelSettings,
    ContentItem,
    CredentialError,
    Draft,
    Engagement,
    ImageError,
    MeasureError,
    PublishContext,
    PublishError,
    Receipt,
    RenderError,
    SecretRef,
    Strict,
    as_numbers,
    now_utc,
    part_address,
    refusal,
    resolve,
)
from carecast.plugin.media import fetch_image
from carecast.plugin.text import split_to_fit, x_measure
from carecast_channels.http import https_or_loopback, nothing_sent
from carecast_channels.social import HASHTAGS_LEFT_OUT, EmojiPolicy, PostCopy, Render, one_post, post_copy, teaser
from carecast_channels.x_lookup import in_doubt, settle_part
from carecast_channels.x_transport import ApiBaseAdapter, TimeoutSession

# The OAuth 1.0a libraries tweepy signs with log the consumer key and access token (and whole Authorization
# headers) at DEBUG. Credentials never reach a log, whatever level a deployment sets on the root logger.
for _oauth_logger in ("oauthlib", "requests_oauthlib"):
    logging.getLogger(_oauth_logger).setLevel(logging.INFO)

#: Where a reply's ``in_reply_to_tweet_id`` goes: the id X gave the previous post of the thread.
PREVIOUS_ID = "{previous}"
#: Where the first post's ``media_ids`` goes in the outbox: the id X gives the uploaded image.
MEDIA_ID = "{media}"
#: X's limit on an image's alt text (POST /2/media/metadata).
ALT_TEXT_LIMIT = 1000
CREDENTIAL_NAMES = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")


class XCredentials(Strict):
    """The posting account's OAuth 1.0a user-context keys (developer portal: "Keys and tokens"), each by reference."""

    consumer_key: SecretRef
    consumer_secret: SecretRef
    access_token: SecretRef
    access_token_secret: SecretRef


class XConfig(ChannelSettings):
    """``channels.<name>`` of type ``x``."""

    too_long: Literal["teaser", "thread", "shorten"] = Field(
        "teaser",
        description="an item over the weighted limit: one post of its title, opening sentences and link (teaser), a"
        " thread (a teaser when the thread would be longer than max_thread_parts), or a shortened post",
    )
    max_thread_parts: int = Field(4, ge=2, le=10, description="a longer thread becomes a teaser")
    hashtags: bool = Field(True, description="append the practice's hashtags when they fit")
    emoji: EmojiPolicy = Field("keep", description="keep the emoji of an item's text, or drop them")
    credentials: XCredentials | None = Field(None, description="post to X with these; absent: write to the outbox")
    timeout: float = Field(30, gt=0, le=300, description="seconds one request to X (or the image download) may take")
    image_allow_private: StrictBool | list[IPvAnyNetwork] = Field(
        False,
        description="may fetch an item's image from private, loopback and link-local addresses: all (true) or these "
        "networks (a local test server, an intranet CDN); by default such addresses are refused",
    )
    api_base: HttpUrl | None = Field(
        None,
        description="send X API calls to this base instead of api.twitter.com / upload.twitter.com: an API gateway, "
        "or a local test server",
    )

    @field_validator("api_base")
    @classmethod
    def _secure(cls, value: HttpUrl | None) -> HttpUrl | None:
        # Every request carries the signed OAuth header: never in clear text, except to a local test server.
        return None if value is None else https_or_loopback(value)


class XChannel(Channel):
    """Posts on X: one item a post (or a thread)."""

    name = "x"
    Config = XConfig
    utm_source = "twitter"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_weighted_length": 280}
    #: POST /2/tweets: 100 requests per 15 minutes per user (X's published limit); held across workers.
    rate: ClassVar[tuple[int, float] | None] = (100, 900.0)

    config: XConfig

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a post, or as a thread or a shortened post when it is over the weighted limit.

        Hashtags go at the end when they fit (a shortened post shortens its body for them; a thread puts them in
        its last post); when they cannot, they are left out and the draft's ``measures["notes"]`` says so.
        Raises RenderError when ``items`` is not exactly one item, or when the item cannot fit (``too_long:
        shorten`` and not even one word of the summary beside title and link; a teaser whose title and link alone
        are too long).
        """
        if len(items) != 1:
            raise RenderError(
                self.instance, f"an X post is for exactly one item, not {len(items)}", [i.id for i in items]
            )
        item = items[0]
        link = self.link(item)
        budget = self.limit("max_weighted_length") or self.limits["max_weighted_length"]
        copy = post_copy(
            item, self.practice.voice.hashtags_for(item.language) if self.config.hashtags else (), self.config.emoji
        )

        def post(body: str, tags: Sequence[str] = ()) -> str:
            return self.template("post.txt.j2", item=item, title=copy.title, body=body, link=link, hashtags=tags)

        def fits(text: str) -> bool:
            return x_measure(text).weighted_length <= budget

        notes: list[str] = []
        try:
            if fits(single := post(copy.body, copy.hashtags)):
                parts = [single]
            elif fits(single := post(copy.body)):  # one post without hashtags beats a thread with them
                parts, notes = [single], [HASHTAGS_LEFT_OUT]
            elif self.config.too_long == "shorten":
                single, notes = one_post(post, copy, fits)
                parts = [single]
            else:
                parts = []
                if self.config.too_long == "thread":
                    with suppress(MeasureError):  # a thread only when it is short: a teaser otherwise
                        parts, notes = self._thread(copy, post, fits, self.config.max_thread_parts)
                if not parts:
                    single, notes = teaser(post, copy, fits)
                    parts = [single]
        except MeasureError as exc:
            raise RenderError(self.instance, f"does not fit in {budget} weighted characters: {exc}", [item.id]) from exc
        return Draft(
            channel=self.instance,
            item_ids=(item.id,),
            parts=tuple(parts),
            image_url=item.image_url,
            image_alt=(item.image_alt or item.title) if item.image_url else None,
            measures={"notes": notes} if notes else {},
        )

    def _thread(
        self, copy: PostCopy, post: Render, fits: Callable[[str], bool], most: int
    ) -> tuple[list[str], list[str]]:
        """``copy`` as the shortest thread of numbered posts that each fit, and notes on what was left out.

        The first post has the title and the link (a reader who stops there has it); the body is cut on sentences
        and list items; the hashtags end the last post when they fit there. Raises MeasureError when it needs more
        than ``most`` posts or a word is longer than a post.
        """
        chunks: list[str] = []
        for total in range(2, most + 1):
            marker = f"{total}/{total} "  # room for the widest number this thread length can show

            def numbered_fits(part: str, marker: str = marker) -> bool:
                return fits(marker + part)

            def first_fits(chunk: str, marker: str = marker) -> bool:
                return fits(marker + post(chunk, ()))

            # Digits and "/" weigh one each, so markers of one length split alike: split again only when the marker
            # grows (10/10).
            if not chunks or len(marker) != len(f"{total - 1}/{total - 1} "):
                chunks = split_to_fit(copy.body, numbered_fits, first_fits=first_fits)
            if len(chunks) > total:
                continue
            parts = [post(chunks[0], ()), *chunks[1:]]
            if len(parts) < 2:
                parts.append("")
            notes: list[str] = []
            if copy.hashtags:
                tagged = f"{parts[-1]}\n\n{' '.join(copy.hashtags)}".strip()
                if numbered_fits(tagged):
                    parts[-1] = tagged
                else:
                    notes.append(HASHTAGS_LEFT_OUT)
            parts = [part for part in parts if part]
            return [f"{number}/{len(parts)} {part}" for number, part in enumerate(parts, start=1)], notes
        raise MeasureError(f"needs more than {most} posts (max_thread_parts)")

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Post ``draft`` on X when credentials are configured, else write its request bodies to the outbox.

        Raises CredentialError, as it is, when a credential cannot be read (nothing was sent). Raises PublishError:
        transient for 429 (``retry_after`` until the reset), 5xx, a request that got no answer (looked up on the
        timeline next time) or a full or read-only outbox; permanent for any other refusal (403 duplicate content,
        400) and when the outbox file exists already. Raises CredentialError when X refuses the keys (401).
        """
        if self.config.credentials is None:
            return self._write_outbox(draft, context)
        client = self._client()
        username = self._username(client)
        ledger, publication = context.ledger, context.publication_id
        progress = ledger.progress(publication)
        posted: list[str] = list(progress.get("posted", []))
        notes: list[str] = list(progress.get("notes", []))
        media_ids: list[str] = []
        if not posted and draft.image_url:
            media_ids, notes = self._attach(client, draft.image_url, draft.image_alt)
        total = len(draft.parts)
        parts = ledger.deliveries(publication)
        for number in range(len(posted) + 1, total + 1):
            context.stop_if_asked(self.instance)
            part = part_address(number)
            settled = parts.get(part)
            if settled is not None and settled.state == "sent":
                posted.append(settled.provider_id or "")  # resolved by staff: X had it
                continue
            if settled is not None and settled.state == "failed" and not settled.transient:
                continue  # dropped by staff
            text, step = draft.parts[number - 1], f"post {number} of {total}"
            if in_doubt(settled) and (
                found := settle_part(self.instance, client, context, part, text, step, self.lookup_skew)
            ):
                posted.append(found)
                ledger.save_progress(publication, {"posted": posted, "notes": notes})
                continue
            try:
                ledger.claim_delivery(publication, part)
            except AlreadyClaimed as exc:
                # Its run died while posting it: X may have it, and the thread must not go on without it.
                reason = f"post {number} of {total} may be up already (its run stopped while posting it)"
                raise PublishError(self.instance, reason, transient=False) from exc
            context.pace()
            posted.append(self._post_part(client, context, draft, number, posted, media_ids))
            ledger.finish_delivery(publication, part, "sent", provider_id=posted[-1])
            ledger.save_progress(publication, {"posted": posted, "notes": notes})
        first = next((known for known in posted if known), "")
        return Receipt(
            location=f"https://x.com/{username}/status/{first}",
            sent_at=now_utc(),
            provider_ids=tuple(known for known in posted if known),
            notes=tuple(notes),
        )

    def _post_part(
        self,
        client: tweepy.Client,
        context: PublishContext,
        draft: Draft,
        number: int,
        posted: Sequence[str],
        media_ids: list[str],
    ) -> str:
        """Post part ``number`` of ``draft``, claimed, as a reply to the last post up (the image on the first); return
        its id.

        Raises PublishError (transient, the part recorded lost: it is looked up before it is posted again) when X's
        answer was lost; else what :meth:`_failure` makes of X's answer, the part recorded failed and retryable.
        """
        ledger, publication = context.ledger, context.publication_id
        part, total = part_address(number), len(draft.parts)
        try:
            response = client.create_tweet(
                text=draft.parts[number - 1],
                in_reply_to_tweet_id=next((known for known in reversed(posted) if known), None),
                media_ids=media_ids if number == 1 and media_ids else None,
                user_auth=True,
            )
        except (tweepy.TweepyException, requests.RequestException) as exc:
            up = f"; {len(posted)} of {total} posts are up" if posted else ""
            if isinstance(exc, requests.RequestException) and not nothing_sent(exc):
                # X may have posted it, and has no idempotency key: the next try looks for it on the timeline.
                lost = f"X's answer was lost ({_reason(exc)}); it is looked up before it is posted again"
                ledger.finish_delivery(publication, part, "failed", error=LOST, transient=True)
                raise PublishError(self.instance, f"post {number} of {total}: {lost}{up}", transient=True) from exc
            resume = f"{up}, a retry resumes with post {number}" if posted else ""
            failure = self._failure(exc, f"post {number} of {total}", resume)
            ledger.finish_delivery(publication, part, "failed", error=failure.reason, transient=True)
            raise failure from exc
        return str(response.data["id"])

    def sender(self) -> str | None:
        """The API host and the posting account (``account``; the practice when it names none)."""
        if self.config.credentials is None:
            return None
        host = self.config.api_base.host if self.config.api_base is not None else "api.x.com"
        account = self.config.account if self.config.account != "default" else self.settings.slug
        return f"{host} {account}"

    def verify(self) -> str:
        """Sign in to X with the configured credentials (``GET /2/users/me``), posting nothing.

        Raises CredentialError when a credential cannot be read or X refuses it (401, 403), PublishError when X
        cannot be reached or fails (transient).
        """
        if self.config.credentials is None:
            return super().verify()
        try:
            me = self._client().get_me(user_auth=True)
        except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
            where = f"channels.{self.instance}.credentials"
            raise CredentialError(where, f"X refused them ({exc.response.status_code})") from exc
        except (tweepy.TweepyException, requests.RequestException) as exc:
            raise self._failure(exc, "signing in") from exc
        return f"X: signed in as @{me.data.username}"

    def engagement(self, provider_ids: Sequence[str]) -> dict[str, Engagement]:
        """Each post's ``public_metrics`` (``GET /2/tweets?ids=...&tweet.fields=public_metrics``, 100 ids a call).

        An access level that may not read posts (403) is a problem of every answer. Raises PublishError when X
        cannot be reached, rate-limits or fails; CredentialError when a credential cannot be read.
        """
        if self.config.credentials is None:
            return {}
        client, answers = self._client(), {}
        for start in range(0, len(provider_ids), 100):
            batch = list(provider_ids[start : start + 100])
            try:
                response = client.get_tweets(batch, tweet_fields=["public_metrics"], user_auth=True)
            except tweepy.Forbidden as exc:
                why = f"permission missing: X refused to read posts (403 {'; '.join(exc.api_messages)})"
                return {post: Engagement({}, {"public_metrics": why}) for post in provider_ids}
            except (tweepy.TweepyException, requests.RequestException) as exc:
                raise self._failure(exc, "reading the posts' metrics") from exc
            for tweet in response.data or []:
                answers[str(tweet.id)] = Engagement(as_numbers(tweet.public_metrics or {}))
            for error in response.errors or []:
                answers[str(error.get("resource_id"))] = Engagement({}, {"post": str(error.get("detail"))})
        return answers

    # -- live transport ------------------------------------------------------------------------------------------

    def _keys(self) -> dict[str, str]:
        """The resolved OAuth 1.0a keys; raises CredentialError naming where a missing one was looked for."""
        credentials = self.config.credentials
        assert credentials is not None  # callers check: no credentials means the outbox
        return {name: resolve(getattr(credentials, name)).get_secret_value() for name in CREDENTIAL_NAMES}

    def _client(self) -> tweepy.Client:
        """A tweepy v2 client for the account; raises CredentialError when a credential cannot be read."""
        # Never wait_on_rate_limit: it sleeps inside the worker without bound; a 429 is rescheduled instead.
        client = tweepy.Client(**self._keys(), wait_on_rate_limit=False)
        client.session = TimeoutSession(self.config.timeout)
        self._route(client.session)
        return client

    def _route(self, session: requests.Session) -> None:
        """Point a new session at ``api_base`` when one is configured."""
        if self.config.api_base is not None:
            ApiBaseAdapter(str(self.config.api_base)).mount_on(session)

    def _username(self, client: tweepy.Client) -> str:
        """The account's handle for post URLs: the configured ``@handle``, else X's answer to ``get_me``.

        Raises PublishError as ``publish`` does when X has to be asked and fails.
        """
        if self.config.account.startswith("@"):
            return self.config.account[1:]
        try:
            return str(client.get_me(user_auth=True).data.username)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            raise self._failure(exc, "reading the account's username") from exc

    def _attach(self, client: tweepy.Client, url: str, alt: str | None) -> tuple[list[str], list[str]]:
        """Fetch the image at ``url``, upload it through X's v2 media endpoint with its alt text; return its media
        ids and notes for the receipt.

        An image that cannot be fetched, is no photo (checked with Pillow), sits on a private address or that X
        refuses is left off with a note: it must not keep the post from going out. Raises PublishError (transient)
        when X's upload fails transiently.
        """
        try:
            image = fetch_image(url, timeout=self.config.timeout, allow_private=self.config.image_allow_private)
        except ImageError as exc:
            return [], [f"image not attached: {exc}"]
        try:
            # POST /2/media/upload (one-shot, JSON): tweepy 4.17 has no v2 media call, so its own signed session.
            uploaded = client.request(
                "POST",
                "/2/media/upload",
                json={
                    "media": base64.b64encode(image.content).decode("ascii"),
                    "media_category": "tweet_image",
                    "media_type": image.media_type,
                },
                user_auth=True,
            )
            media_id = str(uploaded.json()["data"]["id"])
            if alt:
                metadata = {"id": media_id, "metadata": {"alt_text": {"text": alt[:ALT_TEXT_LIMIT]}}}
                client.request("POST", "/2/media/metadata", json=metadata, user_auth=True)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            failure = self._failure(exc, "image upload")
            if isinstance(failure, CredentialError) or failure.transient:
                raise failure from exc
            return [], [f"image not attached: {failure.reason}"]
        except (ValueError, KeyError, TypeError) as exc:
            return [], [f"image not attached: X's answer to the upload had no media id ({type(exc).__name__})"]
        return [media_id], []

    def _failure(self, exc: Exception, step: str, context: str = "") -> PublishError | CredentialError:
        """The error for what X (or the way to it) answered at ``step``; ``context`` ends the reason: a
        CredentialError for a 401 (the keys, retried once the staff fix them), else a PublishError."""
        if isinstance(exc, tweepy.TooManyRequests):
            wait = None if exc.reset_time is None else max(0.0, exc.reset_time - now_utc().timestamp())
            reason = f"{step}: X rate limit reached (429){context}"
            return PublishError(self.instance, reason, transient=True, retry_after=wait)
        if isinstance(exc, tweepy.HTTPException):
            status = exc.response.status_code
            why = "; ".join(exc.api_messages) or exc.response.reason
            said = "failed" if status >= 500 else "refused it"
            where = f"channels.{self.instance}.credentials"
            return refusal(self.instance, f"{step}: X {said} ({status} {why}){context}", status, credential=where)
        return PublishError(self.instance, f"{step}: X cannot be reached ({_reason(exc)}){context}", transient=True)

    # -- outbox --------------------------------------------------------------------------------------------------

    def _write_outbox(self, draft: Draft, context: PublishContext) -> Receipt:
        """Write the ``POST /2/tweets`` request bodies of ``draft`` (a reply chain for a thread) to the outbox.

        Raises PublishError when the outbox refuses the file (it exists already, or cannot be written).
        """
        first, *replies = draft.parts
        bodies: list[dict[str, object]] = [{"text": first}]
        bodies += [{"text": text, "reply": {"in_reply_to_tweet_id": PREVIOUS_ID}} for text in replies]
        payload: dict[str, object] = {"endpoint": "POST /2/tweets", "account": self.config.account, "requests": bodies}
        if draft.image_url:
            bodies[0]["media"] = {"media_ids": [MEDIA_ID]}
            payload["media_upload"] = {
                "endpoint": "POST /2/media/upload",
                "image_url": draft.image_url,
                "alt_text": draft.image_alt,
            }
        path = context.outbox.write_json(self.instance, context.key, payload)
        return context.outbox.receipt(path)


def _reason(exc: Exception) -> str:
    """A short, secret-free reason for a transport error: its class, or the HTTP status it carries."""
    response = getattr(exc, "response", None)
    if isinstance(response, requests.Response):
        return f"HTTP {response.status_code}"
    cause = exc.__cause__ or exc.__context__
    # tweepy.API wraps the requests error in a TweepyException; name the real one.
    return type(cause if isinstance(exc, tweepy.TweepyException) and cause is not None else exc).__name__
