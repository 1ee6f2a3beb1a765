# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A policy's join tokens as key material (pure): which token signed a claim, and whether it is still accepted.

The validator's ``tokens`` mapping gives, per policy, either key bytes (one token: routerd's joinTokenFrom
or an override), a string saying why the token is unavailable, or a list of ``JoinKey`` (spec.joinTokens,
in the policy's order).  A rotation lists the next token next to the current one; the one that is being
retired gets a ``notAfter``, after which nothing signed with it is accepted or stays admitted.
"""

from dataclasses import dataclass

from .model import DEFAULT_TOKEN_ID
from .payload import canonical_payload, verify_join_hmac


@dataclass(frozen=True)
class JoinKey:
    id: str
    key: object           # bytes, or a string saying why the token is unavailable
    not_after: object = None

    @property
    def usable(self):
        return isinstance(self.key, (bytes, bytearray))

    def expired(self, now):
        return self.not_after is not None and now is not None and now >= self.not_after


def keys_of(value):
    """The ``tokens`` value of one policy as a list of JoinKey (empty: no token configured)."""
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray, str)):
        return [JoinKey(DEFAULT_TOKEN_ID, bytes(value) if not isinstance(value, str) else value)]
    return list(value)


def signer(keys, spec, payload=None):
    """The usable JoinKey whose HMAC matches the claim spec, whatever its notAfter; None when none does.

    The canonical payload is built once for all the keys (``payload`` when the caller has it already).
    """
    for key in keys:
        if key.usable:
            payload = canonical_payload(spec) if payload is None else payload
            if verify_join_hmac(bytes(key.key), spec, payload):
                return key
    return None


def unavailable(keys):
    """'id: reason' of every token that could not be read (names and files only, never a value)."""
    return ["%s: %s" % (key.id, key.key) for key in keys if not key.usable]


def describe(keys):
    """'a, b (not after 2027-01-15T00:00:00Z)' for messages."""
    return ", ".join(key.id + (" (not after %s)" % key.not_after.isoformat() if key.not_after else "")
                     for key in keys)
