"""``carecast check`` refuses every spelling of an internal address in a URL the config names (a feed, the failure
webhook, a provider's base URL that credentials travel to), and an ``allow_private`` that is not a boolean (or a
list of networks): ``"yes"`` must not open the local network by accident."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from carecast.cli import main
from carecast.fetch import internal_host_reason, ip_literal
from tests.conftest import all_channels_config, write_config

#: How one address can be written in a URL's host, and the address it is.
SPELLINGS = {
    "127.0.0.1": "127.0.0.1",
    "0x7f000001": "127.0.0.1",
    "2130706433": "127.0.0.1",
    "0177.0.0.1": "127.0.0.1",
    "017700000001": "127.0.0.1",
    "0x7f.1": "127.0.0.1",
    "127.1": "127.0.0.1",
    "%31%32%37.0.0.1": "127.0.0.1",
    "127.0.0.1.": "127.0.0.1",
    "[::ffff:127.0.0.1]": "127.0.0.1",
    "[::ffff:7f00:1]": "127.0.0.1",
    "[::127.0.0.1]": "127.0.0.1",
    "[2002:7f00:1::]": "127.0.0.1",
    "169.254.169.254": "169.254.169.254",
    "0xa9fea9fe": "169.254.169.254",
    "2852039166": "169.254.169.254",
    "[64:ff9b::a9fe:a9fe]": "169.254.169.254",
    "[::ffff:169.254.169.254]": "169.254.169.254",
    "10.1": "10.0.0.1",
    "0": "0.0.0.0",
    "[::1]": "::1",
    "[fe80::1%25eth0]": "fe80::1",
}


@pytest.mark.parametrize(("host", "address"), SPELLINGS.items())
def test_every_spelling_of_an_internal_address_is_read_and_refused(host: str, address: str) -> None:
    assert ip_literal(host) is not None
    reason = internal_host_reason(host)
    assert reason is not None and address in reason  # the address it really is, named


@pytest.mark.parametrize(
    "host", ["www.oakviewpt.com", "8.8.8.8", "[::ffff:8.8.8.8]", "0x7f000001.example", "1.2.3.4.5"]
)
def test_public_addresses_and_names_pass(host: str) -> None:
    assert internal_host_reason(host) is None


def test_a_network_allowed_is_allowed_in_any_spelling() -> None:
    allowed = [ipaddress.ip_network("10.0.0.0/8")]
    assert internal_host_reason("0x0a010203", allowed) is None
    assert internal_host_reason("[::ffff:10.1.2.3]", allowed) is None
    assert internal_host_reason("0x7f000001", allowed) is not None


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", "--config", str(config)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("host", ["0x7f000001", "2130706433", "0177.0.0.1", "[::ffff:127.0.0.1]", "169.254.169.254"])
def test_check_refuses_a_feed_on_an_internal_address(
    tmp_path: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, {"sources": {"blog": {"url": f"http://{host}/feed.xml"}}})
    code, said = check(config, capsys)
    assert code == 2
    assert "sources.blog.url" in said and "set allow_private: true" in said


@pytest.mark.parametrize(
    ("channel", "key", "url"),
    [
        ("bluesky", "pds_url", "https://169.254.169.254"),
        ("bluesky", "pds_url", "https://0xa9fea9fe/"),
        ("mastodon", "instance_url", "https://[::ffff:10.0.0.5]"),
        ("mastodon", "instance_url", "https://2852039166"),
    ],
)
def test_check_refuses_credentials_sent_to_an_internal_address(
    tmp_path: Path, channel: str, key: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = all_channels_config(tmp_path, {"channels": {channel: {key: url}}})
    code, said = check(config, capsys)
    assert code == 2
    assert f"channels.{channel}.{key}" in said and "a public host" in said


@pytest.mark.parametrize("url", ["https://169.254.169.254", "https://[::ffff:10.0.0.5]", "http://api.twilio.example"])
def test_check_refuses_twilios_auth_token_sent_in_clear_or_inside(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = {"account_sid": "AC" + "0" * 32, "auth_token": {"env": "TWILIO_AUTH_TOKEN"}, "api_base": url}
    config = write_config(tmp_path, {"channels": {"sms": {"credentials": credentials}}})
    code, said = check(config, capsys)
    assert code == 2
    assert "channels.sms.credentials.api_base" in said


def test_a_test_server_on_127_0_0_1_stays_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = all_channels_config(tmp_path, {"channels": {"bluesky": {"pds_url": "http://127.0.0.1:8123"}}})
    assert check(config, capsys)[0] == 0


@pytest.mark.parametrize("value", ["yes", "true", 1, "on"])
@pytest.mark.parametrize(
    "changes",
    [
        lambda value: {"notify": {"webhook": "http://10.0.0.5/hook", "allow_private": value}},
        lambda value: {"sources": {"blog": {"url": "http://10.0.0.5/feed", "allow_private": value}}},
        lambda value: {"channels": {"x": {"image_allow_private": value}}},
    ],
    ids=["notify", "feed", "x-images"],
)
def test_allow_private_must_be_a_real_boolean(
    tmp_path: Path, value: object, changes: object, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, changes(value))  # type: ignore[operator]
    code, said = check(config, capsys)
    assert code == 2
    assert "allow_private" in said and "valid boolean" in said
