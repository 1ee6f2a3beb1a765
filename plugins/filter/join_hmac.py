# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters join_hmac and canonical_payload: controller-side claim signing (docs in the .yml sidecars)."""

from ansible.errors import AnsibleFilterError
from ansible_collections.boma.mesh.plugins.module_utils.sam import payload


def _spec(claim, name):
    if not isinstance(claim, dict):
        raise AnsibleFilterError("%s: expected a SAMEnrollmentClaim resource or its spec (a mapping)" % name)
    return claim["spec"] if isinstance(claim.get("spec"), dict) else claim


def join_hmac(claim, secret, base64=False):
    """Lowercase hex join HMAC of a claim (resource or spec), keyed with the join token."""
    try:
        key = payload.secret_key(secret if isinstance(secret, (bytes, str)) else str(secret), base64)
    except payload.SecretError as exc:
        # The message names the problem, never the value.
        raise AnsibleFilterError("join_hmac: join token unusable: %s" % exc) from None
    return payload.join_hmac(key, _spec(claim, "join_hmac"))


def canonical_payload(claim):
    """The exact text a claim's join HMAC signs."""
    return payload.canonical_payload(_spec(claim, "canonical_payload"))


class FilterModule:  # pylint: disable=too-few-public-methods
    def filters(self):
        return {"join_hmac": join_hmac, "canonical_payload": canonical_payload}
