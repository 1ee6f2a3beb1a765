"""Issue 17 class 5, the HTTP edge, against a real `samctl serve`: raw bytes, no client library fixing them up.

Every TCP client of a test is 127.0.0.1 unless it binds another loopback address (127.0.0.0/8 all reach the
listener), which is how a test plays several source addresses.
"""

import json
import select
import socket
import subprocess
import time

import pytest
from harness import LEAF_TOKEN, claims, wait_for

from boma_mesh_utils.sam.core import wire

HEALTH = wire.health_path().encode()
SUBMIT = wire.submit_path().encode()
LEAF = LEAF_TOKEN.encode()
SMUGGLED = b"GET " + wire.API_PREFIX.encode() + b"/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def rr_a(mesh):
    rr = mesh.rr("rr-a", extra=["--max-connections", "8", "--client-timeout", "2"]).start()
    yield rr
    rr.stop()


def connect(rr, source=None, timeout=10):
    host, port = rr.url.split("//")[1].split(":")
    return socket.create_connection((host, int(port)), timeout=timeout,
                                    source_address=(source, 0) if source else None)


def parse(data):
    """[(status, headers, body)] of the answers in ``data``, in order."""
    answers = []
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _s, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        answers.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return answers


def read_all(sock, quiet=1.5):
    """Everything the server sends until it closes ((answers, True)) or is quiet for ``quiet`` s (False)."""
    data, closed = b"", False
    sock.settimeout(quiet)
    try:
        while chunk := sock.recv(65536):
            data += chunk
        closed = True
    except TimeoutError:
        pass
    except ConnectionResetError:
        closed = True
    return parse(data), closed


def exchange(rr, data, source=None):
    with connect(rr, source) as sock:
        sock.sendall(data)
        return read_all(sock)


