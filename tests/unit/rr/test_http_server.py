"""Issue 17 class 5: the HTTP edge's pure-ish helpers (rr/http_limits.py); tests/service/test_http_edge.py has
the same rules against a real `samctl serve`."""

import socket
import threading
import time

import pytest

from boma_mesh_utils.sam.core import fields
from boma_mesh_utils.sam.core.registry import Rejection
from boma_mesh_utils.sam.rr import http_head, http_limits
from boma_mesh_utils.sam.rr.http_head import HeadError, Headers, Reader
from boma_mesh_utils.sam.rr.http_limits import Slots


def headers(*lines):
    return Headers(line + b"\r\n" for line in lines)


@pytest.mark.parametrize("value, length", [(b"0", 0), (b"65536", 65536), (b"  12 \t", 12), (b"007", 7),
                                           (b"9999999999", 9999999999)])
def test_a_plain_decimal_content_length_is_taken(value, length):
    assert http_limits.content_length(headers(b"Content-Length: " + value)) == length


@pytest.mark.parametrize("value", [b"+5", b"-1", b"5_0", b"0x10", b"5 5", b"5, 5", b"", b"12345678901", b"1e3",
                                   b"\xd9\xa5", b"5\x0b"])
def test_any_other_content_length_is_a_400(value):
    # int() takes "+5", " 5", "5_0" and non-ASCII digits; one value per framing or a proxy may read another.
    with pytest.raises(Rejection) as exc:
        http_limits.content_length(headers(b"Content-Length: " + value))
    assert (exc.value.status, exc.value.rule) == (400, "malformed-request")


def test_two_content_lengths_are_a_400_even_when_equal():
    with pytest.raises(Rejection, match="more than one"):
        http_limits.content_length(headers(b"Content-Length: 5", b"content-length: 5"))
    assert http_limits.content_length(headers(b"Host: x")) is None


def test_headers_match_names_case_insensitively_and_trim_optional_whitespace():
    fields = headers(b"Host: x", b"X-Boma-Request-Nonce: \t ab12 \t", b"x-multi: 1", b"X-Multi:2", b"Empty:")
    assert fields.get("host") == "x" and fields["HOST"] == "x"
    assert fields.get("x-boma-request-nonce") == "ab12"
    assert fields.get_all("X-Multi") == ["1", "2"] and fields.get("X-Multi") == "1"
    assert fields.get("Empty") == "" and "empty" in fields
    assert fields.get("Absent") is None and fields.get("Absent", "d") == "d" and fields.get_all("Absent") is None
    assert "Absent" not in fields and len(fields) == 5


def test_header_values_keep_non_ascii_bytes_as_latin_1_like_http_client():
    assert headers(b"X-A: \xe9\xff").get("X-A") == "\xe9\xff"


@pytest.mark.parametrize("text, version", [("HTTP/1.1", (1, 1)), ("HTTP/1.0", (1, 0)), ("HTTP/01.001", (1, 1)),
                                           ("HTTP/2.0", (2, 0)), ("HTTP/1.x", None), ("HTTP/1", None),
                                           ("HTTP/1.1.1", None), ("http/1.1", None), ("HTTP/\xb2.1", None),
                                           ("HTTP/12345678901.1", None), ("HTTP/ 1.1", None)])
def test_http_version_follows_http_server(text, version):
    assert http_head.http_version(text) == version


def test_read_fields_returns_the_checked_lines_up_to_the_blank_line():
    reader, sockets = _reader(b"Host: x\r\nA: 1\r\n\r\nbody")
    with sockets[0], sockets[1]:
        reader.lines = 1     # the request line was read
        assert reader.read_fields() == [b"Host: x\r\n", b"A: 1\r\n"]
        assert reader.read1(10) == b"body"


@pytest.mark.parametrize("text, logged", [
    ("/api/x", "/api/x"),
    ("/x\x1b[2J", "/x\\x1b[2J"),
    ("a\r\nINFO forged line", "a\\r\\nINFO forged line"),
    ("\x00\x7f\t", "\\x00\\x7f\\t"),
    ("back\\slash", "back\\\\slash"),
    ("\xe9\u2028\U0001f600", "\\xe9\\u2028\\U0001f600"),
])
def test_log_text_escapes_everything_but_printable_ascii(text, logged):
    assert fields.log_text(text) == logged


def test_log_text_is_cut():
    assert fields.log_text("a" * 500) == "a" * fields.LOG_LIMIT + "..."
    assert fields.log_text("\x1b" * 500, limit=3) == "\\x1b" * 3 + "..."


@pytest.mark.parametrize("data", [b"[" * 100000, b'{"a":' * 50000, b"[" * (http_limits.MAX_DEPTH + 1) +
                                  b"]" * (http_limits.MAX_DEPTH + 1), b"\xff{}", b"{", b"1" * 5000])
def test_any_undecodable_body_is_a_400(data):
    with pytest.raises(Rejection) as exc:
        http_limits.decode_json(data)
    assert (exc.value.status, exc.value.rule) == (400, "malformed-json")


