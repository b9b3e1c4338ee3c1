"""The contract every channel plugin keeps, checked for each installed channel (built-in or third party) with the
plugin kit a third party runs on theirs (:mod:`carecast.testing`): one contract, not two.

The offline rules run on every installed channel (``TestEveryInstalledChannel``). The provider rules (outbox equals
request, claim before send, a rerun sends nothing, no secret in outputs) run where a channel is given its fake
provider: each built-in here against its fake of ``tests/providers/`` (``Test<Channel>AgainstItsFake``; one missing
fails ``test_every_built_in_meets_its_fake``), the demo plugin in ``tests/test_plugin.py``. Each built-in's own module
tests those guarantees against its fake in depth."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import pytest
import yaml

from carecast.channel import channel_class, installed
from carecast.config import Settings
from carecast.practice import load_settings
from carecast.testing import ITEM, SECRET_ENV, ChannelContract, LocalHttpServer, RecordedRequest, Reply, sends
from tests.conftest import SAMPLE_CONFIG, all_channels_config
from tests.providers.bluesky import BlueskyAccount, BlueskyPds
from tests.providers.gbp import GbpAccount, GbpServer
from tests.providers.graph import IG_USER_ID, GraphApiServer
from tests.providers.images import ImageHost
from tests.providers.linkedin import LinkedInServer
from tests.providers.mastodon import RecordedInstance
from tests.providers.smtp import SmtpServer
from tests.providers.twilio import TwilioCredentials, TwilioServer
from tests.providers.xapi import XApiServer, XCredentials

#: The package the built-in channels are installed as (wherever the entry points say it is).
BUILT_IN = channel_class("x").__module__.rpartition(".")[0]
#: The kit's item without its image, for channels that fetch and upload it themselves (from the practice's site,
#: which the tests do not reach): the post is what the rules look at.
TEXT_ONLY = replace(ITEM, image_url=None, image_alt=None)


def sample_audiences() -> dict[str, Any]:
    """The sample config's audiences, their files named by absolute path (the kit's practice lives elsewhere)."""
    audiences = yaml.safe_load((SAMPLE_CONFIG / "carecast.yaml").read_text(encoding="utf-8"))["audiences"]
    for audience in audiences.values():
        for file in audience["files"]:
            file["file"] = str(SAMPLE_CONFIG / file["file"])
    return dict(audiences)


class TestEveryInstalledChannel(ChannelContract):
    @pytest.fixture(params=installed())
    def kind(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def settings(self, kind: str, tmp_path: Path) -> Settings:
        # The channels the sample config holds commented out are examples too, uncommented as staff would.
        settings = load_settings(all_channels_config(tmp_path / "contract"))
        assert any(config.type == kind for config in settings.channels.values()), (
            f"the sample config has no channel of type {kind!r} (not even commented out): every channel needs one"
        )
        return settings

    def test_a_built_in_lives_in_its_own_module(self, kind: str) -> None:
        module = channel_class(kind).__module__
        assert module == f"{BUILT_IN}.{kind}" or not module.startswith(f"{BUILT_IN}.")

    # Given no provider here, these would only skip: each built-in meets them against its fake below.
    test_outbox_equals_request = None  # type: ignore[assignment]
    test_claims_before_sending = None  # type: ignore[assignment]
    test_a_rerun_sends_nothing = None  # type: ignore[assignment]
    test_no_secret_in_outputs = None  # type: ignore[assignment]


def test_every_built_in_meets_its_fake() -> None:
    """Every built-in channel has a class here running the provider rules against its fake."""
    built_in = {kind for kind in installed() if channel_class(kind).__module__.startswith(f"{BUILT_IN}.")}
    faked = {
        test.channel_type
        for test in globals().values()
        if isinstance(test, type)
        and issubclass(test, ChannelContract)
        and test.provider is not ChannelContract.provider
    }
    assert built_in - faked == set(), "run the provider rules on it: class Test<Channel>AgainstItsFake(ChannelContract)"


class TestFacebookAgainstItsFake(ChannelContract):
    """The whole kit, provider rules included, on a built-in channel and its fake Graph API."""

    channel_type = "facebook"
    section: ClassVar[dict[str, Any]] = {"page_id": "104857600000001", "max_age_days": 3650}
    more_config: ClassVar[dict[str, Any]] = {"templates": str(SAMPLE_CONFIG / "templates")}

    def provider(self, secret: str) -> GraphApiServer:
        return GraphApiServer(access_token=secret)

    def live_section(self, provider_url: str) -> dict[str, Any]:
        return {**self.section, "api_base": provider_url, "credentials": {"access_token": {"env": SECRET_ENV}}}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        return [request.body for request in sends(provider)]  # the form fields Facebook read

    def in_outbox(self, written: Path) -> list[Any]:
        return [json.loads(written.read_text(encoding="utf-8"))["request"]]


def requests_to(provider: LocalHttpServer, ending: str) -> list[RecordedRequest]:
    """The POSTs to a path ending with ``ending``: one channel's deliveries among its other requests."""
    return [request for request in sends(provider) if request.path.endswith(ending)]


