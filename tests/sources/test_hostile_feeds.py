"""Hostile feed servers, real ones on 127.0.0.1: a slowloris, a gzip bomb, redirects to internal addresses and to
other schemes. Each fetch ends within its deadline and its size limit with the reason; the rest of a run goes on, and
the process never grows past 200 MB."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from carecast import pipeline
from carecast.config import RssSource
from carecast.errors import ConfigError, SourceError
from carecast.ledger import Ledger
from carecast.practice import load_settings
from carecast.sources import SourceResult, read_source
from tests.conftest import ROOT, write_config
from tests.providers import LocalHttpServer, RecordedRequest, Reply
from tests.sources.test_rss import SETTINGS

#: The loopback address the servers listen on: allowed by the sources of these tests, and nothing else.
LOOPBACK_ONLY = ["127.0.0.1"]
INFLATED = 1 << 30  # what the gzip bomb inflates to: 1 GiB of zeros, about 1 MB on the wire


@cache
def gzip_bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    block = bytes(1 << 20)
    return b"".join([*(compressor.compress(block) for _ in range(INFLATED >> 20)), compressor.flush()])


class Slowloris:
    """Accepts connections and drips one byte every 50 ms forever: in the headers (``/headers``) or in the body."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Slowloris:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        with connection:
            try:
                request = connection.recv(65536)
                if b" /headers " in request:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                else:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n\r\n<rss>")
                while not self._stop.wait(0.05):
                    connection.sendall(b"a")
            except OSError:
                return  # the client hung up: what it should do


