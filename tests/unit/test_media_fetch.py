"""Safe fetching against a real local HTTP server: one test per refusal, and what passes."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from streams.media.fetch import FetchError, FetchLimits, Resolver, fetch, is_public, sniff


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge image: what a decompression bomb starts with."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


SMALL = png(40, 30)
SEEN_HOSTS: list[str] = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        SEEN_HOSTS.append(self.headers.get("Host", ""))
        route = self.path.split("?")[0]
        if route == "/cat.png":
            self.reply(200, SMALL)
        elif route == "/redirect-home":
            self.redirect("/cat.png")
        elif route == "/redirect-private":
            self.redirect("http://10.1.2.3/cat.png")
        elif route == "/loop":
            self.redirect("/loop")
        elif route == "/page.png":
            self.reply(200, b"<html><body>not a picture</body></html>", "image/png")
        elif route == "/bomb.png":
            self.reply(200, png_header_claiming(50_000, 50_000))
        elif route == "/endless":  # no Content-Length: the body is read until the cap
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.stream(b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000)
        elif route == "/huge":  # refused from its announced length, before reading
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
        elif route == "/liar":  # announces less than it sends: only what it announced is read
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.stream(b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000)
        elif route == "/drip-headers":  # each header byte within the read timeout, the whole far past the deadline
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(40):
                self.stream(b"X")
                time.sleep(0.25)
        elif route == "/redirect-slowly":  # each hop quick enough, the chain not
            time.sleep(0.6)
            self.redirect("/redirect-slowly")
        elif route == "/slow":
            self.send_response(200)
            self.end_headers()
            for _ in range(20):
                self.stream(b"\x89")
                time.sleep(0.3)
        else:
            self.reply(404, b"")

    def reply(self, status: int, body: bytes, content_type: str = "image/png") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def stream(self, body: bytes) -> None:
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            pass  # the client hung up, as it should


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


ALLOWED = FetchLimits(allow_hosts=frozenset({"127.0.0.1", "media.test"}), read_timeout_s=1.0, deadline_s=2.0,
                      max_image_bytes=100_000, max_pixels=10_000_000)  # fmt: skip


def unresolvable(host: str, port: int) -> list[str]:
    """A resolver that knows no host: the tests send no DNS query off the machine."""
    raise FetchError("unresolvable", f"{host}: Name or service not known")


def refusal_resolved(url: str, resolve: Resolver, limits: FetchLimits = ALLOWED) -> str:
    with pytest.raises(FetchError) as caught:
        fetch(url, "image", limits, resolve)
    return caught.value.reason


def refusal(url: str, limits: FetchLimits = ALLOWED, kind: str = "image") -> str:
    with pytest.raises(FetchError) as caught:
        fetch(url, kind, limits)
    return caught.value.reason


def test_an_allowed_image_is_fetched_and_sniffed(server: str) -> None:
    got = fetch(f"http://{server}/cat.png", "image", ALLOWED)
    assert (got.media_type, got.width, got.height, got.content) == ("image/png", 40, 30, SMALL)


def test_redirects_are_followed_and_checked(server: str) -> None:
    assert fetch(f"http://{server}/redirect-home", "image", ALLOWED).url.endswith("/cat.png")
    assert refusal(f"http://{server}/redirect-private") == "blocked_address"
    assert refusal(f"http://{server}/loop") == "too_many_redirects"


def test_private_and_loopback_addresses_are_refused_unless_allowed(server: str) -> None:
    assert refusal(f"http://{server}/cat.png", FetchLimits()) == "blocked_address"
    assert refusal("http://localhost/cat.png", FetchLimits()) == "blocked_address"
    assert refusal("http://[::1]/cat.png", FetchLimits()) == "blocked_address"
    for address in ("10.0.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
                    "::ffff:127.0.0.1", "fe80::1", "fc00::1"):  # fmt: skip
        assert not is_public(address), address
    assert is_public("93.184.216.34") and is_public("2606:4700::1111")


def test_the_checked_address_is_the_one_connected_to(server: str) -> None:
    # One resolution per hop, and the connection goes to its answer: a second, different
    # answer (DNS rebinding) is never asked for.
    port = int(server.rsplit(":", 1)[1])
    asked: list[str] = []

    def resolve(host: str, _: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"] if len(asked) == 1 else ["10.9.9.9"]

    SEEN_HOSTS.clear()
    got = fetch(f"http://media.test:{port}/cat.png", "image", ALLOWED, resolve)
    assert got.content == SMALL and asked == ["media.test"] and [f"media.test:{port}"] == SEEN_HOSTS


def test_bodies_are_capped_while_streaming_whatever_the_headers_say(server: str) -> None:
    assert refusal(f"http://{server}/endless") == "too_large"
    assert refusal(f"http://{server}/huge") == "too_large"
    assert refusal(f"http://{server}/liar") == "unsupported_type"  # 1,000 bytes of no image


def test_a_pixel_bomb_is_refused_from_its_header(server: str) -> None:
    assert refusal(f"http://{server}/bomb.png") == "too_many_pixels"


def test_the_type_comes_from_the_bytes(server: str) -> None:
    assert refusal(f"http://{server}/page.png") == "unsupported_type"
    assert refusal(f"http://{server}/cat.png", kind="video") == "unsupported_type"
    assert sniff(b"\x00\x00\x00\x18ftypmp42") == "video/mp4" and sniff(b"GIF89a....") == "image/gif"


def test_slow_and_unreachable_servers_and_bad_urls(server: str) -> None:
    started = time.monotonic()
    assert refusal(f"http://{server}/slow") == "timeout"
    assert time.monotonic() - started < 5
    assert refusal("http://127.0.0.1:1/cat.png") == "unreachable"
    assert refusal(f"http://{server}/missing.png") == "http_status"
    assert refusal_resolved("http://no-such-host.invalid/cat.png", unresolvable) == "unresolvable"
    for url in ("file:///etc/passwd", "ftp://example.com/a.png", "http://user:pw@example.com/a.png", "http:///a"):
        assert refusal(url) == "invalid_url", url


def test_one_deadline_covers_the_whole_fetch_headers_and_redirects_included(server: str) -> None:
    for path in ("/drip-headers", "/redirect-slowly"):
        started = time.monotonic()
        limits = FetchLimits(allow_hosts=frozenset({"127.0.0.1"}), read_timeout_s=1.0, deadline_s=1.5, max_redirects=10)
        assert refusal(f"http://{server}{path}", limits) == "timeout", path
        assert time.monotonic() - started < 2.5, path


@pytest.mark.parametrize(
    "address",
    [
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:169.254.169.254",  # IPv4-mapped
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo whose client is 10.0.0.1
        "::7f00:1",  # a DNS answer of ::127.0.0.1
        "fe80::1%eth0",  # link-local with a zone
    ],
)
def test_ipv6_forms_that_embed_a_private_ipv4_address_are_refused(address: str) -> None:
    assert not is_public(address)

    def resolve(host: str, port: int) -> list[str]:
        return [address]

    assert refusal_resolved("http://media.example/cat.png", resolve, FetchLimits()) == "blocked_address"


def test_public_ipv6_and_public_embedded_forms_pass() -> None:
    assert is_public("2606:4700:4700::1111")
    assert is_public("64:ff9b::808:808")  # NAT64 of 8.8.8.8
