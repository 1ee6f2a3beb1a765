# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP edge's limits (issue 17, class 5): what http.server leaves to a trusting network, bounded here.

http.server times out each read, not the request, so a client trickling header lines held a connection slot
for as long as it liked, with up to 100 header lines of 64 KiB each; it took the first of several
Content-Length values, and whatever int() accepts; it answered some errors in HTML and left unread bodies to
be parsed as the next request.  Here a request head has one deadline and one byte budget, slots are shared
per source address and taken back from idle keep-alive connections, a body is framed by exactly one plain
Content-Length, every answer is JSON and client bytes reach the log escaped.  docs/api.md, "Request limits".
"""

import ipaddress
import json
import re
import socket
import threading
import time

from ..core import wire
from ..core.fields import log_text, unicode_problem
from ..core.registry import Rejection
from .http_head import MAX_REQUEST_LINE, HeadError, Headers, Reader, http_version
from .service import LOG

MAX_DEPTH = 64                   # JSON nesting; real documents use under 10
DRAIN_LIMIT = wire.MAX_BODY      # an unwanted body up to this size is read and dropped, a larger one closes
LINGER, LINGER_BYTES = 1.0, 1024 * 1024
LENGTH = re.compile(r"[0-9]{1,10}")
RULES = {400: "malformed-request", 408: "timeout", 414: "request-line-too-long", 431: "head-too-large",
         501: "not-implemented", 505: "http-version"}


def content_length(headers):
    """The body length a head declares: None without Content-Length; Rejection 400 unless one plain decimal."""
    values = headers.get_all("Content-Length") or []
    if not values:
        return None
    if len(values) > 1:
        raise Rejection(400, "malformed-request", "more than one Content-Length header")
    text = values[0].strip(" \t")
    if not LENGTH.fullmatch(text):
        raise Rejection(400, "malformed-request", "Content-Length must be 1 to 10 digits, not %r" % values[0][:40])
    return int(text)


def nesting(value):
    """How deep lists and objects nest in a decoded JSON value (counted without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): the only way a lone one gets into a decoded string.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_json(data):
    """A request body as JSON, or Rejection 400 malformed-json, whatever is wrong with it."""
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Rejection(400, "malformed-json", "body is not UTF-8 (byte %d)" % exc.start) from None
    except RecursionError:
        raise Rejection(400, "malformed-json", "body nests deeper than %d levels" % MAX_DEPTH) from None
    except ValueError as exc:
        raise Rejection(400, "malformed-json", "body is not JSON: %s" % exc) from None
    # Both walks run only when the raw bytes allow the problem (C-speed scans): a claim has a handful of brackets
    # and no surrogate escape, so a normal submission pays nothing for them.
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and nesting(value) > MAX_DEPTH:
        raise Rejection(400, "malformed-json", "body nests deeper than %d levels" % MAX_DEPTH)
    if _SURROGATE_ESCAPE.search(data):
        problem = unicode_problem(value)
        if problem:
            raise Rejection(400, "malformed-json", problem)
    return value


def source_key(address):
    """Whom a TCP connection counts against: the IPv4 address, or the IPv6 /64; None for the unix socket."""
    if not isinstance(address, tuple):
        return None
    try:
        ip = ipaddress.ip_address(address[0].split("%")[0])
    except ValueError:
        return address[0]
    if ip.version == 6:
        return str(ip.ipv4_mapped or ipaddress.ip_network((ip, 64), strict=False))
    return str(ip)


def linger(sock, seconds=LINGER, limit=LINGER_BYTES):
    """Half-close, then drop what the client still sends, bounded: a close with unread bytes resets the
    connection, and the client could lose the answer it has not read yet."""
    deadline = time.monotonic() + seconds
    try:
        socket.socket.shutdown(sock, socket.SHUT_WR)
        while limit > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            data = socket.socket.recv(sock, 65536)
            if not data:
                return
            limit -= len(data)
    except OSError:
        pass


class Ticket:
    """One admitted connection's slot."""

    __slots__ = ("key", "sock", "released")

    def __init__(self, key, sock):
        self.key, self.sock, self.released = key, sock, False