def outbox_json(written: Path) -> Any:
    return json.loads(written.read_text(encoding="utf-8"))


class GraphWithTheItemsImage(GraphApiServer):
    """The Graph fake on a web where the kit item's image is found: Instagram fetches it from an image host here."""

    def __init__(self, access_token: str) -> None:
        super().__init__(access_token=access_token)
        self.images = ImageHost()

    def start(self) -> Self:
        self.images.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        self.images.stop()

    def handle(self, request: RecordedRequest) -> Reply:
        if isinstance(request.body, dict) and request.body.get("image_url") == ITEM.image_url:
            request = replace(request, body={**request.body, "image_url": f"{self.images.url}/photo.jpg"})
        return super().handle(request)


class TestInstagramAgainstItsFake(ChannelContract):
    channel_type = "instagram"
    section: ClassVar[dict[str, Any]] = {"ig_user_id": IG_USER_ID, "account": "@oakviewpt", "max_age_days": 3650}
    more_config: ClassVar[dict[str, Any]] = {"templates": str(SAMPLE_CONFIG / "templates")}

    def provider(self, secret: str) -> GraphApiServer:
        return GraphWithTheItemsImage(access_token=secret)

    def live_section(self, provider_url: str) -> dict[str, Any]:
        credentials = {"access_token": {"env": SECRET_ENV}}
        return {**self.section, "api_base": provider_url, "credentials": credentials, "poll_every": 0.05}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        # A post is its container's request and its publish: the container alone shows nobody anything.
        made = [request.body for request in requests_to(provider, "/media")]
        published = requests_to(provider, "/media_publish")
        return [(container, {"creation_id": "{container}"}) for container, _ in zip(made, published, strict=False)]

    def in_outbox(self, written: Path) -> list[Any]:
        steps = outbox_json(written)["requests"]
        return [(steps[0]["request"], steps[2]["request"])]


class TestGbpAgainstItsFake(ChannelContract):
    channel_type = "gbp"
    section: ClassVar[dict[str, Any]] = {
        "account": "Oakview Physical Therapy",
        "account_id": GbpAccount.account_id,
        "location_id": GbpAccount.location_id,
        "max_age_days": 3650,
    }
    more_config: ClassVar[dict[str, Any]] = {"templates": str(SAMPLE_CONFIG / "templates")}

    def provider(self, secret: str) -> GbpServer:
        return GbpServer(GbpAccount(client_secret=secret, refresh_token=secret))

    def live_section(self, provider_url: str) -> dict[str, Any]:
        credentials = {
            "client_id": GbpAccount.client_id,
            "client_secret": {"env": SECRET_ENV},
            "refresh_token": {"env": SECRET_ENV},
            "token_uri": f"{provider_url}/token",
        }
        return {**self.section, "api_base": provider_url, "credentials": credentials}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        return [request.body for request in requests_to(provider, "/localPosts")]

    def in_outbox(self, written: Path) -> list[Any]:
        return [outbox_json(written)["request"]]


