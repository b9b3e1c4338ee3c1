"""``resolve``: settle a publication left ``unknown`` by a run that died mid-send, from a form in the Prefect UI.

The same as ``carecast resolve``, both through :func:`carecast.resolution.settle`: staff check with the provider
whether the recipient (or thread part) in flight got it, then record ``sent`` (refused for a recipient the provider
has no record of, where it can be asked), have the next run send it again, once (``resend``), or ``drop`` it.
``carecast serve`` deploys it per practice (``resolve/<practice>-resolve``, no schedule): **Run → Custom run**
opens the form.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger

from carecast.config import DEFAULT_CONFIG
from carecast.practice import open_practice
from carecast.resolution import address_of, settle
from carecast_flows.notify import notify_failure


@flow(name="resolve", flow_run_name="resolve {publication_id}", log_prints=True, on_failure=[notify_failure])
def resolve(
    publication_id: int,
    decision: Literal["sent", "resend", "drop"],
    recipient: str | None = None,
    part: int | None = None,
    provider_id: str | None = None,
    practice: str = str(DEFAULT_CONFIG),
) -> str:
    """Settle what is unknown of a publication (``carecast status`` lists it, with its id).

    Args:
        publication_id: the publication's id (carecast status, or the failed run's message)
        decision: sent: the provider has it; resend: it does not, the next run sends it once; drop: never send it
        recipient: only this recipient (a phone number or an email address); empty: every unknown one
        part: only this part of a thread (1, 2, ...); empty: every unknown one
        provider_id: with sent, the provider's id of it (a post's id), so a thread goes on replying to it
        practice: the practice's configuration file (config/carecast.yaml), as the server sees it
    """
    with open_practice(practice) as opened:
        summary = settle(
            opened.ledger,
            lambda name: opened.channels[name],
            publication_id,
            decision,
            address=address_of(recipient, part),
            provider_id=provider_id,
        )
    get_run_logger().info(summary)
    return summary
