"""What the social channels (X, Mastodon) share in writing one post: its copy, and fitting it with its hashtags.

:func:`post_copy` gives the words of a post with nothing said twice (:func:`carecast.text.without_repeats`) and,
when the channel says ``emoji: drop``, without emoji. :func:`one_post` fits title, body, link and hashtags into one
post: the whole body when it fits, else the body shortened so the hashtags still fit, and only when not even that
fits, without the hashtags and with a note saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from carecast.errors import MeasureError
from carecast.model import ContentItem
from carecast.text import drop_emoji, flatten, shorten, without_repeats

EmojiPolicy = Literal["drop", "keep"]
HASHTAGS_LEFT_OUT = "hashtags left out: they do not fit"

#: Renders a post from a body and the hashtags to end it with.
Render = Callable[[str, Sequence[str]], str]


@dataclass(frozen=True)
class PostCopy:
    """The words a post is made of."""

    title: str
    body: str
    hashtags: tuple[str, ...]


def post_copy(item: ContentItem, hashtags: Sequence[str], emoji: EmojiPolicy) -> PostCopy:
    """Title and body of ``item`` for a post (the body on one line), each said once, emoji dropped if asked."""
    title, body = without_repeats(item.title, flatten(item.summary_text), item.url)
    if emoji == "drop":
        title, body = drop_emoji(title), drop_emoji(body)
    return PostCopy(title=title, body=body, hashtags=tuple(hashtags))


def one_post(render: Render, copy: PostCopy, fits: Callable[[str], bool]) -> tuple[str, list[str]]:
    """One post of ``copy`` that ``fits``, and notes on what was left out.

    Raises MeasureError when not even the first word of the body fits beside title and link.
    """
    tags = copy.hashtags
    if fits(whole := render(copy.body, tags)):
        return whole, []
    if tags:
        try:
            return render(shorten(copy.body, lambda cut: fits(render(cut, tags))), tags), []
        except MeasureError:
            pass  # not even a word beside the hashtags: they go, the words stay
    notes = [HASHTAGS_LEFT_OUT] if tags else []
    return render(shorten(copy.body, lambda cut: fits(render(cut, ()))), ()), notes