class TestLinkedInAgainstItsFake(ChannelContract):
    item = TEXT_ONLY
    channel_type = "linkedin"
    section: ClassVar[dict[str, Any]] = {
        "account": "Oakview Physical Therapy",
        "organization_id": "10000001",
        "max_age_days": 3650,
    }
    more_config: ClassVar[dict[str, Any]] = {"templates": str(SAMPLE_CONFIG / "templates")}

    def provider(self, secret: str) -> LinkedInServer:
        return LinkedInServer(access_token=secret)

    def live_section(self, provider_url: str) -> dict[str, Any]:
        credentials = {"access_token": {"env": SECRET_ENV}}
        return {**self.section, "api_base": provider_url, "credentials": credentials}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        return [request.body for request in requests_to(provider, "/rest/posts")]

    def in_outbox(self, written: Path) -> list[Any]:
        return [outbox_json(written)["request"]]


class TestMastodonAgainstItsFake(ChannelContract):
    channel_type = "mastodon"
    section: ClassVar[dict[str, Any]] = {
        "account": "@oakviewpt@mastodon.social",
        "instance_url": "https://mastodon.social",
        "max_age_days": 3650,
    }
    more_config: ClassVar[dict[str, Any]] = {"templates": str(SAMPLE_CONFIG / "templates")}

    def provider(self, secret: str) -> RecordedInstance:
        return RecordedInstance(access_token=secret)

    def live_section(self, provider_url: str) -> dict[str, Any]:
        credentials = {"access_token": {"env": SECRET_ENV}}
        return {**self.section, "instance_url": provider_url, "credentials": credentials}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        return [request.body for request in requests_to(provider, "/api/v1/statuses")]

    def in_outbox(self, written: Path) -> list[Any]:
        return [outbox_json(written)["request"]]


class TestBlueskyAgainstItsFake(ChannelContract):
    item = TEXT_ONLY
    channel_type = "bluesky"
    section: ClassVar[dict[str, Any]] = {"account": "@oakviewpt.bsky.social", "max_age_days": 3650}
    more_config: ClassVar[dict[str, Any]] = {"templates": str(SAMPLE_CONFIG / "templates")}

    def provider(self, secret: str) -> BlueskyPds:
        return BlueskyPds(BlueskyAccount(app_password=secret))

    def live_section(self, provider_url: str) -> dict[str, Any]:
        credentials = {"handle": BlueskyAccount.handle, "app_password": {"env": SECRET_ENV}}
        return {**self.section, "pds_url": provider_url, "credentials": credentials}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        return [as_written(request.body) for request in requests_to(provider, "repo.createRecord")]

    def in_outbox(self, written: Path) -> list[Any]:
        return [as_written(request) for request in outbox_json(written)["requests"]]


def as_written(create: dict[str, Any]) -> dict[str, Any]:
    """A ``createRecord`` request without what only the moment of sending decides (its key and ``createdAt``) and
    with the account's DID as the outbox names it."""
    return {**create, "repo": "{did}", "rkey": "{moment}", "record": {**create["record"], "createdAt": "{moment}"}}


class TestXAgainstItsFake(ChannelContract):
    item = TEXT_ONLY
    channel_type = "x"
    section: ClassVar[dict[str, Any]] = {"account": "@OakviewPT", "max_age_days": 3650}
    more_config: ClassVar[dict[str, Any]] = {"templates": str(SAMPLE_CONFIG / "templates")}

    def provider(self, secret: str) -> XApiServer:
        return XApiServer(credentials=XCredentials(secret, secret, secret, secret))

    def live_section(self, provider_url: str) -> dict[str, Any]:
        names = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        credentials = {name: {"env": SECRET_ENV} for name in names}
        return {**self.section, "api_base": provider_url, "credentials": credentials}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        return [request.body for request in requests_to(provider, "/2/tweets")]

    def in_outbox(self, written: Path) -> list[Any]:
        return list(outbox_json(written)["requests"])


