#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Ansible modules keep DOCUMENTATION, EXAMPLES and RETURN above the imports:
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
module: sam_join_hmac
short_description: Compute or verify the join HMAC of a SAM enrollment claim
version_added: 0.1.0
description:
  - Computes the lowercase hex HMAC-SHA256 of a C(SAMEnrollmentClaim) canonical join payload,
    byte-compatible with routerd (the value that belongs in C(spec.joinHMAC)).
  - With O(verify=true), compares the result with the claim's C(spec.joinHMAC) and fails on mismatch.
  - Changes nothing on the managed host; the only I/O is reading O(secret_file).
  - Every error names the field path and the rule; no message ever contains the join token.
author:
  - boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.read_only
  - boma.mesh.join_token
attributes:
  idempotent:
    support: full
    details:
      - Computes only and never changes anything, so C(changed) is always false.
options:
  claim:
    description:
      - The claim, either a whole C(SAMEnrollmentClaim) resource (C(kind), C(metadata), C(spec)) or only its C(spec).
      - A mapping with C(kind), C(metadata) or C(apiVersion) is taken as a resource, anything else as a spec.
      - Quote C(joinTimestamp) in YAML so it stays the exact text that is signed.
      - Mutually exclusive with O(resources); one of them is required.
    type: dict
  resources:
    description:
      - A list of resources (routerd-shaped C(kind), C(metadata), C(spec)) holding the claim named O(claim_name).
      - Requires O(claim_name).
    type: list
    elements: dict
  claim_name:
    description:
      - Name of the claim in O(resources), as C(leaf-b) or C(SAMEnrollmentClaim/leaf-b).
    type: str
  show_payload:
    description:
      - Also return the exact canonical payload that is signed, as RV(payload).
    type: bool
    default: false
  verify:
    description:
      - Compare the computed HMAC with the claim's C(spec.joinHMAC) (constant time).
      - The module fails with a message naming the claim and C(spec.joinHMAC) when they differ.
    type: bool
    default: false
seealso:
  - module: boma.mesh.sam_validate
  - plugin: boma.mesh.join_hmac
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Sign a claim with the token file on the RR
  boma.mesh.sam_join_hmac:
    claim: "{{ leaf_claim }}"
    secret_file: /etc/routerd/join-token
  register: signed

- name: Put the HMAC into the claim
  ansible.builtin.set_fact:
    leaf_claim: "{{ leaf_claim | combine({'spec': {'joinHMAC': signed.hmac}}, recursive=true) }}"

- name: Verify a claim from a resource list, showing the signed payload
  boma.mesh.sam_join_hmac:
    resources: "{{ sam_resources }}"
    claim_name: leaf-b
    secret: "{{ vault_join_token }}"
    verify: true
    show_payload: true
"""

RETURN = r"""
hmac:
  description: Lowercase hex HMAC-SHA256 of the canonical payload (64 characters).
  returned: success, and on a failed verification
  type: str
  sample: 3f1c0e9c5f0d4b8e2a7d6c1b9e8f7a6d5c4b3a29181716151413121110090807
payload:
  description: The exact canonical payload that was signed (C(key=value) lines, no trailing newline).
  returned: when O(show_payload=true)
  type: str
  sample: "policyRef=SAMEnrollmentPolicy/cloudedge-private-fou-leaves\nrrSetRef=SAMRRSet/cloudedge\nleafID=leaf-b"
claim:
  description: Name of the claim (C(metadata.name)), or null when O(claim) is only a spec.
  returned: always
  type: str
  sample: leaf-b
valid:
  description: Whether C(spec.joinHMAC) matches the computed HMAC.
  returned: when O(verify=true)
  type: bool
  sample: true
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.core import fields, loader, payload
from ansible_collections.boma.mesh.plugins.module_utils.sam.io import tokens

KIND = "SAMEnrollmentClaim"
# What an unquoted YAML timestamp becomes once Ansible hands it to a module.
REPARSED_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$")
RESOURCE_KEYS = ("kind", "metadata", "apiVersion")


class ClaimError(Exception):
    """An input problem; the message names the field path and rule and never holds the secret."""


def claim_from_option(claim):
    """(name, ref, spec) of the O(claim) option."""
    if not any(key in claim for key in RESOURCE_KEYS):
        return None, KIND, claim
    kind = claim.get("kind")
    if kind is not None and kind != KIND:
        raise ClaimError("claim.kind [kind] must be %s, got %r" % (KIND, kind))
    meta = claim.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise ClaimError("claim.metadata [type] must be a mapping")
    name = (meta or {}).get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ClaimError("claim.metadata.name [type] must be a non-empty string")
    name = name.strip() if name else None
    ref = "%s/%s" % (KIND, name) if name else KIND
    spec = claim.get("spec")
    if spec is None:
        raise ClaimError("%s spec [required] a claim resource needs a spec mapping" % ref)
    if not isinstance(spec, dict):
        raise ClaimError("%s spec [type] must be a mapping" % ref)
    return name, ref, spec


