"""The newsletter as a fan-out sends it, encoded once and each recipient's values filled in (``PreparedMessage``),
against the message built for that recipient from scratch (``build_message``): parsed back by Python's email
package, both say the same, and the token they carry unsubscribes at the practice's endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from carecast.channel import PracticeContext, Request
from carecast.config import Settings
from carecast.ledger import Ledger
from carecast.model import Draft
from carecast.practice import load_settings
from carecast.unsubscribe import verify_token
from carecast_channels.newsletter import NewsletterChannel, NewsletterConfig
from tests.channels.conftest import outbox_context
from tests.channels.test_newsletter import CONFIG, make_item

SECRET = "prepared-unsubscribe-hmac-key-7d21"
#: Names and addresses a subscriber list really holds, and some it rarely does.
RECIPIENTS = [
    ("Pat Doe", "pat@mail.example"),
    ('Doe, Pat "PJ" \\ Jr.', "pat.doe+news@mail.example"),
    ("Zoë Ünal-Øster", "zoe@example.com"),
    ("", "nobody.named@example.org"),
    ("Dr. Alexandria Konstantinopoulou-Papadopoulou of the Lincoln Park Running Club", "alexandria@example.com"),
    ("Łukasz Żółć-Grzegorzewski, Zdrowy Kręgosłup i Fizjoterapia Sportowa", "lukasz@example.pl"),
    ("Sam", "o'brien!#$%&*+/=?^_`{|}~-" + "x" * 30 + "@" + "department." * 8 + "example.com"),
    ("José Müller", "josé@münchen.example"),  # internationalized (RFC 6532): UTF-8 on the wire, with SMTPUTF8
]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONFIG)


def channel_with(settings: Settings, **overrides: Any) -> NewsletterChannel:
    section = settings.channels["newsletter"].model_dump(exclude_unset=True) | overrides
    section["unsubscribe_secret"] = {"env": "CARECAST_TEST_UNSUBSCRIBE_SECRET"}
    return NewsletterChannel("newsletter", NewsletterConfig.model_validate(section), settings)


@pytest.fixture
def ledger(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    monkeypatch.setenv("CARECAST_TEST_UNSUBSCRIBE_SECRET", SECRET)
    ledger = Ledger(ledger_url)
    try:
        yield ledger
    finally:
        ledger.close()


def draft_of(channel: NewsletterChannel) -> Draft:
    items = [
        make_item("post-knee", title="Runner's knee: what helps & what doesn't — a PT explains ☕"),
        make_item("post-desk", summary_html="<p>Sitting all day? " + "Stand up and stretch. " * 40 + "</p>"),
    ]
    return channel.render(items)


def parse(raw: bytes) -> EmailMessage:
    return cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(raw))


def from_scratch(channel: NewsletterChannel, draft: Draft, name: str, address: str, token: str) -> bytes:
    """The message as it was sent before it was prepared once: built per recipient, flattened as ``smtplib``'s
    ``send_message`` does (UTF-8 headers for an internationalized address)."""
    to = str(Address(name, *address.rsplit("@", 1)))  # Address(addr_spec=...) refuses a non-ASCII local part
    message = channel.build_message(draft, to=to, unsubscribe_token=token)
    return message.as_bytes(policy=policy.SMTP.clone(utf8=not address.isascii()))


def bodies(message: EmailMessage) -> list[tuple[str, str]]:
    return [(part.get_content_type(), str(part.get_content())) for part in message.iter_parts()]


def one_click(message: EmailMessage) -> str:
    https = str(message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    return parse_qs(urlsplit(https).query)["t"][0]


def assert_same(fast: EmailMessage, slow: EmailMessage) -> None:
    """Same header fields in the same order, saying the same once decoded; same parts with the same text."""
    assert fast.keys() == slow.keys()
    for field in fast:
        if field not in {"Date", "Message-ID", "Content-Type"}:  # the time, a random id, a random boundary
            # Whitespace around a value is folding, not content (it is where one breaks after the colon).
            assert str(fast[field]).strip() == str(slow[field]).strip(), field
    assert fast["To"].addresses == slow["To"].addresses
    assert abs(fast["Date"].datetime - slow["Date"].datetime) < timedelta(minutes=1)
    assert fast["Message-ID"] != slow["Message-ID"]
    assert fast["Message-ID"].split("@")[1] == slow["Message-ID"].split("@")[1]
    assert fast.get_content_type() == slow.get_content_type() == "multipart/alternative"
    assert [part["Content-Transfer-Encoding"] for part in fast.iter_parts()] == ["quoted-printable"] * 2
    assert bodies(fast) == bodies(slow)
    assert len(fast.defects) == len(slow.defects) == 0


def unsubscribe(channel: NewsletterChannel, ledger: Ledger, token: str) -> HTTPStatus:
    """POST the one-click unsubscribe (RFC 8058) to the practice's endpoint, as a mail client does."""
    [_, post] = NewsletterChannel.routes([channel])
    url = f"{channel.config.unsubscribe_url}?t={token}"
    request = Request("POST", "/unsubscribe", f"t={token}", url, {}, b"List-Unsubscribe=One-Click")
    return post.handler(request, PracticeContext(channel.settings, ledger, {})).status


