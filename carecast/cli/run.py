"""``carecast run``, ``serve`` and ``deploy``: the commands that start Prefect flows, and a run's summary."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carecast.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    AddCommand,
    add_config,
    add_new_ledger,
    clip,
    config_files,
    ledger_of,
    table,
    usage_error,
)
from carecast.config import Settings
from carecast.errors import ConfigError
from carecast.project import (
    earlier_prefect,
    refuse_full_disk,
    refuse_new_ledger,
    sqlite_path,
    use_project_prefect,
)

if TYPE_CHECKING:
    from carecast.precheck import Look

#: Outcomes that make ``carecast run`` exit 1: a publication not done (failed, left for a retry, or unknown).
NOT_DONE = frozenset({"failed", "retry", "unknown"})


def _run(args: argparse.Namespace) -> int:
    use_project_prefect(args.config)
    earlier = earlier_prefect(args.config)  # looked at before the run's own Prefect server makes its database
    refuse_full_disk(Path(os.environ["PREFECT_HOME"]))
    from carecast.practice import load_settings

    settings: Settings = load_settings(args.config)
    if (ledger_file := sqlite_path(settings.ledger_url())) is not None:
        refuse_full_disk(ledger_file)
    for name in args.channels or ():
        if name not in settings.channels:
            usage_error(f"--channel {name}: not a configured channel; choose from {', '.join(settings.channels)}")
    if not args.new_ledger:
        _refuse_new_ledger(settings, earlier)
    ingested = None
    if not args.dry_run:
        # Prefect (its import, a temporary server, a flow run) costs seconds: only a run with work starts it.
        from carecast.precheck import look

        with ledger_of(settings) as ledger:
            found = look(settings, ledger, args.channels)
        if not found.work:
            return _nothing_to_do(settings, found, args.channels)
        ingested = found.ingested()
    # The run's own Prefect API, when it needs one, boots while Prefect loads (a wrong config ended the command).
    api_ready = _prefect_api()
    # Prefect loads slowly (and reads prefect.toml): only for the commands that run.
    from carecast_flows.pipeline import run_here

    api_ready()
    state = run_here(str(args.config), dry_run=args.dry_run, channels=args.channels, ingested=ingested)
    # A run with failures ends Failed (so it notifies) and carries its outcomes all the same; one that raised
    # carries the exception instead.
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    code = _summarise(result, dry_run=args.dry_run)
    return code if args.dry_run else max(code, _unsettled(settings, args.channels))


def _nothing_to_do(settings: Settings, found: Look, channels: list[str] | None) -> int:
    """Say what a run with nothing to do found, as a run's summary does (and the drafts still waiting for approval,
    and those refused or held, with why), without a flow run: EXIT_FAILED when a publication is still unknown,
    else 0."""
    from carecast.outcomes import as_row

    for report in found.sources:
        for warning in report.warnings:
            print(f"source {report.source}: {warning}", file=sys.stderr)
    rows = [as_row(outcome) for outcome in found.waiting]
    _summarise({"sources": [asdict(report) for report in found.sources], "outcomes": rows}, dry_run=False)
    if found.kept_back:
        # Told to staff when each was refused or held; named again here, so nothing is kept back in silence.
        print("\nNot going out (refused by the rules or held for possible PHI)")
        kept = [[clip(o.title, 48), o.channel, o.state, o.detail] for o in found.kept_back]
        table(["item", "channel", "state", "why"], kept)
    print(
        f"\n{settings.practice.name}: nothing new, nothing due; no flow run was started "
        "(none shows in the Prefect UI: carecast status lists every publication)."
    )
    return _unsettled(settings, channels)


def _unsettled(settings: Settings, channels: list[str] | None) -> int:
    """Name every publication (of ``channels``, when given) still ``unknown``, left by this run or an earlier one,
    and what settles it; EXIT_FAILED when there is one, so a run never looks done while a send is in doubt."""
    with ledger_of(settings) as ledger:
        # A fan-out's publication stays sent or failed while some of its recipients are unknown.
        ids = sorted(ledger.unknown_deliveries())
        records = [*ledger.stream_publications(state="unknown"), *(ledger.publications(ids=ids) if ids else [])]
    doubtful = {record.id: record.channel for record in records if channels is None or record.channel in channels}
    if not doubtful:
        return 0
    print(
        f"\nStill unknown: {len(doubtful)} publication(s) whose send was cut off "
        f"({', '.join(f'{number} {channel}' for number, channel in sorted(doubtful.items()))}). Check each with the "
        "provider (carecast status lists them), then carecast resolve ID --sent|--resend|--drop."
    )
    return EXIT_FAILED


def _refuse_new_ledger(settings: Settings, earlier_prefect: Path | None) -> None:
    """Raise ConfigError when the run would create a new ledger beside an earlier one's outbox or Prefect state."""
    refuse_new_ledger(settings.file, settings.ledger_url(), settings.path(settings.outbox), earlier_prefect)


def _prefect_api() -> Callable[[], object]:
    """Start the run's own temporary Prefect API (flows.server) unless one is configured or Prefect is loaded
    already (a test harness or a program embedding CareCast decided); return what waits until it answers (raising
    RuntimeError when it does not). Call after :func:`carecast.project.use_project_prefect`."""
    if "prefect" in sys.modules or os.environ.get("PREFECT_API_URL"):
        return lambda: None
    from carecast_flows.server import start_temporary_api

    return start_temporary_api(Path(os.environ["PREFECT_HOME"]))