class Hostile(LocalHttpServer):
    """A gzip bomb at /bomb; redirects to an internal address, to a file and to FTP; a redirect loop."""

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == "/bomb":
            return Reply(200, gzip_bomb(), {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"})
        if request.path == "/loop":
            return Reply(302, None, {"Location": "/loop"})
        targets = {
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-private": "http://10.0.0.7/feed.xml",
            "/to-ipv6-loopback": f"http://[::1]:{self.port}/feed.xml",
            "/to-file": "file:///etc/passwd",
            "/to-ftp": "ftp://ftp.example.com/feed.xml",
        }
        return Reply(302, None, {"Location": targets[request.path]})


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    with Hostile() as running:
        yield running


@pytest.fixture(scope="module")
def slowloris() -> Iterator[Slowloris]:
    with Slowloris() as running:
        yield running


def read(url: str, **options: object) -> SourceResult:
    config = RssSource.model_validate({"type": "rss", "url": url, "allow_private": LOOPBACK_ONLY, **options})
    return read_source("blog", config, SETTINGS)


@pytest.mark.parametrize("path", ["/headers", "/body"])
def test_a_slowloris_fails_the_source_at_its_deadline(slowloris: Slowloris, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"did not answer within 1 s"):
        read(slowloris.url + path, timeout=1)
    # Each byte came well within any per-read timeout: only a deadline on the whole fetch ends it.
    assert time.monotonic() - started < 5


def test_a_gzip_bomb_is_cut_at_the_size_limit(hostile: Hostile) -> None:
    # Built before the fetch: compressing 1 GiB takes seconds, more than the fetch's deadline on a loaded machine.
    gzip_bomb()
    with pytest.raises(SourceError, match=r"larger than 2000000 bytes \(after decompression\)"):
        read(f"{hostile.url}/bomb", max_bytes=2_000_000)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/to-metadata", "169.254.169.254 is a link-local address"),
        ("/to-private", "10.0.0.7 is a private address"),
        ("/to-ipv6-loopback", "::1 is a loopback address"),
        ("/to-file", "only http and https are fetched, not file"),
        ("/to-ftp", "only http and https are fetched, not ftp"),
        ("/loop", "more than 5 redirects"),
    ],
)
def test_a_redirect_is_checked_like_the_first_hop(hostile: Hostile, path: str, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        read(f"{hostile.url}{path}")


def test_a_name_resolving_to_an_internal_address_is_refused_when_connecting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"http://localhost:{listener.getsockname()[1]}/feed.xml"
        # A list of networks lets the name through the config check; what it resolves to is checked when connecting.
        with pytest.raises(
            SourceError, match=r"localhost resolves to 127\.0\.0\.1: 127\.0\.0\.1 is a loopback address"
        ):
            read(url, allow_private=["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///etc/passwd", "an http(s) URL or a file path, not 'file:///etc/passwd'"),
        ("ftp://ftp.example.com/feed.xml", "an http(s) URL or a file path"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://127.0.0.1:8000/feed.xml", "127.0.0.1 is a loopback address; set allow_private: true"),
        ("http://localhost/feed.xml", "localhost is this machine"),
        ("https://[fd00::1]/feed.xml", "fd00::1 is a private address"),
    ],
)
def test_check_refuses_other_schemes_and_internal_feed_addresses(tmp_path: Path, url: str, expected: str) -> None:
    file = write_config(tmp_path, {"sources": {"blog": {"url": url}}})
    with pytest.raises(ConfigError) as caught:
        load_settings(file)
    assert caught.value.file == file
    assert next(key for key, why in caught.value.problems if expected in why) == "sources.blog.url"


def test_check_accepts_a_file_path_and_an_internal_feed_it_is_allowed(tmp_path: Path) -> None:
    allowed = {"url": "http://10.0.0.7/feed.xml", "allow_private": ["10.0.0.0/8"]}
    settings = load_settings(
        write_config(tmp_path, {"sources": {"blog": allowed, "local": {"type": "rss", "url": "a.xml"}}})
    )
    assert set(settings.sources) >= {"blog", "local"}


# --- a whole run in its own process: the hostile source fails, the others publish, memory stays small ---------

# The ingest runs in a process of its own, which reports its peak RSS; channel plugins are not loaded there (the
# SMS channel's phone-number data alone is about 100 MB), so the figure is what reading the sources costs.
INGEST = """
import json, re, sys, time
from pathlib import Path
from carecast import pipeline
from carecast.config import Settings, read_yaml
from carecast.ledger import Ledger
from carecast.practice import load_settings

file = Path(sys.argv[1])
settings = Settings.model_validate({**read_yaml(file), "channels": {}, "base_dir": file.parent, "file": file})
ledger = Ledger(settings.ledger_url())
started = time.monotonic()
reports = [pipeline.ingest(settings, ledger, source) for source in settings.sources]
print(json.dumps({
    "errors": {report.source: report.error for report in reports},
    "seconds": time.monotonic() - started,
    # VmHWM: this process's own peak; getrusage's ru_maxrss would include the forking test process's, kept by exec.
    "peak_rss_kib": int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]),
}))
"""


@pytest.mark.parametrize("where", ["slowloris", "bomb", "redirect"])
def test_a_run_with_a_hostile_feed_ends_in_time_in_little_memory_and_the_others_publish(
    tmp_path: Path, hostile: Hostile, slowloris: Slowloris, where: str
) -> None:
    url, reason = {
        "slowloris": (f"{slowloris.url}/body", f"{slowloris.url}/body did not answer within 3 s"),
        "bomb": (
            f"{hostile.url}/bomb",
            f"{hostile.url}/bomb: the body is larger than 10000000 bytes (after decompression)",
        ),
        "redirect": (
            f"{hostile.url}/to-metadata",
            "not fetched: 169.254.169.254 is a link-local address (see the source's allow_private)",
        ),
    }[where]
    blog = {"url": url, "timeout": 3, "allow_private": LOOPBACK_ONLY}
    file = write_config(tmp_path, {"sources": {"blog": blog}})
    child = subprocess.run(
        [sys.executable, "-c", INGEST, str(file)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["seconds"] < 3 + 5  # its deadline, and room for the other sources
    assert result["peak_rss_kib"] < 200 * 1024, f"peak RSS {result['peak_rss_kib'] / 1024:.0f} MB"
    assert result["errors"] == {"blog": reason, "observances": None, "stories": None, "reactivation": None}

    settings = load_settings(file)
    ledger = Ledger(settings.ledger_url())
    try:
        published = []
        for channel in pipeline.channel_names(settings):
            pipeline.adapt(settings, ledger, channel)
            published += [o for o in pipeline.publish(settings, ledger, channel) if o.state == "published"]
    finally:
        ledger.close()
    assert published and all(not item.startswith("rss:blog:") for o in published for item in o.item_ids)
