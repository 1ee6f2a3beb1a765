# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A request head, read within one deadline and one byte budget, and parsed strictly (issue 17, class 5).

The Reader replaces http.server's rfile, so no read of a head outlives the head's deadline.  Each header line is
checked as it arrives (RFC 9110 ``name: value``; no folding, bare CR or NUL), which leaves nothing for
http.client.parse_headers to decide: it ran the whole email package over the block, the largest fixed cost of
a request, and accepted lines this server refuses.  Headers is built from the checked lines instead.
"""

import re
import time

HEAD_BUDGET = 16 * 1024          # request line and header lines together
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_LINES = 64
# RFC 9110 field-name ":" value; no obs-fold, no bare CR (the email parser splits on it) and no NUL.
FIELD_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n\x00]*\r?\n")
VERSION = re.compile(r"HTTP/([0-9]{1,10})\.([0-9]{1,10})")


class HeadError(Exception):
    """A request head over its limits (status None: the client went away mid-head; close without an answer)."""

    def __init__(self, status, message=None):
        super().__init__(message)
        self.status, self.message = status, message


class Reader:
    """The connection's read side in place of http.server's rfile: every read of a head, request line and
    header lines alike, gets only what is left of the head's deadline and byte budget."""

    def __init__(self, sock):
        self.sock, self.buf, self.eof = sock, bytearray(), False
        self.deadline, self.budget, self.lines, self.in_head = None, HEAD_BUDGET, 0, False

    def pending(self):
        return bool(self.buf) or bool(getattr(self.sock, "pending", lambda: 0)())

    def begin_head(self, deadline):
        self.deadline, self.budget, self.lines, self.in_head = deadline, HEAD_BUDGET, 0, True

    def head_started(self):
        return self.budget < HEAD_BUDGET or bool(self.buf)

    def fill(self):
        """One recv into the buffer, outside a head (its caller set the timeout); False at EOF."""
        self.in_head = False
        return self._fill()

    def _fill(self):
        if self.in_head:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def readline(self, limit=-1):
        cap = self.budget + 1 if limit < 0 else min(limit, self.budget + 1)
        end = self.buf.find(b"\n", 0, cap)
        while end < 0 and len(self.buf) < cap and self._fill():
            end = self.buf.find(b"\n", 0, cap)
        size = end + 1 if end >= 0 else min(cap, len(self.buf))
        line = bytes(self.buf[:size])
        del self.buf[:size]
        self.budget -= size
        self.lines += 1
        if self.budget < 0:
            raise HeadError(431, "the request head is over %d bytes" % HEAD_BUDGET)
        if self.lines > 1 and line not in (b"\r\n", b"\n"):
            if not line.endswith(b"\n"):
                raise HeadError(None)
            if self.lines > MAX_HEADER_LINES + 1:
                raise HeadError(431, "more than %d header lines" % MAX_HEADER_LINES)
            if not FIELD_LINE.fullmatch(line):
                raise HeadError(400, "header line %d is not 'name: value' (no folding, CR or NUL)" % (self.lines - 1))
        return line

    def read1(self, size=-1):
        if not self.buf and not self._fill():
            return b""
        size = len(self.buf) if size < 0 else size
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def close(self):
        pass

    def read_fields(self):
        """The header lines up to the blank line that ends the head, each already checked by readline."""
        fields = []
        line = self.readline()
        while line not in (b"\r\n", b"\n"):
            fields.append(line)
            line = self.readline()
        return fields


class Headers:
    """A request's header fields: the part of http.client.HTTPMessage this server reads (get, get_all, in).

    Names match case-insensitively; a value loses the optional whitespace around it (RFC 9110 5.5)."""

    __slots__ = ("_fields",)

    def __init__(self, lines=()):
        fields = {}
        for line in lines:
            name, value = line.decode("iso-8859-1").split(":", 1)   # FIELD_LINE: there is a colon
            fields.setdefault(name.lower(), []).append(value.strip(" \t\r\n"))
        self._fields = fields

    def get(self, name, default=None):
        values = self._fields.get(name.lower())
        return values[0] if values else default

    def get_all(self, name, default=None):
        return list(self._fields.get(name.lower(), ())) or default

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name):
        return name.lower() in self._fields

    def __len__(self):
        return sum(len(values) for values in self._fields.values())


def http_version(text):
    """(major, minor) of an ``HTTP/x.y`` request-line version, or None: http.server's rule (two plain numbers of
    at most 10 digits, leading zeros ignored)."""
    match = VERSION.fullmatch(text)
    return (int(match.group(1)), int(match.group(2))) if match else None
