"""Loading subscribers and their consent records from the audience CSV files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from carecast.audience import load_audience
from carecast.cli import main
from carecast.errors import ConfigError
from carecast.ledger import Ledger
from carecast.practice import load_settings
from carecast.unsubscribe import apply_unsubscribe, make_token

SAMPLES = Path(__file__).parents[1] / "config/audience"
SMS_HEADER = "phone,name,consent_at,consent_method,consent_text,status,timezone\n"
CONSENT = '2025-03-02T10:15:00-06:00,web form,"I agree to receive marketing texts. Reply STOP to opt out."'


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("channel_type", ["newsletter", "sms"])
def test_samples_load_with_some_not_receiving(channel_type: str) -> None:
    subscribers = load_audience(SAMPLES, channel_type)
    assert 8 <= len(subscribers) <= 12
    receiving = [subscriber for subscriber in subscribers if subscriber.can_receive]
    assert 0 < len(receiving) < len(subscribers)
    assert any(subscriber.consent_at is None for subscriber in subscribers)
    assert all(s.consent_at is None or s.consent_at.tzinfo == UTC for s in subscribers)


def test_sms_row_is_parsed(tmp_path: Path) -> None:
    folder = write(
        tmp_path, "sms.csv", SMS_HEADER + f"+13125550117,Maria Gonzalez,{CONSENT},subscribed,America/Chicago\n"
    )
    [subscriber] = load_audience(folder, "sms")
    assert subscriber.address == "+13125550117"
    assert subscriber.consent_at == datetime(2025, 3, 2, 16, 15, tzinfo=UTC)
    assert subscriber.consent_method == "web form"
    assert subscriber.timezone == "America/Chicago"
    assert subscriber.can_receive
    assert subscriber.exclusion_reason is None


@pytest.mark.parametrize(
    ("status", "consent", "reason"),
    [
        ("opted_out", CONSENT, "status is opted_out"),
        ("unsubscribed", CONSENT, "status is unsubscribed"),
        ("subscribed", ",,", "no consent on file"),
    ],
)
def test_who_cannot_receive_and_why(tmp_path: Path, status: str, consent: str, reason: str) -> None:
    folder = write(tmp_path, "sms.csv", SMS_HEADER + f"+13125550117,Maria,{consent},{status},\n")
    [subscriber] = load_audience(folder, "sms")
    assert not subscriber.can_receive
    assert subscriber.exclusion_reason == reason
    assert subscriber.timezone is None


@pytest.mark.parametrize(
    ("row", "key"),
    [
        (f"3125550117,Maria,{CONSENT},subscribed,", "row 2.phone"),  # not E.164
        (f"+1 312 555 0117,Maria,{CONSENT},subscribed,", "row 2.phone"),
        (f"+1312555011,Maria,{CONSENT},subscribed,", "row 2.phone"),  # too short to be valid
        (f"+13125550117,Maria,{CONSENT},active,", "row 2.status"),
        (f"+13125550117,Maria,{CONSENT},subscribed,Chicago", "row 2.timezone"),
        ("+13125550117,Maria,2025-03-02T10:15:00,web form,I agree,subscribed,", "row 2.consent_at"),  # naive
        ("+13125550117,Maria,yesterday,web form,I agree,subscribed,", "row 2.consent_at"),
        ("+13125550117,Maria,2025-03-02T10:15:00Z,,I agree,subscribed,", "row 2.consent_method"),
        (f"+13125550117,Maria,{CONSENT},subscribed,,extra", "row 2.cells"),
    ],
)
def test_malformed_sms_row(tmp_path: Path, row: str, key: str) -> None:
    folder = write(tmp_path, "sms.csv", SMS_HEADER + row + "\n")
    with pytest.raises(ConfigError) as caught:
        load_audience(folder, "sms")
    assert caught.value.file == folder / "sms.csv"
    assert key in [problem[0] for problem in caught.value.problems]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    rows = f"+13125550117,A,{CONSENT},subscribed,\nnope,B,{CONSENT},gone,\n+13125550117,C,{CONSENT},subscribed,\n"
    folder = write(tmp_path, "sms.csv", SMS_HEADER + rows)
    with pytest.raises(ConfigError) as caught:
        load_audience(folder, "sms")
    assert [key for key, _ in caught.value.problems] == ["row 3.phone", "row 3.status", "row 4.phone"]
    assert "earlier row" in caught.value.problems[2][1]


def test_malformed_email(tmp_path: Path) -> None:
    header = "email,name,consent_at,consent_method,consent_text,status\n"
    folder = write(tmp_path, "newsletter.csv", header + f"maria@@example.com,Maria,{CONSENT},subscribed\n")
    with pytest.raises(ConfigError) as caught:
        load_audience(folder, "newsletter")
    assert caught.value.problems[0][0] == "row 2.email"


def test_header_problems(tmp_path: Path) -> None:
    folder = write(tmp_path, "newsletter.csv", "email,name,consent_at,consent_text,status,timezone\n")
    with pytest.raises(ConfigError) as caught:
        load_audience(folder, "newsletter")
    messages = [expectation for key, expectation in caught.value.problems if key == "header"]
    assert any("'consent_method' is missing" in message for message in messages)
    assert any("unknown column 'timezone'" in message for message in messages)


def test_missing_file_and_unknown_channel_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_audience(tmp_path, "sms")
    with pytest.raises(ConfigError, match="channel types"):
        load_audience(tmp_path, "x")


def test_empty_file_with_header_is_an_empty_audience(tmp_path: Path) -> None:
    assert load_audience(write(tmp_path, "sms.csv", SMS_HEADER), "sms") == []


# -- carecast audience import ------------------------------------------------------------------------------------

EMAIL_HEADER = "email,name,consent_at,consent_method,consent_text,status\n"
EMAIL_CONSENT = '2025-01-14T09:12:00-06:00,web form,"Yes, send me the newsletter. I can unsubscribe at any time."'


def import_file(config_file: Path, file: Path, *extra: str) -> int:
    return main(["audience", "import", str(file), "--config", str(config_file), *extra])


def ledger_of(config_file: Path) -> Ledger:
    return Ledger(load_settings(config_file).ledger_url())


def test_import_reports_each_rejected_row_and_why_and_keeps_the_good_ones(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        f"maria.gonzalez@example.com,Maria Gonzalez,{EMAIL_CONSENT},subscribed",
        f"not-an-address,Nobody,{EMAIL_CONSENT},subscribed",
        "deb.kowalski@example.org,Deb Kowalski,,,,subscribed",  # loaded, never sent to: no consent
        f"sam.wright@example.com,Sam Wright,{EMAIL_CONSENT},active",
        f"maria.gonzalez@example.com,Maria again,{EMAIL_CONSENT},subscribed",
        "tom.becker@example.com,Tom Becker,2025-01-14T09:12:00,web form,I agree,subscribed",
    ]
    file = write(tmp_path, "newsletter.csv", EMAIL_HEADER + "\n".join(rows) + "\n") / "newsletter.csv"
    assert import_file(config_file, file) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{file}: 2 added, 0 updated, 4 problem(s) in rejected rows"
    report = {line.split()[0] + " " + line.split()[1]: line for line in out[3:]}
    assert list(report) == ["row 3.email", "row 5.status", "row 6.email", "row 7.consent_at"]
    assert "an email address, not 'not-an-address'" in report["row 3.email"]
    assert "one of subscribed, unsubscribed" in report["row 5.status"]
    assert "maria.gonzalez@example.com appears on an earlier row" in report["row 6.email"]
    assert "an ISO date and time with its zone" in report["row 7.consent_at"]
    ledger = ledger_of(config_file)
    try:
        stored = {s.address: s.can_receive for s in ledger.subscribers("newsletter")}
    finally:
        ledger.close()
    assert stored == {"maria.gonzalez@example.com": True, "deb.kowalski@example.org": False}


def test_a_clean_import_succeeds_and_a_second_changes_nothing(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = SAMPLES / "sms.csv"
    assert import_file(config_file, file) == 0
    assert import_file(config_file, file) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first == f"{file}: 9 added, 0 updated, 0 problem(s) in rejected rows"
    assert second == f"{file}: 0 added, 0 updated, 0 problem(s) in rejected rows"


def test_opt_outs_in_the_ledger_survive_a_reimport(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = SecretStr("practice-unsubscribe-secret")
    file = (
        write(
            tmp_path,
            "newsletter.csv",
            EMAIL_HEADER + f"maria.gonzalez@example.com,Maria Gonzalez,{EMAIL_CONSENT},subscribed\n",
        )
        / "newsletter.csv"
    )
    sms = write(tmp_path, "sms.csv", SMS_HEADER + f"+13125550117,Maria Gonzalez,{CONSENT},subscribed,\n") / "sms.csv"
    assert import_file(config_file, file) == 0
    assert import_file(config_file, sms) == 0
    ledger = ledger_of(config_file)
    try:
        token = make_token(
            secret, "oakview-pt-newsletter.oakviewpt.com", "maria.gonzalez@example.com", datetime.now(UTC)
        )
        apply_unsubscribe(ledger, secret, token)
        ledger.suppress("sms", "+13125550117", "opted_out", "replied STOP")
    finally:
        ledger.close()
    # The practice's spreadsheet still says "subscribed" (with a changed name, so the row is updated).
    file.write_text(file.read_text().replace("Maria Gonzalez", "Maria G."))
    sms.write_text(sms.read_text().replace("Maria Gonzalez", "Maria G."))
    assert import_file(config_file, file) == 0
    assert import_file(config_file, sms, "--type", "sms") == 0
    assert "0 added, 1 updated" in capsys.readouterr().out.splitlines()[-1]
    ledger = ledger_of(config_file)
    try:
        [email] = ledger.subscribers("newsletter")
        [phone] = ledger.subscribers("sms")
    finally:
        ledger.close()
    assert (email.name, email.status, email.can_receive) == ("Maria G.", "unsubscribed", False)
    assert (phone.name, phone.status, phone.can_receive) == ("Maria G.", "opted_out", False)


def test_a_file_whose_name_is_no_channel_type_needs_type(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, "patients-2026.csv", EMAIL_HEADER) / "patients-2026.csv"
    assert import_file(config_file, file) == 2
    assert "--type newsletter or sms" in capsys.readouterr().err
    assert import_file(config_file, file, "--type", "newsletter") == 0
    assert import_file(config_file, file, "--type", "sms") == 2, "an email file is no SMS list"
    assert "column 'phone' is missing" in capsys.readouterr().err
