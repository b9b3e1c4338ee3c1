"""The practice's own short links: ``https://<links.domain>/<code>`` in place of a long UTM-tagged URL, and their
redirect, which counts each click without recording who made it.

:class:`Shortener` is what a channel calls, through ``Channel.link``, where the final UTM-tagged URL is built: it
gets that URL's code from the ledger (made once per item, channel and URL; random, see
:mod:`carecast.ledger.links`). :class:`Redirects` serves ``GET /<code>`` in ``carecast webhooks``: 302 to the full URL,
the click counted as a ``person`` or, for a link-preview fetcher, prefetcher or scanner, as a ``preview`` naming
which (:func:`classify`); an unknown code gets a 404 page with a link to the practice's website.

Previews are recognised by their user agent: `crawlerdetect` (a maintained list of over a thousand bots) first,
then :data:`PREVIEW_AGENTS` for fetchers it does not know or names too generally (iMessage, which sends
Facebook's and X's names together; Bluesky's card fetcher; mail security scanners), and an empty or bare
``Mozilla/5.0`` user agent, which no person's browser sends and which Apple Mail Privacy Protection's proxy does.
"""

from __future__ import annotations

import html
import logging
import queue
import re
import threading
import time
from datetime import datetime
from functools import cache
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from carecast.channel import Response
from carecast.config import Settings
from carecast.errors import LedgerError
from carecast.ledger import Ledger, ShortLink
from carecast.ledger.contract import ChannelLedger
from carecast.model import now_utc

log = logging.getLogger(__name__)

#: What a code looks like (``secrets.token_urlsafe``); anything else is not looked up.
CODE = re.compile(r"^/([A-Za-z0-9_-]{6,32})$")

#: Preview fetchers named by a substring of their user agent (lower case), checked before crawlerdetect so each
#: gets its own name; sources: each vendor's documentation of its fetcher (linked in README "Did it work?").
PREVIEW_AGENTS: tuple[tuple[str, str], ...] = (
    ("facebot twitterbot", "iMessage"),  # Messages' link preview sends both names
    ("slackbot", "Slackbot"),
    ("facebookexternalhit", "facebookexternalhit"),
    ("twitterbot", "Twitterbot"),
    ("linkedinbot", "LinkedInBot"),
    ("applebot", "Applebot"),
    ("whatsapp", "WhatsApp"),
    ("telegrambot", "TelegramBot"),
    ("discordbot", "Discordbot"),
    ("mastodon/", "Mastodon"),  # every instance fetches a posted link's card
    ("cardyb", "Bluesky"),  # Bluesky's card fetcher
    ("bluesky", "Bluesky"),
    ("google-pagerenderer", "Google"),
    ("googleimageproxy", "Gmail image proxy"),
    ("microsoft office", "Outlook preview"),
    ("ms-office", "Outlook preview"),
    ("safelinks", "Microsoft Safe Links"),
    ("barracuda", "Barracuda scanner"),
    ("proofpoint", "Proofpoint scanner"),
    ("mimecast", "Mimecast scanner"),
)
#: User agents no person's browser sends: Apple Mail Privacy Protection's proxy fetches with a bare one.
BARE_AGENTS = {"": "no user agent", "mozilla/5.0": "Apple Mail Privacy Protection"}
#: Most a stored agent name holds (``clicks.agent``).
AGENT_LENGTH = 40


@cache
def _detector() -> Any:
    from crawlerdetect import CrawlerDetect  # only the redirect needs it: a run does not pay for its import

    return CrawlerDetect()


def classify(user_agent: str) -> tuple[str, str]:
    """``("person", "mobile" | "desktop")`` or ``("preview", <fetcher's name>)`` for a request's user agent.

    Only this class is stored, never the user agent itself. Raises nothing.
    """
    agent = user_agent.strip()
    lowered = agent.lower()
    if lowered in BARE_AGENTS:
        return "preview", BARE_AGENTS[lowered]
    for needle, name in PREVIEW_AGENTS:
        if needle in lowered:
            return "preview", name
    detector = _detector()
    if detector.isCrawler(agent):
        return "preview", (detector.getMatches() or "bot")[:AGENT_LENGTH]
    return "person", "mobile" if re.search(r"mobile|iphone|ipad|android", lowered) else "desktop"


class Shortener:
    """Turns the practice's own UTM-tagged URLs into ``https://<domain>/<code>``, codes kept in the ledger."""

    def __init__(self, domain: str, ledger: Ledger, own_host: str) -> None:
        self.domain = domain
        self.ledger = ledger
        self.own_host = own_host.lower().removeprefix("www.")

    def __call__(self, item_id: str, channel: str, url: str) -> str:
        """The short link for ``url`` of ``item_id`` on ``channel``; another site's URL comes back unchanged (it
        carries no UTM tags and is not the practice's to count). Raises LedgerError when the ledger fails."""
        host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
        if host != self.own_host:
            return url
        return f"https://{self.domain}/{self.ledger.short_code(item_id, channel, url)}"


#: Characters of a code (``CODE_BYTES`` random bytes, URL-safe base64).
CODE_LENGTH = 8
_CODE_CHAR = rb"([A-Za-z0-9_-])"
_SOFT_BREAK = rb"(?:=\r\n)?"


