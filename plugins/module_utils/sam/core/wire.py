# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Enrollment wire format (routerd's control API) and the response MAC that lets a leaf tell a real RR.

The response MAC is our addition: HMAC-SHA256 over the exact response body bytes, keyed with the
policy's join token, lowercase hex in the ``X-Boma-Response-MAC`` header.  Only a holder of the
join token can produce it, so an impostor RR that answers the leaf is refused.
"""

import hashlib
import hmac

API_PREFIX = "/api/control.routerd.net/v1alpha1"
CONTROL_API_VERSION = "control.routerd.net/v1alpha1"
CLAIM_API_VERSION = "mobility.routerd.net/v1alpha1"
RESPONSE_MAC_HEADER = "X-Boma-Response-MAC"
MAX_BODY = 64 * 1024


def submit_path():
    return API_PREFIX + "/sam-enrollment-claims"


def topology_path(rrset_name, claim_name):
    return "%s/sam-enrollment-topologies/%s?claim=SAMEnrollmentClaim/%s" % (API_PREFIX, rrset_name, claim_name)


def revoke_path(claim_name):
    return "%s/sam-enrollment-claims/%s/revoke" % (API_PREFIX, claim_name)


def expiry_path(claim_name):
    return "%s/sam-enrollment-claims/%s/expiry" % (API_PREFIX, claim_name)


def claims_path(retiring=False):
    return API_PREFIX + "/sam-enrollment-claims" + ("?retiring=true" if retiring else "")


def audit_path(limit=100):
    return "%s/sam-enrollment-audit?limit=%d" % (API_PREFIX, limit)


def records_path():
    return API_PREFIX + "/sam-enrollment-records"


def health_path():
    return API_PREFIX + "/health"


def error_body(code, rule, message, findings=()):
    """The JSON error document every non-2xx answer carries (never a secret, never a traceback)."""
    return {"error": {"code": code, "rule": rule, "message": message, "findings": list(findings)}}


def submit_request(name, spec):
    """Body of a claim submission, as routerd's SAMEnrollmentClaimSubmitRequest."""
    return {"apiVersion": CONTROL_API_VERSION, "kind": "SAMEnrollmentClaimSubmitRequest",
            "claim": {"apiVersion": CLAIM_API_VERSION, "kind": "SAMEnrollmentClaim", "metadata": {"name": name},
                      "spec": spec}}


def response_mac(key, body):
    """Lowercase hex HMAC-SHA256 of the response body bytes keyed with the join token bytes."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_response_mac(key, body, mac):
    if not isinstance(mac, str):
        return False
    return hmac.compare_digest(response_mac(key, body).encode("ascii"), mac.strip().encode("utf-8", "replace"))
