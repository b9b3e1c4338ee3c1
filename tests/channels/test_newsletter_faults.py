"""The newsletter through dropped SMTP connections, against the real local SMTP server (tests/providers/smtp.py).

A connection dropped before the server had the whole message (at ``MAIL`` or ``RCPT``) delivered nothing: that
recipient is retried by the next run, and the rest of the batch goes on over a new connection. One dropped once the
message was written, before the server's reply, may have delivered it (the fake drops it after taking the message,
and without taking it: the client cannot tell which): that recipient is ``unknown``, never sent again on its own,
and staff settle them with :func:`carecast.resolution.settle` (the core of ``carecast resolve`` and of the resolve
flow). What is counted is what the server took, per recipient, across runs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from carecast.ledger import Resolution
from carecast.pipeline import make_channel
from carecast.resolution import settle
from tests.channels.test_newsletter_smtp import PASSWORD, UNSUBSCRIBE_SECRET, Practice, practice_on
from tests.factories import NEWSLETTER_RECIPIENTS
from tests.providers.smtp import DropStage, SmtpServer

STAGES: tuple[DropStage, ...] = ("mail", "rcpt", "data", "queued")


@pytest.fixture
def practice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Practice]:
    monkeypatch.setenv("CARECAST_TEST_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("CARECAST_TEST_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    with SmtpServer() as smtp:
        yield from practice_on(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", smtp)


def received(practice: Practice) -> Counter[str]:
    """How many messages the server took for each recipient."""
    return Counter(practice.recipients())


def resolve(practice: Practice, publication: int, address: str, decision: Resolution) -> str:
    return settle(
        practice.ledger,
        lambda name: make_channel(practice.settings, name),
        publication,
        decision,
        address=address,
    )


def assert_everyone_once(practice: Practice) -> None:
    counted = received(practice)
    assert sorted(counted) == sorted(NEWSLETTER_RECIPIENTS) and set(counted.values()) == {1}, counted


@pytest.mark.parametrize("stage", ["mail", "rcpt"])
def test_a_connection_dropped_before_the_message_was_sent_is_retried_by_the_next_run(
    practice: Practice, stage: DropStage
) -> None:
    practice.approve()
    practice.smtp.drop_connection(stage, after=2)

    [first] = practice.publish()

    assert first.state == "retry" and "lost before the message was sent" in first.detail, first.detail
    assert len(practice.smtp.messages) == 5  # the rest went on over a second connection
    assert practice.ledger.unknown_deliveries() == {}
    [second] = practice.publish()
    assert second.state == "published", second.detail
    assert_everyone_once(practice)
    assert practice.publish() == []


@pytest.mark.parametrize(("stage", "decision"), [("queued", "sent"), ("data", "resend")])
def test_a_connection_dropped_after_the_message_was_sent_leaves_that_recipient_to_staff(
    practice: Practice, stage: DropStage, decision: Resolution
) -> None:
    practice.approve()
    practice.smtp.drop_connection(stage, after=2)

    [first] = practice.publish()

    taken = received(practice)
    assert len(taken) == (6 if stage == "queued" else 5)  # the rest went on over a second connection
    assert first.state == "unknown" and "lost after the message was sent" in first.detail, first.detail
    [(publication, [doubt])] = practice.ledger.unknown_deliveries().items()
    assert (doubt.address in taken) is (stage == "queued")
    # Never sent again on its own: the publication waits for staff.
    assert practice.publish() == []
    assert received(practice) == taken

    # Staff asked the recipient (here: the server's record) and settle that one recipient.
    said = resolve(practice, publication, doubt.address, decision)

    assert said == f"publication {publication}: 1 settled ({decision}); the next run finishes it"
    [final] = practice.publish()
    assert final.state == "published", final.detail
    assert_everyone_once(practice)
    assert practice.ledger.unknown_deliveries() == {}


def test_a_storm_of_dropped_connections_reaches_everyone_exactly_once(practice: Practice) -> None:
    """Each run, a connection dropped at each stage with a chance of 60 % (a seeded generator), at a random
    message; staff settle each unknown recipient as the server's record says. Everyone gets the newsletter once
    within 5 runs."""
    draw = random.Random(17)
    practice.approve()
    injected: Counter[str] = Counter()
    runs: list[list[str]] = []
    for _ in range(5):
        for stage in STAGES:
            if draw.random() < 0.6:
                practice.smtp.drop_connection(stage, after=draw.randrange(4))
                injected[stage] += 1
        runs.append([outcome.state for outcome in practice.publish()])
        for publication, doubts in practice.ledger.unknown_deliveries().items():
            for doubt in doubts:
                decision: Resolution = "sent" if doubt.address in received(practice) else "resend"
                resolve(practice, publication, doubt.address, decision)
        if runs[-1] == ["published"]:
            break
    print(f"newsletter: runs {runs}, {practice.smtp.dropped} dropped of {injected}")  # shown with -s

    assert runs[-1] == ["published"], (runs, injected)
    assert_everyone_once(practice)
    assert practice.publish() == []
    assert practice.smtp.dropped >= 3, (runs, injected)
