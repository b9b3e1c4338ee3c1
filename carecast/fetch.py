"""Fetch a URL someone else controls (a practice's feed) without letting it hang, flood or steer the run.

A feed server is outside our control, and so is every server it redirects to. :func:`fetch` bounds what one fetch
may cost and where it may go:

- a total deadline (connect, headers, body and every redirect together), not a per-read timeout that a server
  dripping one byte at a time never trips: a watchdog shuts the sockets down when the deadline passes;
- a limit on the body's size *after* decompression, so a small gzip bomb cannot inflate in memory;
- http(s) only, redirects followed here (at most :data:`MAX_REDIRECTS`), each hop checked again;
- no connection to a private, loopback, link-local or otherwise non-public address unless the caller allows it:
  the address checked is the one connected to (resolved once, then pinned), so DNS cannot answer differently
  between the check and the connection.

The address rules are shared with configuration checks (:func:`internal_host_reason`), which refuse such
addresses when a URL names them literally.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.connection import allowed_gai_family

from carecast.errors import FetchError

MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
#: Names that always mean this machine, whatever DNS says.
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


@dataclass(frozen=True)
class Fetched:
    """A fetched response: status, headers (as the server sent them), final URL and the whole (decoded) body."""

    status: int
    reason: str
    headers: Mapping[str, str]
    url: str
    body: bytes


#: What a fetch may connect to besides public addresses: nothing (False), anything (True), or these networks.
AllowPrivate = bool | Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: IPv6 prefixes that carry an IPv4 address in their last 32 bits: IPv4-compatible (deprecated) and NAT64.
_EMBEDDING = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("64:ff9b::/96"))


def ip_literal(host: str) -> IPAddress | None:
    """The address a URL's host names by itself, in any spelling a URL parser or ``inet_aton`` accepts, or None for
    a name: dotted decimal, one number (``2130706433``), hexadecimal (``0x7f000001``, ``0x7f.1``), octal
    (``0177.0.0.1``), short forms (``127.1``), percent-encoded, with a trailing dot, IPv6 in brackets with a zone."""
    host = unquote(host).strip("[]").rstrip(".").lower().split("%", 1)[0]
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host)
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        if part.startswith("0x"):
            digits, base = part[2:] or "0", 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        if not digits.isascii() or not digits.isalnum():
            return None
        try:
            numbers.append(int(digits, base))
        except ValueError:
            return None
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last + sum(number << (8 * (3 - index)) for index, number in enumerate(leading))
    return ipaddress.IPv4Address(value)


def _destinations(ip: IPAddress) -> list[IPAddress]:
    """Where a connection to ``ip`` really ends up: the IPv4 addresses an IPv6 one carries (mapped, 6to4,
    IPv4-compatible, NAT64), else ``ip`` itself."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    found: list[IPAddress] = [inner for inner in (ip.ipv4_mapped, ip.sixtofour) if inner is not None]
    if any(ip in network for network in _EMBEDDING) and int(ip) > 1:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found or [ip]


def address_reason(address: str, allow_private: AllowPrivate = False) -> str | None:
    """Why ``address`` (an IP literal, in any spelling :func:`ip_literal` reads) may not be connected to, or None
    when it is public or allowed. Raises ValueError when ``address`` is not an IP literal."""
    if allow_private is True:
        return None
    literal = ip_literal(address)
    if literal is None:
        raise ValueError(f"not an IP address: {address!r}")
    for ip in _destinations(literal):
        if allow_private and any(ip in network for network in allow_private):
            return None
        for kind, test in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local), ("private", ip.is_private)):
            if test:
                return f"{address} is a {kind} address" + ("" if str(ip) == address else f" ({ip})")
        if not ip.is_global or ip.is_multicast:
            return f"{address} is not a public address" + ("" if str(ip) == address else f" ({ip})")
    return None


def internal_host_reason(host: str, allow_private: AllowPrivate = False) -> str | None:
    """Why a URL's ``host`` names this machine or an internal network by itself (an IP literal in any spelling,
    ``localhost``) that ``allow_private`` does not allow, or None. A host name is only checked when connecting, by
    :func:`fetch`, since DNS may change."""
    host = host.strip("[]").rstrip(".").lower()
    if allow_private is not True and (host in _LOCAL_NAMES or host.endswith(".localhost")):
        return None if allow_private else f"{host} is this machine"
    try:
        return address_reason(host, allow_private)
    except ValueError:
        return None  # a name, not an address


