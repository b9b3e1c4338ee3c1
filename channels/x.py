"""The X (Twitter) channel: one post per item, or a numbered thread when the item is too long for one.

``compose`` renders ``templates/x/post.txt.j2`` (title, summary, the UTM-tagged link, then the practice's hashtags
when they fit) and measures it with X's own weighting (:func:`carecast.text.x_measure`). Over the limit it either
threads (``too_long: thread``: split on sentences, else words; each post numbered ``1/3 ...``; the link stays where
the template puts it, at the end, so it closes the thread for a reader who read it all) or shortens the summary on a
word boundary and keeps the link (``too_long: shorten``).

Without credentials ``publish`` writes to the outbox the exact ``POST /2/tweets`` request bodies, each reply
pointing at ``{previous}``: the id the post before it gets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import ClassVar, Literal

from pydantic import Field

from carecast.config import ChannelSettings
from carecast.errors import MeasureError, RenderError
from carecast.model import ContentItem, Draft, Receipt
from carecast.text import shorten, split_to_fit, x_measure
from channels.base import Channel, PublishContext

#: Where a reply's ``in_reply_to_tweet_id`` goes: the id X gave the previous post of the thread.
PREVIOUS_ID = "{previous}"


class XConfig(ChannelSettings):
    """``channels.<name>`` of type ``x``."""

    too_long: Literal["thread", "shorten"] = Field(
        "thread", description="what to do with an item over the weighted limit: a thread, or a shortened post"
    )
    max_thread_parts: int = Field(4, ge=2, le=10, description="a longer thread is refused, not cut")
    hashtags: bool = Field(True, description="append the practice's hashtags when they fit")


class XChannel(Channel):
    """Posts on X: one item a post (or a thread)."""

    name = "x"
    Config = XConfig
    utm_source = "twitter"
    utm_medium = "social"
    limits: ClassVar[dict[str, int]] = {"max_weighted_length": 280}

    config: XConfig

    def compose(self, items: Sequence[ContentItem]) -> Draft:
        """Render one item as a post, or as a thread or a shortened post when it is over the weighted limit.

        Raises RenderError when ``items`` is not exactly one item, or when the item cannot fit (a word longer than
        a post, more posts than ``max_thread_parts``, or not even one word of the summary beside title and link).
        """
        if len(items) != 1:
            raise RenderError(
                self.instance, f"an X post is for exactly one item, not {len(items)}", [i.id for i in items]
            )
        item = items[0]
        link = self.link(item)
        budget = self.limit("max_weighted_length") or self.limits["max_weighted_length"]
        hashtags = list(self.practice.voice.hashtags) if self.config.hashtags else []

        def post(body: str, tags: Sequence[str] = ()) -> str:
            return self.template("post.txt.j2", item=item, body=body, link=link, hashtags=tags)

        def fits(text: str) -> bool:
            return x_measure(text).weighted_length <= budget

        body = " ".join(item.summary_text.split())
        try:
            if fits(single := post(body, hashtags)) or fits(single := post(body)):
                parts = [single]
            elif self.config.too_long == "shorten":
                parts = [post(shorten(body, lambda cut: fits(post(cut))))]
            else:
                parts = self._thread(post(body), fits, self.config.max_thread_parts)
                with suppress(MeasureError):  # hashtags only when they cost no extra post
                    parts = self._thread(post(body, hashtags), fits, len(parts))
        except MeasureError as exc:
            raise RenderError(self.instance, f"does not fit in {budget} weighted characters: {exc}", [item.id]) from exc
        return Draft(channel=self.instance, item_ids=(item.id,), parts=tuple(parts))

    def _thread(self, text: str, fits: Callable[[str], bool], most: int) -> list[str]:
        """``text`` as the shortest thread of numbered posts that each fit.

        Raises MeasureError when it needs more than ``most`` posts or a word is longer than a post.
        """
        for total in range(2, most + 1):
            # Reserve room for the widest number this thread length can show.
            def numbered_fits(part: str, marker: str = f"{total}/{total} ") -> bool:
                return fits(marker + part)

            parts = split_to_fit(text, numbered_fits)
            if len(parts) <= total:
                return [f"{number}/{len(parts)} {part}" for number, part in enumerate(parts, start=1)]
        raise MeasureError(f"needs more than {most} posts (max_thread_parts)")

    def publish(self, draft: Draft, context: PublishContext) -> Receipt:
        """Write the ``POST /2/tweets`` request bodies of ``draft`` (a reply chain for a thread) to the outbox.

        Raises PublishError when the outbox refuses the file (it exists already, or cannot be written).
        """
        first, *replies = draft.parts
        requests: list[dict[str, object]] = [{"text": first}]
        requests += [{"text": text, "reply": {"in_reply_to_tweet_id": PREVIOUS_ID}} for text in replies]
        payload = {"endpoint": "POST /2/tweets", "account": self.config.account, "requests": requests}
        path = context.outbox.write_json(self.instance, context.key, payload)
        return context.outbox.receipt(path)
