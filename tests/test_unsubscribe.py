"""One-click unsubscribe tokens: opaque ones name nobody; old signed ones round-trip, refuse tampering and expire
after 12 months; applying one suppresses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from carecast.audience import Subscriber
from carecast.errors import TokenError
from carecast.ledger import Ledger
from carecast.unsubscribe import LEGACY_LIFETIME, Token, apply_unsubscribe, make_token, read_token, verify_token
from tests.factories import reveals

SECRET = SecretStr("a-practice-secret-of-some-length")
LIST_ID = "oakview-pt-newsletter.oakviewpt.com"
ISSUED = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)

addresses = st.emails()
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=0)
)


@given(list_id=st.text(min_size=1, max_size=60), address=addresses, issued_at=moments)
def test_a_token_reads_back_what_it_was_made_of(list_id: str, address: str, issued_at: datetime) -> None:
    token = make_token(SECRET, list_id, address, issued_at)
    assert read_token(SECRET, token) == Token(list_id, address, issued_at)
    assert token.isascii()
    assert all(char.isalnum() or char in "-_." for char in token), "URL-safe without escaping"


@given(address=addresses, data=st.data())
def test_changing_any_character_of_a_token_is_refused(address: str, data: st.DataObject) -> None:
    token = make_token(SECRET, LIST_ID, address, ISSUED)
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    replacement = data.draw(st.sampled_from("ABCDEFabcdef0123456789-_.=+/%"), label="replacement")
    if replacement == token[position]:
        replacement = "Z"
    tampered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(TokenError):
        read_token(SECRET, tampered)


@given(address=addresses, cut=st.integers(1, 40), extra=st.text(min_size=1, max_size=5))
def test_cut_or_extended_tokens_are_refused(address: str, cut: int, extra: str) -> None:
    token = make_token(SECRET, LIST_ID, address, ISSUED)
    for broken in (token[:-cut], token + extra, extra + token):
        with pytest.raises(TokenError):
            read_token(SECRET, broken)


@given(secret=st.text(min_size=1, max_size=40))
def test_another_secrets_token_is_refused(secret: str) -> None:
    if secret == SECRET.get_secret_value():
        return
    token = make_token(SecretStr(secret), LIST_ID, "pat@mail.example", ISSUED)
    with pytest.raises(TokenError, match="signature"):
        read_token(SECRET, token)


@pytest.mark.parametrize("garbage", ["", ".", "no-dot", "a.b.c", "ünïcode.token", "e30.", "x" * 500])
def test_garbage_is_refused_without_quoting_it(garbage: str) -> None:
    with pytest.raises(TokenError) as caught:
        read_token(SECRET, garbage)
    assert SECRET.get_secret_value() not in str(caught.value)
    if len(garbage) > 3:
        assert garbage not in str(caught.value)


def test_tokens_never_expire() -> None:
    # CAN-SPAM: the link must work for at least 30 days after sending; a late opt-out is still honoured.
    old = ISSUED - timedelta(days=3 * 365)
    assert read_token(SECRET, make_token(SECRET, LIST_ID, "pat@mail.example", old)).issued_at == old


def test_issued_at_must_be_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        make_token(SECRET, LIST_ID, "pat@mail.example", datetime(2026, 3, 3))


def subscriber(address: str) -> Subscriber:
    return Subscriber(address, "Pat", ISSUED - timedelta(days=90), "web form", "Yes, send me news.", "subscribed")


def test_apply_unsubscribe_suppresses_the_address_once(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    try:
        ledger.save_subscribers("newsletter", [subscriber("pat@mail.example"), subscriber("sam@mail.example")])
        token = make_token(SECRET, LIST_ID, "pat@mail.example", ISSUED)
        later = ISSUED + timedelta(days=30)
        assert apply_unsubscribe(ledger, SECRET, token, now=later) == Token(LIST_ID, "pat@mail.example", ISSUED)
        # A second click is harmless.
        assert apply_unsubscribe(ledger, SECRET, token, now=later).address == "pat@mail.example"
        statuses = {s.address: s.status for s in ledger.subscribers("newsletter")}
        assert statuses == {"pat@mail.example": "unsubscribed", "sam@mail.example": "subscribed"}
        # Importing the list again never undoes the opt-out.
        ledger.save_subscribers("newsletter", [subscriber("pat@mail.example")])
        assert {s.address: s.can_receive for s in ledger.subscribers("newsletter")}["pat@mail.example"] is False
    finally:
        ledger.close()


def test_a_forged_token_changes_nothing(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    try:
        ledger.save_subscribers("newsletter", [subscriber("pat@mail.example")])
        forged = make_token(SecretStr("guessed"), LIST_ID, "pat@mail.example", ISSUED)
        with pytest.raises(TokenError):
            apply_unsubscribe(ledger, SECRET, forged)
        assert [s.status for s in ledger.subscribers("newsletter")] == ["subscribed"]
    finally:
        ledger.close()


def test_an_opaque_token_names_nobody_and_unsubscribes_its_recipient(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    try:
        ledger.save_subscribers("newsletter", [subscriber("pat@mail.example"), subscriber("sam@mail.example")])
        token = ledger.issue_unsubscribe_token("newsletter", LIST_ID, "pat@mail.example")
        assert not reveals(token, "pat@mail.example") and "." not in token and len(token) >= 32
        assert reveals(make_token(SECRET, LIST_ID, "pat@mail.example", ISSUED), "pat@mail.example")  # the old kind did
        assert apply_unsubscribe(ledger, SECRET, token).address == "pat@mail.example"
        issued = ledger.unsubscribe_token(token)
        assert issued is not None and issued.used_at is not None
        statuses = {s.address: s.status for s in ledger.subscribers("newsletter")}
        assert statuses == {"pat@mail.example": "unsubscribed", "sam@mail.example": "subscribed"}
        with pytest.raises(TokenError, match="no such token"):
            verify_token(ledger, SECRET, token[:-1] + ("A" if token[-1] != "A" else "B"))
    finally:
        ledger.close()


def test_an_old_signed_token_works_for_twelve_months(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    try:
        token = make_token(SECRET, LIST_ID, "pat@mail.example", ISSUED)
        assert verify_token(ledger, SECRET, token, ISSUED + LEGACY_LIFETIME).address == "pat@mail.example"
        with pytest.raises(TokenError, match="older than 365 days"):
            verify_token(ledger, SECRET, token, ISSUED + LEGACY_LIFETIME + timedelta(seconds=1))
    finally:
        ledger.close()
