"""Fetching what posts link to, safely: the media agent's only way onto the network.

A post's ``media`` URLs come from strangers. Each fetch:

- allows only http and https, with no credentials in the URL;
- resolves the host once and refuses loopback, private, link-local, multicast,
  reserved and unspecified addresses (anything that is not globally routable,
  and IPv6 addresses that embed such an IPv4 one: mapped, compatible, NAT64,
  6to4, Teredo),
  unless the host is on the allow-list (tests, on-premise media stores); then it
  connects to the address it checked, so DNS cannot answer differently the second
  time (rebinding); for https the certificate is still checked against the host;
- follows at most ``max_redirects`` redirects, each one checked as above;
- has connect and read timeouts and one deadline over the whole fetch (connect,
  headers, redirects, body: a watchdog shuts the socket when it passes, so a
  server that drips bytes is cut off), and reads the body in chunks up to the
  byte cap of its kind, whatever Content-Length says;
- decides the type from the bytes (magic numbers), not from the URL or the
  Content-Type header, and for images reads the dimensions from the header before
  anything decodes them, against a pixel cap (decompression bombs).

A refused or failed item is a ``FetchError`` with a ``reason`` (one of
``REASONS``, a metric label) and a message; it never fails the post.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

REASONS = (
    "invalid_url",
    "blocked_address",
    "unresolvable",
    "unreachable",
    "timeout",
    "http_status",
    "too_many_redirects",
    "too_large",
    "too_many_pixels",
    "unsupported_type",
)
CHUNK = 64 * 1024
Resolver = Callable[[str, int], list[str]]


class FetchError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 5.0
    deadline_s: float = 15.0  # the whole fetch, redirects included
    max_image_bytes: int = 10 * 1024 * 1024
    max_video_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    # Pixels decoded at once by a batch, as RGB bytes (3 a pixel): a batch's images are
    # decoded in groups under it, so four 36-megapixel PNGs do not all sit in memory together.
    max_decoded_bytes: int = 256 * 1024 * 1024
    max_redirects: int = 3
    allow_hosts: frozenset[str] = field(default_factory=frozenset)  # reachable even when private


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    content: bytes
    media_type: str  # sniffed: image/jpeg, image/png, image/gif, image/webp, video/mp4, video/webm
    width: int | None = None  # images only
    height: int | None = None


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError("unresolvable", f"{host}: {exc.strerror or exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# IPv6 forms that carry an IPv4 address a gateway or the host's own stack may reach:
# IPv4-compatible ::a.b.c.d (deprecated), NAT64 64:ff9b::/96 and its local-use 64:ff9b:1::/48.
# 6to4 (2002::/16) and Teredo (2001::/32) are read by ``ipaddress`` itself.
EMBEDDING_IPV4 = (
    ipaddress.ip_network("::/96"),
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    found = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    if ip.teredo is not None:
        found += list(ip.teredo)
    if any(ip in network for network in EMBEDDING_IPV4):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public(address: str) -> bool:
    """Globally routable, and so is every IPv4 address it embeds (one may lead to a private one)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone id (fe80::1%eth0) names a link
    if ip.is_multicast or not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        return all(v4.is_global and not v4.is_multicast for v4 in embedded_ipv4(ip))
    return True


def checked_address(host: str, port: int, limits: FetchLimits, resolve: Resolver) -> str:
    """The one address this fetch connects to: the first the resolver gives, all of them
    public unless the host is allowed (one bad answer refuses the host: no retrying until
    a public one comes)."""
    addresses = resolve(host, port)
    if not addresses:
        raise FetchError("unresolvable", f"{host}: no address")
    if host.lower() not in limits.allow_hosts:
        blocked = [a for a in addresses if not is_public(a)]
        if blocked:
            raise FetchError("blocked_address", f"{host} resolves to {blocked[0]}, which is not public")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(
        self, host: str, port: int, address: str, timeout: float, connect_timeout: float, watchdog: Watchdog
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address
        self.connect_timeout = connect_timeout
        self.watchdog = watchdog

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.connect_timeout)
        self.sock.settimeout(self.timeout)
        self.watchdog.watch(self.sock)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    def __init__(
        self, host: str, port: int, address: str, timeout: float, connect_timeout: float, watchdog: Watchdog
    ) -> None:
        super().__init__(host, port, address, timeout, connect_timeout, watchdog)
        self.context = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        # The certificate is checked against the host named in the URL, not the address.
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)
        self.watchdog.watch(self.sock)


