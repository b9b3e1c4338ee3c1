"""``metrics`` and ``report``: the two jobs that say whether it worked. ``carecast serve`` and ``deploy`` give each
practice ``metrics/<practice>`` (every ``report.metrics_every_hours``: each channel's numbers for its recent posts)
and ``report/<practice>`` (at ``report.schedule``, weekly: the report as an artifact with its charts, emailed to the
staff address). Thin: the work is :mod:`carecast.metrics`, :mod:`carecast.report` and :mod:`carecast.report_mail`.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from carecast import report as core
from carecast.channel import Outbox
from carecast.charts import charts
from carecast.config import DEFAULT_CONFIG
from carecast.metrics import read_metrics
from carecast.model import now_utc
from carecast.practice import open_practice
from carecast.report_mail import report_markdown, report_message, send_report
from carecast_flows import secrets as _secrets  # noqa: F401  registers {block: ...} credentials
from carecast_flows.notify import notify_failure


@flow(name="metrics", log_prints=True, on_failure=[notify_failure])
def metrics(practice: str = str(DEFAULT_CONFIG)) -> list[str]:
    """Read each channel's numbers (likes, reposts, impressions ...) for the practice's recent posts.

    Args:
        practice: the practice's configuration file (config/carecast.yaml), as the server sees it
    """
    with open_practice(practice) as opened:
        lines = read_metrics(opened.settings, opened.ledger, opened.channels)
    logger = get_run_logger()
    for line in lines:
        logger.info(line)
    return lines


@flow(name="report", log_prints=True, on_failure=[notify_failure])
def report(practice: str = str(DEFAULT_CONFIG), days: int = 7) -> str:
    """The "did it work?" report of the last ``days`` days: an artifact with charts, emailed to the staff address.

    Args:
        practice: the practice's configuration file (config/carecast.yaml), as the server sees it
        days: how many days back the report looks
    """
    now = now_utc()
    with open_practice(practice) as opened:
        settings = opened.settings
        built = core.build(settings, opened.ledger, now - timedelta(days=days), now)
        images = charts(built.clicks, settings.practice.zone)
        create_markdown_artifact(
            key=f"{settings.slug}-report",
            markdown=report_markdown(built, images),
            description=f"{settings.practice.name}: did it work? ({days} days)",
        )
        to = settings.report.to or settings.practice.email
        message = report_message(settings, built, images, to)
        outbox = Outbox(settings.path(settings.outbox))
        where = send_report(message, opened.channels, outbox, f"{now:%Y%m%dT%H%M%SZ}")
    summary = f"report of {len(built.rows)} sends emailed to the staff address via {where}"
    get_run_logger().info(summary)
    return summary
