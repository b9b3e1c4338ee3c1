"""Short links under load: ``carecast webhooks`` against a bare uvicorn redirect."""

from __future__ import annotations

import functools
import sys
import time
from contextlib import ExitStack
from typing import ClassVar

from bench.scenarios.base import (
    ROOT,
    Scenario,
)
from bench.scenarios.content import (
    observance,
)

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
#: The baseline: a bare uvicorn ASGI app answering every request with a 302, recording nothing.
BARE_REDIRECT = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = [(b"location", b"https://www.oakviewpt.com/blog/desk?utm_source=sms"), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 302, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), lifespan="off", access_log=False, log_level="warning")
"""


class Redirect(Scenario):
    """Short links under load: ``clients`` concurrent keep-alive clients follow the practice's short links through
    ``carecast webhooks`` (each click looked up and counted in the SQLite ledger), against a bare uvicorn app that
    answers 302 without looking anything up or recording anything. Both servers run in processes of their own,
    started once; the timed side only sends the requests. Notes: requests per second and p99 latency."""

    name = "redirect"
    unit = "requests"
    sizes: ClassVar[dict[str, int]] = {"full": 40_000, "default": 10_000, "quick": 400}
    baseline_says = "a bare uvicorn app: 302 to a fixed URL, nothing looked up or recorded"
    preload = ("asyncio",)
    clients: ClassVar[int] = 200

    def prepare(self, feeds: dict[str, bytes]) -> None:
        import socket
        import subprocess

        self.write_config({"links": {"domain": "go.oakviewpt.com"}})
        _, ledger = self.settings_and_ledger()
        try:
            items = [observance(f"bench-{n}", f"Bench {n}", "A link to follow.") for n in range(10)]
            ledger.upsert_items(items)
            target = "https://www.oakviewpt.com/blog/desk?utm_source=sms&utm_medium=sms&utm_campaign=bench"
            codes = [ledger.short_code(item.id, "sms", f"{target}&n={n}") for n, item in enumerate(items)]
        finally:
            ledger.close()
        (self.workdir / "codes").write_text("\n".join(codes))
        ports = []
        for _ in range(2):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                ports.append(probe.getsockname()[1])
        carecast, bare = ports
        (self.workdir / "ports").write_text(f"{carecast} {bare}")
        commands = [
            [
                sys.executable,
                "-m",
                "carecast.cli",
                "webhooks",
                "--config",
                str(self.config_file()),
                "--port",
                str(carecast),
            ],
            [sys.executable, "-c", BARE_REDIRECT, str(bare)],
        ]
        for command in commands:
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._servers.callback(process.wait, 10)
            self._servers.callback(process.terminate)
        for port in ports:
            wait_for_port(port)

    def carecast(self) -> dict[str, float]:
        return self.load(int((self.workdir / "ports").read_text().split()[0]))

    def baseline(self) -> dict[str, float]:
        return self.load(int((self.workdir / "ports").read_text().split()[1]))

    def load(self, port: int) -> dict[str, float]:
        """``size`` requests from ``clients`` keep-alive connections; the p99 latency in milliseconds."""
        import asyncio

        codes = (self.workdir / "codes").read_text().split()
        per_client = max(1, self.size // self.clients)
        latencies: list[float] = []

        async def client(number: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                for request in range(per_client):
                    code = codes[(number + request) % len(codes)]
                    started = time.perf_counter()
                    writer.write(
                        f"GET /{code} HTTP/1.1\r\nHost: go.oakviewpt.com\r\nUser-Agent: {PHONE}\r\n\r\n".encode()
                    )
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":", 1)[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    await reader.readexactly(length)
                    latencies.append(time.perf_counter() - started)
                    if not head.startswith(b"HTTP/1.1 302"):
                        status = head.split(b"\r\n", 1)[0]
                        raise RuntimeError(f"the redirect answered {status!r}")
            finally:
                writer.close()

        async def everyone() -> None:
            await asyncio.gather(*(client(number) for number in range(self.clients)))

        asyncio.run(everyone())
        latencies.sort()
        return {"p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000, "requests": float(len(latencies))}

    def cleanup(self) -> None:
        self._servers.close()

    @functools.cached_property
    def _servers(self) -> ExitStack:
        return ExitStack()


def wait_for_port(port: int, within: float = 30.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port``; raises TimeoutError after ``within`` seconds."""
    import socket

    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {within:.0f} s") from None
            time.sleep(0.05)
