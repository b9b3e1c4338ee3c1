"""The Facebook Page channel: one Page post per item, kept short.

``compose`` renders ``templates/facebook/post.txt.j2`` (title, summary, then the practice's hashtags when they fit)
within ``max_characters`` (500 by default; Facebook takes 63,206, but short posts are read): over it the summary is
shortened on a word boundary. The item's UTM-tagged link goes beside the message, not in it: Facebook builds the
link preview from the page's own title and image. An item with an image and no link is a photo post instead.

With ``credentials`` (a Page access token) ``publish`` sends the Graph API request (:mod:`carecast_channels.graph`):
``POST /{page-id}/feed`` with ``message`` and ``link``, or ``POST /{page-id}/photos`` with the image's ``url``
(Facebook fetches it), ``message`` and ``alt_text_custom``. Without them it writes that request to the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from carecast.plugin import (
    ContentItem,
    Draft,
    PublishContext,
    Receipt,
    claim_time,
    made_since,
    now_utc,
    provider_time,
    send_once,
)
from carecast_channels.graph import GraphChannel, GraphConfig

#: The longest message Facebook accepts on a Page post.
MAX_MESSAGE = 63_206
#: How many of the Page's newest posts are read to find one an earlier try made.
LOOKUP_POSTS = 25


class FacebookConfig(GraphConfig):
    """``channels.<name>`` of type ``facebook``."""

    page_id: str = Field(pattern=r"^\d+$", description="the Page's numeric id (Page → About → Page transparency)")
    max_characters: int = Field(500, ge=1, le=MAX_MESSAGE, description="keep posts short: a longer one is shortened")
    hashtags: bool = Field(True, description="append the practice's hashtags when they fit")


class FacebookChannel(GraphChannel):
    """Posts on a Facebook Page: one item a post (a link post, or a photo post for an image without a link)."""

    name = "facebook"
    Config = FacebookConfig
    utm_source = "facebook"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_characters": MAX_MESSAGE}
    provider = "Facebook"
    #: Graph API platform rate limit: 200 calls per user per hour (developers.facebook.com/docs/graph-api/overview/
    #: rate-limiting, "Applications"); a Page post is one call, so posts are counted (``paces_requests``).
    rate: ClassVar[tuple[int, float] | None] = (200, 3600.0)
    paces_requests: ClassVar[bool] = False

    config: FacebookConfig

    #: Reach, clicks and reactions of a Page post (``/{post-id}/insights``).
    insight_metrics = ("post_impressions_unique", "post_clicks", "post_reactions_by_type_total")

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a Page post, its summary shortened on a word boundary when it is over the limit.

        Raises RenderError when ``items`` is not exactly one item, or when not even one word of the summary fits
        beside the title.
        """
        item = self.one_item(items)
        text, measures = self.fitted(item, "post.txt.j2")
        link = self.link(item)
        photo = item.image_url if link is None else None
        return Draft(
            channel=self.instance,
            item_ids=(item.id,),
            parts=(text,),
            measures=measures,
            link=link,
            image_url=photo,
            image_alt=item.image_alt if photo else None,
        )

    def request(self, draft: Draft) -> tuple[str, dict[str, Any]]:
        """The Graph API path and JSON body that publish ``draft``: a photo post, or a feed post with its link."""
        if draft.image_url:
            alt = {"alt_text_custom": draft.image_alt} if draft.image_alt else {}
            return f"{self.config.page_id}/photos", {"url": draft.image_url, "message": draft.text, **alt}
        link = {"link": draft.link} if draft.link else {}
        return f"{self.config.page_id}/feed", {"message": draft.text, **link}

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Post ``draft`` on the Page when credentials are configured, else write its request to the outbox.

        The post is claimed before it is sent (:func:`carecast.inflight.send_once`): one whose answer was lost, or
        whose run died with it in flight, is looked up in the Page's feed (its message) before it is posted again.

        Raises CredentialError when the token cannot be read (nothing was sent) or Facebook no longer accepts it
        (code 190). Raises PublishError: transient for a rate limit (with Meta's wait), 429 or 5xx without a code,
        a Graph API that answered nothing (looked up next time), a full or read-only outbox; permanent for any other
        refusal and when the outbox file exists already.
        """
        path, body = self.request(draft)
        if self.config.credentials is None:
            payload = {
                "endpoint": self.endpoint("POST", path),
                "url": self.url(path),
                "account": self.config.account,
                "request": body,
            }
            return context.outbox.receipt(context.outbox.write_json(self.instance, context.key, payload))
        session = self.session()

        def send() -> Receipt:
            answer = self.call(session, "POST", path, lost="never", data=body)
            # A photo post answers its photo's id and the post's; a feed post answers the post's id alone.
            return _receipt(self.created_id(answer, "post_id", "id"))

        def lookup() -> Receipt | None:
            claimed = claim_time(context)
            # The Page's newest posts (photo posts too): one with this message, made since the claim, is the post
            # an earlier try made.
            fields = {"fields": "id,message,created_time", "limit": str(LOOKUP_POSTS)}
            feed = self.call(session, "GET", f"{self.config.page_id}/feed", lost="retry", params=fields)
            posts = feed.get("data")
            for post in posts if isinstance(posts, list) else []:
                if not isinstance(post, dict) or post.get("message") != body["message"] or not post.get("id"):
                    continue
                if made_since(provider_time(post.get("created_time")), claimed, self.lookup_skew):
                    return _receipt(str(post["id"]))
            return None

        return send_once(self.instance, context, send, lookup)

    def verify(self) -> str:
        """Read the Page with the token (``GET /{page-id}``) and the token's expiry (``debug_token``), posting nothing.

        Raises CredentialError when the token cannot be read, has expired or is no longer valid; PublishError when
        the Graph API cannot be reached or refuses (e.g. a token of another Page).
        """
        if self.config.credentials is None:
            return super().verify()
        session = self.session()
        page = self.call(session, "GET", self.config.page_id, lost="retry", params={"fields": "id,name"})
        return f"Facebook: Page {page.get('name')!r} ({page.get('id')}); {self.token_expiry(session)}"


def _receipt(post_id: str) -> Receipt:
    return Receipt(location=f"https://www.facebook.com/{post_id}", sent_at=now_utc(), provider_ids=(post_id,))
