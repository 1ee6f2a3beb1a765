#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: sam_validate
short_description: Validate SAM mesh documents (RRSet, policies, claims, transport, BGP) and list every finding
version_added: 0.1.0
description:
  - Checks a set of routerd-shaped resources with every rule of the enrollment runbook (scope, TTL,
    duplicates, nonce, MobilityPool C(/32) ownership, transport and dynamic-peer rules) and verifies each
    claim's join HMAC when the policy's join token is readable.
  - When a token is not readable, field presence and policy scope are still checked and the result says
    which claims' HMACs were not verified.
  - Fails listing all errors at once; revoked or expired claims are reported as skipped, never fatal.
  - Changes nothing on the host.
author: boma.mesh maintainers
attributes:
  check_mode:
    support: full
    description: Runs normally in check mode; it never changes anything.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  resources:
    description:
      - Resources (C(kind), C(metadata.name), C(spec)) with routerd's camelCase field names, for example
        C(sam_resources + sam_node_resources) from the inventory.
      - At least one of O(resources) and O(documents) is required.
    type: list
    elements: raw
  documents:
    description:
      - Whole documents, each a routerd C(Router) document or a mapping with C(sam_resources),
        C(sam_node_resources) or C(resources) lists. Merged with O(resources).
    type: list
    elements: raw
  join_tokens:
    description:
      - Join tokens by policy name; they take precedence over the policies' C(joinTokenFrom). Never logged.
    type: dict
  join_token_files:
    description:
      - Paths on the managed host of join token files, by policy name.
    type: dict
  read_token_sources:
    description:
      - Read each policy's C(joinTokenFrom) file or environment variable on the managed host.
    type: bool
    default: true
  now:
    description:
      - Evaluate expiry at this RFC 3339 time instead of the current time.
    type: str
  skew:
    description:
      - Seconds a C(joinTimestamp) may lie in the future.
    type: int
    default: 300
  fail_on_error:
    description:
      - Fail when there is any error finding. With V(false) the result carries RV(valid=false) instead.
    type: bool
    default: true
seealso:
  - module: boma.mesh.sam_join_hmac
"""

EXAMPLES = r"""
- name: Validate this host's view of the mesh (fails listing every error)
  boma.mesh.sam_validate:
    resources: "{{ sam_resources + sam_node_resources }}"

- name: Validate routerd configs as they are, reporting instead of failing
  boma.mesh.sam_validate:
    documents:
      - "{{ lookup('ansible.builtin.file', 'rr-a.yaml') | from_yaml }}"
    join_token_files:
      cloudedge-leaves: /usr/local/etc/routerd/secrets/cloudedge-join-token
    fail_on_error: false
  register: review
"""

RETURN = r"""
valid:
  description: Whether no error finding was reported.
  returned: always
  type: bool
errors:
  description: Error findings as text, C(Resource/name field.path [rule] message).
  returned: always
  type: list
  elements: str
  sample: ["SAMEnrollmentClaim/leaf-b spec.mobility.ownedAddresses[0] [mobility-pool-owned] 10.77.61.5/32 is outside
           MobilityPool/cloudedge 10.77.60.0/24"]
findings:
  description: Every finding (errors, warnings, skipped claims, notes) with resource, path, rule, message, severity.
  returned: always
  type: list
  elements: dict
active_claims:
  description: Names of the admitted claims by policy name.
  returned: always
  type: dict
skipped_claims:
  description: Claims skipped because they are revoked or expired.
  returned: always
  type: list
  elements: str
hmac_verified:
  description: Claims whose join HMAC was verified.
  returned: always
  type: list
  elements: str
hmac_unverified:
  description: Claims checked without a readable join token (presence and scope only).
  returned: always
  type: list
  elements: str
"""

import datetime
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam import payload, tokens
from ansible_collections.boma.mesh.plugins.module_utils.sam.fields import parse_time
from ansible_collections.boma.mesh.plugins.module_utils.sam.loader import load_resources
from ansible_collections.boma.mesh.plugins.module_utils.sam.validate import validate


def _overrides(module):
    out = {}
    for policy, path in (module.params["join_token_files"] or {}).items():
        out[policy.split("/")[-1]] = tokens.read_token(file=str(path))
    for policy, value in (module.params["join_tokens"] or {}).items():
        try:
            out[policy.split("/")[-1]] = payload.secret_key(str(value))
        except payload.SecretError as exc:
            out[policy.split("/")[-1]] = "join_tokens[%s]: %s" % (policy, exc)
    return out


def _resolver(module, overrides):
    def resolve(mesh):
        if module.params["read_token_sources"]:
            return tokens.policy_tokens(mesh, overrides, os.environ)
        return dict(overrides)
    return resolve


def main():
    module = AnsibleModule(
        argument_spec={
            "resources": {"type": "list", "elements": "raw"},
            "documents": {"type": "list", "elements": "raw"},
            "join_tokens": {"type": "dict", "no_log": True},
            "join_token_files": {"type": "dict"},
            "read_token_sources": {"type": "bool", "default": True},
            "now": {"type": "str"},
            "skew": {"type": "int", "default": 300},
            "fail_on_error": {"type": "bool", "default": True},
        },
        required_one_of=[("resources", "documents")],
        supports_check_mode=True,
    )
    params = module.params
    now = None
    if params["now"]:
        now = parse_time(params["now"])
        if now is None:
            module.fail_json(msg="now: %r is not an RFC 3339 timestamp" % params["now"])
    documents = [("resources", params["resources"])] if params["resources"] is not None else []
    documents += [("documents[%d]" % i, doc) for i, doc in enumerate(params["documents"] or [])]
    resources, findings = load_resources(documents)
    report = validate(resources, tokens=_resolver(module, _overrides(module)), now=now,
                      skew=datetime.timedelta(seconds=params["skew"]), findings=findings)
    errors = [f.describe() for f in report.errors]
    result = {
        "changed": False,
        "valid": report.ok,
        "errors": errors,
        "findings": [f.as_dict() for f in report.findings],
        "active_claims": {name: [c.name for c in claims] for name, claims in report.active.items()},
        "skipped_claims": report.skipped,
        "hmac_verified": report.verified,
        "hmac_unverified": report.unverified,
    }
    if errors and params["fail_on_error"]:
        module.fail_json(msg="%d error(s) in the SAM documents:\n%s" % (len(errors), "\n".join(errors)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
