"""A wrong credential (the provider answers 401, or refuses the refresh token) waits for the staff to fix it.

Through the pipeline, on every post channel against its provider fake: a run with a wrong secret in the
environment sends nothing and leaves the item retryable, its detail naming the credential to fix; once the
environment variable is right again, the next run publishes the item exactly once. Mastodon likewise against its
instance. (The newsletter's wrong SMTP password: tests/channels/test_newsletter_smtp.py.)
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from carecast.channel import CREDENTIAL_TO_FIX
from carecast.ledger import Ledger
from carecast.pipeline import adapt, publish
from tests.channels import test_faults
from tests.channels.test_faults import WHEN, Provider, items, mastodon_settings, mastodon_statuses, prepared
from tests.providers import LocalHttpServer
from tests.providers.mastodon import PRACTICE_TOKEN, mastodon_instance

#: test_faults' channel wired to its provider fake, each of its channels in turn.
provider = test_faults.provider
#: Seconds the channel waits for its provider: no answer is lost to a loaded machine (none is held back here).
PROVIDER_TIMEOUT = 10
#: The environment variable each channel's secret is read from, made wrong for a run (GBP: the refresh token,
#: which Google's token endpoint refuses; X: the consumer key its OAuth 1.0a signature names).
SECRET = {
    "bluesky": "BLUESKY_APP_PASSWORD",
    "facebook": "FAULTS_GRAPH",
    "gbp": "GBP_REFRESH_TOKEN",
    "instagram": "FAULTS_GRAPH",
    "linkedin": "FAULTS_LINKEDIN",
    "sms": "TWILIO_AUTH_TOKEN",
    "x": "X_CONSUMER_KEY",
}


def test_a_wrong_credential_is_retried_once_fixed_and_publishes_exactly_once(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(SECRET) == set(test_faults.POST_PATHS)
    ledger = prepared(provider, f"sqlite:///{tmp_path / 'ledger.db'}", 1)
    adapt(provider.settings, ledger, provider.instance, now=WHEN)
    variable = SECRET[provider.instance]
    right = os.environ[variable]
    monkeypatch.setenv(variable, f"wrong-{right[::-1]}")

    [refused] = publish(provider.settings, ledger, provider.instance, now=WHEN)

    # Retried, and said as a credential to fix (the flow fails the run on it, so staff are notified: test_notify.py).
    assert refused.state == "retry" and refused.detail.startswith(CREDENTIAL_TO_FIX), refused.detail
    assert f"channels.{provider.instance}.credentials" in refused.detail or variable in refused.detail, refused.detail
    assert provider.posted() == []
    assert ledger.unknown_deliveries() == {}

    monkeypatch.setenv(variable, right)  # the staff fix it
    [published] = publish(provider.settings, ledger, provider.instance, now=WHEN)

    assert published.state == "published", published.detail
    counted = Counter(provider.posted())
    assert len(counted) == provider.per_item and set(counted.values()) == {1}, counted
    assert ledger.unknown_deliveries() == {}
    ledger.close()


def test_a_wrong_mastodon_token_is_retried_once_fixed_and_posts_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTS_MASTODON", f"wrong-{PRACTICE_TOKEN[::-1]}")
    with mastodon_instance() as instance:
        settings = mastodon_settings(tmp_path, instance, timeout=10)  # no answer lost to a loaded machine
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        ledger.upsert_items(items(Provider("mastodon", LocalHttpServer(), settings, bool, list), 1))
        adapt(settings, ledger, "mastodon", now=WHEN)

        [refused] = publish(settings, ledger, "mastodon", now=WHEN)
        assert refused.state == "retry" and refused.detail.startswith(CREDENTIAL_TO_FIX), refused.detail
        assert "channels.mastodon.credentials.access_token" in refused.detail and "fix it" in refused.detail
        assert mastodon_statuses(instance) == []

        monkeypatch.setenv("FAULTS_MASTODON", PRACTICE_TOKEN)
        [published] = publish(settings, ledger, "mastodon", now=WHEN)
        assert published.state == "published", published.detail
        assert len(mastodon_statuses(instance)) == 1
        assert ledger.unknown_deliveries() == {}
        ledger.close()
