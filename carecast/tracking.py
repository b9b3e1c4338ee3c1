"""The parameters that only track a click, which every link of a post loses before a channel tags it with its own.

A feed's links carry the blog platform's tags (``utm_source=hubspot``) and mail platforms' per-reader ids
(HubSpot's ``_hsenc``); kept, they credit the click to the blog, or follow a patient to another site.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters that only track who clicked and never choose what a page shows, as Firefox's query-stripping
#: list and the ClearURLs rules name them: HubSpot's (``_hsenc``, ``_hsmi``, ``__hstc``, ``__hssc``, ``__hsfp``,
#: ``hsCtaTracking``), Mailchimp's, Marketo's, ConvertKit's, MailerLite's, Vero's, Klaviyo's and the ad networks'
#: click ids. Matched without regard to case; with :data:`TRACKING_PREFIXES`.
TRACKING_PARAMETERS = frozenset(
    {
        *("_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp", "hsctatracking"),  # HubSpot
        *("mc_cid", "mc_eid", "mkt_tok", "ck_subscriber_id", "ml_subscriber", "ml_subscriber_hash"),  # mail
        *("vero_id", "vero_conv", "_kx"),  # mail
        *("fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "twclid", "yclid", "igshid"),  # ad click ids
    }
)
#: The author's ``utm_*`` go too: a click on a link a channel posts is credited by the channel's own tags.
TRACKING_PREFIXES = ("utm_",)


def without_tracking(url: str) -> str:
    """``url`` without its tracking parameters (:data:`TRACKING_PARAMETERS`, ``utm_*``): a feed's or a mail
    platform's tracking must neither pass for a channel's nor follow a reader to another site. Raises nothing."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(key, value) for key, value in pairs if not is_tracking(key)]
    return urlunsplit(parts._replace(query=urlencode(kept))) if len(kept) < len(pairs) else url


def is_tracking(key: str) -> bool:
    """Whether a query parameter named ``key`` only tracks a click (any case). Raises nothing."""
    key = key.lower()
    return key in TRACKING_PARAMETERS or key.startswith(TRACKING_PREFIXES)