def get(path=HEALTH, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


def submit_head(length_header, token=LEAF):
    return (b"POST " + SUBMIT + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
            b"\r\nContent-Type: application/json\r\n" + length_header + b"\r\n\r\n")


def claim_body(index=0):
    doc = claims(index + 1)[index]
    return json.dumps(wire.submit_request(doc["metadata"]["name"], doc["spec"])).encode()


def assert_json_error(answer, status, rule=None):
    assert answer[0] == status, answer
    assert answer[1]["content-type"] == "application/json"
    error = json.loads(answer[2])["error"]
    assert error["code"] == status and (rule is None or error["rule"] == rule), error
    return error


def test_trickled_heads_get_408_at_the_head_deadline_and_never_starve_other_sources(rr_a):
    # 8 slots, 4 per source address: 4 trickling attackers are admitted, 4 more get 503, and a client from
    # another address is served while they trickle. Before: each line reset the 2 s timeout, so 8 attackers
    # held every slot for as long as they liked and every honest request got 503.
    started = time.monotonic()
    attackers = [connect(rr_a) for _n in range(8)]
    for sock in attackers:
        sock.sendall(b"GET " + HEALTH + b" HTTP/1.1\r\n")
    answers, ended = {}, {}
    honest = None
    while len(ended) < len(attackers) and time.monotonic() - started < 8:
        for sock in attackers:
            if sock in ended:
                continue
            if select.select([sock], [], [], 0)[0]:
                answers[sock], _closed = read_all(sock, quiet=0.5)
                ended[sock] = time.monotonic() - started
                continue
            try:
                sock.sendall(b"X-Trickle: 1\r\n")
            except OSError:
                ended[sock] = time.monotonic() - started
        if honest is None and time.monotonic() - started > 0.5:
            asked = time.monotonic()
            honest = exchange(rr_a, get(extra=b"Connection: close\r\n"), source="127.0.0.2")[0]
            honest_took = time.monotonic() - asked
        time.sleep(0.3)
    for sock in attackers:
        sock.close()
    assert honest and honest[0][0] == 200 and honest_took < 1.5
    assert len(ended) == 8 and max(ended.values()) < 2 + 1.5, ended
    statuses = sorted(a[0][0] for a in answers.values() if a)
    assert statuses == [408] * 4 + [503] * 4, statuses
    for answer in answers.values():
        assert_json_error(answer[0], answer[0][0], "timeout" if answer[0][0] == 408 else "busy")


def test_idle_keep_alive_connections_give_their_slots_to_a_newcomer(mesh):
    rr = mesh.rr("rr-a", extra=["--max-connections", "4", "--client-timeout", "30"]).start()
    try:
        idle = []
        for n in range(4):
            sock = connect(rr, source="127.0.0.%d" % (3 + n))
            sock.sendall(get())
            assert read_all(sock, quiet=0.3)[0][0][0] == 200
            idle.append(sock)
        time.sleep(0.2)
        # Before: the idle connections held all 4 slots until the 30 s client timeout, so this was 503.
        answers, _closed = exchange(rr, get(extra=b"Connection: close\r\n"), source="127.0.0.20")
        assert answers[0][0] == 200
        idle[0].settimeout(2)
        assert idle[0].recv(100) == b"", "the oldest idle connection gave its slot up"
        for sock in idle:
            sock.close()
    finally:
        rr.stop()


@pytest.mark.parametrize("request_bytes, status, rule", [
    (get(extra=b"".join(b"X-H-%02d: v\r\n" % n for n in range(80))), 431, "head-too-large"),
    (get(extra=b"X-Big: " + b"a" * 20000 + b"\r\n"), 431, "head-too-large"),
    (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request-line-too-long"),
], ids=["80-header-lines", "20k-header", "10k-request-line"])
def test_an_oversized_head_gets_a_json_error_and_the_connection_closes(rr_a, request_bytes, status, rule):
    answers, closed = exchange(rr_a, request_bytes)
    assert len(answers) == 1 and closed
    assert_json_error(answers[0], status, rule)


@pytest.mark.parametrize("header", [
    b"Content-Length: %(n)d\r\nContent-Length: %(n)d",
    b"Content-Length: +%(n)d",
    b"Content-Length: %(n)d, %(n)d",
    b"Content-Length: %(head)s_%(tail)s",
    b"Content-Length: -1",
], ids=["duplicate-equal", "plus-sign", "list", "underscore", "negative"])
def test_content_length_must_be_one_plain_decimal(rr_a, header):
    body = claim_body()
    text = b"%d" % len(body)
    request = submit_head(header % {b"n": len(body), b"head": text[:1], b"tail": text[1:]}) + body
    answers, closed = exchange(rr_a, request)
    assert len(answers) == 1 and closed
    assert "Content-Length" in assert_json_error(answers[0], 400, "malformed-request")["message"]
    assert rr_a.claim_names() == set(), "nothing was accepted"
    assert rr_a.submit(claims(1)[0]).status == 200


@pytest.mark.parametrize("request_bytes, status, rule", [
    (b"PATCH " + HEALTH + b" HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not-implemented"),
    (b"GET " + HEALTH + b" HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http-version"),
    (b"GET " + HEALTH + b" HTTP/1.x\r\nHost: x\r\n\r\n", 400, "malformed-request"),
    (b"GET " + HEALTH + b"\r\n\r\n", 400, "malformed-request"),
    (get(extra=b"X-A: 1\r\n folded\r\n"), 400, "malformed-request"),
    (get(extra=b"X-A: 1\rContent-Length: 5\r\n"), 400, "malformed-request"),
], ids=["patch", "http-2", "bad-version", "http-0.9", "obs-fold", "bare-cr"])
def test_every_answer_is_the_json_error_document(rr_a, request_bytes, status, rule):
    answers, closed = exchange(rr_a, request_bytes)
    assert len(answers) == 1 and closed
    assert_json_error(answers[0], status, rule)


@pytest.mark.parametrize("head, first", [
    (get(extra=b"Content-Length: %d\r\n" % len(SMUGGLED)), 200),
    (submit_head(b"Content-Length: %d" % len(SMUGGLED), token=b"wrong"), 401),
    (b"DELETE " + SUBMIT + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED), 405),
], ids=["get-with-body", "401-before-the-body", "405-before-the-body"])
def test_an_unread_body_is_never_parsed_as_the_next_request(rr_a, head, first):
    # The body is itself a request: answered, it would be the reply to the client's next request.
    # A small body is read and dropped, so the connection stays usable; the smuggled request is never answered.
    answers, closed = exchange(rr_a, head + SMUGGLED + get(extra=b"Connection: close\r\n"))
    assert closed and [a[0] for a in answers] == [first, 200], answers


def test_a_large_unread_body_closes_the_connection(rr_a):
    head = get(extra=b"Content-Length: %d\r\n" % (wire.MAX_BODY + 1))
    answers, closed = exchange(rr_a, head + SMUGGLED)
    assert closed and [a[0] for a in answers] == [200] and answers[0][1]["connection"] == "close"


def test_deep_json_nesting_is_a_400_not_a_500(rr_a):
    for body in (b"[" * 60000, b'{"a": ' * 10000):
        answers, _closed = exchange(rr_a, submit_head(b"Content-Length: %d\r\nConnection: close" % len(body)) + body)
        assert_json_error(answers[0], 400, "malformed-json")
    assert rr_a.submit(claims(1)[0]).status == 200


def test_control_characters_reach_the_log_escaped(rr_a):
    path = wire.API_PREFIX.encode() + b"/x\x1b[2J\x00\x7f\xe9y"
    assert exchange(rr_a, b"GET " + path + b" HTTP/1.1\r\nConnection: close\r\n\r\n")[0][0][0] == 404
    assert exchange(rr_a, b"P\x1b[2JATCH " + HEALTH + b" HTTP/1.1\r\nHost: x\r\n\r\n")[0][0][0] == 501
    assert wait_for(lambda: b"P\\x1b" in rr_a.log.read_bytes()), rr_a.log.read_bytes()[-2000:]
    log = rr_a.log.read_bytes()
    assert b"/x\\x1b[2J\\x00\\x7f\\xe9y 404" in log
    assert b"P\\x1b[2JATCH" in log and b" 501 " in log
    assert b"\x1b" not in log and b"\x00" not in log and b"\x7f" not in log


def test_head_timeout_is_its_own_option_and_bad_limits_refuse_to_start(mesh):
    proc = subprocess.run(mesh.rr("rr-a").argv() + ["--head-timeout", "0"], check=False, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2 and "--head-timeout" in proc.stderr
    rr = mesh.rr("rr-a", extra=["--head-timeout", "1", "--client-timeout", "10"]).start()
    try:
        with connect(rr) as sock:
            started = time.monotonic()
            sock.sendall(b"GET " + HEALTH + b" HTTP/1.1\r\n")
            answers, closed = read_all(sock, quiet=5)
        assert closed and time.monotonic() - started < 2.5
        assert_json_error(answers[0], 408, "timeout")
    finally:
        rr.stop()
