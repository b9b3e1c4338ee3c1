"""The newsletter's email: the message of a draft with its RFC 8058 headers, and :class:`PreparedMessage`, that
message encoded once for a fan-out, per recipient only its ``To``, ``Date``, ``Message-ID`` and token filled in."""

from __future__ import annotations

import email.policy
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import ClassVar

from carecast.plugin import (
    Draft,
    PublishError,
    now_utc,
)
from carecast_channels.newsletter.render import TOKEN_PLACEHOLDER, NewsletterRendering, _as_html

#: How messages go on the wire: CRLF lines folded at 78 (RFC 5322), ASCII headers (RFC 2047 words for the rest).
_WIRE = email.policy.SMTP
_LINE_LENGTH = 78
#: One header field with its folded lines, in flattened bytes.
_FIELD = re.compile(rb"^([^:\s]+):.*\r\n(?:[ \t].*\r\n)*", re.MULTILINE)
#: The alphabet of the ledger's tokens (URL-safe base64): what quoted-printable, URLs and HTML all leave as it is.
_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")
_SOFT_BREAK = b"=\r\n"


class NewsletterMessages(NewsletterRendering):
    """A newsletter's email to one recipient, or prepared for all of them."""

    def build_message(self, draft: Draft, *, to: str, unsubscribe_token: str) -> EmailMessage:
        """The email of ``draft`` for one recipient (``to``), unsubscribe links carrying ``unsubscribe_token``; both
        parts quoted-printable, so :meth:`prepare_message` can find the token in them.

        Raises PublishError (not transient) when the draft lacks a subject, HTML, the postal address or the
        unsubscribe link.
        """
        if draft.subject is None or draft.html is None:
            raise PublishError(self.instance, "the draft has no subject or HTML body", transient=False)
        if gaps := self.footer_gaps(draft):
            raise PublishError(self.instance, f"the draft lacks {', '.join(gaps)}", transient=False)
        placeholder_url = self.unsubscribe_link(TOKEN_PLACEHOLDER)
        unsubscribe_url = self.unsubscribe_link(unsubscribe_token)
        text = draft.text.replace(placeholder_url, unsubscribe_url)
        page = draft.html.replace(_as_html(placeholder_url), _as_html(unsubscribe_url))

        message = EmailMessage()
        message["From"] = self._from()
        message["To"] = to
        if self.config.reply_to:
            message["Reply-To"] = self.config.reply_to
        message["Subject"] = draft.subject
        message["Date"] = format_datetime(now_utc())
        message["Message-ID"] = make_msgid(domain=self._from().domain)
        message["List-Id"] = f"{self.config.list_name} <{self.list_id()}>"
        # RFC 8058 one-click: Gmail and Yahoo require both headers of bulk senders.
        message["List-Unsubscribe"] = ", ".join(self._unsubscribe_uris(unsubscribe_token))
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(page, subtype="html", cte="quoted-printable")
        return message

    def prepare_message(self, draft: Draft, token_length: int) -> PreparedMessage:
        """``draft``'s message encoded once for a whole fan-out, for unsubscribe tokens of ``token_length``
        characters of the URL-safe base64 alphabet (see :class:`PreparedMessage`).

        Raises PublishError (not transient) as :meth:`build_message` does.
        """
        # A stand-in of the real tokens' length and alphabet: quoted-printable writes both as they are, so the soft
        # line breaks fall at the same places and each character of a real token goes where the stand-in's was.
        stand_in = secrets.token_urlsafe(token_length)[:token_length]
        raw = self.build_message(draft, to=str(self._from()), unsubscribe_token=stand_in).as_bytes(policy=_WIRE)
        head_end = raw.index(b"\r\n\r\n") + 2
        pieces: list[bytes | str | slice] = []
        for field in _FIELD.finditer(raw, 0, head_end):
            name = field.group(1).decode("ascii")
            if name in PreparedMessage.PER_RECIPIENT:
                pieces.append(name)
            elif name == "List-Unsubscribe":
                # One URI a line, as they are: the email package would fold a long URL into encoded words, which
                # no mail client reads as a URL (RFC 2369 allows folding only between the URIs).
                uris = "".join(f"\r\n {uri}," for uri in self._unsubscribe_uris(stand_in))
                pieces.append(f"List-Unsubscribe:{uris[:-1]}\r\n".encode("ascii"))
            else:
                pieces.append(field.group())
        pieces.append(raw[head_end:])
        return PreparedMessage(tuple(_at_token(pieces, stand_in.encode("ascii"))), token_length, self._from().domain)

    def _from(self) -> Address:
        return Address(self.config.from_name, addr_spec=self.config.from_address)

    def _unsubscribe_uris(self, token: str) -> tuple[str, str]:
        """``List-Unsubscribe``'s two URIs, each in angle brackets: the one-click link and the mailto."""
        return f"<{self.unsubscribe_link(token)}>", f"<mailto:{self.config.unsubscribe_mailto}?subject=unsubscribe>"

    def list_id(self) -> str:
        """The RFC 2919 list identifier: the list name as a label under the sender's domain."""
        label = re.sub(r"[^a-z0-9]+", "-", self.config.list_name.lower()).strip("-") or "newsletter"
        return f"{label}.{Address(addr_spec=self.config.from_address).domain}"


