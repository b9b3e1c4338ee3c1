"""``python -m bench [--quick] [--repeat N] [--only NAME ...] [--results FILE]``: run the scenarios, print a table,
write the results file.

Sizes are each scenario's ``default`` times ``BENCH_SCALE`` (default 1; ``--full`` uses the issue's sizes,
``--quick`` tiny ones for the smoke test). The local servers (SMTP, Twilio, feeds) run in this process on
127.0.0.1; every measured run is a fresh ``bench.worker`` process, CareCast and baseline alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.scenarios import SCENARIOS, SECRETS_ENV, SMTP_PASSWORD, SMTP_USER, Scenario, Servers
from tests.providers.feeds import FeedServer
from tests.providers.smtp import SmtpServer
from tests.providers.twilio import TwilioCredentials, TwilioServer
from tests.providers.xapi import XApiServer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
#: Scenarios also run at multiples of their size: time and peak memory as the audience grows (4x, 16x), a publish
#: as the ledger grows (10x: 100,000 then 1,000,000 publications by default).
SCALED = {"scale-sms": (1, 4, 16), "scale-newsletter": (1, 4, 16), "publish-one": (1, 10), "publish-one-pg": (1, 10)}


@dataclass
class Row:
    """The medians of one scenario at one size."""

    name: str
    size: int
    unit: str
    baseline_says: str
    carecast: dict[str, float | None]
    baseline: dict[str, float | None]
    notes: str = ""

    @property
    def ratio(self) -> float:
        return (self.carecast["seconds"] or 0) / max(self.baseline["seconds"] or 0, 1e-9)


def median(runs: list[dict[str, float | None]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None  # type: ignore[type-var]


def run_side(scenario: Scenario, side: str, servers: Servers) -> dict[str, float | None]:
    result = scenario.workdir / "result.json"
    spec = {
        "scenario": scenario.name,
        "side": side,
        "size": scenario.size,
        "workdir": str(scenario.workdir),
        "servers": servers.__dict__,
        "result": str(result),
    }
    subprocess.run([sys.executable, "-m", "bench.worker", json.dumps(spec)], cwd=ROOT, check=True)
    return json.loads(result.read_text())


def measure(name: str, size: int, repeat: int, base: Path) -> Row:
    """Prepare ``name`` at ``size`` with its own servers, run both sides ``repeat`` times alternating, take medians."""
    cls = SCENARIOS[name]
    with ExitStack() as stack:
        smtp = stack.enter_context(SmtpServer(username=SMTP_USER, password=SMTP_PASSWORD))
        credentials = TwilioCredentials(auth_token=SECRETS_ENV["BENCH_TWILIO_TOKEN"])
        twilio = stack.enter_context(TwilioServer(credentials=credentials, messages_per_second=cls.twilio_per_second))
        posts, window = cls.x_posts_per_window or (300, 900)
        x = stack.enter_context(XApiServer(rate_limit=posts, rate_window=window))
        feeds = stack.enter_context(FeedServer())
        servers = Servers(smtp.port, twilio.url, credentials.account_sid, feeds.url, x.url)
        workdir = base / f"{name}-{size}"
        workdir.mkdir(parents=True)
        scenario = cls(size, workdir, servers)
        stack.callback(scenario.cleanup)
        scenario.prepare(feeds.feeds)
        runs: dict[str, list[dict[str, float | None]]] = {"carecast": [], "baseline": []}
        throttled = dict.fromkeys(runs, 0)
        for number in range(repeat):
            order = ("carecast", "baseline") if number % 2 == 0 else ("baseline", "carecast")
            for side in order:
                x.start_over()  # the same posts again, in a window of their own
                before = twilio.throttled + x.throttled
                runs[side].append(run_side(scenario, side, servers))
                throttled[side] += twilio.throttled + x.throttled - before
    medians = {
        side: {key: median(values, key) for key in ("seconds", "first_line", "peak_mb", "cpu")}
        for side, values in runs.items()
    }
    row = Row(name, size, scenario.unit, scenario.baseline_says, medians["carecast"], medians["baseline"])
    limit = f"{cls.twilio_per_second:g}/s" if cls.twilio_per_second else None
    if cls.x_posts_per_window:
        limit = f"{posts} per {window} s"
    if limit is not None and row.carecast["seconds"]:
        row.notes = (
            f"answered 429 over {repeat} runs: CareCast {throttled['carecast']}, baseline {throttled['baseline']}; "
            f"CareCast sent {size / row.carecast['seconds']:.1f} {scenario.unit}/s, {limit} allowed"
        )
    if all(run.get("p99_ms") is not None for side in runs.values() for run in side) and row.carecast["seconds"]:
        p99 = {side: median(values, "p99_ms") or 0.0 for side, values in runs.items()}
        rate = {side: size / (medians[side]["seconds"] or 1e-9) for side in runs}
        row.notes += (
            f"{getattr(cls, 'clients', 1)} concurrent clients: CareCast {rate['carecast']:,.0f} requests/s, p99 "
            f"{p99['carecast']:.0f} ms; baseline {rate['baseline']:,.0f} requests/s, p99 {p99['baseline']:.0f} ms"
        )
    if row.carecast.get("cpu") and row.baseline.get("cpu"):
        cpu = {side: row.carecast["cpu"] if side == "carecast" else row.baseline["cpu"] for side in runs}
        row.notes += (
            f"CPU {seconds(cpu['carecast'])} / {seconds(cpu['baseline'])} "
            f"({(cpu['carecast'] or 0) / max(cpu['baseline'] or 0, 1e-9):.2f}x); "
        )
    if scenario.reference is not None and row.carecast["seconds"]:
        what, reference = scenario.reference
        row.notes += f"{what}: {seconds(reference)}; CareCast's run is {row.carecast['seconds'] / reference:.1%} of it"
    return row


def failed_row(name: str, size: int, exc: Exception) -> Row:
    """The row of a scenario that failed: no figures, the reason in its notes."""
    scenario = SCENARIOS[name]
    nothing: dict[str, float | None] = {"seconds": None, "first_line": None, "peak_mb": None, "cpu": None}
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    return Row(name, size, scenario.unit, scenario.baseline_says, nothing, nothing, f"failed: {reason}")


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | size | CareCast | baseline | ratio | first line (CC / base) | peak MB (CC / base) | baseline "
        "| notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cc, base = row.carecast, row.baseline
        if cc["seconds"] is None:  # the scenario failed: its notes say why
            what = f"| {row.name} | {row.size:,} {row.unit} |"
            lines.append(f"{what} - | - | - | - | - | {row.baseline_says} | {row.notes} |")
            continue
        lines.append(
            f"| {row.name} | {row.size:,} {row.unit} | {seconds(cc['seconds'])} | {seconds(base['seconds'])} "
            f"| {row.ratio:.2f}x | {seconds(cc['first_line'])} / {seconds(base['first_line'])} "
            f"| {cc['peak_mb']:.0f} / {base['peak_mb']:.0f} | {row.baseline_says} | {row.notes} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpus = os.cpu_count()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{platform.node()}: {platform.platform()}, {cpus} CPUs (load {load}), Python {platform.python_version()}"


def write_results(path: Path, rows: list[Row], header: str) -> None:
    """Replace the generated block of ``path`` (between the markers), keeping what was written around it."""
    block = f"{BEGIN}\n{header}\n\n{table(rows)}\n{END}"
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    path.write_text(before + block + after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="tiny sizes, one run each (the smoke test)")
    sizes.add_argument("--full", action="store_true", help="the sizes issue 10 asks for (slow on a small machine)")
    parser.add_argument("--repeat", type=int, help="runs per side (default 3; 1 with --quick)")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="only these scenarios")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"the results file (default {RESULTS})")
    args = parser.parse_args(argv)
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    level = "quick" if args.quick else "full" if args.full else "default"
    repeat = args.repeat or (1 if args.quick else 3)
    rows = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="carecast-bench-") as base:
        for name in args.only or SCENARIOS:
            size = SCENARIOS[name].sizes[level]
            size = size if level != "default" else max(1, round(size * scale))
            for multiple in SCALED.get(name, (1,)):
                try:
                    row = measure(name, size * multiple, repeat, Path(base))
                except Exception as exc:  # one scenario's failure must not lose the others' figures
                    traceback.print_exc()
                    row = failed_row(name, size * multiple, exc)
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Run {when} on {machine()}; sizes: {level}"
        + (f" x BENCH_SCALE {scale:g}" if level == "default" else "")
        + f"; medians of {repeat} alternating runs per side; {time.monotonic() - started:.0f} s in all."
    )
    print()
    print(header)
    print(table(rows))
    write_results(args.results, rows, header)
    return 1 if any(row.carecast["seconds"] is None for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
