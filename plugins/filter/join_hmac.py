# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters boma.mesh.join_hmac and boma.mesh.canonical_payload (documented in join_hmac.yml, canonical_payload.yml)."""

from __future__ import annotations

import datetime

from ansible.errors import AnsibleFilterError
from ansible_collections.boma.mesh.plugins.module_utils.sam.core import payload

KIND = "SAMEnrollmentClaim"
RESOURCE_KEYS = ("kind", "metadata", "apiVersion")
TIME_FIELDS = ("joinTimestamp", "expiresAt")


def _spec(claim, filter_name):
    """The spec of a claim resource or a bare claim spec; errors name the field and rule."""
    if not isinstance(claim, dict):
        raise AnsibleFilterError("%s: input [type] must be a SAMEnrollmentClaim resource or spec mapping, got %s"
                                 % (filter_name, type(claim).__name__))
    spec = claim
    if any(key in claim for key in RESOURCE_KEYS):
        kind = claim.get("kind")
        if kind is not None and kind != KIND:
            raise AnsibleFilterError("%s: kind [kind] must be %s, got %r" % (filter_name, KIND, kind))
        spec = claim.get("spec")
        if not isinstance(spec, dict):
            raise AnsibleFilterError("%s: spec [%s] a claim resource needs a spec mapping"
                                     % (filter_name, "required" if spec is None else "type"))
    for key in TIME_FIELDS:
        # A datetime (unquoted YAML timestamp) is signed as RFC 3339 by the core, as samctl does; a bare date is not.
        value = spec.get(key)
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            raise AnsibleFilterError("%s: spec.%s [rfc3339] YAML read it as a date, not an RFC 3339 timestamp"
                                     % (filter_name, key))
    for key in payload.SCALAR_HEAD:
        if isinstance(spec.get(key), (dict, list)):
            raise AnsibleFilterError("%s: spec.%s [type] must be a string, got %s"
                                     % (filter_name, key, type(spec[key]).__name__))
    return spec


def _key(secret, is_base64):
    if not isinstance(secret, (str, bytes)) and type(secret).__name__ == "EncryptedString":
        secret = str(secret)  # a vaulted variable: decrypt on use
    if not isinstance(secret, (str, bytes)):
        raise AnsibleFilterError("join_hmac: secret [type] must be a string, got %s" % type(secret).__name__)
    try:
        return payload.secret_key(secret, bool(is_base64))
    except payload.SecretError as exc:
        raise AnsibleFilterError("join_hmac: secret [secret] %s" % exc) from None


def join_hmac(claim, secret, base64=False):
    """Lowercase hex HMAC-SHA256 of the claim's canonical payload."""
    spec = _spec(claim, "join_hmac")
    return payload.join_hmac(_key(secret, base64), spec)


def canonical_payload(claim):
    """The exact canonical payload routerd signs for the claim."""
    return payload.canonical_payload(_spec(claim, "canonical_payload"))


class FilterModule:
    """SAM enrollment claim filters."""

    def filters(self):
        return {"join_hmac": join_hmac, "canonical_payload": canonical_payload}
