"""What the social channels share in writing one post: its copy, and fitting it with its hashtags; and, for the
one-item channels that post with a token (Facebook Page, Instagram, LinkedIn), the rest of what they have in common.

:func:`post_copy` gives the words of a post with nothing said twice (:func:`carecast.text.without_repeats`) and,
when the channel says ``emoji: drop``, without emoji. :func:`one_post` fits title, body, link and hashtags into one
post: the whole body when it fits, else the body shortened so the hashtags still fit, and only when not even that
fits, without the hashtags and with a note saying so.

:class:`SocialChannel` is one item a post, rendered from ``templates/<channel>/<template>`` by :func:`one_post` within
:meth:`SocialChannel.fits` (the channel's ``max_characters`` as its ``count_characters`` counts, and whatever a
channel adds); :func:`bearer_session` carries its token and :func:`token_expiry_words` is how ``check --live`` says
when that token expires.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import requests

from carecast.plugin import BlockSecret, Channel, ContentItem, EnvSecret, MeasureError, RenderError, now_utc, resolve
from carecast.plugin.text import drop_emoji, excerpt_sentences, flatten, opening_sentences, shorten, without_repeats

EmojiPolicy = Literal["drop", "keep"]
HASHTAGS_LEFT_OUT = "hashtags left out: they do not fit"
#: ``check --live`` warns when a token expires within this.
EXPIRY_WARNING = timedelta(days=7)

#: Renders a post from a body and the hashtags to end it with.
Render = Callable[[str, Sequence[str]], str]


@dataclass(frozen=True)
class PostCopy:
    """The words a post is made of."""

    title: str
    body: str
    hashtags: tuple[str, ...]
    #: The body's own sentences only (its paragraphs: no heading, list, caption, citation or button label), what a
    #: teaser quotes.
    excerpt: str = ""


def post_copy(item: ContentItem, hashtags: Sequence[str], emoji: EmojiPolicy) -> PostCopy:
    """Title and body of ``item`` for a post (the body on one line), each said once, emoji dropped if asked."""
    title, body = without_repeats(item.title, flatten(item.summary_text), item.url)
    _, excerpt = without_repeats(item.title, excerpt_sentences(item.body).replace("\n", " "), item.url)
    if emoji == "drop":
        title, body, excerpt = drop_emoji(title), drop_emoji(body), drop_emoji(excerpt)
    return PostCopy(title=title, body=body, hashtags=tuple(hashtags), excerpt=excerpt)


def teaser(render: Render, copy: PostCopy, fits: Callable[[str], bool]) -> tuple[str, list[str]]:
    """One post for an item too long for one: the title, the opening sentences of its own words (whole) that fit,
    the link, and the hashtags when they fit too; and notes on what was left out. What a marketer posts for a long
    article. Raises MeasureError only when not even the title beside the link fits."""
    excerpt = copy.excerpt or copy.body
    for tags in (copy.hashtags, ()) if copy.hashtags else ((),):

        def fits_with(cut: str, tags: Sequence[str] = tags) -> bool:
            return fits(render(cut, tags))

        if body := opening_sentences(excerpt, fits_with):
            return render(body, tags), [] if tags or not copy.hashtags else [HASHTAGS_LEFT_OUT]
    for tags in (copy.hashtags, ()):
        if fits(bare := render("", tags)):
            return bare, [] if tags or not copy.hashtags else [HASHTAGS_LEFT_OUT]
    return one_post(render, copy, fits)


def one_post(render: Render, copy: PostCopy, fits: Callable[[str], bool]) -> tuple[str, list[str]]:
    """One post of ``copy`` that ``fits``, and notes on what was left out: the whole body, else its opening
    sentences (whole, from its paragraphs), else its opening words.

    Raises MeasureError when not even the first word of the body fits beside title and link.
    """
    tags = copy.hashtags
    if fits(whole := render(copy.body, tags)):
        return whole, []
    if tags:
        try:
            return render(_cut(copy, lambda cut: fits(render(cut, tags))), tags), []
        except MeasureError:
            pass  # not even a word beside the hashtags: they go, the words stay
    notes = [HASHTAGS_LEFT_OUT] if tags else []
    return render(_cut(copy, lambda cut: fits(render(cut, ()))), ()), notes


def _cut(copy: PostCopy, fits: Callable[[str], bool]) -> str:
    """The body cut to fit: the opening sentences of its paragraphs, whole (never a heading, caption or list label),
    else its opening words. Raises MeasureError when not even one word fits."""
    return opening_sentences(copy.excerpt, fits) or shorten(copy.body, fits)


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

    def fitted(self, item: ContentItem, template: str, **context: Any) -> tuple[str, dict[str, Any]]:
        """``template`` rendered for ``item`` (with ``title``, ``body`` and ``hashtags``) so that it ``fits``, and the
        draft's measures: ``{"notes": [...]}`` when something was left out.

        Raises RenderError when not even one word of the summary fits; jinja2.TemplateError as ``template`` does.
        """
        hashtags = self.practice.voice.hashtags_for(item.language) if getattr(self.config, "hashtags", False) else ()
        copy = post_copy(item, hashtags, "keep")

        def post(body: str, tags: Sequence[str]) -> str:
            return self.template(template, item=item, title=copy.title, body=body, hashtags=tags, **context)

        try:
            text, notes = one_post(post, copy, self.fits)
        except MeasureError as exc:
            limit = self.limit("max_characters")
            raise RenderError(self.instance, f"does not fit in {limit} characters: {exc}", [item.id]) from exc
        return text, {"notes": notes} if notes else {}


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
