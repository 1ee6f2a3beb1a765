# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every configuration and claim rule, returning Findings; nothing here raises on bad input.

``tokens`` maps a policy name to its join-token key bytes, to a string
saying why the token is unavailable, or to a list of keyring.JoinKey (spec.joinTokens); it may also be a
callable(mesh) returning that mapping.  Without a key, claims are still checked
for field presence and policy scope, and the report says the HMAC was not
verified (routerd's "reviewable before secrets are installed" rule).

``intent_ok`` (leaf side only, issue 18): a claim without joinNonce, joinTimestamp or joinHMAC is an intent
the leaf agent signs (core/signing).  It gets every other check and an ``info`` finding, and it is never
active: only a signed claim is ever admitted, and validate_claim (the RR's admission) never takes it.
"""

import base64
import binascii
import dataclasses
import datetime
import ipaddress
from dataclasses import dataclass, field

from . import admission, identifiers, keyring, payload, policy_checks, signing
from .bgp_policy import effective_import
from .findings import ERROR, INFO, WARNING, Finding
from .loader import load_resources
from .memo import ByIdentity
from .mesh import build_mesh
from .model import DEFAULT_TOKEN_ID, parse_claim, split_ref
from .rules import check_config

DEFAULT_SKEW = datetime.timedelta(minutes=5)


@dataclass
class Report:
    findings: list
    mesh: object
    active: dict = field(default_factory=dict)     # policy name -> [Claim]
    skipped: list = field(default_factory=list)    # claim names
    verified: list = field(default_factory=list)   # claim names whose HMAC was verified
    unverified: list = field(default_factory=list)  # claim names checked without a token
    signed_with: dict = field(default_factory=dict)  # claim name -> keyring.JoinKey that verified its HMAC
    payloads: dict = field(default_factory=dict)     # claim name -> canonical payload text it was verified over
    intents: list = field(default_factory=list)      # claim names accepted as an intent (intent_ok): never active

    @property
    def errors(self):
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def ok(self):
        return not self.errors


def validate_documents(documents, tokens=None, now=None, skew=DEFAULT_SKEW, intent_ok=False):
    """Load (source, parsed document) pairs and validate them as one document set."""
    resources, findings = load_resources(documents)
    return validate(resources, tokens=tokens, now=now, skew=skew, findings=findings, intent_ok=intent_ok)


def validate(resources, tokens=None, now=None, skew=DEFAULT_SKEW, findings=None, intent_ok=False):
    findings = list(findings or [])
    now = now or datetime.datetime.now(datetime.timezone.utc)
    mesh = build_mesh(resources, findings)
    # The edge may pass a resolver so it can read exactly the policies' token sources.
    tokens = (tokens(mesh) if callable(tokens) else tokens) or {}
    check_config(mesh, findings)
    policy_checks.check_documents(resources, mesh, findings)
    identifiers.check_mesh(mesh, findings)
    report = Report(findings=findings, mesh=mesh)
    candidates, pools = {}, {}
    for claim in mesh.claims.values():
        policy = _claim_policy(mesh, claim, findings)
        intent = intent_ok and signing.is_intent(claim.spec)
        if tokens:
            ok = _check_claim(mesh, policy, claim, tokens, now, skew, findings, report, intent)
        else:
            ok = _check_claim_memo(mesh, policy, claim, now, skew, findings, report, intent, pools)
        if ok and intent:
            report.intents.append(claim.name)
            findings.append(Finding(claim.ref, "spec", "claim-intent", "an intent: %s are filled when the leaf "
                                    "agent signs it; not active until an RR admits the signed claim"
                                    % ", ".join(signing.SIGNED_FIELDS), INFO))
        elif ok and policy is not None:
            candidates.setdefault(policy.name, []).append(claim)
    dup, rejected = admission.resolve_duplicates(candidates)
    findings.extend(dup)
    dup, spent = policy_checks.reused_nonces(mesh, report, candidates)
    findings.extend(dup)
    rejected |= spent
    for name in mesh.policies:
        report.active[name] = [c for c in candidates.get(name, ()) if c.name not in rejected]
    _token_notes(mesh, tokens, report)
    report.findings = list(dict.fromkeys(findings))
    return report


def validate_claim(mesh, res, tokens=None, now=None, skew=DEFAULT_SKEW):
    """Check one claim resource against an already validated document set (an RR's own documents).

    The same per-claim rules as validate(), without re-parsing and re-checking the documents, so
    the enrollment service pays for the claim only.  Duplicates are the caller's business.
    """
    findings = []
    now = now or datetime.datetime.now(datetime.timezone.utc)
    claim = parse_claim(res, findings)
    view = dataclasses.replace(mesh, claims={claim.name: claim})
    report = Report(findings=findings, mesh=view)
    policy = _claim_policy(view, claim, findings)
    if _check_claim(view, policy, claim, tokens or {}, now, skew, findings, report) and policy is not None:
        report.active[policy.name] = [claim]
    return report


def _claim_policy(mesh, claim, findings):
    if claim.policy_ref is None:
        findings.append(Finding(claim.ref, "spec.policyRef", "policy-reference", "is required"))
        return None
    name = split_ref(claim.policy_ref, "SAMEnrollmentPolicy")
    policy = mesh.policies.get(name) if name else None
    if policy is None:
        findings.append(Finding(claim.ref, "spec.policyRef", "policy-reference",
                                "%s does not name a SAMEnrollmentPolicy in this document set" % claim.policy_ref))
    return policy


def _check_claim(mesh, policy, claim, tokens, now, skew, findings, report, intent=False):
    """Check one claim (an ``intent``: all but its join auth); return True when it passes."""
    before = len(findings)
    identifiers.check_claim(claim, findings)
    if claim.timestamp is not None and claim.timestamp > now + skew:
        findings.append(Finding(claim.ref, "spec.joinTimestamp", "timestamp-future",
                                "%s is more than %s in the future" % (claim.timestamp.isoformat(), skew)))
    if policy is None:
        return False
    if not intent:
        _check_join_auth(policy, claim, tokens, now, findings, report)
    _check_scope(mesh, policy, claim, findings)
    if policy.ttl is not None and claim.timestamp is not None and claim.expires_at is not None \
            and claim.expires_at > claim.timestamp + policy.ttl:
        findings.append(Finding(claim.ref, "spec.expiresAt", "expires-at-bound",
                                "%s is later than joinTimestamp + policy ttl (%s)"
                                % (claim.expires_at.isoformat(), (claim.timestamp + policy.ttl).isoformat())))
    if any(f.severity == ERROR for f in findings[before:]):
        return False
    skip = admission.skip_reason(policy, claim, now)
    if skip is not None:
        findings.append(skip)
        report.skipped.append(claim.name)
        return False
    return True


# Claim -> (what its check read, (ok, findings, report entries)): without tokens (the RR's reconcile, whose records
# were checked with their token when submitted) a claim's check reads only the claim, its policy and pools, and
# ``now`` through two instants (timestamp-future and expiry), so an unchanged claim is not checked again (issue 19).
_CHECKED = ByIdentity()
_REPORT_LISTS = ("skipped", "verified", "unverified")


def _check_claim_memo(mesh, policy, claim, now, skew, findings, report, intent, pools):
    if policy is not None and policy.name not in pools:
        pools[policy.name] = tuple(mesh.pools.get(split_ref(ref, "MobilityPool")) for ref in policy.pool_refs)
    until = admission.expiry(policy, claim) if policy is not None else None
    read = (policy, pools.get(policy.name) if policy is not None else None, skew, intent,
            claim.timestamp is not None and claim.timestamp > now + skew, until is not None and until <= now)
    hit = _CHECKED.get(claim)
    if hit is None or hit[0] != read:
        scratch = Report(findings=[], mesh=mesh)
        ok = _check_claim(mesh, policy, claim, {}, now, skew, scratch.findings, scratch, intent)
        hit = _CHECKED.put(claim, (read, (ok, tuple(scratch.findings),
                                          tuple((n, tuple(getattr(scratch, n))) for n in _REPORT_LISTS))))
    ok, own, lists = hit[1]
    findings.extend(own)
    for name, values in lists:
        getattr(report, name).extend(values)
    return ok


def _check_join_auth(policy, claim, tokens, now, findings, report):
    if policy.token is None:
        return  # unsigned policies are reported once, by check_config
    for key, value in (("joinNonce", claim.nonce), ("joinTimestamp", claim.spec.get("joinTimestamp")),
                       ("joinHMAC", claim.hmac)):
        if value is None or (isinstance(value, str) and not value.strip()):
            findings.append(Finding(claim.ref, "spec." + key, "join-auth-required",
                                    "is required because %s sets %s" % (_pref(policy), _token_field(policy))))
    if claim.hmac is None:
        return
    keys = keyring.keys_of(tokens.get(policy.name))
    if not any(key.usable for key in keys):
        report.unverified.append(claim.name)
        return
    if not payload.is_hmac_hex(claim.hmac):
        findings.append(Finding(claim.ref, "spec.joinHMAC", "join-hmac-format",
                                "must be 64 lowercase hexadecimal characters"))
        return
    text = payload.canonical_payload(claim.spec)
    key = keyring.signer(keys, claim.spec, text)
    if key is None and keyring.unavailable(keys):
        report.unverified.append(claim.name)   # it may be signed with the token this host cannot read
    elif key is None:
        single = [k.id for k in keys] == [DEFAULT_TOKEN_ID]
        what = "joinTokenFrom" if single else "join tokens (%s)" % keyring.describe(keys)
        findings.append(Finding(claim.ref, "spec.joinHMAC", "join-hmac",
                                "does not match %s %s" % (_pref(policy), what)))
    elif key.expired(now):
        findings.append(Finding(claim.ref, "spec.joinHMAC", "join-token-expired",
                                "signed with join token %r of %s, which is not accepted after %s: re-sign the claim "
                                "with a current token" % (key.id, _pref(policy), key.not_after.isoformat())))
    else:
        report.verified.append(claim.name)
        report.signed_with[claim.name] = key
        report.payloads[claim.name] = text


def _token_field(policy):
    return "joinTokenFrom" if [t.id for t in policy.tokens] == [DEFAULT_TOKEN_ID] else "joinTokens"


def _pref(policy):
    return "SAMEnrollmentPolicy/" + policy.name


def _check_scope(mesh, policy, claim, findings):
    def err(path, rule, message, severity=ERROR):
        findings.append(Finding(claim.ref, path, rule, message, severity))

    # fullmatch of the leafID as signed: the whole string, and a trailing newline never matches (Python's "$"
    # would accept one, Go's regexp in routerd does not).
    if policy.leaf_id_pattern is not None and claim.leaf_id is not None \
            and not policy.leaf_id_pattern.fullmatch(identifiers.raw_leaf_id(claim)):
        err("spec.leafID", "leaf-id-pattern", "%r does not match %s allowedLeafIDs.pattern %r (the whole leafID "
            "must match)" % (identifiers.raw_leaf_id(claim), _pref(policy), policy.leaf_id_pattern.pattern))
    if policy.audience is not None and claim.audience != policy.audience:
        err("spec.joinAudience", "join-audience", "%r is not %s joinAudience %r"
            % (claim.audience, _pref(policy), policy.audience))
    if policy.rrset_ref is not None and claim.rrset_ref is not None \
            and split_ref(claim.rrset_ref, "SAMRRSet") != split_ref(policy.rrset_ref, "SAMRRSet"):
        err("spec.rrSetRef", "rrset-scope",
            "%s is not %s rrSetRef %s" % (claim.rrset_ref, _pref(policy), policy.rrset_ref))
    if claim.tunnel_address is not None and policy.tunnel_prefixes \
            and not _inside(claim.tunnel_address, policy.tunnel_prefixes):
        err("spec.tunnelAddress", "tunnel-address-prefix", "%s is outside %s tunnelAddressPrefixes %s"
            % (claim.tunnel_address, _pref(policy), _fmt(policy.tunnel_prefixes)))
    if claim.endpoint is None and claim.spec.get("endpoint") is None:
        err("spec.endpoint", "required", "is required")
    elif claim.endpoint is not None and policy.endpoint_prefixes \
            and not _inside(claim.endpoint, policy.endpoint_prefixes):
        err("spec.endpoint", "endpoint-prefix", "%s is outside %s endpointPrefixes %s"
            % (claim.endpoint, _pref(policy), _fmt(policy.endpoint_prefixes)))
    _check_wireguard(policy, claim, err)
    _check_owned(mesh, policy, claim, err)


def _check_wireguard(policy, claim, err):
    prefixes = policy.wg_endpoint_prefixes or policy.endpoint_prefixes
    if claim.wg_endpoint_host is not None and prefixes and not _inside(claim.wg_endpoint_host, prefixes):
        which = "wireGuard.endpointPrefixes" if policy.wg_endpoint_prefixes else "endpointPrefixes"
        err("spec.wireGuard.endpoint", "wireguard-endpoint-prefix", "host %s is outside %s %s %s"
            % (claim.wg_endpoint_host, _pref(policy), which, _fmt(prefixes)))
    if claim.wg_public_key is not None and not _is_wg_key(claim.wg_public_key):
        # A warning, as in routerd: reviewed examples carry placeholder keys.
        err("spec.wireGuard.publicKey", "wireguard-public-key",
            "is not a base64 WireGuard public key (32 bytes); it will be refused when applied", WARNING)
    for index, text, net in claim.wg_allowed_ips:
        path = "spec.wireGuard.allowedIPs[%d]" % index
        if net is None:
            err(path, "ipv4-prefix", "%r is not an IPv4 prefix" % text)
        elif not _inside(net, policy.wg_extra_prefixes):
            err(path, "wireguard-allowed-ips", "%s is outside %s spec.wireGuard.allowedExtraIPPrefixes %s"
                % (net, _pref(policy), _fmt(policy.wg_extra_prefixes)))


def _check_owned(mesh, policy, claim, err):
    pools = policy_pools(mesh, policy)
    for index, text, net in claim.owned:
        path = "spec.mobility.ownedAddresses[%d]" % index
        if net is None:
            err(path, "ipv4-prefix", "%r is not an IPv4 address or /32" % text)
        elif net.prefixlen != 32:
            err(path, "owned-host-route", "%s is not a /32" % net)
        elif not _inside(net, [pool[1] for pool in pools]):
            err(path, "mobility-pool-owned", "%s is outside %s" % (
                net, ", ".join("%s %s" % (ref, p) for ref, p in pools) or "every MobilityPool of " + _pref(policy)))


def policy_pools(mesh, policy):
    """[(label, prefix)] the policy authorizes /32s from: its MobilityPools and mobilityPrefixes."""
    out = []
    for ref in policy.pool_refs:
        pool = mesh.pools.get(split_ref(ref, "MobilityPool"))
        if pool is not None and pool.prefix is not None:
            out.append(("MobilityPool/" + pool.name, pool.prefix))
    out.extend((_pref(policy) + " mobilityPrefixes", p) for p in policy.mobility_prefixes)
    return out


def _token_notes(mesh, tokens, report):
    by_policy = {}
    for name in report.unverified:
        claim = mesh.claims[name]
        by_policy.setdefault(split_ref(claim.policy_ref, "SAMEnrollmentPolicy"), []).append(name)
    for policy_name, names in sorted(by_policy.items()):
        keys = keyring.keys_of(tokens.get(policy_name))
        reason = "; ".join(key.key if len(keys) == 1 else "%s: %s" % (key.id, key.key)
                           for key in keys if not key.usable) or "no join token was supplied"
        report.findings.append(Finding(
            "SAMEnrollmentPolicy/" + policy_name, "spec." + _token_field(mesh.policies[policy_name]),
            "hmac-not-verified",
            "joinHMAC of %d claim(s) not verified (%s): field presence and policy scope were checked"
            % (len(names), reason), WARNING))


def _inside(item, prefixes):
    """Address or network inside any of the prefixes (integer math: ipaddress.subnet_of is slow)."""
    if hasattr(item, "prefixlen"):
        value, length = int(item.network_address), item.prefixlen
    else:
        value, length = int(item), 32
    for prefix in prefixes:
        shift = 32 - prefix.prefixlen
        if length >= prefix.prefixlen and value >> shift == int(prefix.network_address) >> shift:
            return True
    return False


def _fmt(prefixes):
    return "[" + ", ".join(str(p) for p in prefixes) + "]"


def _is_wg_key(text):
    try:
        return len(text.strip()) == 44 and len(base64.b64decode(text.strip(), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def route_admission(report):
    """RouteAdmission over every active claim of a validated document set.

    Underlay/management prefixes are everything a policy or RRSet names as an
    endpoint or tunnel range, so a leaf can never pull the underlay into the overlay.
    """
    mesh = report.mesh
    pools, underlay = {}, set()
    for policy in mesh.policies.values():
        pools.update((pool[1], None) for pool in policy_pools(mesh, policy))
        underlay.update(policy.endpoint_prefixes + policy.wg_endpoint_prefixes + policy.tunnel_prefixes)
    for rrset in mesh.rrsets.values():
        for member in rrset.members:
            for addr in (member.endpoint, member.router_id):
                if addr is not None:
                    underlay.add(ipaddress.IPv4Network((addr, 32)))
            if member.tunnel_address is not None:
                underlay.add(member.tunnel_address)
    peer = next(iter(mesh.dynamic_peers.values()), None)
    imports = effective_import(peer, mesh.routers.get(split_ref(peer.router_ref, "BGPRouter")))[0] if peer else None
    claims = [c for cs in report.active.values() for c in cs]
    return admission.RouteAdmission(
        claims, list(pools), sorted(underlay, key=str),
        length_min=imports.length_min if imports else 32, length_max=imports.length_max if imports else 32)


def validate_leaving_out(resources, now=None, skew=DEFAULT_SKEW, findings=None):
    """validate() that leaves out each claim with an error instead of refusing the whole set.

    Returns (report, left_out): ``left_out`` maps the ref of every claim left out to its error findings.  For
    the RR's accepted records (issue 17): one conflicting or bad record must not stop the reconcile of the
    others.  An error in any other document still makes ``report.ok`` false: those are the operator's own.
    """
    report = validate(resources, now=now, skew=skew, findings=findings)
    left_out = {}
    while not report.ok:
        bad = {f.resource for f in report.errors if f.resource.startswith("SAMEnrollmentClaim/")}
        if not bad or any(f.resource not in bad for f in report.errors):
            break
        for finding in report.errors:
            left_out.setdefault(finding.resource, []).append(finding)
        resources = [r for r in resources if r.ref not in bad]
        report = validate(resources, now=now, skew=skew, findings=findings)
    return report, left_out
