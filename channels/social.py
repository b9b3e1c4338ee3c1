"""What the one-item social channels share (Facebook Page, Instagram, LinkedIn): a post is one item, its text is a
template fitted to the channel's limits, and its token travels as a Bearer header.

:meth:`SocialChannel.fitted` renders ``templates/<channel>/<template>`` with the item's whole summary and the
practice's hashtags (when the section's ``hashtags`` says so); when that does not fit it drops the hashtags, then
shortens the summary on a word boundary. What fits is :meth:`SocialChannel.fits`: the channel's
``max_characters`` as :meth:`~carecast.channel.Channel.count_characters` counts, and whatever a channel adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import requests

from carecast.channel import Channel
from carecast.errors import MeasureError, RenderError
from carecast.model import ContentItem, now_utc
from carecast.secrets import BlockSecret, EnvSecret, resolve
from carecast.text import fit_post

#: ``check --live`` warns when a token expires within this.
EXPIRY_WARNING = timedelta(days=7)


class SocialChannel(Channel):
    """A channel that posts one item at a time as a text fitted to its limits."""

    #: How messages name the provider ("Facebook", "Instagram", "LinkedIn").
    provider: ClassVar[str]

    def one_item(self, items: Sequence[ContentItem]) -> ContentItem:
        """The one item a post is for; raises RenderError for any other number of items."""
        if len(items) != 1:
            reason = f"a {self.provider} post is for exactly one item, not {len(items)}"
            raise RenderError(self.instance, reason, [item.id for item in items])
        return items[0]

    def fits(self, text: str) -> bool:
        """Whether a rendered post is within this channel's limits; ``fitted`` shortens until it is."""
        budget = self.limit("max_characters")
        return budget is None or self.count_characters(text) <= budget

    def fitted(self, item: ContentItem, template: str, **context: Any) -> str:
        """``template`` rendered for ``item`` (with ``body`` and ``hashtags``) so that it ``fits``.

        Raises RenderError when not even one word of the summary fits; jinja2.TemplateError as ``template`` does.
        """
        hashtags = list(self.practice.voice.hashtags) if getattr(self.config, "hashtags", False) else []

        def post(body: str, tags: Sequence[str]) -> str:
            return self.template(template, item=item, body=body, hashtags=tags, **context)

        try:
            return fit_post(post, " ".join(item.summary_text.split()), hashtags, self.fits)
        except MeasureError as exc:
            limit = self.limit("max_characters")
            raise RenderError(self.instance, f"does not fit in {limit} characters: {exc}", [item.id]) from exc


def token_expiry_words(expires: datetime) -> str:
    """How ``check --live`` tells when a token expires: its date, with a WARNING from 7 days before it."""
    when = f"the token expires on {expires:%Y-%m-%d %H:%M} UTC"
    left = expires - now_utc()
    if left <= EXPIRY_WARNING:
        return f"WARNING: {when} (in {max(left.days, 0)} days): renew it before then"
    return when


def bearer_session(token: EnvSecret | BlockSecret, headers: dict[str, str] | None = None) -> requests.Session:
    """A session sending ``headers`` and the token ``token`` names as ``Authorization: Bearer``.

    Raises CredentialError when the token cannot be read.
    """
    session = requests.Session()
    session.headers.update(headers or {})
    session.headers["Authorization"] = f"Bearer {resolve(token).get_secret_value()}"
    return session
