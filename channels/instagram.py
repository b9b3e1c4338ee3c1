"""The Instagram channel (a professional account): one image post per item, never text alone.

``compose`` refuses an item without an image, with the reason: Instagram has no text-only post. It renders
``templates/instagram/caption.txt.j2`` (title, summary, a line naming where to read more, the practice's hashtags
when they fit) within 2,200 characters and 30 hashtags. Links in captions are not clickable, so a caption never
pastes a URL: it says "link in bio" and names the page. ``enforce`` checks all of it again on a caption staff edited.

With ``credentials`` ``publish`` makes the two Graph API calls of Instagram's content publishing
(:mod:`carecast_channels.graph`): ``POST /{ig-user-id}/media`` with ``image_url`` (Instagram fetches the image itself),
``caption`` and ``alt_text`` makes a container; ``GET /{container-id}?fields=status_code`` is polled until it is
``FINISHED``; ``POST /{ig-user-id}/media_publish`` with ``creation_id`` publishes it. The container's id is saved
in the ledger's progress as soon as it exists, so a retry resumes there (polling, then publishing) instead of making
another. A container is harmless until published, so a lost answer while making one is retried. The publish is
claimed before it is sent (:func:`carecast.inflight.send_once`): one whose answer was lost, or whose run died with it
in flight, asks its container first (``status_code`` ``PUBLISHED``: it is up) and is published only if it is not.
429 and 5xx without a Graph code are transient, on every step. A container still processing after ``poll_for``
seconds, or one expired (24 hours unpublished), is left for the next run. Without credentials the requests go to
the outbox.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from pydantic import Field

from carecast.plugin import (
    ContentItem,
    CredentialError,
    Draft,
    PublishContext,
    PublishError,
    Receipt,
    RenderError,
    now_utc,
    send_once,
)
from carecast.plugin.text import HASHTAG, find_urls
from carecast_channels.graph import GraphChannel, GraphConfig

MAX_CAPTION = 2_200
MAX_HASHTAGS = 30
#: Where the outbox puts the container's id, which Instagram gives when the first request is made.
CONTAINER_ID = "{container}"
#: How long a container still processing waits for the next run.
PROCESSING_WAIT = 60.0


def hashtag_count(text: str) -> int:
    """The hashtags Instagram counts against its 30: ``#`` and a word with at least one letter."""
    return len(HASHTAG.findall(text))


class InstagramConfig(GraphConfig):
    """``channels.<name>`` of type ``instagram``."""

    ig_user_id: str = Field(pattern=r"^\d+$", description="the Instagram professional account's id (IG user id)")
    hashtags: bool = Field(True, description="append the practice's hashtags when they fit")
    poll_every: float = Field(5, gt=0, le=60, description="seconds between two looks at a container's status")
    poll_for: float = Field(300, gt=0, le=3600, description="how long a publish waits for Instagram's processing")


