"""Markdown posts: front matter, dates and zones, HIPAA authorization, scheduling, bad front matter."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from carecast.config import MarkdownSource, Settings, read_yaml
from carecast.errors import SourceError
from carecast.sources import SourceResult, read_source
from tests.conftest import SAMPLE_CONFIG

SETTINGS = Settings.model_validate(
    {**read_yaml(SAMPLE_CONFIG / "carecast.yaml"), "channels": {}, "base_dir": SAMPLE_CONFIG}
)


def posts(today: date, folder: Path | None = None) -> SourceResult:
    config = MarkdownSource(type="markdown", path=folder) if folder else MarkdownSource(type="markdown")
    return read_source("stories", config, SETTINGS, today=today)


def write(folder: Path, name: str, front_matter: str, body: str = "Hello **there**.") -> Path:
    file = folder / name
    file.write_text(f"---\n{front_matter.strip()}\n---\n{body}\n", encoding="utf-8")
    return file


def test_sample_posts() -> None:
    result = posts(date(2026, 11, 20))
    items = {item.id: item for item in result.items}
    assert sorted(items) == [
        "md:stories:2026-11-02-saturday-hours",
        "md:stories:2026-11-12-james-back-on-the-trail",
        "md:stories:2026-11-16-q3-outcomes",
        "md:stories:2026-11-20-maria-10-years",
    ]
    assert result.warnings == []

    staff = items["md:stories:2026-11-20-maria-10-years"]
    assert staff.kind == "recognition" and not staff.mentions_patient and staff.authorized_channels == ()
    assert staff.published == datetime(2026, 11, 20, 6, tzinfo=UTC)  # a date alone: midnight in Chicago
    assert staff.url == "https://www.oakviewpt.com/blog/maria-alvarez-10-years"
    assert staff.image_url == "https://www.oakviewpt.com/images/team/maria-alvarez.jpg"
    assert staff.image_alt and staff.campaign == "staff_spotlight"
    assert "<strong>ten years</strong>" in staff.summary_html and "**" not in staff.summary_text

    patient = items["md:stories:2026-11-12-james-back-on-the-trail"]
    assert patient.mentions_patient and patient.authorized_channels == ("newsletter",)
    assert patient.published == datetime(2026, 11, 12, 16, tzinfo=UTC)  # written with its zone, -06:00
    # Valid through October 31, 2030 in Chicago: it ends at the next local midnight (CDT, UTC-5).
    assert patient.authorization_expires == datetime(2030, 11, 1, 5, tzinfo=UTC)
    assert "<blockquote>" in patient.summary_html

    news = items["md:stories:2026-11-02-saturday-hours"]
    assert news.kind == "post" and news.published == datetime(2026, 11, 2, 14, tzinfo=UTC)  # 08:00 CST
    assert '<a href="https://www.oakviewpt.com/appointments" rel="noopener noreferrer nofollow">' in (news.summary_html)
    assert "  * Evaluations and follow-up visits" in news.summary_text


def test_a_post_dated_in_the_future_waits_for_its_day() -> None:
    assert "md:stories:2026-11-20-maria-10-years" not in {item.id for item in posts(date(2026, 11, 19)).items}
    assert "md:stories:2026-11-20-maria-10-years" in {item.id for item in posts(date(2026, 11, 20)).items}


def test_the_day_is_the_practices(tmp_path: Path) -> None:
    # 23:30 UTC on the 19th is still the 19th... in UTC; in Chicago it is 17:30 on the 19th, in Tokyo the 20th.
    write(tmp_path, "late.md", "title: Late\ndate: 2026-11-19 23:30:00+00:00")
    assert [item.id for item in posts(date(2026, 11, 19), tmp_path).items] == ["md:stories:late"]
    tokyo = SETTINGS.model_copy(update={"practice": SETTINGS.practice.model_copy(update={"timezone": "Asia/Tokyo"})})
    config = MarkdownSource(type="markdown", path=tmp_path)
    assert read_source("stories", config, tokyo, today=date(2026, 11, 19)).items == []


def test_an_edit_changes_the_hash_not_the_id(tmp_path: Path) -> None:
    file = write(tmp_path, "post.md", "title: Post\ndate: 2026-11-01")
    (before,) = posts(date(2026, 11, 20), tmp_path).items
    file.write_text(file.read_text().replace("Hello", "Hi"))
    (after,) = posts(date(2026, 11, 20), tmp_path).items
    assert before.id == after.id == "md:stories:post" and before.content_hash != after.content_hash


def test_body_html_is_sanitised(tmp_path: Path) -> None:
    body = '<script>alert(1)</script>\n\n[home](javascript:alert(2)) <img src="x.png" onerror="y()" alt="X">'
    write(tmp_path, "post.md", "title: Post\ndate: 2026-11-01\nurl: /blog/post", body)
    (item,) = posts(date(2026, 11, 20), tmp_path).items
    assert "script" not in item.summary_html and "javascript" not in item.summary_html
    assert "onerror" not in item.summary_html
    assert '<img src="https://www.oakviewpt.com/blog/x.png" alt="X">' in item.summary_html


def test_a_patient_post_without_authorization_is_read_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "story.md", "title: Story\ndate: 2026-11-01\nkind: recognition\nmentions_patient: true")
    result = posts(date(2026, 11, 20), tmp_path)
    assert result.items[0].mentions_patient and result.items[0].authorized_channels == ()
    assert result.warnings == ["story.md: mentions a patient without an authorization on file; it publishes nowhere"]


@pytest.mark.parametrize(
    ("front_matter", "expected"),
    [
        ("date: 2026-11-01", "bad.md: title: required key is missing"),
        ("title: T\ndate: someday", "bad.md: date: "),
        ("title: T\ndate: 2026-11-01\nkind: advert", "bad.md: kind: "),
        ("title: T\ndate: 2026-11-01\nauthor: Sam", "bad.md: author: unknown key"),
        ("title: T\ndate: 2026-11-01\nimage: /a.jpg", "bad.md: image_alt is required with image"),
        ("title: T\ndate: 2026-11-01\nurl: 'javascript:alert(1)'", "bad.md: url: a path on the practice's site"),
        (
            "title: T\ndate: 2026-11-01\nmentions_patient: true\n"
            "authorization: {channels: [], signed: 2026-10-01, expires: 2027-10-01, reference: R}",
            "bad.md: authorization.channels: ",
        ),
        (
            "title: T\ndate: 2026-11-01\nauthorization: {channels: [sms], signed: 2026-10-01, expires: 2025-10-01,"
            " reference: R}",
            "bad.md: authorization: expires (2025-10-01) must not be before signed (2026-10-01)",
        ),
        ("title: [unclosed\ndate: 2026-11-01", "bad.md: front matter is not valid YAML"),
    ],
)
def test_bad_front_matter_fails_that_file_naming_file_and_key_and_the_others_are_read(
    tmp_path: Path, front_matter: str, expected: str
) -> None:
    write(tmp_path, "good.md", "title: Good\ndate: 2026-11-01")
    write(tmp_path, "bad.md", front_matter)
    result = posts(date(2026, 11, 20), tmp_path)
    assert [item.id for item in result.items] == ["md:stories:good"]
    assert len(result.failures) == 1 and result.failures[0].startswith(expected)


def test_a_file_that_is_not_utf8_fails_alone(tmp_path: Path) -> None:
    write(tmp_path, "good.md", "title: Good\ndate: 2026-11-01")
    (tmp_path / "latin1.md").write_bytes("---\ntitle: Caf\xe9\ndate: 2026-11-01\n---\nbody\n".encode("latin-1"))
    result = posts(date(2026, 11, 20), tmp_path)
    assert [item.id for item in result.items] == ["md:stories:good"]
    assert result.failures == ["latin1.md: is not UTF-8 text (at byte offset 14); save it as UTF-8"]


def test_a_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such folder"):
        posts(date(2026, 11, 20), tmp_path / "missing")
