#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Ansible modules keep DOCUMENTATION, EXAMPLES and RETURN above the imports:
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
module: sam_enroll
short_description: Enroll a SAM leaf with its RRs and keep its fetched RRSet fresh
version_added: 0.1.0
description:
  - The leaf side of the enrollment API (C(samctl serve)), as C(samctl enrollment-join) does it.
  - Submits the leaf's signed C(SAMEnrollmentClaim) to the first RR that answers and fetches the claim's RRSet
    (C(SAMEnrollmentTopology)); an RR that already holds the claim (C(409 nonce-replay)) only serves the RRSet.
  - Every answer must carry a valid response MAC made with the policy's join token and bound to this very request
    (C(v2), over a fresh request nonce, the status and the claim digest); an RR without it, an answer replayed from
    another request, or the body-only MAC of an RR older than this release is treated as an impostor and the next
    RR is tried, as it is after a connection error, a timeout or a C(5xx) answer. Upgrade the RRs first.
    A validation answer (such as C(422), C(409), C(410)) signed for this request is the RRs' verdict and ends the
    attempt.
  - The result is kept in O(state_file) (JSON, mode C(0600), written atomically; never a token). Nothing is sent
    while that state is fresh; a refresh happens only when the state is missing, the claim changed, or the lease
    is expired or within 10 minutes of its expiry.
  - After a failure the next attempt is backed off (10 s doubling to 15 min, with jitter), recorded in the state
    file before the module fails; a changed claim is sent at once.
author:
  - boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.join_token
  - boma.mesh.enroll_api
attributes:
  check_mode:
    support: full
    details: Reads the state file and reports whether a refresh is due; nothing is sent and nothing written.
  diff_mode:
    support: full
    details: The public part of the state (claim digest, expiry, RRSet members, backoff) before and after.
  idempotent:
    support: partial
    details:
      - A second run finds the state in O(state_file) fresh, sends nothing and reports no change.
      - It submits again once the lease is expired or within 10 minutes of its expiry, when the claim changed, when a
        backoff after a failure is over, and always with O(force=true); whether that reports a change depends on what
        the RRs (remote services) answer.
  platform:
    platforms: posix
