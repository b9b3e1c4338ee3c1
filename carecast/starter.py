"""``carecast practice new``: a commented starter config for one more practice, ``config/practices/<slug>.yaml``.

The starter passes ``carecast check`` as written: its channels publish to the practice's outbox until credentials
are added, its sources are the shared observances calendar and the blog feed of ``--feed`` (else a commented
one), its templates fall back to the shared ones. Values not given on the command line are asked for on a
terminal, else filled with placeholders that the file marks ``TODO``; a name too long to prefix texts is never cut
silently (asked for, or an error).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carecast.config import PRACTICES_DIR, SLUG, slugify
from carecast.errors import ConfigError


@dataclass
class StarterValues:
    """What the starter file says about the practice; the placeholders are the defaults."""

    name: str
    timezone: str
    short_name: str = ""
    website: str = "https://www.example.com"
    email: str = "hello@example.com"
    phone: str = "+1 555 555 0100"
    street: str = "TODO street and suite"
    city: str = "TODO city"
    region: str = "TODO"
    postal_code: str = "00000"
    sms_number: str = "+13125550100"
    feed: str = ""


#: The longest ``short_name``: the sender prefix of every text.
SHORT_NAME_MAX = 20


#: The values asked for on a terminal when not given, with their question.
QUESTIONS = {
    "website": "website",
    "email": "contact email",
    "phone": "phone",
    "street": "street address",
    "city": "city",
    "region": "state or region",
    "postal_code": "postal code",
    "sms_number": "texting number (E.164)",
    "feed": "blog feed URL (RSS or Atom; empty: none yet)",
}

TEMPLATE = """\
# {name}: one practice among several (carecast practice new). Check it with `carecast check`.
# Paths are relative to the config folder (the parent of practices/), so the shared observances.yaml and templates/
# are found as they are; this practice's own files live in practices/{slug}/ (templates there win over the shared
# ones). Unknown keys are errors. Its ledger rows, outbox folder, deployments and tags all carry "{slug}".

practice:
  name: {name_json}
  short_name: {short_name_json}     # the sender prefix of every text (at most 20 characters)
  timezone: {timezone}              # schedules and dates are in this IANA zone
  website: {website_json}{todo_website}
  email: {email_json}{todo_email}
  phone: {phone_json}{todo_phone}
  address:                          # every email carries it (CAN-SPAM)
    street: {street_json}{todo_street}
    city: {city_json}{todo_city}
    region: {region_json}{todo_region}
    postal_code: {postal_code_json}{todo_postal_code}
  utm:
    campaign: {campaign}

# ledger:
#   url: postgresql+psycopg://127.0.0.1:5432/carecast   # shared by every practice and worker; this practice's
#                                                       # tables go in the schema carecast_{schema}
# audience: practices/{slug}/audience                   # newsletter.csv, sms.csv (the default)

sources:
  observances:
    type: observances
    file: observances.yaml             # the shared recognition calendar
{blog_source}
# No credentials yet: every channel writes what it would send to .carecast/outbox/{slug}/. Add them as in the
# README's "Connecting real accounts"; secrets are named ({{env: NAME}} or {{block: NAME}}), never written here.
channels:
  newsletter:
    type: newsletter
    from_name: {name_json}
    from_address: {email_json}
    list_name: {list_name_json}
    unsubscribe_url: {unsubscribe_json}
    unsubscribe_mailto: {mailto_json}
    max_items_per_run: 6
    schedule:
      - {{days: [tue], at: "10:00"}}

  x:
    type: x
    max_items_per_run: 2               # a first run with a backlog posts the newest two, never a burst
    schedule:
      - {{days: weekdays, at: ["09:00", "12:30"]}}
    late: {{send_within: 2h}}

  sms:
    type: sms
    account: {sms_number_json}
    from_number: {sms_number_json}{todo_sms_number}
    sources: [observances]             # texts are for recognition, never for every blog post
    max_items_per_run: 1
    schedule:
      - {{monthly: first-monday, at: "11:00"}}

# notify:
#   webhook: https://hooks.slack.com/services/...      # failed or crashed runs are reported here
"""


def starter_text(slug: str, values: StarterValues, placeholders: set[str]) -> str:
    """The starter file's text; a value in ``placeholders`` is marked TODO."""
    context: dict[str, str] = {"slug": slug, "timezone": values.timezone, "schema": slug.replace("-", "_")}
    for field in fields(values):
        value = getattr(values, field.name)
        context[field.name] = value
        context[f"{field.name}_json"] = json.dumps(value)
        context[f"todo_{field.name}"] = "   # TODO" if field.name in placeholders else ""
    context["campaign"] = slug.replace("-", "_")
    context["blog_source"] = (
        f"  blog:\n    type: rss\n    url: {json.dumps(values.feed)}\n"
        if values.feed
        else "  # blog:                              # or: carecast practice new --feed URL\n"
        "  #   type: rss\n  #   url: https://www.example.com/feed.xml\n"
    )
    context["list_name_json"] = json.dumps(f"{values.short_name} Newsletter")
    context["mailto_json"] = json.dumps("unsubscribe@" + values.email.rpartition("@")[2])
    context["unsubscribe_json"] = json.dumps(values.website.rstrip("/") + "/unsubscribe")
    return TEMPLATE.format(**context)


def write_starter(
    config_dir: Path,
    slug: str,
    values: StarterValues,
    missing: set[str],
    ask: Callable[[str, str], str] | None = None,
) -> Path:
    """Write ``<config_dir>/practices/<slug>.yaml``; ``missing`` values are asked with ``ask(question, default)``
    when given (a terminal), else left as placeholders.

    Raises ConfigError when the slug or time zone is not valid or the file exists already (never overwritten).
    """
    target = config_dir / PRACTICES_DIR / f"{slug}.yaml"
    if not SLUG.match(slug):
        raise ConfigError(target, [("", f"a slug of lower-case letters, digits and dashes, such as {slugify(slug)!r}")])
    if target.exists():
        raise ConfigError(target, [("", "exists already; edit it, or choose another slug")])
    try:
        ZoneInfo(values.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(target, [("practice.timezone", f"an IANA time zone, not {values.timezone!r}")]) from exc
    values.short_name = _short_name(target, values, ask)
    placeholders = set()
    for name in sorted(missing, key=list(QUESTIONS).index):
        if ask is not None:
            setattr(values, name, ask(QUESTIONS[name], getattr(values, name)))
        else:
            placeholders.add(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(starter_text(slug, values, placeholders), encoding="utf-8")
    return target


def _short_name(target: Path, values: StarterValues, ask: Callable[[str, str], str] | None) -> str:
    """The sender prefix of texts: as given, the name when it fits, else asked on a terminal; never cut silently.

    Raises ConfigError when it is longer than :data:`SHORT_NAME_MAX` or, off a terminal, must be chosen.
    """
    short = values.short_name.strip()
    if not short and len(values.name) <= SHORT_NAME_MAX:
        return values.name
    if not short and ask is not None:
        short = ask(f"short name for texts (at most {SHORT_NAME_MAX} characters)", "").strip()
    if not short or len(short) > SHORT_NAME_MAX:
        given = f"{short!r} has {len(short)} characters" if short else f"the name has {len(values.name)} characters"
        raise ConfigError(
            target,
            [("practice.short_name", f"at most {SHORT_NAME_MAX} characters: {given}; choose one with --short-name")],
        )
    return short