def parse_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL, or FetchError."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError("invalid_url", f"{url[:200]!r}: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise FetchError("invalid_url", f"only http and https are fetched, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise FetchError("invalid_url", f"{url[:200]!r} names no host")
    if parts.username or parts.password:
        raise FetchError("invalid_url", "credentials in a URL are not sent")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def sniff(head: bytes) -> str | None:
    """The media type from the first bytes, or None when it is none we analyse."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


def image_size(content: bytes) -> tuple[int, int]:
    """Width and height from the image's header, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:  # lazy: reads the header only
            return image.size
    except Image.DecompressionBombError as exc:  # Pillow's own check, at twice its default cap
        raise FetchError("too_many_pixels", str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FetchError("unsupported_type", f"unreadable image header: {exc}") from exc


def fetch(
    url: str,
    kind: str,
    limits: FetchLimits,
    resolve: Resolver = system_resolver,
    clock: Callable[[], float] = time.monotonic,
) -> Fetched:
    """The bytes an ``image`` or ``video`` URL serves, within the limits, or FetchError."""
    cap = limits.max_video_bytes if kind == "video" else limits.max_image_bytes
    deadline = clock() + limits.deadline_s
    for _ in range(limits.max_redirects + 1):
        scheme, host, port, path = parse_url(url)
        address = checked_address(host, port, limits, resolve)
        remaining = deadline - clock()
        if remaining <= 0:
            raise FetchError("timeout", f"no answer within the {limits.deadline_s} s deadline")
        with Watchdog(remaining) as watchdog:
            try:
                response, connection = _request(scheme, host, port, address, path, limits, watchdog)
                outcome = _outcome(url, response, connection, cap, deadline, clock)
                if watchdog.fired:  # a shut socket reads as the end of the body
                    raise FetchError("timeout", "cut off")
            except FetchError:
                if watchdog.fired:  # the socket was shut under the read: say why
                    raise FetchError("timeout", f"no answer within the {limits.deadline_s} s deadline") from None
                raise
        if isinstance(outcome, str):
            url = outcome
            continue
        return checked_content(url, outcome, kind, limits)
    raise FetchError("too_many_redirects", f"more than {limits.max_redirects} redirects")


class Watchdog:
    """Shuts a fetch's socket down when the whole fetch's time is up: the socket's own timeouts
    bound each read, not the sum (a server dripping one header byte a second never trips them)."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()
        self.timer = threading.Timer(seconds, self.fire)
        self.timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            self.sock = sock
            if self.fired:
                self.shut()

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            self.shut()

    def shut(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):  # closed already
                self.sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Watchdog:
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()


def _outcome(
    url: str,
    response: http.client.HTTPResponse,
    connection: http.client.HTTPConnection,
    cap: int,
    deadline: float,
    clock: Callable[[], float],
) -> bytes | str:
    """The body of a 200, or the URL a redirect points to."""
    try:
        if response.status in (301, 302, 303, 307, 308):
            location = response.getheader("Location")
            if not location:
                raise FetchError("http_status", f"{response.status} without a Location")
            return urllib.parse.urljoin(url, location)
        if response.status != 200:
            raise FetchError("http_status", f"{url[:200]} answered {response.status} {response.reason}")
        return _read_capped(response, cap, deadline, clock)
    finally:
        response.close()
        connection.close()


def _request(
    scheme: str, host: str, port: int, address: str, path: str, limits: FetchLimits, watchdog: Watchdog
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = kind(host, port, address, limits.read_timeout_s, limits.connect_timeout_s, watchdog)
    try:
        connection.request("GET", path, headers={"User-Agent": "social-streams-media/1", "Accept": "image/*,video/*"})
        return connection.getresponse(), connection
    except TimeoutError as exc:
        connection.close()
        raise FetchError("timeout", f"{host}: no answer within the timeouts") from exc
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise FetchError("unreachable", f"{host}: {exc}") from exc


def _read_capped(response: http.client.HTTPResponse, cap: int, deadline: float, clock: Callable[[], float]) -> bytes:
    """The body, in chunks, refusing it past ``cap`` bytes or the deadline (Content-Length is
    only an early refusal: a server may send more than it announced)."""
    announced = response.getheader("Content-Length")
    if announced and announced.isdigit() and int(announced) > cap:
        raise FetchError("too_large", f"announced {announced} bytes, more than {cap}")
    body = bytearray()
    try:
        while chunk := response.read1(CHUNK):
            body += chunk
            if len(body) > cap:
                raise FetchError("too_large", f"more than {cap} bytes")
            if clock() > deadline:
                raise FetchError("timeout", "the body did not arrive within the deadline")
    except TimeoutError as exc:
        raise FetchError("timeout", "the server stopped sending") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError("unreachable", f"the body broke off: {exc}") from exc
    return bytes(body)


def checked_content(url: str, content: bytes, kind: str, limits: FetchLimits) -> Fetched:
    media_type = sniff(content[:16])
    if media_type is None or media_type.split("/")[0] != kind:
        found = media_type or "no known image or video format"
        raise FetchError("unsupported_type", f"a {kind} was expected, the bytes are {found}")
    if kind != "image":
        return Fetched(url, content, media_type)
    width, height = image_size(content)
    if width * height > limits.max_pixels:
        raise FetchError("too_many_pixels", f"{width}x{height} is more than {limits.max_pixels} pixels")
    return Fetched(url, content, media_type, width, height)
