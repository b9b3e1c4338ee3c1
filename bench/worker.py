"""One timed run of one side of one scenario, in a process of its own: ``python -m bench.worker SPEC``.

``SPEC`` is a JSON object (scenario, side, size, workdir, servers, result). The run starts from the prepared
ledger (untimed), then only the work is timed; the result file gets the seconds, the seconds to the first line
printed, the peak memory (the process's resident high-water mark) and what the side returned.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from bench.scenarios import SCENARIOS, SECRETS_ENV, Servers

#: Imported before the clock starts: a run's cost, not Python's start-up (a long-lived worker pays it once).
PRELOAD = {
    "carecast": (
        "carecast.pipeline",
        "carecast.cli",
        "carecast.sources.rss",
        "carecast.sources.markdown",
        "carecast.sources.observances",
        "carecast_channels.newsletter",
        "carecast_channels.sms",
        "carecast_channels.x",
    ),
    "phi": (),
    "pages": ("feedparser", "requests", "trafilatura", "sqlite3"),
    "baseline": (
        "feedparser",
        "requests",
        "requests_oauthlib",
        "jinja2",
        "twitter_text",
        "smtplib",
        "email.policy",
        "sqlite3",
    ),
}


class FirstWrite:
    """Standard output that notes when the first line was printed, and throws the text away."""

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self.first: float | None = None

    def write(self, text: str) -> int:
        if self.first is None and text:
            self.first = time.perf_counter()
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()


def peak_resident_mb() -> float:
    """This process's peak resident memory (VmHWM): ``ru_maxrss`` would count the parent's, inherited at fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def cpu_seconds() -> float:
    """The processor time this process and its finished children have used: on a loaded machine, a side's own
    work, without the time it waited for a core (which the wall clock counts)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main(spec_text: str) -> None:
    spec = json.loads(spec_text)
    os.environ.update(SECRETS_ENV)
    scenario = SCENARIOS[spec["scenario"]](spec["size"], Path(spec["workdir"]), Servers(**spec["servers"]))
    scenario.fresh()
    if spec["side"] == "carecast":
        modules = PRELOAD["carecast"] if scenario.preload is None else scenario.preload
    else:
        modules = PRELOAD[scenario.baseline_imports]
    for module in modules:
        importlib.import_module(module)
    work = getattr(scenario, spec["side"])
    with open(os.devnull, "w") as devnull:
        out = FirstWrite(devnull)
        sys.stdout = out  # type: ignore[assignment]
        try:
            start, cpu = time.perf_counter(), cpu_seconds()
            extra = work()
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        finally:
            sys.stdout = sys.__stdout__
    peak_mb = peak_resident_mb()
    first = None if out.first is None else out.first - start
    result = {"seconds": seconds, "first_line": first, "peak_mb": peak_mb, "cpu": cpu, **extra}
    Path(spec["result"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
