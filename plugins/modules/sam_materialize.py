#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402

DOCUMENTATION = r"""
module: sam_materialize
short_description: Desired tunnels, routes, BGP and WireGuard state of one SAM node (rendered, no host change)
version_added: 0.1.0
description:
  - Validates the document set like M(boma.mesh.sam_validate), then computes the node's desired state.
  - "Leaf: per RR member one TunnelInterface (ipip, gre, or fou with encap ports), one endpoint IPv4Route and one
    BGPPeer to the RR's tunnel address; with C(encryption: wireguard) also one WireGuardPeer per RR."
  - "RR: one TunnelInterface and IPv4Route per admitted claim of each transport profile, BGPPeers only when
    C(generatePeers) is not false, one BGPDynamicPeer (listen ranges, peer group, admitted claims), and
    WireGuardPeers only for claims admitted through a WireGuard profile."
  - "For a leaf, its own SAMEnrollmentClaim may be an intent without C(joinNonce), C(joinTimestamp) and C(joinHMAC)
    (they are filled when the leaf agent signs it); an RR's claims must be signed."
  - The result feeds M(boma.mesh.sam_bgp) and the data-plane modules.
author: boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.read_only
attributes:
  idempotent:
    support: full
    details:
      - Computes only and never changes anything, so C(changed) is always false.
      - Without O(now) claim expiry is evaluated at the current time, so the returned state can differ between runs.
options:
  resources:
    description: The node's view of the mesh (for an RR including the admitted claims).
    type: list
    elements: dict
    required: true
  node:
    description: The node's C(selfNodeRef) (for example C(rr-a) or C(leaf-b)).
    type: str
    required: true
  fetched_rrsets:
    description: SAMRRSet resources fetched by enrollment, used when O(resources) does not hold the RRSet.
    type: list
    elements: dict
    default: []
  now:
    description: Evaluate claim expiry at this RFC 3339 time instead of now.
    type: str
  rr_peering:
    description:
      - RR only. Add one C(BGPPeer) (C(routeReflectorPeer=true)) per other member of the node's SAMRRSet, between the
        members' endpoints, for RR-to-RR iBGP (M(boma.mesh.sam_bgp) renders it with admission and next-hop-self).
      - Needed when a leaf can reach only one RR (docs/bgp.md, RR-to-RR peering).
    type: bool
    default: false
  leave_out_invalid_claims:
    description:
      - Leave out each claim that has an error (a conflict lost to an earlier claim, a scope the policy no longer
        allows) and compute the state from the rest, instead of failing. Errors in the other documents still fail.
      - For an RR's accepted records (the C(boma.mesh.sam_rr) role sets it), as the RR's own reconcile does, so one
        bad record does not stop the others. The claims left out are in RV(left_out).
    type: bool
    default: false
    version_added: 0.2.0
seealso:
  - module: boma.mesh.sam_validate
  - module: boma.mesh.sam_bgp
"""

EXAMPLES = r"""
- name: Desired state of this host
  boma.mesh.sam_materialize:
    resources: "{{ sam_resources + sam_node_resources }}"
    node: "{{ sam_node }}"
  register: desired

- name: Show the counts by kind
  ansible.builtin.debug:
    var: desired.counts
"""

RETURN = r"""
state:
  description: C(node), C(role) (C(rr) or C(leaf)) and C(resources), routerd-style resources of kinds BGPRouter,
    TunnelInterface, IPv4Route, BGPPeer, WireGuardPeer and BGPDynamicPeer.
  returned: success
  type: dict
counts:
  description: Number of resources by kind.
  returned: success
  type: dict
  sample: {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 2, "BGPPeer": 2}
left_out:
  description: With O(leave_out_invalid_claims), each claim left out and why (its findings).
  returned: success
  type: dict
  sample: {"SAMEnrollmentClaim/leaf-c": ["SAMEnrollmentClaim/leaf-c spec.mobility.ownedAddresses:
    [duplicate-owned-address] mobility.ownedAddresses 10.64.0.3/32 is already used by SAMEnrollmentClaim/leaf-b"]}
  version_added: 0.2.0
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.fields import parse_time
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.loader import load_resources
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.materialize import (
    MaterializeError,
    count_kinds,
    materialize,
    node_role,
)
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.mesh import build_mesh
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.model import parse_rrset
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.validate import validate, validate_leaving_out


def main():
    module = AnsibleModule(
        argument_spec={
            "resources": {"type": "list", "elements": "dict", "required": True},
            "node": {"type": "str", "required": True},
            "fetched_rrsets": {"type": "list", "elements": "dict", "default": []},
            "now": {"type": "str"},
            "rr_peering": {"type": "bool", "default": False},
            "leave_out_invalid_claims": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    now = parse_time(params["now"]) if params["now"] else None
    if params["now"] and now is None:
        module.fail_json(msg="now [rfc3339] %r is not an RFC 3339 timestamp" % params["now"])
    resources, findings = load_resources([("resources", params["resources"])])
    left_out = {}
    if params["leave_out_invalid_claims"]:
        report, left_out = validate_leaving_out(resources, now=now, findings=findings)
    else:
        # A leaf's own claim may be an intent (identity only; samctl agent signs it): never on an RR.
        leaf = node_role(build_mesh(resources, []), params["node"]) == "leaf"
        report = validate(resources, now=now, findings=findings, intent_ok=leaf)
    if not report.ok:
        errors = [f.describe() for f in report.errors]
        module.fail_json(msg="%d error(s) in the SAM documents:\n%s" % (len(errors), "\n".join(errors)),
                         errors=errors)
    fetched_resources, fetched_findings = load_resources([("fetched_rrsets", params["fetched_rrsets"])])
    fetched = {r.name: parse_rrset(r, fetched_findings) for r in fetched_resources if r.kind == "SAMRRSet"}
    if fetched_findings:
        module.fail_json(msg="fetched_rrsets: " + "; ".join(f.describe() for f in fetched_findings))
    try:
        state = materialize(report, params["node"], fetched, rr_peering=params["rr_peering"])
    except MaterializeError as exc:
        module.fail_json(msg=str(exc), errors=[f.describe() for f in exc.findings])
    if left_out:
        module.warn("%d claim(s) left out of the desired state: %s" % (len(left_out), ", ".join(sorted(left_out))))
    module.exit_json(changed=False, state=state, counts=count_kinds(state),
                     left_out={ref: [f.describe() for f in found] for ref, found in left_out.items()})


if __name__ == "__main__":
    main()
