#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Ansible modules keep DOCUMENTATION, EXAMPLES and RETURN above the imports:
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
module: sam_validate
short_description: Validate a SAM mesh document set and its enrollment claims
version_added: 0.1.0
description:
  - Validates SAM resources (C(SAMRRSet), C(SAMEnrollmentPolicy), C(SAMEnrollmentClaim), C(SAMTransportProfile),
    C(BGPRouter), C(BGPDynamicPeer), C(MobilityPool)) as one document set, with the same rules as
    C(samctl validate) (references, policy scope, join HMACs, duplicates, expiry and revocation).
  - Claims are checked even without join tokens; their HMACs are then reported in RV(hmac_unverified).
  - Reads only the join token files and environment variables on the managed host; changes nothing.
  - No message or return value ever contains a join token.
author:
  - boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.read_only
attributes:
  idempotent:
    support: full
    details:
      - Never changes anything, so C(changed) is always false.
      - Without O(now) expiry is evaluated at the current time, and with O(read_token_sources) the token sources are
        read on every run, so the findings can differ between runs.
options:
  resources:
    description:
      - SAM resources, each a mapping with C(kind), C(metadata.name) and C(spec) (routerd-shaped, camelCase).
      - Required unless O(documents) is given; both may be given and are merged into one set.
    type: list
    elements: dict
  documents:
    description:
      - Parsed documents fed to the same loader as C(samctl validate --config)
        (use P(ansible.builtin.from_yaml_all#filter) on file contents).
      - Each is a routerd C(Router) document (C(spec.resources)), a mapping with C(sam_resources),
        C(sam_node_resources) or C(resources) lists, a single resource, or a list of resources.
      - Quote timestamps (C(joinTimestamp), C(expiresAt)) in YAML so they stay the exact text that is signed.
    type: list
    elements: raw
  join_tokens:
    description:
      - Join tokens by policy name (C(name) or C(SAMEnrollmentPolicy/name)), used instead of the
        policy's C(joinTokenFrom) source.
      - Each value is trimmed, and base64-decoded when the policy sets C(joinTokenFrom.base64), exactly as the
        content of the policy's own token source would be.
      - Never logged and never returned.
    type: dict
  join_token_files:
    description:
      - Paths of join token files on the managed host, by policy name, used instead of C(joinTokenFrom).
      - Decoded like O(join_tokens). A missing, unreadable or empty file fails the module, naming the path.
      - O(join_tokens) wins when both name the same policy.
    type: dict
  read_token_sources:
    description:
      - Read each policy's C(joinTokenFrom) file or environment variable on the managed host
        when no O(join_tokens) or O(join_token_files) entry names the policy.
      - A token source that cannot be read is not an error; the claims' HMACs are then reported unverified,
        with the reason in a C(hmac-not-verified) warning finding.
    type: bool
    default: true
  now:
    description:
      - Evaluate expiry and timestamp skew at this RFC 3339 time instead of the current time.
    type: str
  skew:
    description:
      - Allowed future C(joinTimestamp) skew in seconds.
    type: int
    default: 300
  fail_on_error:
    description:
      - Fail when the document set has error findings; the message lists every error finding, one per line.
      - When V(false), the module succeeds and RV(valid) tells whether the set is valid.
    type: bool
    default: true
seealso:
  - module: boma.mesh.sam_join_hmac
"""

EXAMPLES = r"""
- name: Validate the mesh before rendering any configuration
  boma.mesh.sam_validate:
    resources: "{{ sam_resources + sam_node_resources }}"

- name: Validate a routerd Router file with a token from the vault, at a fixed time
  boma.mesh.sam_validate:
    documents: "{{ lookup('ansible.builtin.file', 'files/router.yaml') | ansible.builtin.from_yaml_all }}"
    join_tokens:
      cloudedge-private-fou-leaves: "{{ vault_join_token }}"
    now: "2026-06-28T01:00:00Z"

- name: Report without failing
  boma.mesh.sam_validate:
    resources: "{{ sam_resources }}"
    read_token_sources: false
    fail_on_error: false
  register: mesh_check
"""

RETURN = r"""
valid:
  description: Whether the document set has no error finding.
  returned: always
  type: bool
  sample: true
findings:
  description: Every finding, in order (errors, warnings, skipped claims, notes).
  returned: always
  type: list
  elements: dict
  contains:
    resource:
      description: The resource, as C(Kind/name).
      type: str
      sample: SAMEnrollmentClaim/leaf-b
    path:
      description: The field path inside the resource.
      type: str
      sample: spec.mobility.ownedAddresses[0]
    rule:
      description: The rule that was broken.
      type: str
      sample: mobility-pool-owned
    message:
      description: What is wrong.
      type: str
      sample: 10.77.61.32/32 is outside MobilityPool/cloudedge 10.77.60.0/24
    severity:
      description: One of C(error), C(warning), C(skipped), C(info).
      type: str
      sample: error
errors:
  description: The error findings as text, C(resource path [rule] message).
  returned: always
  type: list
  elements: str
  sample:
    - "SAMEnrollmentClaim/leaf-b spec.mobility.ownedAddresses[0] [mobility-pool-owned] 10.77.61.32/32 is outside ..."
active_claims:
  description: Names of the claims that would be admitted, by policy name.
  returned: always
  type: dict
  sample: {"cloudedge-private-fou-leaves": ["leaf-b"]}
skipped_claims:
  description: Names of revoked or expired claims.
  returned: always
  type: list
  elements: str
  sample: []
hmac_verified:
  description: Names of the claims whose join HMAC was verified with a token.
  returned: always
  type: list
  elements: str
  sample: ["leaf-b"]
hmac_unverified:
  description: Names of the claims checked without a token (field presence and policy scope only).
  returned: always
  type: list
  elements: str
  sample: []
"""

import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.core import payload
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.fields import parse_time
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.loader import load_resources
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.validate import validate
from ansible_collections.boma.mesh.plugins.module_utils.sam.io import tokens


class InputError(Exception):
    """A module option problem; the message names the option and rule and never holds a token."""


def _policy_name(name):
    return str(name).strip().rsplit("/", maxsplit=1)[-1]


def _is_base64(mesh, name):
    policy = mesh.policies.get(name)
    return bool(policy is not None and policy.token is not None and policy.token.base64)


def token_resolver(params, warn):
    """callable(mesh) -> {policy: key bytes | reason}, for validate()."""

    def resolve(mesh):
        overrides = {}
        for option in ("join_token_files", "join_tokens"):
            for name, value in (params[option] or {}).items():
                policy = _policy_name(name)
                where = "%s.%s" % (option, name)
                if policy not in mesh.policies:
                    warn("%s names SAMEnrollmentPolicy/%s, which is not in the document set" % (where, policy))
                if option == "join_token_files":
                    key = tokens.read_token(file=str(value), is_base64=_is_base64(mesh, policy))
                    if isinstance(key, str):
                        raise InputError("%s [secret] %s" % (where, key))
                else:
                    if not isinstance(value, str):
                        raise InputError("%s [type] must be a string" % where)
                    try:
                        key = payload.secret_key(value, _is_base64(mesh, policy))
                    except payload.SecretError as exc:
                        raise InputError("%s [secret] %s" % (where, exc)) from None
                overrides[policy] = key
        if params["read_token_sources"]:
            return tokens.policy_tokens(mesh, overrides)
        return overrides

    return resolve


def documents_of(params):
    documents = []
    if params["resources"] is not None:
        documents.append(("", {"resources": params["resources"]}))
    for index, doc in enumerate(params["documents"] or []):
        documents.append(("documents[%d]" % index, doc))
    return documents


def run(params, warn):
    now = None
    if params["now"] is not None:
        now = parse_time(params["now"])
        if now is None:
            raise InputError("now [rfc3339] %r is not an RFC 3339 timestamp" % params["now"])
    if params["skew"] < 0:
        raise InputError("skew [range] must be 0 or more seconds, got %d" % params["skew"])
    resources, findings = load_resources(documents_of(params))
    report = validate(resources, tokens=token_resolver(params, warn), now=now,
                      skew=datetime.timedelta(seconds=params["skew"]), findings=findings)
    for finding in report.findings:
        if finding.severity == "warning":
            warn(finding.describe())
    return report, dict(
        changed=False,
        valid=report.ok,
        findings=[f.as_dict() for f in report.findings],
        errors=[f.describe() for f in report.errors],
        active_claims={policy: [c.name for c in claims] for policy, claims in report.active.items()},
        skipped_claims=list(report.skipped),
        hmac_verified=list(report.verified),
        hmac_unverified=list(report.unverified),
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            resources=dict(type="list", elements="dict"),
            documents=dict(type="list", elements="raw"),
            join_tokens=dict(type="dict", no_log=True),
            join_token_files=dict(type="dict", no_log=False),
            read_token_sources=dict(type="bool", default=True, no_log=False),
            now=dict(type="str"),
            skew=dict(type="int", default=300),
            fail_on_error=dict(type="bool", default=True),
        ),
        required_one_of=[("resources", "documents")],
        supports_check_mode=True,
    )
    try:
        report, result = run(module.params, module.warn)
    except InputError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except Exception as exc:  # never a traceback: it could quote module arguments
        module.fail_json(msg="internal error in sam_validate (%s); please report it" % type(exc).__name__,
                         changed=False)
    if not report.ok and module.params["fail_on_error"]:
        module.fail_json(msg="%d error finding(s) in the SAM document set:\n%s"
                         % (len(result["errors"]), "\n".join(result["errors"])), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