@dataclass(frozen=True)
class PreparedMessage:
    """A newsletter encoded once for a whole fan-out (:meth:`NewsletterChannel.prepare_message`): the bytes that go
    on the wire, with what differs per recipient left open for :meth:`for_recipient`, which encodes nothing again.

    ``pieces`` are bytes as they are, the name of a header field written per recipient (``To``, ``Date``,
    ``Message-ID``), or a slice of the recipient's token, where the stand-in token's characters were: in
    ``List-Unsubscribe`` and in both quoted-printable parts, where a soft line break may cut it in two.
    """

    PER_RECIPIENT: ClassVar[frozenset[str]] = frozenset({"To", "Date", "Message-ID"})

    pieces: tuple[bytes | str | slice, ...]
    token_length: int
    domain: str

    def for_recipient(self, name: str, address: str, token: str) -> tuple[bytes, str]:
        """The message to ``name`` <``address``> with the unsubscribe ``token``, as bytes, and its Message-ID.

        Raises ValueError when ``token`` is not as long as the one prepared for, or not URL-safe base64.
        """
        if len(token) != self.token_length or not _URLSAFE.fullmatch(token):
            raise ValueError(f"the message was prepared for tokens of {self.token_length} URL-safe characters")
        message_id = make_msgid(domain=self.domain)
        fields = {
            "To": _to_field(name, address),
            "Date": _field("Date", format_datetime(now_utc())),
            "Message-ID": _field("Message-ID", message_id),
        }
        token_bytes = token.encode("ascii")
        raw = b"".join(
            piece if isinstance(piece, bytes) else fields[piece] if isinstance(piece, str) else token_bytes[piece]
            for piece in self.pieces
        )
        return raw, message_id


def _at_token(pieces: Sequence[bytes | str | slice], stand_in: bytes) -> Iterator[bytes | str | slice]:
    """``pieces`` with their bytes split around ``stand_in``'s characters, which become slices of the token: the
    stand-in as it is, or cut by quoted-printable soft line breaks (kept as bytes)."""
    gap = b"(?:" + re.escape(_SOFT_BREAK) + b")?"
    token_pattern = re.compile(gap.join(re.escape(stand_in[i : i + 1]) for i in range(len(stand_in))))
    for piece in pieces:
        if not isinstance(piece, bytes):
            yield piece
            continue
        position = 0
        for match in token_pattern.finditer(piece):
            offset, start = 0, match.start()
            for run in match.group().split(_SOFT_BREAK):
                yield piece[position:start]
                yield slice(offset, offset + len(run))
                offset += len(run)
                position = start + len(run)
                start = position + len(_SOFT_BREAK)
        yield piece[position:]


def _to_field(name: str, address: str) -> bytes:
    """The ``To`` field for ``name`` <``address``>: RFC 2047 words for a non-ASCII name; an internationalized
    address (RFC 6532) in UTF-8, as ``smtplib``'s ``send_message`` would send it."""
    name = " ".join(name.split())  # a line break in a name from the audience file would start a new header
    if address.isascii():
        return _field("To", formataddr((name, address)))
    # Not Address(addr_spec=...), which refuses a non-ASCII local part that RFC 6531 allows and the audience takes.
    username, _, domain = address.rpartition("@")
    return _field("To", str(Address(name, username, domain)), utf8=True)


def _field(name: str, value: str, *, utf8: bool = False) -> bytes:
    """The header field ``name: value`` as the wire has it: as it is when it is a short line of printable ASCII,
    else folded (and encoded) by the email package."""
    line = f"{name}: {value}"
    if len(line) <= _LINE_LENGTH and line.isascii() and line.isprintable():
        return f"{line}\r\n".encode("ascii")
    policy = _WIRE.clone(utf8=True) if utf8 else _WIRE
    return policy.header_factory(name, value).fold(policy=policy).encode("utf-8")