def fetch(
    url: str,
    *,
    headers: Mapping[str, str],
    deadline: float,
    max_bytes: int,
    allow_private: AllowPrivate = False,
) -> Fetched:
    """GET ``url``, following redirects, within ``deadline`` seconds in all and at most ``max_bytes`` of body.

    Any status is returned as it is (a 304, a 404), except redirects, which are followed. Raises FetchError when a
    URL is not http(s), an address is neither public nor allowed by ``allow_private``, the deadline passes, the
    body is larger than ``max_bytes``, there are too many redirects, or the server cannot be reached.
    """
    guard = _Guard(allow_private, time.monotonic() + deadline)
    with requests.Session() as session, guard.running():
        session.trust_env = False  # an environment proxy would hide the address connected to
        adapter = _GuardedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                scheme = urlsplit(url).scheme.lower()
                if scheme not in ("http", "https"):
                    raise FetchError(f"{url}: only http and https are fetched, not {scheme or 'a bare path'}")
                with session.get(
                    url, headers=dict(headers), timeout=guard.remaining(), allow_redirects=False, stream=True
                ) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    body = _read_body(response, max_bytes, url)
                    if guard.expired:  # a body without a length ends where the watchdog cut it: not a whole body
                        raise requests.Timeout("the deadline has passed")
                    return Fetched(response.status_code, response.reason, dict(response.headers), url, body)
            raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")
        except _Refused as exc:
            raise FetchError(exc.reason) from exc
        except (requests.RequestException, OSError) as exc:
            if guard.expired or isinstance(exc, requests.Timeout):
                raise FetchError(f"{url} did not answer within {deadline:g} s") from exc
            raise FetchError(f"cannot reach {url}: {exc}") from exc


def _read_body(response: requests.Response, max_bytes: int, url: str) -> bytes:
    body = bytearray()
    # iter_content decodes gzip/deflate a chunk at a time, so the limit holds on what the body inflates to.
    for chunk in response.iter_content(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"{url}: the body is larger than {max_bytes} bytes (after decompression)")
    return bytes(body)


class _Refused(ValueError):
    """Raised inside urllib3 when an address is refused; not an OSError, so urllib3 and requests let it through."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _Guard:
    """One fetch's limits: which addresses it may connect to, and the deadline its sockets are shut down at."""

    def __init__(self, allow_private: AllowPrivate, deadline: float) -> None:
        self.allow_private = allow_private
        self.deadline = deadline
        self.expired = False
        self._lock = threading.Lock()
        # Duplicates of the connected sockets: TLS detaches the original, a duplicate still reaches the socket.
        self._sockets: list[socket.socket] = []

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.expired = True
            raise requests.Timeout("the deadline has passed")
        return left

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        token = _current_guard.set(self)
        timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._cut)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            _current_guard.reset(token)
            with self._lock:
                for watched in self._sockets:
                    watched.close()
                self._sockets.clear()

    def pick_address(self, host: str, port: int) -> str:
        """The address to connect to for ``host``: its first resolved one, when every resolved one is allowed."""
        name = host.strip("[]")
        try:
            found = socket.getaddrinfo(name, port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror:
            return name  # let urllib3 fail on it with its own words
        addresses = [str(info[4][0]) for info in found]
        for address in addresses:
            if reason := address_reason(address, self.allow_private):
                refused = reason if address == name else f"{name} resolves to {address}: {reason}"
                raise _Refused(f"not fetched: {refused} (see the source's allow_private)")
        return addresses[0]

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                sock.close()
                raise requests.Timeout("the deadline has passed")
            self._sockets.append(socket.socket(fileno=os.dup(sock.fileno())))

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            for watched in self._sockets:
                with contextlib.suppress(OSError):  # already closed by its owner
                    watched.shutdown(socket.SHUT_RDWR)


_current_guard: ContextVar[_Guard] = ContextVar("carecast_fetch_guard")


class _GuardedConnectionMixin:
    """Connects to the address the guard picked (never a second DNS answer) and hands the socket to its watchdog."""

    _dns_host: str

    def _new_conn(self) -> socket.socket:
        guard = _current_guard.get()
        original = self._dns_host
        self._dns_host = guard.pick_address(original, self.port)  # type: ignore[attr-defined]
        try:
            sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = original  # TLS checks the certificate against the name, not the address
        guard.watch(sock)
        return sock


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