class TestSmsAgainstItsFake(ChannelContract):
    channel_type = "sms"
    section: ClassVar[dict[str, Any]] = {
        "account": "+13125550100",
        "from_number": "+13125550100",
        "audience": "discharged",
        "max_age_days": 3650,
    }
    more_config: ClassVar[dict[str, Any]] = {
        "templates": str(SAMPLE_CONFIG / "templates"),
        "audiences": sample_audiences(),
    }
    #: Inside every sample recipient's window (09:00-12:00 in US zones): who is texted does not depend on the hour.
    now = datetime(2026, 11, 3, 17, 0, tzinfo=UTC)

    def provider(self, secret: str) -> TwilioServer:
        return TwilioServer(credentials=TwilioCredentials(auth_token=secret))

    def live_section(self, provider_url: str) -> dict[str, Any]:
        account = {"account_sid": TwilioCredentials.account_sid, "auth_token": {"env": SECRET_ENV}}
        return {**self.section, "credentials": {**account, "api_base": provider_url}}

    def sent(self, provider: LocalHttpServer) -> list[Any]:
        return [request.body for request in requests_to(provider, "/Messages.json")]

    def in_outbox(self, written: Path) -> list[Any]:
        return list(outbox_json(written)["requests"])


class TestNewsletterAgainstItsFake(ChannelContract):
    channel_type = "newsletter"
    section: ClassVar[dict[str, Any]] = {
        "audience": "providers",
        "from_name": "Oakview Physical Therapy",
        "from_address": "news@oakviewpt.com",
        "list_name": "Oakview PT Newsletter",
        "unsubscribe_url": "https://www.oakviewpt.com/unsubscribe",
        "unsubscribe_mailto": "unsubscribe@oakviewpt.com",
        "max_age_days": 3650,
    }
    more_config: ClassVar[dict[str, Any]] = {
        "templates": str(SAMPLE_CONFIG / "templates"),
        "audiences": sample_audiences(),
    }

    def provider(self, secret: str) -> SmtpServer:
        return SmtpServer(password=secret)

    def live_section(self, provider_url: str) -> dict[str, Any]:
        where = urlsplit(provider_url)
        credentials = {
            "host": where.hostname,
            "port": where.port,
            "security": "none",
            "username": "carecast",
            "password": {"env": SECRET_ENV},
        }
        return {**self.section, "credentials": credentials, "unsubscribe_secret": {"env": SECRET_ENV}}

    def sent(self, provider: SmtpServer) -> list[Any]:
        # One delivery per recipient, each the list-level copy addressed to them with their own unsubscribe token.
        return [as_list_copy(message.raw) for message in provider.messages for _ in message.rcpt_tos]

    def in_outbox(self, written: Path) -> list[Any]:
        # The outbox keeps the list-level copy once; every provider of the audience is sent it.
        return [as_list_copy(written.read_bytes())] * len(PROVIDERS)


#: The referring providers the sample audience ``providers`` holds (all of them may be emailed).
PROVIDERS = (SAMPLE_CONFIG / "audience" / "referring-providers.csv").read_text(encoding="utf-8").splitlines()[1:]


def as_list_copy(raw: bytes) -> tuple[tuple[str, str], ...]:
    """An email as what every copy of it shares: its headers but those naming the copy (``To``, ``Date``,
    ``Message-ID``) and its decoded parts, the unsubscribe token in links written ``{token}``."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    per_copy = {"to", "date", "message-id"}
    # A multipart's boundary is drawn at random for each copy.
    headers = [
        (name, re.sub(r'; boundary="[^"]*"', "", str(value)))
        for name, value in message.items()
        if name.lower() not in per_copy
    ]
    parts = [("part", str(part.get_content())) for part in message.walk() if not part.is_multipart()]
    return tuple((name, re.sub(r"([?&;]t=)[A-Za-z0-9_-]+", r"\1{token}", text)) for name, text in headers + parts)