def test_every_recipient_reads_what_a_message_built_for_them_alone_says(settings: Settings, ledger: Ledger) -> None:
    channel = channel_with(settings)
    draft = draft_of(channel)
    tokens = ledger.issue_unsubscribe_tokens(channel.name, channel.list_id(), [a for _, a in RECIPIENTS])
    prepared = channel.prepare_message(draft, len(tokens[RECIPIENTS[0][1]]))
    # The case the layout must survive: a soft line break cuts the token in two in one of the parts.
    assert any(isinstance(piece, slice) and piece.start > 0 for piece in prepared.pieces)
    message_ids = set()
    for name, address in RECIPIENTS:
        token = tokens[address]
        raw, message_id = prepared.for_recipient(name, address, token)
        fast = parse(raw)
        slow = from_scratch(channel, draft, name, address, token)
        assert_same(fast, parse(slow))
        assert raw.isascii() is address.isascii()
        # Folded at 78, but for what the email package cannot fold either (a long address).
        assert {line for line in raw.split(b"\r\n") if len(line) > 78} <= set(slow.split(b"\r\n"))
        assert raw.count(b"\n") == raw.count(b"\r\n")
        assert fast["Message-ID"] == message_id
        message_ids.add(message_id)
        assert one_click(fast) == token
        link = f"https://www.oakviewpt.com/unsubscribe?t={token}"
        assert all(link in body for _, body in bodies(fast))
        assert verify_token(ledger, SecretStr(SECRET), token)[:2] == (channel.list_id(), address)
        assert unsubscribe(channel, ledger, token) == HTTPStatus.OK
        issued = ledger.unsubscribe_token(token)
        assert issued is not None and issued.used_at is not None
    assert len(message_ids) == len(RECIPIENTS)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.oakviewpt.com/u?list=news&lang=en",
        "https://www.oakview-physical-therapy-and-sports-rehabilitation.com/email/newsletter/unsubscribe",
    ],
)
def test_an_unsubscribe_url_with_a_query_or_too_long_for_a_line(settings: Settings, ledger: Ledger, url: str) -> None:
    channel = channel_with(settings, unsubscribe_url=url)
    draft = draft_of(channel)
    [token] = ledger.issue_unsubscribe_tokens(channel.name, channel.list_id(), ["pat@mail.example"]).values()
    raw, _ = channel.prepare_message(draft, len(token)).for_recipient("Pat Doe", "pat@mail.example", token)
    fast = parse(raw)
    assert_same(fast, parse(from_scratch(channel, draft, "Pat Doe", "pat@mail.example", token)))
    # Never folded into RFC 2047 words, which no mail client reads as a URL: one URI a line, as it is.
    link = channel.unsubscribe_link(token)
    assert f"List-Unsubscribe:\r\n <{link}>,\r\n <mailto:".encode() in raw
    assert unsubscribe(channel, ledger, token) == HTTPStatus.OK


def test_a_line_break_in_a_name_starts_no_header(settings: Settings) -> None:
    channel = channel_with(settings)
    prepared = channel.prepare_message(draft_of(channel), 8)
    raw, _ = prepared.for_recipient("Pat\r\nBcc: everyone@example.com\n", "pat@mail.example", "abcd-_EF")
    fast = parse(raw)
    assert "Bcc" not in fast
    assert fast["To"].addresses == (Address("Pat Bcc: everyone@example.com", addr_spec="pat@mail.example"),)


@pytest.mark.parametrize("token", ["abc", "abcdefghi", "abc.efgh", "abcdéfgh", "abc=efgh"])
def test_a_token_of_another_length_or_alphabet_is_refused(settings: Settings, token: str) -> None:
    channel = channel_with(settings)
    prepared = channel.prepare_message(draft_of(channel), 8)
    with pytest.raises(ValueError, match="8 URL-safe characters"):
        prepared.for_recipient("Pat", "pat@mail.example", token)


def test_the_outbox_copy_is_the_prepared_message_with_the_list_token(settings: Settings, tmp_path: Path) -> None:
    channel = channel_with(settings)
    draft = draft_of(channel)
    raw = Path(channel.publish(draft, outbox_context(tmp_path / "outbox")).location).read_bytes()
    list_address = Address(channel.config.list_name, addr_spec=channel.config.from_address)
    slow = from_scratch(channel, draft, list_address.display_name, list_address.addr_spec, "list")
    assert_same(parse(raw), parse(slow))