class RecipientLinks:
    """Each newsletter recipient's own codes (``links.email_per_recipient``): the message is encoded once for the
    whole list, its short links in it; each copy gets the recipient's codes written over the shared ones. A code is
    as long as another and quoted-printable writes its characters as they are, so the bytes keep their places, a
    soft line break inside a code included."""

    def __init__(self, domain: str, ledger: ChannelLedger, channel_type: str) -> None:
        self.ledger = ledger
        self.channel_type = channel_type
        host = _SOFT_BREAK.join(re.escape(bytes([char])) for char in f"{domain}/".encode())
        code = _SOFT_BREAK.join([_CODE_CHAR] * CODE_LENGTH)
        self._pattern = re.compile(host + _SOFT_BREAK + code + rb"(?!" + _SOFT_BREAK + rb"[A-Za-z0-9_-])")
        self._places: list[tuple[str, list[int]]] | None = None
        self._chunk: list[str] = []
        self._codes: dict[tuple[str, str], str] = {}
        self._asked: set[str] = set()

    @classmethod
    def of(cls, settings: Settings, ledger: ChannelLedger, channel_type: str) -> RecipientLinks | None:
        """The practice's, or None when it does not count email clicks per recipient."""
        links = settings.links
        return cls(links.domain, ledger, channel_type) if links and links.email_per_recipient else None

    def expect(self, addresses: list[str]) -> None:
        """The recipients of the next chunk: their codes are made together, when the first is needed."""
        self._chunk = addresses

    def apply(self, message: bytes, address: str) -> bytes:
        """``message`` (as encoded for ``address``) with ``address``'s own codes. Raises LedgerError."""
        head = message.index(b"\r\n\r\n") + 4
        body = bytearray(message[head:])
        if self._places is None:
            self._places = [
                (
                    b"".join(found.group(n) for n in range(1, CODE_LENGTH + 1)).decode(),
                    [found.start(n) for n in range(1, CODE_LENGTH + 1)],
                )
                for found in self._pattern.finditer(body)
            ]
        if self._places and address not in self._asked:
            chunk = [*self._chunk, address]
            codes = sorted({code for code, _ in self._places})
            self._codes = self.ledger.recipient_codes(codes, self.channel_type, chunk)
            self._asked = set(chunk)
        for code, positions in self._places:
            own = self._codes.get((code, address))
            for position, char in zip(positions, (own or code).encode(), strict=True):
                body[position] = char
        return message[:head] + bytes(body)


def shortener(settings: Settings, ledger: Ledger) -> Shortener | None:
    """The practice's shortener, or None with ``links: off``."""
    if settings.links is None:
        return None
    return Shortener(settings.links.domain, ledger, settings.practice.host)


class Redirects:
    """``GET /<code>`` for ``carecast webhooks``: each code looked up once (a code never changes what it stands for),
    each click handed to a writer thread that records them in batches, so a redirect never waits for the disk: a
    click is counted within ``flush_every`` seconds, and one still queued when the process is killed is lost (a
    count, never a message). ``close`` writes what is queued."""

    def __init__(self, settings: Settings, ledger: Ledger, flush_every: float = 0.2, batch: int = 500) -> None:
        self.settings = settings
        self.ledger = ledger
        self.flush_every = flush_every
        self.batch = batch
        self._known: dict[str, ShortLink] = {}
        self._clicks: queue.SimpleQueue[tuple[int, str, str, datetime] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="clicks", daemon=True)
        self._writer.start()

    def answer(self, method: str, path: str, user_agent: str) -> Response | None:
        """The answer to a request for a short link, or None when ``path`` is not one (another route may serve it).

        GET: 302 to the full URL, the click counted; HEAD (a scanner checking where it goes): the same, counted as a
        preview. Unknown code: 404 with a link to the practice's website. Raises LedgerError when the ledger fails.
        """
        if method not in ("GET", "HEAD"):
            return None
        found = CODE.match(path)
        if found is None:
            return None
        link = self._known.get(found[1]) or self.ledger.short_link(found[1])
        if link is None:
            return not_found(self.settings)
        self._known[link.code] = link
        kind, agent = ("preview", "HEAD request") if method == "HEAD" else classify(user_agent)
        self._clicks.put((link.id, kind, agent, now_utc()))
        return Response(
            HTTPStatus.FOUND,
            b"",
            content_type=None,
            note=f"{link.channel} {kind}",
            headers=(("Location", link.target), ("Referrer-Policy", "no-referrer")),
        )

    def _write(self) -> None:
        done = False
        while not done:
            first = self._clicks.get()
            pending = [] if first is None else [first]
            done = first is None
            deadline = time.monotonic() + self.flush_every
            while not done and len(pending) < self.batch and (left := deadline - time.monotonic()) > 0:
                try:
                    click = self._clicks.get(timeout=left)
                except queue.Empty:
                    break
                done = click is None
                pending += [] if click is None else [click]
            try:
                self.ledger.record_clicks(pending)
            except LedgerError as exc:  # after the ledger's own retries: the count is off, the redirects go on
                log.error("%d clicks not counted: %s", len(pending), exc)

    def close(self) -> None:
        """Write the clicks still queued, then stop the writer."""
        self._clicks.put(None)
        self._writer.join(timeout=30)


def not_found(settings: Settings) -> Response:
    """The 404 page of an unknown or mistyped short link: the practice's name and a link to its website."""
    name, website = html.escape(settings.practice.name), html.escape(str(settings.practice.website))
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Link not found · {name}</title></head>"
        '<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem">'
        f"<h1>This link does not exist</h1><p>It may have been mistyped. Everything from {name} is on "
        f'<a href="{website}">{website}</a>.</p></body></html>'
    )
    return Response(HTTPStatus.NOT_FOUND, page.encode(), content_type="text/html; charset=utf-8", note="unknown link")
