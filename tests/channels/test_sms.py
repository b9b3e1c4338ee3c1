"""The SMS channel: prefix and STOP footer always, GSM-7 preferred, segments enforced, no PHI, Twilio outbox bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from carecast.audience import load_audience
from carecast.compliance import handle_inbound
from carecast.config import Settings
from carecast.errors import RenderError
from carecast.model import Draft
from carecast.pipeline import sync_audience
from carecast.practice import load_settings
from carecast.text import sms_measure
from carecast_channels.sms import SmsChannel, SmsConfig
from tests.channels.conftest import outbox_context
from tests.conftest import write_config
from tests.factories import PATIENT_RECOGNITION, make_observance

LONG = " ".join(["Thank you for trusting us with your recovery \u2014 every step counts."] * 12)


def channel(tmp_path: Path, **changes: Any) -> SmsChannel:
    settings: Settings = load_settings(write_config(tmp_path, {"channels": {"sms": changes}}))
    return SmsChannel("sms", settings.channels["sms"], settings)


def test_curly_quote_swap_gives_one_gsm7_segment(tmp_path: Path) -> None:
    draft = channel(tmp_path).render([make_observance()])
    [text] = draft.parts
    assert text == (
        "Oakview PT: It's Patient Recognition Week! Thank you for trusting us with your recovery. Reply STOP to opt out"
    )
    assert draft.measures["parts"] == [{"encoding": "GSM-7", "segments": 1}]


def test_link_is_tagged_for_sms(tmp_path: Path) -> None:
    [text] = channel(tmp_path).render([make_observance(url="https://oakviewpt.com/prw", campaign="prw_2026")]).parts
    assert " https://oakviewpt.com/prw?utm_source=sms&utm_medium=sms&utm_campaign=prw_2026 Reply STOP" in text


def test_long_summary_is_shortened_to_max_segments(tmp_path: Path) -> None:
    sms = channel(tmp_path)  # the sample config lowers the channel's 3 segments to 2
    draft = sms.render([make_observance(summary=LONG, url="https://www.oakviewpt.com/thanks")])
    [text] = draft.parts
    measure = sms_measure(text)
    assert (measure.encoding, measure.segments) == ("GSM-7", 2)
    assert text.startswith("Oakview PT: Thank you for trusting us")
    # Cut in the middle: the last sentence, the link and the footer stay whole.
    assert "... Thank you for trusting us with your recovery - every step counts." in text
    assert text.endswith(
        "counts. https://www.oakviewpt.com/thanks?utm_source=sms&utm_medium=sms&utm_campaign=oakview_blog"
        " Reply STOP to opt out"
    )


def test_channel_limit_applies_without_config(tmp_path: Path) -> None:
    draft = channel(tmp_path, max_segments=None).render([make_observance(summary=LONG)])
    assert draft.measures["parts"][0]["segments"] == 3


@pytest.mark.parametrize("summary", [PATIENT_RECOGNITION, LONG, "\U0001f389 Party time at the clinic \U0001f389 " * 10])
def test_prefix_and_footer_always_present(tmp_path: Path, summary: str) -> None:
    [text] = channel(tmp_path, opt_out_text="Text STOP to end").render([make_observance(summary=summary)]).parts
    assert text.startswith("Oakview PT: ")
    assert text.endswith(" Text STOP to end")
    assert sms_measure(text).segments <= 2


def test_over_limit_raises_render_error(tmp_path: Path) -> None:
    footer = "Reply STOP to opt out. " + "Msg & data rates may apply. " * 6
    with pytest.raises(RenderError, match="1 segments") as caught:
        channel(tmp_path, max_segments=1, opt_out_text=footer).render([make_observance("observance-prw-2026")])
    assert caught.value.item_ids == ["observance-prw-2026"]


def test_template_without_footer_is_refused(tmp_path: Path) -> None:
    sms = channel(tmp_path)
    (sms.settings.path(sms.settings.templates) / "sms" / "text.txt.j2").write_text(
        "{{ practice.short_name }}: {{ body }}"
    )
    with pytest.raises(RenderError, match="Reply STOP to opt out"):
        sms.render([make_observance()])


@pytest.mark.parametrize(
    "text",
    [
        "20% off! Call now.",
        "20% off! Call now. Reply STOP to opt out",
        "Oakview PT: 20% off! Call now.",
        "Call now, Oakview PT: Reply STOP to opt out",
    ],
)
def test_an_edited_text_keeps_the_prefix_and_the_footer(tmp_path: Path, text: str) -> None:
    # decide() enforces the text staff typed at approval, not what compose rendered.
    with pytest.raises(RenderError, match="must start with 'Oakview PT:' and keep 'Reply STOP to opt out'"):
        channel(tmp_path).enforce(Draft(channel="sms", item_ids=("a",), parts=(text,)))


def test_an_edited_text_is_one_message_in_gsm7(tmp_path: Path) -> None:
    sms = channel(tmp_path)
    edited = sms.enforce(
        Draft(
            channel="sms", item_ids=("a",), parts=("Oakview PT: We\u2019re open \u2014 come by! Reply STOP to opt out",)
        )
    )
    assert edited.parts == ("Oakview PT: We're open - come by! Reply STOP to opt out",)
    assert edited.measures["parts"] == [{"encoding": "GSM-7", "segments": 1}]
    two = ("Oakview PT: one. Reply STOP to opt out", "Oakview PT: two. Reply STOP to opt out")
    with pytest.raises(RenderError, match="one message"):
        sms.enforce(Draft(channel="sms", item_ids=("a",), parts=two))


def test_patient_content_refused_even_when_authorized(tmp_path: Path) -> None:
    sms = channel(tmp_path)
    extras: list[dict[str, Any]] = [{}, {"authorized_channels": ("sms",)}]
    for extra in extras:
        with pytest.raises(RenderError) as caught:
            sms.render([make_observance("observance-prw-2026", mentions_patient=True, **extra)])
        assert caught.value.item_ids == ["observance-prw-2026"]
    with pytest.raises(RenderError, match="no PHI"):
        sms.render([make_observance(mentions_patient=True, authorized_channels=("sms",))])


def test_exactly_one_item(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="exactly one item"):
        channel(tmp_path).render([make_observance(), make_observance("two")])


@pytest.mark.parametrize(
    "changes",
    [
        {"from_number": "3125550100"},
        {"from_number": "+1 312 555 0100"},
        {"opt_out_text": "Reply to opt out"},
        {"max_segments": 0},
        {"max_segments": 11},
        {"from_number": None},
        {"messaging_service_sid": "MG123"},
        {"quiet_hours": {"default": {"start": "07:00", "end": "20:00"}}},
        {"credentials": {"account_sid": "AC" + "0" * 32, "auth_token": "plain-text-token"}},
    ],
)
def test_config_is_validated(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SmsConfig.model_validate({"type": "sms", "from_number": "+13125550100", **changes})


def test_publish_writes_one_request_per_consenting_subscriber(tmp_path: Path) -> None:
    sms = channel(tmp_path)
    draft = sms.render([make_observance()])
    context = outbox_context(tmp_path / "outbox", 1)
    sync_audience(sms.settings, context.ledger)
    receipt = sms.publish(draft, context)
    assert receipt.location == str(tmp_path / "outbox" / "sms" / "000001.json")
    payload = json.loads(Path(receipt.location).read_text(encoding="utf-8"))
    # The ledger is the list now, in address order.
    audience = sorted(load_audience(sms.settings.path(sms.settings.audience), "sms"), key=lambda s: s.address)
    assert payload == {
        "endpoint": "POST /2010-04-01/Accounts/{AccountSid}/Messages.json",
        "account": "+13125550100",
        "requests": [
            {"To": s.address, "From": "+13125550100", "Body": draft.parts[0]} for s in audience if s.can_receive
        ],
        "skipped": [{"to": s.address, "reason": s.exclusion_reason} for s in audience if not s.can_receive],
    }
    skipped = {entry["to"]: entry["reason"] for entry in payload["skipped"]}
    assert skipped["+13125550188"] == "status is opted_out"
    assert skipped["+12245550109"] == "no consent on file"
    assert "+13125550117" in {request["To"] for request in payload["requests"]}


def test_outbox_follows_the_ledger_opt_outs(tmp_path: Path) -> None:
    sms = channel(tmp_path, messaging_service_sid="MG" + "a" * 32, status_callback="https://hooks.example.com/sms")
    context = outbox_context(tmp_path / "outbox", 2)
    sync_audience(sms.settings, context.ledger)
    assert handle_inbound(context.ledger, sms.practice, "+13125550117", "Stop") is not None
    draft = Draft(channel="sms", item_ids=("a",), parts=("Oakview PT: hi Reply STOP to opt out",))
    payload = json.loads(Path(sms.publish(draft, context).location).read_text(encoding="utf-8"))
    assert {"to": "+13125550117", "reason": "status is opted_out"} in payload["skipped"]
    assert payload["requests"][0] == {
        "To": "+13055550164",
        "From": "+13125550100",
        "MessagingServiceSid": "MG" + "a" * 32,
        "StatusCallback": "https://hooks.example.com/sms",
        "Body": "Oakview PT: hi Reply STOP to opt out",
    }


#: The issue's case: one emoji makes the text UCS-2 (4 segments), although without it it is 2 GSM-7 segments.
WITH_EMOJI = (
    "Saturday hours are back \U0001f389 Starting December 5 we are open 8am to noon for evaluations, follow-ups "
    "and wellness visits. Parking is free behind the clinic and the side entrance has no steps. Same therapists, "
    "same care. Call 312-555-0142 to book your visit."
)


def test_an_emoji_is_dropped_so_the_whole_text_fits_in_gsm7(tmp_path: Path) -> None:
    [text] = channel(tmp_path).render([make_observance(summary=WITH_EMOJI)]).parts
    assert "\U0001f389" not in text
    assert sms_measure(text).encoding == "GSM-7" and sms_measure(text).segments == 2
    assert "Call 312-555-0142 to book your visit." in text and "wellness visits" in text


def test_emoji_keep_keeps_them_only_when_the_text_fits_with_them(tmp_path: Path) -> None:
    sms = channel(tmp_path, emoji="keep")
    [short] = sms.render([make_observance(summary="Happy PT Month \U0001f499 from all of us!")]).parts
    assert "\U0001f499" in short and sms_measure(short).encoding == "UCS-2"
    [long] = sms.render([make_observance(summary=WITH_EMOJI)]).parts
    assert "\U0001f389" not in long and sms_measure(long).encoding == "GSM-7"
    assert "Call 312-555-0142" in long


def test_accents_lose_their_accent_only_when_that_makes_the_text_fit(tmp_path: Path) -> None:
    sms = channel(tmp_path)
    [short] = sms.render([make_observance(summary="Cl\u00ednica abierta el s\u00e1bado.")]).parts
    assert "Cl\u00ednica" in short  # fits in UCS-2 as written
    [long] = sms.render([make_observance(summary=f"Cl\u00ednica abierta el s\u00e1bado. {WITH_EMOJI}")]).parts
    assert "Clinica abierta el sabado." in long and sms_measure(long).encoding == "GSM-7"


def test_shortening_cuts_the_middle_and_keeps_the_call_to_action(tmp_path: Path) -> None:
    summary = f"{LONG} Call 312-555-0142 to book."
    [text] = channel(tmp_path).render([make_observance(summary=summary)]).parts
    assert text.startswith("Oakview PT: Thank you for trusting us")
    assert text.endswith("... Call 312-555-0142 to book. Reply STOP to opt out")
    assert sms_measure(text).segments <= 2