options:
  claim:
    description:
      - The leaf's claim, either a whole C(SAMEnrollmentClaim) resource (C(kind), C(metadata), C(spec)) or only
        its C(spec) (then O(claim_name) is required).
      - Quote C(joinTimestamp) in YAML so it stays the exact text that is signed.
      - Mutually exclusive with O(resources); one of them is required.
    type: dict
  resources:
    description:
      - A list of resources holding the claim named O(claim_name).
    type: list
    elements: dict
  claim_name:
    description:
      - Name of the claim, as C(leaf-b) or C(SAMEnrollmentClaim/leaf-b).
      - Required with O(resources) and with a O(claim) that is only a spec.
    type: str
  rr_urls:
    description:
      - Enrollment API URLs of the RRs, as C(https://rr-a:8443), tried in order.
      - At least one of O(rr_urls) and O(rr_sockets) is required; URLs are tried before sockets.
    type: list
    elements: str
  rr_sockets:
    description:
      - Unix sockets of RR enrollment services on the managed host, tried in order after O(rr_urls).
    type: list
    elements: path
  secrets:
    description:
      - Every join token of the claim's policy, for a rotation (C(spec.joinTokens)); the module uses the one whose
        HMAC matches the claim's C(joinHMAC) and fails naming the claim when none does. Decoded like O(secret).
      - Never logged, never returned, never in an error message.
      - Mutually exclusive with O(secret) and O(secret_file); one of the three is required.
    type: list
    elements: str
    version_added: 0.1.0
  state_file:
    description:
      - The leaf's enrollment state (JSON). Created with mode C(0600); a damaged file is replaced.
    type: path
    required: true
  api_token:
    description:
      - Bearer token of the enrollment API (the RR's leaf token). Never logged and never returned.
      - Mutually exclusive with O(api_token_file); one of them is required.
    type: str
  api_token_file:
    description:
      - Path of a file on the managed host holding the API bearer token (surrounding whitespace is trimmed).
    type: path
  force:
    description:
      - Submit and fetch even when the state is fresh or backing off.
    type: bool
    default: false
  response_mac:
    description:
      - V(required) (the default) refuses every answer without a valid response MAC.
      - V(optional) is a B(downgrade) for RRs that send no response MAC at all, as routerd's RR does. An answer that
        carries no C(X-Boma-Response-MAC) header is then accepted, and RV(response_mac_verified) and a warning say
        so. Without the MAC a network attacker between the leaf and the RR can forge the RRSet and topology the leaf
        applies, and can replay or invent refusals; use it only over a channel that is authenticated otherwise
        (TLS with O(ca_file) pinned to the RRs' CA, or a unix socket).
      - An answer that carries a MAC which does not verify is refused in both modes, and a refusal without a MAC
        never ends the attempt (the next RR is tried), so V(optional) only widens what a success may lack.
    type: str
    choices: [required, optional]
    default: required
    version_added: 0.2.0
seealso:
  - module: boma.mesh.sam_claim
  - module: boma.mesh.sam_join_hmac
"""

EXAMPLES = r"""
- name: Enroll the leaf with either RR and keep its RRSet fresh
  boma.mesh.sam_enroll:
    claim: "{{ leaf_claim }}"
    rr_urls:
      - https://rr-a.example.net:8443
      - https://rr-b.example.net:8443
    ca_file: /etc/boma/sam/ca.pem
    api_token_file: /etc/boma/sam/api-token
    secret_file: /etc/boma/sam/join-token
    state_file: /var/lib/boma/sam/enrollment.json
  register: enrollment

- name: Materialize the leaf with the fetched RRSet
  boma.mesh.sam_materialize:
    resources: "{{ sam_node_resources }}"
    fetched_rrsets: "{{ [enrollment.rrset] }}"
    node: leaf-b
"""

RETURN = r"""
decision:
  description:
    - Why a refresh was or was not made, as C(fresh), C(backoff), C(state-missing), C(claim-changed), C(expired),
      C(near-expiry), C(state-incomplete) or C(forced).
  returned: always
  type: str
  sample: fresh
endpoint:
  description: The RR that answered (with the RRSet, or with the refusal); null when nothing was sent.
  returned: always
  type: str
  sample: https://rr-a.example.net:8443
expires_at:
  description: Expiry of the lease (RFC 3339), from the state after the run.
  returned: always
  type: str
  sample: "2026-11-24T12:00:00Z"
rrset:
  description: The fetched C(SAMRRSet) document (public), or null before the first successful fetch.
  returned: always
  type: dict
state_file:
  description: Path of the state file.
  returned: always
  type: str
  sample: /var/lib/boma/sam/enrollment.json
rule:
  description: The rule of the failure (C(join-hmac), C(claim-revoked), C(unreachable), C(response-mac), ...).
  returned: failure
  type: str
  sample: unreachable
next_attempt_at:
  description: When the next attempt is due (RFC 3339) after a failure or while backing off.
  returned: failure, and when O(force=false) and backing off
  type: str
skipped:
  description: Why RRs tried before the one that answered were passed over.
  returned: always
  type: list
  elements: str
response_mac_verified:
  description:
    - For the RR whose answers this run used (its URL or socket), whether they carried a valid response MAC.
      V(false) only with O(response_mac=optional), when that RR sent none (its RRSet is not authenticated).
    - Empty when no RR answered usably or nothing was sent.
  returned: always
  type: dict
  sample: {"https://rr-a.example.net:8443": false}
  version_added: 0.2.0
"""

import datetime
import random

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.core import fields, lease, loader, payload
from ansible_collections.boma.mesh.plugins.module_utils.sam.io import enroll_client
from ansible_collections.boma.mesh.plugins.module_utils.sam.io.bearer import module_bearer
from ansible_collections.boma.mesh.plugins.module_utils.sam.io.tokens import read_token

KIND = "SAMEnrollmentClaim"


class EnrollInputError(Exception):
    """A problem with the module arguments; the message never holds a token."""


def find_claim(params):
    """(name, spec) from O(claim) or O(resources) + O(claim_name)."""
    name = params["claim_name"]
    if name and name.strip().startswith(KIND + "/"):
        name = name.strip().split("/", 1)[1]
    claim = params["claim"]
    if claim is not None:
        if not any(key in claim for key in ("kind", "metadata", "apiVersion")):
            spec = claim
        else:
            if claim.get("kind", KIND) != KIND:
                raise EnrollInputError("claim.kind [kind] must be %s" % KIND)
            meta = claim.get("metadata") if isinstance(claim.get("metadata"), dict) else {}
            name = meta.get("name") or name
            spec = claim.get("spec")
        if not isinstance(spec, dict):
            raise EnrollInputError("claim.spec [type] must be a mapping")
        if not name:
            raise EnrollInputError("claim_name [required] is needed when claim is only a spec")
        return name.strip(), spec
    found, findings = loader.load_resources([("", {"resources": params["resources"]})])
    claims = {r.name: r for r in found if r.kind == KIND}
    if name not in claims:
        raise EnrollInputError("claim_name [not-found] %s/%s is not in resources (claims found: %s)" % (
            KIND, name, ", ".join(sorted(claims)) or "none"))
    return name, claims[name].spec


def signing_key(module, spec):
    """The O(secrets) entry whose HMAC matches the claim (each is registered as a no_log value first)."""
    keys = []
    for index, text in enumerate(module.params["secrets"]):
        module.no_log_values.add(text)
        try:
            keys.append(payload.secret_key(text, module.params["secret_base64"]))
        except payload.SecretError as exc:
            raise EnrollInputError("secrets[%d] [secret] %s" % (index, exc)) from None
    for key in keys:
        module.no_log_values.add(key.decode("utf-8", "replace"))
    for key in keys:
        if payload.verify_join_hmac(key, spec):
            return key
    raise EnrollInputError("claim.spec.joinHMAC [join-hmac] matches none of the %d join token(s) in secrets: re-sign "
                           "the claim with a current token of its policy" % len(keys))


def read_secrets(module, spec):
    """(API bearer token, join key); both are registered as no_log values before anything can echo them."""
    params = module.params
    if params["secrets"] is not None:
        key = signing_key(module, spec)
    elif params["secret"] is not None:
        try:
            key = payload.secret_key(params["secret"], params["secret_base64"])
        except payload.SecretError as exc:
            raise EnrollInputError("secret [secret] %s" % exc) from None
    else:
        key = read_token(file=params["secret_file"], is_base64=params["secret_base64"])
        if isinstance(key, str):
            raise EnrollInputError("secret_file [secret] %s" % key)
    module.no_log_values.add(key.decode("utf-8", "replace"))
    try:
        token = module_bearer(module, "api_token", "api_token_file")
    except ValueError as exc:
        raise EnrollInputError(str(exc)) from None
    return token, key


def endpoints(params):
    try:
        return ([enroll_client.parse_endpoint(url) for url in params["rr_urls"] or []]
                + [enroll_client.Endpoint("unix", socket_path=path) for path in params["rr_sockets"] or []])
    except ValueError as exc:
        raise EnrollInputError("rr_urls [endpoint] %s" % exc) from None


def outcome(result, state, params):
    state = state or {}
    result.update(expires_at=state.get("expiresAt"), rrset=state.get("rrSet"), state_file=params["state_file"])


def run(module, result):
    params = module.params
    name, spec = find_claim(params)
    token, key = read_secrets(module, spec)
    targets = endpoints(params)
    state, note = enroll_client.read_state(params["state_file"])
    if note:
        module.warn(note)
    before = enroll_client.public_state(state)
    now = datetime.datetime.now(datetime.timezone.utc)
    if module.check_mode:
        decision = enroll_client.decide(state, spec, now, params["force"])
        result.update(changed=decision.refresh, decision=decision.reason)
        if decision.not_before is not None:
            result["next_attempt_at"] = fields.format_time(decision.not_before)
        outcome(result, state, params)
        after = dict(before, claimDigest=lease.claim_digest(spec)) if decision.refresh else before
        result["diff"] = {"before": before, "after": after}
        return
    try:
        joined = enroll_client.join(targets, name, spec, token, key, state, now, random.random(),
                                    force=params["force"], timeout=params["timeout"], ca_file=params["ca_file"],
                                    response_mac=params["response_mac"])
    except ValueError as exc:
        raise EnrollInputError(str(exc)) from None
    if joined.attempted:
        try:
            enroll_client.write_state(params["state_file"], joined.state)
        except OSError as exc:
            raise EnrollInputError("state_file [write] %s: %s" % (params["state_file"], exc.strerror or exc)) from None
    result.update(changed=joined.changed, decision=joined.reason, endpoint=joined.endpoint, skipped=joined.skipped)
    if joined.mac_verified is not None:
        result["response_mac_verified"] = {joined.endpoint: joined.mac_verified}
    if joined.mac_verified is False:
        module.warn("%s answered %s/%s without a response MAC and was trusted because response_mac=optional: the "
                    "RRSet it served is not authenticated" % (joined.endpoint, KIND, name))
    outcome(result, joined.state, params)
    result["diff"] = {"before": before, "after": enroll_client.public_state(joined.state)}
    if joined.not_before is not None:
        result["next_attempt_at"] = fields.format_time(joined.not_before)
    if not joined.ok:
        result.update(rule=joined.rule, findings=list(joined.findings),
                      next_attempt_at=(joined.state or {}).get("nextAttemptAt"))
        where = (" from " + joined.endpoint) if joined.endpoint else ""
        module.fail_json(msg="enrollment of %s/%s failed%s: %s: %s (next attempt after %s)" % (
            KIND, name, where, joined.rule, joined.error, result["next_attempt_at"]), **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            claim=dict(type="dict"),
            resources=dict(type="list", elements="dict"),
            claim_name=dict(type="str"),
            rr_urls=dict(type="list", elements="str"),
            rr_sockets=dict(type="list", elements="path"),
            state_file=dict(type="path", required=True),
            api_token=dict(type="str", no_log=True),
            api_token_file=dict(type="path", no_log=False),
            secret=dict(type="str", no_log=True),
            secret_file=dict(type="path", no_log=False),
            secret_base64=dict(type="bool", default=False, no_log=False),
            secrets=dict(type="list", elements="str", no_log=True),
            ca_file=dict(type="path"),
            timeout=dict(type="int", default=10),
            force=dict(type="bool", default=False),
            response_mac=dict(type="str", choices=["required", "optional"], default="required"),
        ),
        mutually_exclusive=[("secret", "secret_file", "secrets"), ("api_token", "api_token_file"),
                            ("claim", "resources")],
        required_one_of=[("secret", "secret_file", "secrets"), ("api_token", "api_token_file"), ("claim", "resources"),
                         ("rr_urls", "rr_sockets")],
        required_by={"resources": "claim_name"},
        supports_check_mode=True,
    )
    result = dict(changed=False, decision=None, endpoint=None, skipped=[], response_mac_verified={})
    try:
        run(module, result)
    except EnrollInputError as exc:
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:  # never a traceback: it could quote module arguments
        module.fail_json(msg="internal error in sam_enroll (%s); please report it" % type(exc).__name__, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