class Slots:
    """A listener's connection slots: ``total`` in all, ``per_source`` for one source address (source_key), and
    a keep-alive connection waiting idle gives its slot to a newcomer when fewer than ``reserve`` are free."""

    def __init__(self, total, per_source=None):
        self.total = total
        self.per_source = per_source or max(4, total // 8)
        self.reserve = max(1, total // 8)
        self.lock = threading.Lock()
        self.active, self.sources, self.idle = 0, {}, {}   # idle: Ticket -> None, oldest first

    def admit(self, key, sock):
        """A Ticket for a new connection, or why it gets 503."""
        with self.lock:
            if key is not None and self.sources.get(key, 0) >= self.per_source and not self._evict(1, key):
                return "too many connections from this address (limit %d); retry later" % self.per_source
            if self.total - self.active <= self.reserve:
                self._evict(self.reserve - (self.total - self.active) + 1)
            if self.active >= self.total:
                return "too many connections; retry later"
            self.active += 1
            if key is not None:
                self.sources[key] = self.sources.get(key, 0) + 1
            return Ticket(key, sock)

    def release(self, ticket):
        with self.lock:
            self.idle.pop(ticket, None)
            self._release(ticket)

    def wait_idle(self, ticket, reader, timeout):
        """Wait for a keep-alive connection's next request: False at the timeout or when its slot was taken."""
        if reader.pending():
            return True
        with self.lock:
            if ticket.released:
                return False
            self.idle[ticket] = None
        try:
            # Block in recv itself (one syscall, no poll): an eviction's shutdown wakes it like a poll.
            ticket.sock.settimeout(timeout)
            ready = reader.fill() or reader.eof   # EOF is an answer too: the head read then ends quietly
        except OSError:     # the timeout (TimeoutError is an OSError) or a reset
            ready = False
        finally:
            with self.lock:
                self.idle.pop(ticket, None)
                evicted = ticket.released
        return ready and not evicted

    def _release(self, ticket):
        if ticket.released:
            return
        ticket.released = True
        self.active -= 1
        if ticket.key is not None:
            self.sources[ticket.key] -= 1
            if not self.sources[ticket.key]:
                del self.sources[ticket.key]

    def _evict(self, count, key=None):
        chosen = [t for t in self.idle if key is None or t.key == key][:count]
        for ticket in chosen:
            del self.idle[ticket]
            self._release(ticket)
            try:
                socket.socket.shutdown(ticket.sock, socket.SHUT_RDWR)   # wakes its handler's poll
            except OSError:
                pass
        return len(chosen)


class EdgeHandler:
    """BaseHTTPRequestHandler's head reading and error answers, within the limits above (a mix-in)."""

    def __init__(self, request, client_address, server, ticket=None):
        self.ticket, self.requests, self.body_left, self.settled = ticket, 0, None, True
        self.accepted = time.monotonic()
        super().__init__(request, client_address, server)

    def setup(self):
        super().setup()
        self.rfile.close()
        self.rfile = Reader(self.connection)

    def finish(self):
        super().finish()
        if not self.settled and not self.rfile.eof:
            linger(self.connection)

    def handle_one_request(self):
        reader, server = self.rfile, self.server
        if self.requests:
            if self.ticket is None or not server.slots.wait_idle(self.ticket, reader, server.client_timeout):
                self.close_connection = True
                return
        self.requests += 1
        started = time.monotonic() if self.requests > 1 else self.accepted
        self.close_connection, self.command, self.path, self.requestline = True, None, None, ""
        self.request_version, self.body_left, self.settled = "HTTP/1.0", None, False
        reader.begin_head(started + server.head_timeout)
        try:
            if self.read_head():
                self.dispatch()
        except HeadError as exc:
            self.close_connection = True
            if exc.status is not None:
                self.connection.settimeout(server.client_timeout)
                self.send_error(exc.status, exc.message)
        except TimeoutError:
            self.close_connection = True
            self.settled = reader.in_head and not reader.head_started()
            if not self.settled and reader.in_head:
                self.connection.settimeout(server.client_timeout)
                self.send_error(408, "the request head did not arrive within %gs" % server.head_timeout)

    def read_head(self):
        """Request line and headers, read through the Reader and parsed by parse_request below; False: done."""
        self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if not self.raw_requestline:
            return False
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            raise HeadError(414, "the request line is over %d bytes" % MAX_REQUEST_LINE)
        if not self.raw_requestline.endswith(b"\n"):
            raise HeadError(None)
        if not self.parse_request():
            return False
        self.rfile.in_head = False
        self.connection.settimeout(self.server.client_timeout)
        return True

    def parse_request(self):
        """http.server's parse_request: the same request-line rules, with the header block taken from the
        Reader's checked lines (http_head.Headers) instead of the email package; a bad head raises HeadError."""
        self.command, self.request_version, self.close_connection = None, self.default_request_version, True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            number = http_version(words[-1])
            if number is None:
                raise HeadError(400, "bad request version %r" % words[-1][:40])
            if number >= (2, 0):
                raise HeadError(505, "HTTP version %s is not supported" % words[-1][5:])
            self.close_connection = number < (1, 1) or self.protocol_version < "HTTP/1.1"
            self.request_version = words[-1]
        if not 2 <= len(words) <= 3:
            raise HeadError(400, "bad request line %r" % self.requestline[:80])
        self.command, self.path = words[0], words[1]
        if len(words) == 2:
            self.close_connection = True
            if self.command != "GET":
                raise HeadError(400, "bad HTTP/0.9 request type %r" % self.command[:40])
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")   # gh-87389: //host would read as an absolute URI
        self.headers = Headers(self.rfile.read_fields())
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        if ((self.headers.get("Expect") or "").lower() == "100-continue" and self.protocol_version >= "HTTP/1.1"
                and self.request_version >= "HTTP/1.1"):
            return self.handle_expect_100()
        return True

    def dispatch(self):
        method = getattr(self, "do_" + self.command, None)
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "the request line needs an HTTP version")
        elif method is None:
            self.send_error(501, "method %s is not supported" % self.command[:40])
        else:
            method()
            self.wfile.flush()
            self.settled = not self.body_left and self.headers.get("Transfer-Encoding") is None

    def send_error(self, code, message=None, explain=None):
        """http.server's error answers (400, 414, 431, 501, 505, ...) as the API's JSON error document."""
        self.close_connection, code = True, int(code)
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.0"   # an HTTP/0.9 answer would have no status line
        text = (message or self.responses.get(code, ("error",))[0])[:200]
        self.send_json(code, wire.error_body(code, RULES.get(code, "malformed-request"), text), None)
        LOG.info("%s %s %d rule=%s", log_text(self.command or "-"), log_text(self.path or self.requestline or "-"),
                 code, RULES.get(code, "malformed-request"))

    def frame_body(self):
        """Check the body framing of any request: one strict Content-Length; Transfer-Encoding closes after."""
        self.body_left = None
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
        try:
            self.body_left = content_length(self.headers)
        except Rejection:
            self.close_connection = True
            raise

    def settle_body(self):
        """Before an answer: read and drop a small unread body, or close, so it is never parsed as a request."""
        if self.close_connection or not self.body_left:
            return
        if self.body_left > DRAIN_LIMIT:
            self.close_connection = True
            return
        try:
            self.read_exactly(self.body_left)
            self.body_left = 0
        except (OSError, Rejection):
            self.close_connection = True
