#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Ansible modules keep DOCUMENTATION, EXAMPLES and RETURN above the imports:
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
module: sam_claim
short_description: Revoke a SAM enrollment claim or shorten its expiry through an RR's enrollment API
version_added: 0.1.0
description:
  - Administers one accepted C(SAMEnrollmentClaim) on an RR running C(samctl serve), with the admin token.
    The RR replicates the change to its peers.
  - Reads the RR's claim list first, so revoking a revoked claim or setting the expiry it already has changes
    nothing.
  - A revocation is permanent, and an expiry can only be moved earlier; the module fails on a claim the RR does
    not know, on O(state=present) for a revoked claim, and on an O(expires_at) later than the current expiry.
author:
  - boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.enroll_api
attributes:
  check_mode:
    support: full
    details: Reads the claim list and reports what would change; nothing is sent to the revoke or expiry paths.
  diff_mode:
    support: full
    details: The claim's C(revoked), C(revokedReason), C(expiresAt) and C(active) before and after.
  idempotent:
    support: full
    details:
      - Each run reads the claim from the RR's enrollment API (a remote service); revoking a revoked claim or setting
        the expiry the claim already has changes nothing.
      - Another RR of the set may still answer with the old claim until the change has been replicated to it.
  platform:
    platforms: posix
options:
  api_url:
    description:
      - The RR's enrollment API, as C(https://rr-a:8443).
      - Mutually exclusive with O(api_socket); one of them is required.
    type: str
  api_socket:
    description:
      - The unix socket of the RR's enrollment service on the managed host.
    type: path
  admin_token:
    description:
      - The RR's admin token. Never logged and never returned.
      - Mutually exclusive with O(admin_token_file); one of them is required.
    type: str
  admin_token_file:
    description:
      - Path of a file on the managed host holding the admin token (surrounding whitespace is trimmed).
    type: path
  name:
    description:
      - Name of the claim, as C(leaf-b) or C(SAMEnrollmentClaim/leaf-b).
    type: str
    required: true
  state:
    description:
      - V(revoked) revokes the claim (with O(reason)).
      - V(present) keeps the claim and, when O(expires_at) is given, shortens its expiry to that time.
    type: str
    choices: [present, revoked]
    default: present
  expires_at:
    description:
      - New expiry (RFC 3339) with O(state=present); not later than the claim's current expiry.
    type: str
  reason:
    description:
      - Reason recorded with a revocation.
    type: str
seealso:
  - module: boma.mesh.sam_enroll
"""

EXAMPLES = r"""
- name: Revoke a lost leaf's claim
  boma.mesh.sam_claim:
    api_url: https://rr-a.example.net:8443
    ca_file: /etc/boma/sam/ca.pem
    admin_token_file: /etc/boma/sam/admin-token
    name: leaf-b
    state: revoked
    reason: device lost

- name: Let a claim run out tonight
  boma.mesh.sam_claim:
    api_socket: /run/boma/sam.sock
    admin_token: "{{ vault_sam_admin_token }}"
    name: leaf-c
    expires_at: "2026-11-23T23:00:00Z"
"""

RETURN = r"""
claim:
  description:
    - The claim as the RR lists it (C(name), C(policy), C(leafID), C(generation), C(acceptedAt), C(expiresAt),
      C(revoked), C(revokedReason), C(active)), after the change.
  returned: success
  type: dict
  sample: {"name": "leaf-b", "revoked": true, "revokedReason": "device lost", "active": false}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.core import fields
from ansible_collections.boma.mesh.plugins.module_utils.sam.io import admin_client, enroll_client
from ansible_collections.boma.mesh.plugins.module_utils.sam.io.bearer import module_bearer

KIND = "SAMEnrollmentClaim"
DIFF_KEYS = ("revoked", "revokedReason", "expiresAt", "active")


class ClaimAdminError(Exception):
    """A refused change or an input problem; the message never holds the token."""


def admin_token(module):
    try:
        return module_bearer(module, "admin_token", "admin_token_file")
    except ValueError as exc:
        raise ClaimAdminError(str(exc)) from None


def plan(current, params):
    """(changed, expected claim after) for the desired state; ClaimAdminError when it cannot be reached."""
    ref = "%s/%s" % (KIND, current.get("name"))
    if params["state"] == "revoked":
        if current.get("revoked"):
            return False, current
        return True, dict(current, revoked=True, revokedReason=params["reason"], active=False)
    if params["expires_at"] is None:
        return False, current
    want = fields.parse_time(params["expires_at"])
    if want is None:
        raise ClaimAdminError("expires_at [format] %r is not an RFC 3339 timestamp" % params["expires_at"])
    if current.get("revoked"):
        raise ClaimAdminError("%s [claim-revoked] is revoked; a revocation cannot be undone" % ref)
    have = fields.parse_time(current.get("expiresAt"))
    if have == want:
        return False, current
    if have is not None and want > have:
        raise ClaimAdminError("%s expiresAt [expiry-extend] %s is later than the current expiry %s; an expiry can "
                              "only be shortened" % (ref, fields.format_time(want), current.get("expiresAt")))
    return True, dict(current, expiresAt=fields.format_time(want))


def run(module, result):
    params = module.params
    name = params["name"].strip()
    if name.startswith(KIND + "/"):
        name = name.split("/", 1)[1]
    endpoint = params["api_url"] if params["api_url"] is not None else "unix:" + params["api_socket"]
    conn = dict(timeout=params["timeout"], ca_file=params["ca_file"])
    token = admin_token(module)
    items = admin_client.list_claims(endpoint, token, **conn).get("items") or []
    current = next((i for i in items if isinstance(i, dict) and i.get("name") == name), None)
    if current is None:
        raise ClaimAdminError("name [unknown-claim] %s/%s is not known to %s" % (KIND, name, endpoint))
    changed, after = plan(current, params)
    if changed and not module.check_mode:
        if params["state"] == "revoked":
            admin_client.revoke(endpoint, token, name, params["reason"], **conn)
        else:
            answer = admin_client.set_expiry(endpoint, token, name, params["expires_at"], **conn)
            after = dict(after, expiresAt=answer.get("expiresAt", after["expiresAt"]))
    diff = {"before": {k: current.get(k) for k in DIFF_KEYS}, "after": {k: after.get(k) for k in DIFF_KEYS}}
    result.update(changed=changed, claim=after, diff=diff)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            api_url=dict(type="str"),
            api_socket=dict(type="path"),
            admin_token=dict(type="str", no_log=True),
            admin_token_file=dict(type="path", no_log=False),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "revoked"], default="present"),
            expires_at=dict(type="str"),
            reason=dict(type="str"),
            ca_file=dict(type="path"),
            timeout=dict(type="int", default=10),
        ),
        mutually_exclusive=[("api_url", "api_socket"), ("admin_token", "admin_token_file")],
        required_one_of=[("api_url", "api_socket"), ("admin_token", "admin_token_file")],
        supports_check_mode=True,
    )
    result = dict(changed=False)
    try:
        run(module, result)
    except (ClaimAdminError, enroll_client.EnrollError, ValueError) as exc:
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:  # never a traceback: it could quote module arguments
        module.fail_json(msg="internal error in sam_claim (%s); please report it" % type(exc).__name__, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
