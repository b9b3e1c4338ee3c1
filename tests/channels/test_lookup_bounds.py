"""A lost request is looked up by what it says only among posts the provider made since it was claimed.

Facebook, Google Business Profile, LinkedIn, X and Twilio take a post without an idempotency key, so a request
whose answer was lost is found again by its text. The same text made earlier (posted by hand, or last year) is not
that request's: the resumed run posts, and the provider holds exactly one new post. A post made after the claim
(the provider acted, its answer was lost) is found and settled as sent, never posted twice. Each channel against its
provider fake (tests/providers/), which dates its posts with the provider's own field and format.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carecast.ledger import Ledger
from carecast.pipeline import adapt, publish
from tests.channels import test_faults
from tests.channels.test_faults import WHEN, Provider, prepared
from tests.providers import RecordedRequest, Storm
from tests.providers.gbp import GbpServer
from tests.providers.graph import GraphApiServer
from tests.providers.linkedin import LinkedInServer
from tests.providers.twilio import TwilioServer
from tests.providers.xapi import XApiServer

#: test_faults' channel wired to its provider fake, taken here for the channels below (``indirect``).
provider = test_faults.provider
#: Seconds the channel waits for its provider: no answer is lost to a loaded machine (none is held back here).
PROVIDER_TIMEOUT = 10
#: The channels whose lookup matches by text (Bluesky, Mastodon and Instagram match the request itself).
BY_TEXT = ["facebook", "gbp", "linkedin", "sms", "x"]
#: When the identical older post was made: before the claim by more than any clock skew allowed.
EARLIER = {"a year before": timedelta(days=365), "ten minutes before": timedelta(minutes=10)}
#: Providers that refuse the same text again for a while (the fakes: a day, ``DUPLICATE_WINDOW``).
REFUSE_RECENT_DUPLICATES = {"linkedin", "x"}


def first(accepts: Callable[[RecordedRequest], bool]) -> Callable[[RecordedRequest], bool]:
    """Accepts the first request ``accepts`` does, and no other."""
    seen: list[RecordedRequest] = []

    def hits(request: RecordedRequest) -> bool:
        if seen or not accepts(request):
            return False
        seen.append(request)
        return True

    return hits


def made_earlier(provider: Provider, request: RecordedRequest, created: datetime) -> None:
    """The provider holds a post (or text) saying what ``request`` says, made at ``created``."""
    server, body = provider.server, request.body if isinstance(request.body, dict) else {}
    if isinstance(server, GraphApiServer):
        server.add_post(str(body["message"]), created)
    elif isinstance(server, GbpServer):
        server.add_post(str(body["summary"]), created)
    elif isinstance(server, LinkedInServer):
        server.add_post(str(body["commentary"]), created)
    elif isinstance(server, XApiServer):
        server.add_tweet(str(body["text"]), created)
    else:
        assert isinstance(server, TwilioServer)
        sent: dict[str, Any] = {"to": body["To"], "from": body.get("From"), "body": body["Body"]}
        server.add_message({**sent, "messaging_service_sid": body.get("MessagingServiceSid")}, created)


def lose_the_first_post(provider: Provider, tmp_path: Path, kind: str) -> RecordedRequest:
    """A run whose first post request is dropped (``drop``: before the provider acted; ``lost``: after, its answer
    lost): that request is in doubt. Returns it."""
    ledger = prepared(provider, f"sqlite:///{tmp_path / 'ledger.db'}", 1)
    adapt(provider.settings, ledger, provider.instance, now=WHEN)
    storm = Storm(1.0, first(provider.is_post), kinds=(kind,))
    provider.server.storm(storm)
    [outcome] = publish(provider.settings, ledger, provider.instance, now=WHEN)
    provider.server.storm(None)
    assert storm.injected == {kind: 1} and outcome.state in ("retry", "published"), (storm.injected, outcome)
    ledger.close()
    return next(request for request in provider.server.requests if provider.is_post(request))


@pytest.mark.parametrize("provider", BY_TEXT, indirect=True)
@pytest.mark.parametrize("earlier", sorted(EARLIER))
def test_the_same_text_posted_before_the_claim_is_not_taken_for_the_lost_post(
    provider: Provider, tmp_path: Path, earlier: str
) -> None:
    lost = lose_the_first_post(provider, tmp_path, "drop")
    made_earlier(provider, lost, datetime.now(UTC) - EARLIER[earlier])
    before = Counter(provider.posted())

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    [outcome] = publish(provider.settings, ledger, provider.instance, now=WHEN)
    ledger.close()

    if earlier == "ten minutes before" and provider.instance in REFUSE_RECENT_DUPLICATES:
        # Posted by hand minutes ago: the provider itself refuses it again, and nothing is recorded as sent.
        assert outcome.state == "failed" and "duplicate" in outcome.detail, outcome.detail
        assert Counter(provider.posted()) == before
        return
    assert outcome.state == "published", outcome.detail
    new = Counter(provider.posted()) - before
    # The one in doubt is posted now: one new post (one text to that recipient), nothing else twice.
    assert sum(new.values()) == 1 and set((before + new).values()) <= {1, 2}, (before, new)
    [(text, _)] = new.items()
    assert (before + new)[text] == 2  # the older one and the new one


@pytest.mark.parametrize("provider", BY_TEXT, indirect=True)
def test_the_lost_post_made_after_the_claim_is_found_beside_an_older_one_and_not_posted_again(
    provider: Provider, tmp_path: Path
) -> None:
    lost = lose_the_first_post(provider, tmp_path, "lost")
    made_earlier(provider, lost, datetime.now(UTC) - timedelta(days=365))
    before = Counter(provider.posted())

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    [outcome] = publish(provider.settings, ledger, provider.instance, now=WHEN)

    assert outcome.state == "published", outcome.detail
    assert Counter(provider.posted()) == before  # found, not posted again
    assert ledger.unknown_deliveries() == {}
    ledger.close()
