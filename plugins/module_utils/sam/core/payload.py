# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canonical join payload and join HMAC, byte-compatible with routerd.

The payload is UTF-8 ``key=value`` lines joined by ``\\n`` with no trailing
newline.  Scalars are whitespace-trimmed; list items are sorted as strings
(byte order, like Go's ``sort.Strings``) and joined by ``,`` without being
trimmed.  ``directMesh=true`` appears after ``endpoint`` only when true, so
claims without it sign exactly what older routerd versions signed.
``joinHMAC``, ``expiresAt`` and ``revoked`` are admin-owned and never signed.
"""

import base64
import binascii
import datetime
import hashlib
import hmac
import re

HEX_RE = re.compile(r"^[0-9a-f]{64}$")
# Go's unicode.IsSpace set, which strings.TrimSpace uses; Python's str.strip()
# also strips U+001C..U+001F, which would change the signed bytes.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000"


def go_trim(text):
    """strings.TrimSpace for str; bytes are trimmed as Go trims their UTF-8 text."""
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", "surrogateescape").strip(GO_SPACE).encode("utf-8", "surrogateescape")
    return text.strip(GO_SPACE)


class SecretError(ValueError):
    """A join token could not be turned into key bytes (the message never holds the value)."""


def _scalar(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return rfc3339(value)
    return go_trim(str(value))


def rfc3339(value):
    """A datetime a YAML loader made of an unquoted timestamp, written back as RFC 3339."""
    text = value.isoformat().replace("+00:00", "Z")
    return text if value.tzinfo is not None else text + "Z"


def _sorted_list(value):
    if value is None:
        return ""
    if not isinstance(value, (list, tuple)):
        value = [value]
    items = ["" if v is None else str(v) for v in value]
    # Python sorts str by code point; for the ASCII addresses routerd signs
    # this equals Go's byte-wise sort.Strings.  Sort UTF-8 bytes to stay exact.
    return ",".join(sorted(items, key=lambda s: s.encode("utf-8")))


def _uint(value):
    """Render an integer field as routerd does: decimal, '0' when unset."""
    if value is None or value == "":
        return "0"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    text = go_trim(str(value))
    return str(int(text)) if re.fullmatch(r"[+-]?\d+", text) else text


def _get(spec, dotted):
    node = spec
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


SCALAR_HEAD = ("policyRef", "rrSetRef", "leafID", "joinAudience", "joinNonce", "joinTimestamp",
               "tunnelAddress", "endpoint")


def canonical_payload(spec):
    """Return the canonical payload (str) of a SAMEnrollmentClaim spec mapping."""
    spec = spec if isinstance(spec, dict) else {}
    lines = ["%s=%s" % (key, _scalar(spec.get(key))) for key in SCALAR_HEAD]
    if spec.get("directMesh") is True:
        lines.append("directMesh=true")
    lines.extend([
        "mobility.ownedAddresses=" + _sorted_list(_get(spec, "mobility.ownedAddresses")),
        "bgp.asn=" + _uint(_get(spec, "bgp.asn")),
        "bgp.routerID=" + _scalar(_get(spec, "bgp.routerID")),
        "wireGuard.publicKey=" + _scalar(_get(spec, "wireGuard.publicKey")),
        "wireGuard.endpoint=" + _scalar(_get(spec, "wireGuard.endpoint")),
        "wireGuard.allowedIPs=" + _sorted_list(_get(spec, "wireGuard.allowedIPs")),
        "wireGuard.persistentKeepalive=" + _uint(_get(spec, "wireGuard.persistentKeepalive")),
    ])
    return "\n".join(lines)


def secret_key(raw, is_base64=False):
    """Key bytes from a token value (file bytes or env string): trimmed, optionally base64.

    Raises SecretError without quoting the value.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, (bytes, bytearray)):
        raise SecretError("join token must be text or bytes")
    value = go_trim(raw)
    if is_base64:
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SecretError("join token is not valid standard base64") from None
    if not value:
        raise SecretError("join token is empty")
    return value


def join_hmac(key, spec, payload=None):
    """Lowercase hex HMAC-SHA256 of the claim's canonical payload (``payload`` if already built) keyed with ``key``."""
    text = canonical_payload(spec) if payload is None else payload
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_join_hmac(key, spec, payload=None):
    """Constant-time check of ``spec['joinHMAC']`` (trimmed) against the computed HMAC."""
    given = _scalar(spec.get("joinHMAC") if isinstance(spec, dict) else None)
    return hmac.compare_digest(join_hmac(key, spec, payload).encode("ascii"), given.encode("utf-8", "replace"))


def is_hmac_hex(value):
    return isinstance(value, str) and bool(HEX_RE.match(go_trim(value)))
