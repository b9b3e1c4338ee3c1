"""The Bluesky channel: one post per item, or a thread of replies when the item is too long for one.

``compose`` renders ``templates/bluesky/post.txt.j2`` (title, summary, the UTM-tagged link, then the practice's
hashtags when they fit) and measures it as Bluesky does: 300 graphemes of the text as posted
(:func:`bluesky_length`). Links and hashtags become rich-text facets addressed by UTF-8 *byte* offsets
(:func:`rich_text`, with the ``atproto`` package's facet detection and ``TextBuilder``); a link whose path would be
cut is shown as Bluesky's app shows it (``www.oakviewpt.com/blog/desk-str...``) while its facet keeps the whole
tagged URL, so a link costs about 30 graphemes, not its full length. Over 300 the item becomes a teaser
(``too_long: teaser``, the default: title, the opening sentences of its own paragraphs that fit, whole, and the link)
or a numbered thread (``too_long: thread``; a teaser when it would need more than ``max_thread_parts``): never
refused for its length. The item's link also becomes a link card (``app.bsky.embed.external``: title, description,
the item's image as its thumbnail); an item with an image but no link gets the image itself
(``app.bsky.embed.images``, with its alt text).

With ``credentials`` (the account's handle and an app password) ``publish`` signs in through the ``atproto`` client
(``com.atproto.server.createSession``), uploads the image (``com.atproto.repo.uploadBlob``) and creates each part
with ``com.atproto.repo.createRecord`` of an ``app.bsky.feed.post``, each reply naming the thread's root and its
parent. Every part's record key (a TID) is saved in the ledger's progress *before* it is sent, and every posted
part's ``uri`` and ``cid`` after: a retry first asks the PDS for a record it may have made
(``com.atproto.repo.getRecord``), so a lost answer is never posted twice and a thread cut short resumes at its first
part not yet up. Each part is also claimed in the ledger before it is sent (``part N``, as X's are); one left
``unknown`` by a run that died posting it is claimed again at once, since its record key settles whether it is up, so
no person needs to ``carecast resolve`` it. ``context.stop_if_asked`` is called before each part. Failures: a 429
waits (``Retry-After``, else ``RateLimit-Reset``) and sends again within ``retry_budget`` seconds, then is transient;
a refused app password, ``ExpiredToken`` and ``InvalidToken`` are a CredentialError naming the channel's
credentials; 5xx and an unreachable PDS are transient; any other refusal is
permanent. Without credentials ``publish`` writes the exact requests to the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

import httpx
from atproto_client import Client, models
from atproto_client.exceptions import (
    RequestErrorBase,
)
from atproto_client.models.utils import get_model_as_dict
from atproto_client.request import Request
from atproto_core.exceptions import AtProtocolError

from carecast.plugin import (
    IN_FLIGHT,
    AlreadyClaimed,
    Channel,
    ChannelSettings,
    ContentItem,
    CredentialError,
    DeliveryRecord,
    Draft,
    Engagement,
    ImageError,
    MeasureError,
    PublishContext,
    PublishError,
    Receipt,
    RenderError,
    Settings,
    as_numbers,
    now_utc,
    part_address,
    resolve,
    unreachable,
)
from carecast.plugin.media import fetch_image
from carecast.plugin.text import flatten, numbered_thread
from carecast_channels.bluesky.config import BlueskyConfig
from carecast_channels.bluesky.errors import failure, xrpc_error
from carecast_channels.bluesky.text import bluesky_length, display_url, rich_text, tid, timestamp
from carecast_channels.http import wait_out_rate_limits
from carecast_channels.social import post_copy, teaser

MAX_GRAPHEMES = 300
POST = "app.bsky.feed.post"
#: The largest image a link card's thumbnail or an image embed may be (the lexicons' ``maxSize``).
MAX_IMAGE_BYTES = 1_000_000
#: Where a reply's root and parent go in the outbox: the ``uri`` and ``cid`` the PDS gives the first and the
#: previous part, and the blob an uploaded image becomes.
ROOT, PARENT, BLOB = "{part 1}", "{previous part}", "{uploaded image}"

T = TypeVar("T")

#: What other modules and tests import from here, wherever in the package it lives.
__all__ = ["BlueskyChannel", "BlueskyConfig", "bluesky_length", "display_url", "rich_text", "tid"]


@dataclass(frozen=True)
class SignedIn:
    """A signed-in client and whom it speaks for."""

    client: Client
    did: str
    handle: str


class BlueskyChannel(Channel):
    """Posts on Bluesky: one item a post (or a thread)."""

    name = "bluesky"
    Config = BlueskyConfig
    utm_source = "bluesky"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_characters": MAX_GRAPHEMES}
    #: A Bluesky PDS allows an account 5,000 points of writes an hour, a created record costing 3: 1,666 posts an
    #: hour (docs.bsky.app/docs/advanced-guides/rate-limits). Publications are counted (``paces_requests``): a
    #: thread's few parts go together, and ``publish`` stops between them when asked.
    rate: ClassVar[tuple[int, float] | None] = (1666, 3600.0)
    paces_requests: ClassVar[bool] = False

    config: BlueskyConfig

    def __init__(self, instance: str, config: ChannelSettings, settings: Settings) -> None:
        super().__init__(instance, config, settings)
        self._session: SignedIn | None = None

    def count_characters(self, text: str) -> int:
        """Graphemes as Bluesky counts them (see :func:`bluesky_length`)."""
        return bluesky_length(text)

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a post, or as a teaser or a short numbered thread when it is over 300 graphemes.

        Raises RenderError when ``items`` is not exactly one item, or when not even its title beside the link fits.
        """
        if len(items) != 1:
            raise RenderError(
                self.instance, f"a Bluesky post is for exactly one item, not {len(items)}", [i.id for i in items]
            )
        item = items[0]
        link = self.link(item)
        budget = self.limit("max_characters") or MAX_GRAPHEMES
        hashtags = list(self.practice.voice.hashtags_for(item.language)) if self.config.hashtags else []
        body = flatten(item.summary_text)  # list items and table rows end as sentences, never run together

        def post(tags: Sequence[str] = (), text: str = body) -> str:
            return self.template("post.txt.j2", item=item, body=text, link=link, hashtags=tags)

        def fits(text: str) -> bool:
            return bluesky_length(text) <= budget

        try:
            parts: list[str] = []
            if fits(single := post(hashtags)) or fits(single := post()):
                parts = [single]
            elif self.config.too_long == "thread":
                with suppress(MeasureError):  # a thread only when it is short: a teaser otherwise
                    parts = numbered_thread(post(), fits, self.config.max_thread_parts)
                    with suppress(MeasureError):  # hashtags only when they cost no extra post
                        parts = numbered_thread(post(hashtags), fits, len(parts))
            if not parts:
                copy = post_copy(item, hashtags, "keep")
                parts = [teaser(lambda text, tags: post(tags, text), copy, fits)[0]]
        except MeasureError as exc:
            raise RenderError(self.instance, f"does not fit in {budget} graphemes: {exc}", [item.id]) from exc
        card = {"title": item.title, "description": body} if link and self.config.link_card else {}
        return Draft(
            channel=self.instance,
            item_ids=(item.id,),
            parts=tuple(parts),
            image_url=item.image_url,
            image_alt=item.image_alt,
            link=link if card else None,
            details=({"card": card} if card else {}) | ({"language": item.language} if item.language else {}),
        )

    # -- the requests ------------------------------------------------------------------------------------------

    def record(
        self,
        text: str,
        created_at: str,
        reply: dict[str, dict[str, str]] | None = None,
        embed: dict[str, Any] | None = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        """The ``app.bsky.feed.post`` record of one part: its text as shown, facets, language (the item's, else the
        channel's), reply (``root`` and ``parent``, each a ``uri`` and ``cid``) and embed."""
        shown, facets = rich_text(text)
        record: dict[str, Any] = {
            "$type": POST,
            "text": shown,
            "createdAt": created_at,
            "langs": [language or self.config.language],
        }
        if facets:
            record["facets"] = facets
        if reply is not None:
            # As the atproto client sends a reply: typed, root and parent each a strongRef.
            refs = {end: {"$type": "com.atproto.repo.strongRef", **reply[end]} for end in ("root", "parent")}
            record["reply"] = {"$type": "app.bsky.feed.post#replyRef", **refs}
        if embed is not None:
            record["embed"] = embed
        return record

    def embed(self, draft: Draft, blob: dict[str, Any] | None) -> dict[str, Any] | None:
        """The first part's embed: the link card (with ``blob`` as its thumbnail), else the image, else none; typed
        as the atproto client sends it."""
        card = draft.details.get("card")
        if draft.link and card:
            external = {
                "$type": "app.bsky.embed.external#external",
                "uri": draft.link,
                "title": card["title"],
                "description": card["description"],
            }
            if blob is not None:
                external["thumb"] = blob
            return {"$type": "app.bsky.embed.external", "external": external}
        if blob is not None:
            image = {"$type": "app.bsky.embed.images#image", "alt": draft.image_alt or "", "image": blob}
            return {"$type": "app.bsky.embed.images", "images": [image]}
        return None

    # -- publishing --------------------------------------------------------------------------------------------

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Post ``draft`` (a thread of replies when it has several parts) when credentials are configured, else
        write its requests to the outbox.

        Raises CredentialError when the app password cannot be read (nothing was sent) or Bluesky refuses the
        session (a wrong or revoked app password, an expired token). Raises PublishError: transient for a 429 whose
        wait no longer fits in ``retry_budget`` (with ``retry_after``), a 5xx or an unreachable PDS (a retry asks
        for the record first, so it never posts twice); permanent for any other refusal and when the outbox
        refuses the file.
        """
        if self.config.credentials is None:
            return self._write_outbox(draft, context)
        session = self._signed_in()
        progress = context.ledger.progress(context.publication_id)
        posted: list[dict[str, str]] = list(progress.get("posted", []))
        notes: list[str] = list(progress.get("notes", []))
        pending: dict[str, str] | None = progress.get("pending")

        def save() -> None:
            state = {"posted": posted, "notes": notes, **({"pending": pending} if pending else {})}
            context.ledger.save_progress(context.publication_id, state)

        embed = None
        if not posted:
            blob, notes = self._image_blob(session, draft) if draft.image_url else (None, [])
            embed = self.embed(draft, blob)
        total = len(draft.parts)
        ledger, publication = context.ledger, context.publication_id
        parts = ledger.deliveries(publication)
        for number in range(len(posted) + 1, total + 1):
            context.stop_if_asked(self.instance)
            step, part = f"post {number} of {total}", part_address(number)
            settled = parts.get(part)
            self._claim_part(context, part, step, settled, known=pending is not None)
            try:
                if pending is None:
                    moment = now_utc()
                    pending = {"rkey": tid(moment, context.publication_id), "createdAt": timestamp(moment)}
                    save()  # before sending: a retry finds what this attempt may have made
                elif (made := self._existing(session, pending["rkey"], step, settled)) is not None:
                    ledger.finish_delivery(publication, part, "sent", provider_id=made["uri"])
                    posted.append(made)
                    pending = None
                    save()
                    continue
                embedded = embed if number == 1 else None
                made_now = self._create_part(session, draft, number, pending, posted, embedded)
            except (PublishError, CredentialError) as exc:
                # Claimable again, whatever failed (the post, or the lookup of an earlier one): the next attempt asks
                # the PDS for the record key first, so it never posts twice and the part is never stuck claimed.
                if not (settled is not None and settled.state == "sent"):
                    ledger.finish_delivery(publication, part, "failed", error=exc.reason, transient=True)
                raise
            ledger.finish_delivery(publication, part, "sent", provider_id=made_now.uri)
            posted.append({"uri": made_now.uri, "cid": made_now.cid})
            pending = None
            save()
        return self._receipt(session, posted, notes)

    def _create_part(
        self,
        session: SignedIn,
        draft: Draft,
        number: int,
        pending: dict[str, str],
        posted: Sequence[dict[str, str]],
        embed: dict[str, Any] | None,
    ) -> models.ComAtprotoRepoCreateRecord.Response:
        """Create part ``number`` of ``draft`` under the record key and time of ``pending``, replying to the thread's
        root and its last part up (``posted``).

        Raises PublishError and CredentialError as ``publish`` does.
        """
        total = len(draft.parts)
        step = f"post {number} of {total}"
        reply = None if not posted else {"root": posted[0], "parent": posted[-1]}
        record = self.record(draft.parts[number - 1], pending["createdAt"], reply, embed, draft.details.get("language"))
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=session.did, collection=POST, rkey=pending["rkey"], record=record
        )
        up = f"; {len(posted)} of {total} posts are up" if posted else ""
        return self._call(partial(session.client.com.atproto.repo.create_record, data), step, up)

    def _receipt(self, session: SignedIn, posted: Sequence[dict[str, str]], notes: Sequence[str]) -> Receipt:
        """The receipt of a thread whose parts are all up: the first part's address in Bluesky's app."""
        first_key = posted[0]["uri"].rsplit("/", 1)[-1]
        return Receipt(
            location=f"https://bsky.app/profile/{session.handle}/post/{first_key}",
            sent_at=now_utc(),
            provider_ids=tuple(part["uri"] for part in posted),
            notes=tuple(notes),
        )

    def _claim_part(
        self, context: PublishContext, part: str, step: str, settled: DeliveryRecord | None, *, known: bool
    ) -> None:
        """Claim thread part ``part`` before sending it. A part left ``unknown`` by a run that died posting it is
        claimed again at once: its record key was saved before sending, so the PDS is asked for it first and it is
        never posted twice. A part recorded sent (resolved by staff) is not claimed: its record is looked up.

        Raises PublishError (permanent) when another run holds the part or a person dropped it, or when it is
        recorded sent but its record key is not ``known`` (never reached the progress).
        """
        if settled is not None and settled.state == "sent":
            if not known:
                # Recorded sent, but its record key never reached the progress: nothing to look it up by.
                reason = f"{step} is recorded as sent but its record is not known here; check the account"
                raise PublishError(self.instance, reason, transient=False)
            return
        ledger, publication = context.ledger, context.publication_id
        # Claimed: an earlier attempt of this publication (whose claim is now ours) stopped without recording it.
        if settled is not None and settled.state in ("unknown", "claimed"):
            ledger.finish_delivery(publication, part, "failed", error=IN_FLIGHT, transient=True)
        try:
            ledger.claim_delivery(publication, part)
        except AlreadyClaimed as exc:
            reason = f"{step} is claimed by another run or was dropped; the thread does not go on without it"
            raise PublishError(self.instance, reason, transient=False) from exc

    def verify(self) -> str:
        """Sign in with the app password (``createSession``) and read the profile, posting nothing.

        Raises CredentialError when the app password cannot be read or Bluesky refuses it, PublishError when the PDS
        cannot be reached or fails.
        """
        if self.config.credentials is None:
            return super().verify()
        session = self._signed_in()
        return (
            f"Bluesky: signed in as @{session.handle} on {self.config.pds_url}; app passwords do not expire "
            "(revoked only, in the account's settings)"
        )

    # -- transport ---------------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"channels.{self.instance}.credentials"

    def _signed_in(self) -> SignedIn:
        """This channel's session, signed in once per channel object.

        Raises CredentialError and PublishError as ``verify`` does.
        """
        if self._session is None:
            credentials = self.config.credentials
            assert credentials is not None  # callers check: no credentials means the outbox
            password = resolve(credentials.app_password).get_secret_value()
            client = Client(base_url=str(self.config.pds_url), request=Request(timeout=self.config.timeout))
            profile = self._call(lambda: client.login(credentials.handle, password), "signing in")
            if profile is None:
                raise PublishError(self.instance, "signing in: the PDS has no profile for the account", transient=False)
            self._session = SignedIn(client, profile.did, profile.handle)
        return self._session

    def _existing(
        self, session: SignedIn, rkey: str, step: str, settled: DeliveryRecord | None
    ) -> dict[str, str] | None:
        """The ``uri`` and ``cid`` of the post an earlier attempt made under ``rkey``, or None when there is none.

        Raises PublishError (permanent) when there is none though the part is recorded sent (``settled``); else
        PublishError and CredentialError as ``publish`` does.
        """
        params = models.ComAtprotoRepoGetRecord.Params(repo=session.did, collection=POST, rkey=rkey)
        try:
            found = self._call(lambda: session.client.com.atproto.repo.get_record(params), f"{step}: looking it up")
        except PublishError as exc:
            if not (isinstance(exc.__cause__, RequestErrorBase) and xrpc_error(exc.__cause__) == "RecordNotFound"):
                raise
            found = None
        if found is not None:
            return {"uri": found.uri, "cid": str(found.cid)}
        if settled is not None and settled.state == "sent":
            reason = f"{step} is recorded as sent but the PDS has no record {rkey}; check the account"
            raise PublishError(self.instance, reason, transient=False)
        return None

    def _image_blob(self, session: SignedIn, draft: Draft) -> tuple[dict[str, Any] | None, list[str]]:
        """Fetch ``draft.image_url`` (:func:`carecast.images.fetch_image`) and upload it; return its blob (as JSON)
        and notes for the receipt.

        An image that cannot be fetched, is no photo, sits on a private address or is over 1,000,000 bytes is left
        off with a note: it must not keep the post from going out. Raises PublishError when the upload fails,
        CredentialError as ``publish`` does.
        """
        url = str(draft.image_url)
        try:
            image = fetch_image(
                url,
                timeout=self.config.timeout,
                allow_private=self.config.image_allow_private,
                max_bytes=MAX_IMAGE_BYTES,
            )
        except ImageError as exc:
            return None, [f"image not attached: {exc}"]
        uploaded = self._call(
            lambda: session.client.com.atproto.repo.upload_blob(
                image.content, headers={"Content-Type": image.media_type}
            ),
            "image upload",
        )
        return get_model_as_dict(uploaded.blob), []

    def engagement(self, provider_ids: Sequence[str]) -> dict[str, Engagement]:
        """Each post's counts (``app.bsky.feed.getPosts``, 25 URIs a call); a post no longer there is a problem of its
        answer. Raises CredentialError and PublishError as ``publish`` does."""
        if self.config.credentials is None:
            return {}
        feed, answers = self._signed_in().client.app.bsky.feed, {}
        for start in range(0, len(provider_ids), 25):
            uris = list(provider_ids[start : start + 25])
            found = self._call(partial(feed.get_posts, {"uris": uris}), "reading the posts' counts").posts
            for post in found:
                counts = {name: getattr(post, name) for name in ("like_count", "repost_count", "reply_count")}
                answers[post.uri] = Engagement(as_numbers(counts | {"quote_count": post.quote_count}))
            answers |= {uri: Engagement({}, {"post": "deleted or not found"}) for uri in uris if uri not in answers}
        return answers

    def _call(self, request: Callable[[], T], step: str, context: str = "") -> T:
        """``request`` through the atproto client, a 429 waited out within ``retry_budget``.

        Raises CredentialError for a session Bluesky refuses; PublishError otherwise (see ``publish``).
        """

        def attempt(_: int) -> T:
            try:
                return request()
            except AtProtocolError as exc:
                raise failure(self.instance, self._where, exc, step, context) from exc
            except httpx.TransportError as exc:
                # A dropped connection (atproto passes httpx's protocol errors through unwrapped).
                reason = f"{step}: Bluesky answered nothing ({type(exc).__name__}){context}"
                raise unreachable(self.instance, reason, maybe_sent=True) from exc

        return wait_out_rate_limits(attempt, self.config.retry_budget, self.instance)

    # -- outbox --------------------------------------------------------------------------------------------------

    def _write_outbox(self, draft: Draft, context: PublishContext) -> Receipt:
        """Write the ``createRecord`` requests of ``draft`` (a reply chain for a thread) to the outbox.

        Raises PublishError when the outbox refuses the file (it exists already, or cannot be written).
        """
        requests_: list[dict[str, Any]] = []
        blob = {"$type": "blob", "ref": {"$link": BLOB}} if draft.image_url else None
        for number, text in enumerate(draft.parts, start=1):
            moment = context.now + timedelta(milliseconds=number - 1)
            reply = (
                None if number == 1 else {"root": {"uri": ROOT, "cid": ROOT}, "parent": {"uri": PARENT, "cid": PARENT}}
            )
            embed = self.embed(draft, blob) if number == 1 else None
            record = self.record(text, timestamp(moment), reply, embed, draft.details.get("language"))
            rkey = tid(moment, context.publication_id)
            requests_.append({"repo": "{did}", "collection": POST, "rkey": rkey, "record": record})
        payload: dict[str, Any] = {
            "endpoint": "POST /xrpc/com.atproto.repo.createRecord",
            "pds": str(self.config.pds_url),
            "account": self.config.account,
            "requests": requests_,
        }
        if draft.image_url:
            payload["upload_blob"] = {
                "endpoint": "POST /xrpc/com.atproto.repo.uploadBlob",
                "image_url": draft.image_url,
            }
        return context.outbox.receipt(context.outbox.write_json(self.instance, context.key, payload))