def _serve(args: argparse.Namespace) -> int:
    """Serve every practice (or those named) from this one process: their deployments, calendars, automations."""
    from carecast.practice import load_settings

    files = config_files(args.configs)
    for file in files:
        settings = load_settings(file)  # a wrong config stops here, before Prefect loads
        if not args.new_ledger:
            _refuse_new_ledger(settings, earlier_prefect(file))
    use_project_prefect(files[0])
    # Prefect loads slowly and reads prefect.toml: only for commands that run
    from carecast_flows.deployments import serve

    serve(files)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    """Deploy every practice whose file is valid; a broken file is named and left out (exit 2), the rest deploy."""
    if args.crashed_after <= args.heartbeat:
        raise ConfigError("--crashed-after", [("", f"more seconds than --heartbeat ({args.heartbeat})")])
    from carecast.practice import load_settings

    good = []
    for file in config_files(args.configs):
        try:
            settings = load_settings(file)
            if not args.new_ledger:
                _refuse_new_ledger(settings, earlier_prefect(file))
        except ConfigError as exc:
            print(f"configuration error, not deployed:\n{exc}", file=sys.stderr)
            continue
        good.append(file)
    if good:
        use_project_prefect(good[0])
        from carecast_flows.deployments import deploy  # Prefect loads slowly and reads prefect.toml: only when it runs

        for line in deploy(good, args.pool, heartbeat=args.heartbeat, crashed_after=args.crashed_after):
            print(line)
    return 0 if len(good) == len(config_files(args.configs)) else EXIT_USAGE


def _heartbeat(value: str) -> int:
    seconds = int(value)
    if seconds < 30:
        raise argparse.ArgumentTypeError(f"at least 30 seconds (Prefect's shortest heartbeat), not {value}")
    return seconds


def _summarise(result: dict[str, Any], *, dry_run: bool) -> int:
    failed = False
    print("\nSources")
    rows = []
    for report in result["sources"]:
        if report["error"]:
            failed = True
            state = f"FAILED: {report['error']}"
        elif report["not_modified"]:
            state = "not modified"
        else:
            state = f"{len(report['new'])} new, {len(report['edited'])} edited, {report['unchanged']} unchanged"
        if report["failures"]:
            failed = True
            state += "; FAILED: " + "; ".join(report["failures"])
        rows.append([report["source"], state])
    table(["source", "result"], rows)
    print("\nDry run: nothing was published" if dry_run else "\nPublications")
    rows = []
    skipped: dict[str, list[dict[str, Any]]] = {}
    for outcome in result["outcomes"]:
        failed |= outcome["state"] in NOT_DONE
        if outcome["state"] == "skipped":
            skipped.setdefault(outcome["channel"], []).append(outcome)
            continue
        rows.append([clip(outcome["title"], 48), outcome["channel"], outcome["state"], _shown(outcome["detail"])])
    for channel, passed_over in skipped.items():
        # A first run meets a whole backlog: one line per channel says what was passed over and why.
        rows.append([f"{len(passed_over)} older item(s)", channel, "skipped", passed_over[0]["detail"]])
    # A channel whose every draft the rules refused published nothing it was due to.
    states: dict[str, set[str]] = {}
    for outcome in result["outcomes"]:
        states.setdefault(outcome["channel"], set()).add(outcome["state"])
    failed |= any("rejected" in seen and "published" not in seen for seen in states.values())
    if rows:
        table(["item", "channel", "state", "where / why"], rows)
    else:
        print("nothing new to publish")
    if dry_run:
        for outcome in result["outcomes"]:
            if outcome["preview"]:
                print(f"\n--- {outcome['channel']}: {outcome['title']}\n{outcome['preview']}")
    return EXIT_FAILED if failed else 0


def _shown(detail: str) -> str:
    """An outbox path relative to the working folder, as staff would type it; anything else as it is."""
    path = Path(detail)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        return str(path.relative_to(Path.cwd()))
    return detail


def add_run(command: AddCommand) -> None:
    run = command("run", _run, "run the pipeline once: ingest, adapt, publish")
    run.epilog = (
        "The sources are read first; a run that then finds nothing to do (nothing new to draft, nothing due, "
        "nothing to expire) says so and ends without starting Prefect: it leaves no flow run in the Prefect UI. "
        "Its summary is what it printed; carecast status lists every publication."
    )
    add_config(run)
    run.add_argument("--dry-run", action="store_true", help="render and preview everything, publish nothing")
    add_new_ledger(run)
    run.add_argument("--channel", action="append", dest="channels", metavar="NAME", help="only this channel")


def add_serve(command: AddCommand) -> None:
    serve = command(
        "serve", _serve, "register the config's schedules as Prefect deployments and run them (Ctrl-C stops)"
    )
    serve.add_argument(
        "--config",
        type=Path,
        action="append",
        dest="configs",
        metavar="PATH",
        help="only this practice (repeatable); default: config/carecast.yaml and every config/practices/*.yaml",
    )
    add_new_ledger(serve)


def add_deploy(command: AddCommand) -> None:
    deploy = command(
        "deploy", _deploy, "register every practice's deployments, limits and automations in a Prefect work pool"
    )
    deploy.add_argument("--pool", required=True, metavar="NAME", help="the process work pool (created when missing)")
    deploy.add_argument("--config", type=Path, action="append", dest="configs", metavar="PATH", help="as for check")
    deploy.add_argument(
        "--heartbeat",
        type=_heartbeat,
        default=30,
        metavar="SECONDS",
        help="flow-run heartbeat (≥ 30; default %(default)s)",
    )
    deploy.add_argument(
        "--crashed-after",
        type=int,
        default=90,
        metavar="SECONDS",
        help="a run silent this long is marked Crashed and reported (default %(default)s)",
    )
    add_new_ledger(deploy)
