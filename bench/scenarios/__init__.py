"""The benchmark scenarios: each one prepares its data once, then times CareCast and a baseline doing the same work.

A baseline is the shortest honest script with the same guarantees and no framework: the default
``feedparser.parse`` and an SQLite insert; one ``smtplib`` connection; one ``requests.Session``; every send claimed
in SQLite before it goes and recorded after it (in chunks of ``CHUNK``, one transaction each).

Both sides run in a fresh worker process (``bench.worker``) against servers the parent started; imports happen
before the clock starts, and each side imports only what it uses, so its peak memory is its own. Sizes: ``full`` is
what issue 10 asks for, ``default`` what ``make bench`` runs on this shared 2-core machine (times ``BENCH_SCALE``),
``quick`` the smoke run of the test suite.

One module per stage (``ingest``, ``adapt``, ``fanout``, ``ledger``, ``orchestration``, ``phi``, ``links``), on
:mod:`bench.scenarios.base` (:class:`Scenario`, the servers, test secrets) and :mod:`bench.scenarios.content` (the
data they start from); ``SCENARIOS`` names them all.
"""

from __future__ import annotations

from bench.scenarios.adapt import AdaptEveryChannel, AdaptRefusedRerun, AdaptX, AdaptXTwiceAsLong
from bench.scenarios.base import SECRETS_ENV, SMTP_PASSWORD, SMTP_USER, Scenario, Servers
from bench.scenarios.fanout import (
    AudienceUnchanged,
    FanoutOutbox,
    FanoutSms,
    FanoutSmsConcurrent,
    FanoutSmsOneByOne,
    FanoutSmsOneByOneConcurrent,
    FanoutSmtp,
    FanoutSmtpOneByOne,
    PacedSms,
    PacedX,
    ScaleNewsletter,
    ScaleSms,
)
from bench.scenarios.ingest import IngestCold, IngestGrowing, IngestNotModified, IngestOneNew, IngestPages
from bench.scenarios.ledger import PublishOne, PublishOnePg, Status, StatusPg
from bench.scenarios.links import Redirect
from bench.scenarios.orchestration import (
    PublishServed,
    RunNothingNew,
    RunNothingNewReview,
    RunNothingNewServed,
    RunOneNew,
    core_run,
)
from bench.scenarios.phi import PhiStartup

__all__ = ["SCENARIOS", "SECRETS_ENV", "SMTP_PASSWORD", "SMTP_USER", "Scenario", "Servers", "core_run"]

SCENARIOS: dict[str, type[Scenario]] = {
    scenario.name: scenario
    for scenario in (
        IngestCold,
        IngestNotModified,
        IngestOneNew,
        IngestGrowing,
        IngestPages,
        AdaptX,
        AdaptXTwiceAsLong,
        AdaptRefusedRerun,
        AdaptEveryChannel,
        FanoutSms,
        FanoutSmsOneByOne,
        FanoutSmsConcurrent,
        FanoutSmsOneByOneConcurrent,
        ScaleSms,
        PacedSms,
        PacedX,
        FanoutOutbox,
        FanoutSmtp,
        FanoutSmtpOneByOne,
        ScaleNewsletter,
        AudienceUnchanged,
        Status,
        StatusPg,
        PublishOne,
        PublishOnePg,
        RunNothingNew,
        RunNothingNewReview,
        RunOneNew,
        RunNothingNewServed,
        PublishServed,
        PhiStartup,
        Redirect,
    )
}
