# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed, never-raising access to untrusted spec mappings.

Every wrong type or unparsable value becomes a Finding naming the field path;
the caller gets ``None`` (or an empty list) and carries on, so one bad field
never hides the others.
"""

import datetime
import ipaddress
import json
import re

from .findings import Finding

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


LOG_LIMIT = 200


def log_text(value, limit=LOG_LIMIT):
    """``value`` for a log line: backslash escapes for ``\\`` and everything but printable ASCII, cut at ``limit``.

    Whatever a leaf or a peer sent (a path, a claim name, a rule's message) goes through this before a log line,
    an audit line or a stored message, so nothing it holds can forge a line or a terminal escape."""
    text = value if isinstance(value, str) else str(value)
    escaped = text[:limit].encode("unicode_escape").decode("ascii")
    return escaped + ("..." if len(text) > limit else "")


def parse_duration(text):
    """Go time.ParseDuration subset (no sign): '24h', '1h30m', '1.5h', '300ms' -> timedelta or None."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text == "0":
        return datetime.timedelta(0)
    pos, seconds = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            return None
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        return None
    return datetime.timedelta(seconds=seconds)


def parse_time(text):
    """RFC 3339 (with optional fraction) -> aware datetime, or None."""
    if isinstance(text, datetime.datetime):
        return text if text.tzinfo else None
    if not isinstance(text, str):
        return None
    match = _TIME_RE.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or ""
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    zone = match.group(8)
    if zone in ("Z", "z"):
        tz = datetime.timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None


def format_time(value):
    """RFC 3339 in UTC, whole seconds (``...Z``); a naive value is local time, as astimezone takes it."""
    if value.tzinfo is not datetime.timezone.utc:
        value = value.astimezone(datetime.timezone.utc)
    # %-formatting, not strftime: this runs several times per submission, and strftime costs 3 times as much.
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (value.year, value.month, value.day, value.hour, value.minute,
                                               value.second)


def _type_name(value):
    return {dict: "a mapping", list: "a list", bool: "a boolean", int: "an integer",
            float: "a number", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


class Reader:
    """Reads one resource's spec; appends findings to ``findings``."""

    def __init__(self, ref, spec, findings, base="spec"):
        self.ref = ref
        self.spec = spec if isinstance(spec, dict) else {}
        self.findings = findings
        self.base = base

    def at(self, path):
        return self.base + "." + path

    def error(self, path, rule, message):
        self.findings.append(Finding(self.ref, path, rule, message))

    def raw(self, path):
        node = self.spec
        walked = self.base
        for part in path.split("."):
            if node is None:
                return None
            if not isinstance(node, dict):
                self.error(walked, "type", "must be a mapping, got %s" % _type_name(node))
                return None
            node = node.get(part)
            walked += "." + part
        return node

    def _missing(self, path, value, required):
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.error(self.at(path), "required", "is required")
            return True
        return False

    def str(self, path, required=False):
        value = self.raw(path)
        if self._missing(path, value, required):
            return None
        if isinstance(value, (dict, list, bool)):
            self.error(self.at(path), "type", "must be a string, got %s" % _type_name(value))
            return None
        if isinstance(value, datetime.datetime):
            return value.isoformat()
        return str(value).strip()

    def int(self, path, required=False, minimum=None, maximum=None):
        value = self.raw(path)
        if self._missing(path, value, required):
            return None
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(self.at(path), "type", "must be an integer, got %s" % _type_name(value))
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.error(self.at(path), "range", "%d is outside %s..%s" % (value, minimum, maximum))
            return None
        return value

    def bool(self, path, default=False):
        value = self.raw(path)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(self.at(path), "type", "must be true or false, got %s" % _type_name(value))
            return default
        return value

    def list(self, path):
        value = self.raw(path)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(self.at(path), "type", "must be a list, got %s" % _type_name(value))
            return []
        return value

    def str_list(self, path):
        out = []
        for index, item in enumerate(self.list(path)):
            if isinstance(item, (dict, list, bool)) or item is None:
                self.error("%s[%d]" % (self.at(path), index), "type", "must be a string, got %s" % _type_name(item))
                continue
            out.append(str(item))
        return out

    def prefixes(self, path):
        """A list of IPv4 prefixes; bad items become findings and are dropped."""
        out = []
        for index, item in enumerate(self.str_list(path)):
            net = parse_prefix(item)
            if net is None:
                self.error("%s[%d]" % (self.at(path), index), "ipv4-prefix", "%r is not an IPv4 prefix" % item)
            else:
                out.append(net)
        return out

    def address(self, path, required=False):
        text = self.str(path, required)
        if text is None:
            return None
        addr = parse_address(text)
        if addr is None:
            self.error(self.at(path), "ipv4-address", "%r is not an IPv4 address" % text)
        return addr

    def duration(self, path):
        text = self.str(path)
        if text is None:
            return None
        value = parse_duration(text)
        if value is None:
            self.error(self.at(path), "duration", "%r is not a duration such as 24h or 90m" % text)
        return value

    def time(self, path, required=False):
        text = self.str(path, required)
        if text is None:
            return None
        value = parse_time(text)
        if value is None:
            self.error(self.at(path), "rfc3339", "%r is not an RFC 3339 timestamp" % text)
        return value


def _v4_int(text):
    """Dotted quad -> int, with ipaddress's rules (no leading zeros), or None; ~5x faster than IPv4Address(str)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part.isdigit() or not part.isascii() or len(part) > 3 or (part[0] == "0" and len(part) > 1):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = (value << 8) | octet
    return value


def parse_prefix(text):
    text = str(text).strip()
    addr, sep, length = text.partition("/")
    number = _v4_int(addr)
    if number is not None and (not sep or (length.isdigit() and length.isascii() and int(length) <= 32)):
        return ipaddress.IPv4Network((number, int(length) if sep else 32), strict=False)
    return None


def parse_address(text):
    number = _v4_int(str(text).strip())
    return ipaddress.IPv4Address(number) if number is not None else None


def parse_host_prefix(text):
    """'10.77.60.5/32' or '10.77.60.5' -> IPv4Network with prefix length kept, or None."""
    text = str(text).strip()
    if "/" not in text:
        addr = parse_address(text)
        return ipaddress.IPv4Network((addr, 32)) if addr is not None else None
    return parse_prefix(text)


def endpoint_host(text):
    """Host of 'a.b.c.d', 'a.b.c.d:port', '[a.b.c.d]:port' or 'a.b.c.d/len' -> IPv4Address or None."""
    text = str(text).strip()
    if "/" in text:
        net = parse_host_prefix(text)
        return parse_address(text.partition("/")[0]) if net is not None else None
    if text.count(":") == 1:
        text, port = text.split(":")
        text = text.strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536:
            return None
    return parse_address(text)


def unicode_problem(value, path=""):
    """'<path>: ...' for the first string (or key) with a lone surrogate in a JSON value, else None.

    JSON may spell one as "\\ud800"; Python decodes it, but it cannot be encoded to UTF-8 again, so it would
    fail the HMAC, the store or a log line far from the request.
    """
    if not path:
        # Fast path (C): almost every document is clean; only a dirty one is walked to name the field.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
            return None
        except UnicodeEncodeError:
            pass
        except (TypeError, ValueError):
            pass   # not JSON data (a caller's own value): walk it
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "%s: holds a lone UTF-16 surrogate, which is not text" % (path or "body")
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, int):
            where = "%s[%d]" % (path, key)
        else:
            where = (path + "." if path else "") + key.encode("utf-8", "backslashreplace").decode("ascii", "replace")
        problem = (unicode_problem(key, where) if isinstance(key, str) else None) or unicode_problem(item, where)
        if problem:
            return problem
    return None