def test_nesting_up_to_the_limit_decodes():
    depth = http_limits.MAX_DEPTH
    assert http_limits.decode_json(b"[" * depth + b"]" * depth) is not None
    assert http_limits.nesting({"a": [1, {"b": []}], "c": {}}) == 4
    assert http_limits.nesting("x") == 0


@pytest.mark.parametrize("address, key", [
    (("192.0.2.7", 4711), "192.0.2.7"),
    (("2001:db8:1:2:3:4:5:6", 4711, 0, 0), "2001:db8:1:2::/64"),
    (("::ffff:192.0.2.7", 4711, 0, 0), "192.0.2.7"),
    (("fe80::1%eth0", 4711, 0, 2), "fe80::/64"),
    ("", None),
])
def test_a_source_is_an_ipv4_address_or_an_ipv6_64(address, key):
    assert http_limits.source_key(address) == key


def test_slots_cap_each_source_and_the_total():
    slots = Slots(8)
    assert slots.per_source == 4 and slots.reserve == 1
    tickets = [slots.admit("a", None) for _n in range(4)]
    assert all(isinstance(t, http_limits.Ticket) for t in tickets)
    assert "this address" in slots.admit("a", None)
    others = [slots.admit(key, None) for key in ("b", "b", "c", "d")]
    assert "too many connections" in slots.admit("e", None)
    slots.release(others[0])
    slots.release(others[0])    # twice is once
    assert isinstance(slots.admit("e", None), http_limits.Ticket)
    assert slots.active == 8 and slots.sources == {"a": 4, "b": 1, "c": 1, "d": 1, "e": 1}
    assert isinstance(slots.admit(None, None), str)     # the unix socket counts against the total only


def test_an_idle_keep_alive_connection_gives_its_slot_to_a_newcomer():
    slots = Slots(2, per_source=2)
    server_side, client_side = socket.socketpair()
    try:
        idle = slots.admit("a", server_side)
        slots.admit("b", None)
        waited = []
        thread = threading.Thread(target=lambda: waited.append(slots.wait_idle(idle, Reader(server_side), 30)))
        thread.start()
        assert _until(lambda: idle in slots.idle)
        started = time.monotonic()
        assert isinstance(slots.admit("c", None), http_limits.Ticket)
        thread.join(5)
        assert waited == [False] and time.monotonic() - started < 1
        assert idle.released and slots.active == 2 and "a" not in slots.sources
        slots.release(idle)
        assert slots.active == 2
    finally:
        server_side.close()
        client_side.close()


def test_a_waiting_request_or_eof_ends_the_idle_wait():
    slots = Slots(2)
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        ticket = slots.admit("a", server_side)
        client_side.sendall(b"GET / HTTP/1.1\r\n")
        assert slots.wait_idle(ticket, Reader(server_side), 0.1)
        client_side.close()
        assert slots.wait_idle(ticket, Reader(server_side), 0.1), "EOF is an answer too"


def _until(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def _reader(data, timeout=2.0):
    server_side, client_side = socket.socketpair()
    client_side.sendall(data)
    reader = Reader(server_side)
    reader.begin_head(time.monotonic() + timeout)
    return reader, (server_side, client_side)


def _head(reader):
    lines = [reader.readline(http_head.MAX_REQUEST_LINE + 1)]
    while lines[-1] not in (b"\r\n", b"\n"):
        lines.append(reader.readline(65537))
    return lines


def test_a_head_within_its_limits_is_read_line_by_line_and_the_body_stays():
    reader, sockets = _reader(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
    with sockets[0], sockets[1]:
        assert _head(reader) == [b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"Content-Length: 4\r\n", b"\r\n"]
        assert reader.read1(10) == b"body"


@pytest.mark.parametrize("head, status", [
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(http_head.MAX_HEADER_LINES + 1)), 431),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * http_head.HEAD_BUDGET + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 8000 + b"\r\n" + b"X-Pad: " + b"a" * 8400 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\n folded\r\n", 400),
    (b"GET / HTTP/1.1\r\nX-A: 1\rContent-Length: 5\r\n", 400),
    (b"GET / HTTP/1.1\r\nX-A: \x00\r\n", 400),
    (b"GET / HTTP/1.1\r\nX-A : 1\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x", None),      # the client went away mid-head
], ids=["header-lines", "one-long-line", "budget", "obs-fold", "bare-cr", "nul", "space-before-colon", "eof"])
def test_a_head_over_its_limits_is_refused(head, status):
    reader, sockets = _reader(head + b"\r\n" if status else head)
    sockets[1].shutdown(socket.SHUT_WR)
    with sockets[0], sockets[1], pytest.raises(HeadError) as exc:
        _head(reader)
    assert exc.value.status == status


def test_a_trickled_head_times_out_at_its_deadline_not_per_line():
    reader, (server_side, client_side) = _reader(b"GET / HTTP/1.1\r\n", timeout=1.0)
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.2):
            client_side.sendall(b"X")      # one byte at a time, well inside any per-read timeout

    thread = threading.Thread(target=trickle)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            _head(reader)
        assert time.monotonic() - started < 1.5
        assert reader.head_started()
    finally:
        stop.set()
        thread.join()
        server_side.close()
        client_side.close()
