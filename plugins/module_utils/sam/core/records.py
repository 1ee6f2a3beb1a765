# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RR's accepted claim records as SAMEnrollmentClaim documents (pure).

A record is the claim store's row (rr/store.py; ``GET .../sam-enrollment-records`` lists them): name, policy,
nonce, spec as submitted, generation, acceptedAt and the admin-owned ``expiresAt`` / ``revoked``, which
override the submitted spec.  The service's desired state (Registry.desired_resources) and the sam_rr role
(filter ``boma.mesh.record_claims``) both turn records into claims here, so the state the role applies is the
one the service applies, and the two writers converge instead of fighting.
"""

from .wire import CLAIM_API_VERSION

CLAIM_KIND = "SAMEnrollmentClaim"
ADMIN_FIELDS = ("expiresAt", "revoked")


def overlay(record):
    """The record's claim spec with the admin-owned fields the RR holds."""
    spec = dict(record["spec"])
    for key in ADMIN_FIELDS:
        spec.pop(key, None)
    if record.get("expiresAt"):
        spec["expiresAt"] = record["expiresAt"]
    if record.get("revoked"):
        spec["revoked"] = True
    return spec


def record_claims(records):
    """SAMEnrollmentClaim resources of the records, in their order; revoked ones are left out (never admitted)."""
    return [{"apiVersion": CLAIM_API_VERSION, "kind": CLAIM_KIND, "metadata": {"name": record["name"]},
             "spec": overlay(record)} for record in records if not record.get("revoked")]