def claim_from_resources(resources, claim_name):
    """(name, ref, spec) of the claim named claim_name in a resource list."""
    name = claim_name.strip()
    if name.startswith(KIND + "/"):
        name = name.split("/", 1)[1]
    found, findings = loader.load_resources([("", {"resources": resources})])
    claims = {r.name: r for r in found if r.kind == KIND}
    if name not in claims:
        errs = [f.describe() for f in findings if f.severity == "error"]
        raise ClaimError("claim_name [not-found] %s/%s is not in resources (claims found: %s)%s" % (
            KIND, name, ", ".join(sorted(claims)) or "none", "".join("\n" + e for e in errs)))
    return name, "%s/%s" % (KIND, name), claims[name].spec


def check_signed_fields(ref, spec):
    """Type-check the signed fields so a mapping or list is never silently stringified."""
    findings = []
    reader = fields.Reader(ref, spec, findings)
    for key in payload.SCALAR_HEAD + ("bgp.routerID", "wireGuard.publicKey", "wireGuard.endpoint"):
        reader.str(key)
    for key in ("bgp.asn", "wireGuard.persistentKeepalive"):
        reader.int(key)
    for key in ("mobility.ownedAddresses", "wireGuard.allowedIPs"):
        reader.str_list(key)
    if "directMesh" in spec:
        reader.bool("directMesh")
    if findings:
        raise ClaimError("\n".join(f.describe() for f in dict.fromkeys(findings)))


def read_key(params):
    if params["secret"] is not None:
        try:
            return payload.secret_key(params["secret"], params["secret_base64"])
        except payload.SecretError as exc:
            raise ClaimError("secret [secret] %s" % exc) from None
    key = tokens.read_token(file=params["secret_file"], is_base64=params["secret_base64"])
    if isinstance(key, str):
        raise ClaimError("secret_file [secret] %s" % key)
    return key


def verify(ref, spec, key, result):
    given = spec.get("joinHMAC")
    if given is None or (isinstance(given, str) and not given.strip()):
        raise ClaimError("%s spec.joinHMAC [join-auth-required] is required when verify is true" % ref)
    if not payload.is_hmac_hex(given):
        raise ClaimError("%s spec.joinHMAC [join-hmac-format] must be 64 lowercase hexadecimal characters" % ref)
    result["valid"] = payload.verify_join_hmac(key, spec)
    if not result["valid"]:
        raise ClaimError("%s spec.joinHMAC [join-hmac] does not match the HMAC computed with the given join token "
                         "(the token or a signed field differs)" % ref)


def run(params, result, warn):
    if params["claim"] is not None:
        name, ref, spec = claim_from_option(params["claim"])
    else:
        name, ref, spec = claim_from_resources(params["resources"], params["claim_name"])
    result["claim"] = name
    check_signed_fields(ref, spec)
    if isinstance(spec.get("joinTimestamp"), str) and REPARSED_TIME.match(spec["joinTimestamp"]):
        warn("%s spec.joinTimestamp is %s, the form an unquoted YAML timestamp takes when Ansible passes it to a "
             "module; if the source wrote it differently (such as ...Z), quote it there: the HMAC signs the exact text"
             % (ref, spec["joinTimestamp"]))
    key = read_key(params)
    result["hmac"] = payload.join_hmac(key, spec)
    if params["show_payload"]:
        result["payload"] = payload.canonical_payload(spec)
    if params["verify"]:
        verify(ref, spec, key, result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            claim=dict(type="dict"),
            resources=dict(type="list", elements="dict"),
            claim_name=dict(type="str"),
            secret=dict(type="str", no_log=True),
            secret_file=dict(type="path", no_log=False),
            secret_base64=dict(type="bool", default=False, no_log=False),
            show_payload=dict(type="bool", default=False),
            verify=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("secret", "secret_file"), ("claim", "resources"), ("claim", "claim_name")],
        required_one_of=[("secret", "secret_file"), ("claim", "resources")],
        required_together=[("resources", "claim_name")],
        supports_check_mode=True,
    )
    result = dict(changed=False, claim=None)
    try:
        run(module.params, result, module.warn)
    except ClaimError as exc:
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:  # never a traceback: it could quote module arguments
        module.fail_json(msg="internal error in sam_join_hmac (%s); please report it" % type(exc).__name__, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