class InstagramChannel(GraphChannel):
    """Posts on an Instagram professional account: one item an image post."""

    name = "instagram"
    Config = InstagramConfig
    utm_source = "instagram"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_characters": MAX_CAPTION}
    provider = "Instagram"
    #: An Instagram professional account publishes at most 50 posts in a moving 24 hours (developers.facebook.com/
    #: documentation/instagram-platform/instagram-graph-api/reference/ig-user/media_publish, "Limitations"); posts
    #: are counted (``paces_requests``), each one a few Graph calls, well within the 200 an hour of the Graph API.
    rate: ClassVar[tuple[int, float] | None] = (50, 86400.0)
    paces_requests: ClassVar[bool] = False

    config: InstagramConfig

    #: What Instagram counts for one post (``/{media-id}/insights``); ``impressions`` was retired in 2025: ``views``.
    insight_metrics = ("reach", "likes", "comments", "saved", "shares", "views")

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item with an image as a caption within Instagram's limits.

        Raises RenderError when ``items`` is not exactly one item, when the item has no usable image, or when not
        even one word of the summary fits.
        """
        item = self.one_item(items)
        if not item.image_url or urlsplit(item.image_url).scheme not in ("http", "https"):
            reason = "an Instagram post needs an image the item does not have; it is never posted as text alone"
            raise RenderError(self.instance, reason, [item.id])
        text, measures = self.fitted(item, "caption.txt.j2", has_link=item.url is not None)
        return Draft(
            channel=self.instance,
            item_ids=(item.id,),
            parts=(text,),
            measures=measures,
            image_url=item.image_url,
            image_alt=item.image_alt,
        )

    def fits(self, text: str) -> bool:
        """Within 2,200 characters and 30 hashtags."""
        return super().fits(text) and hashtag_count(text) <= MAX_HASHTAGS

    def enforce(self, draft: Draft) -> Draft:
        """The base's limits, then Instagram's own: at most 30 hashtags, no URL (it would not be clickable).

        Raises RenderError naming what is wrong.
        """
        measured = super().enforce(draft)
        problems = []
        if (count := hashtag_count(draft.text)) > MAX_HASHTAGS:
            problems.append(f"{count} hashtags of {MAX_HASHTAGS}")
        if find_urls(draft.text, without_protocol=False):
            problems.append("a URL in the caption (not clickable on Instagram: say 'link in bio' instead)")
        if problems:
            raise RenderError(self.instance, "; ".join(problems), draft.item_ids)
        return measured

    def container_request(self, draft: Draft) -> dict[str, Any]:
        """The body of ``POST /{ig-user-id}/media``: the image Instagram fetches, its caption and alt text."""
        alt = {"alt_text": draft.image_alt} if draft.image_alt else {}
        return {"image_url": draft.image_url, "caption": draft.text, **alt}

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Publish ``draft`` as an image post when credentials are configured, else write its requests to the outbox.

        Raises CredentialError when the token cannot be read (nothing was sent) or Instagram no longer accepts it
        (code 190). Raises PublishError: transient for a rate limit, 429 or 5xx without a code, a Graph API that
        answered nothing (a publish is looked up next time), a container still processing or expired (a retry
        resumes with the saved container), a full or read-only outbox; permanent when Instagram cannot use the image
        (the container's ERROR), for any other refusal, and when the outbox file exists already.
        """
        media, publish = f"{self.config.ig_user_id}/media", f"{self.config.ig_user_id}/media_publish"
        if self.config.credentials is None:
            return self._write_outbox(draft, context, media, publish)
        session = self.session()

        def send() -> Receipt:
            container = context.ledger.progress(context.publication_id).get("container")
            if container is None:
                container = self.created_id(
                    self.call(session, "POST", media, lost="retry", data=self.container_request(draft))
                )
                context.ledger.save_progress(context.publication_id, {"container": container})
            self._wait_until_finished(session, container, context)
            answer = self.call(session, "POST", publish, lost="never", data={"creation_id": container})
            media_id = self.created_id(answer)
            return Receipt(location=self._permalink(session, media_id), sent_at=now_utc(), provider_ids=(media_id,))

        def lookup() -> Receipt | None:
            # A container once published says so: the publish an earlier try made went through.
            container = context.ledger.progress(context.publication_id).get("container")
            if container is None:
                return None
            answer = self.call(session, "GET", container, lost="retry", params={"fields": "status_code"})
            if answer.get("status_code") != "PUBLISHED":
                return None
            return Receipt(location=f"instagram container {container} (published)", sent_at=now_utc())

        return send_once(self.instance, context, send, lookup)

    def verify(self) -> str:
        """Read the account (``GET /{ig-user-id}``) and the token's expiry (``debug_token``), posting nothing.

        Raises CredentialError when the token cannot be read, has expired or is no longer valid; PublishError when
        the Graph API cannot be reached or refuses.
        """
        if self.config.credentials is None:
            return super().verify()
        session = self.session()
        account = self.call(session, "GET", self.config.ig_user_id, lost="retry", params={"fields": "id,username"})
        return f"Instagram: @{account.get('username')} ({account.get('id')}); {self.token_expiry(session)}"

    # -- live transport ------------------------------------------------------------------------------------------

    def _wait_until_finished(self, session: requests.Session, container: str, context: PublishContext) -> None:
        """Poll the container until Instagram has processed it.

        Raises PublishError: transient when it is still processing after ``poll_for`` seconds or has expired (the
        saved container is then forgotten, so the retry makes a new one); permanent for ERROR (Instagram could not
        use the image) or any other state (e.g. PUBLISHED already).
        """
        deadline = time.monotonic() + self.config.poll_for
        while True:
            try:
                answer = self.call(session, "GET", container, lost="retry", params={"fields": "status_code,status"})
            except PublishError as exc:
                # A look that failed is harmless to repeat: polled again until the deadline, then left for a retry.
                if not exc.transient or time.monotonic() + self.config.poll_every > deadline:
                    raise
                time.sleep(self.config.poll_every)
                continue
            state = answer.get("status_code")
            if state == "FINISHED":
                return
            if state == "EXPIRED":
                context.ledger.save_progress(context.publication_id, {})
                reason = f"container {container} expired before it was published; a retry makes a new one"
                raise PublishError(self.instance, reason, transient=True)
            if state != "IN_PROGRESS":
                why = f" ({answer['status']})" if answer.get("status") else ""
                raise PublishError(self.instance, f"container {container} is {state}{why}", transient=False)
            if time.monotonic() + self.config.poll_every > deadline:
                reason = f"container {container} still processing after {self.config.poll_for:g} s; a retry resumes it"
                raise PublishError(self.instance, reason, transient=True, retry_after=PROCESSING_WAIT)
            time.sleep(self.config.poll_every)

    def _permalink(self, session: requests.Session, media_id: str) -> str:
        """The post's address, or its media id when Instagram will not say: the post is up either way, so no
        failure here may fail the publication (a retry would find the container published)."""
        try:
            answer = self.call(session, "GET", media_id, lost="retry", params={"fields": "permalink"})
        except (PublishError, CredentialError):
            return f"instagram media {media_id}"
        return str(answer.get("permalink") or f"instagram media {media_id}")

    # -- outbox --------------------------------------------------------------------------------------------------

    def _write_outbox(self, draft: Draft, context: PublishContext, media: str, publish: str) -> Receipt:
        """Write the three steps of the publish, in order, to the outbox; raises PublishError as the outbox does."""
        payload = {
            "account": self.config.account,
            "requests": [
                {
                    "endpoint": self.endpoint("POST", media),
                    "url": self.url(media),
                    "request": self.container_request(draft),
                },
                {
                    "endpoint": self.endpoint("GET", f"{CONTAINER_ID}?fields=status_code"),
                    "url": self.url(f"{CONTAINER_ID}?fields=status_code"),
                    "until": "FINISHED",
                },
                {
                    "endpoint": self.endpoint("POST", publish),
                    "url": self.url(publish),
                    "request": {"creation_id": CONTAINER_ID},
                },
            ],
        }
        return context.outbox.receipt(context.outbox.write_json(self.instance, context.key, payload))
