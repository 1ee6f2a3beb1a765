# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Admission: which claims are active, which collide, which routes a leaf may announce.

All lookups are hash maps keyed by the identity being checked, so the work is
O(n) in the number of claims; nothing compares claims pairwise.
"""

import datetime
import ipaddress
from dataclasses import dataclass

from .findings import ERROR, SKIPPED, Finding
from .memo import ByIdentity

DEFAULT_ROUTE = ipaddress.IPv4Network("0.0.0.0/0")

# (rule, human label, key function) of every identity that must be unique in a policy.
UNIQUE_FIELDS = (
    ("duplicate-leaf-id", "spec.leafID", "leafID", lambda c: [c.leaf_id]),
    ("duplicate-tunnel-address", "spec.tunnelAddress", "tunnelAddress",
     lambda c: [c.tunnel_address.network_address] if c.tunnel_address is not None else []),
    ("duplicate-wireguard-public-key", "spec.wireGuard.publicKey", "wireGuard.publicKey",
     lambda c: [c.wg_public_key]),
    ("duplicate-owned-address", "spec.mobility.ownedAddresses", "mobility.ownedAddresses",
     lambda c: c.owned_nets),
    ("duplicate-router-id", "spec.bgp.routerID", "bgp.routerID", lambda c: [c.router_id]),
    ("duplicate-join-nonce", "spec.joinNonce", "joinNonce", lambda c: [c.nonce]),
)


def expiry(policy, claim):
    """Effective expiry: the earlier of joinTimestamp + ttl and expiresAt (None = never)."""
    limits = []
    if policy is not None and policy.ttl is not None and claim.timestamp is not None:
        try:
            limits.append(claim.timestamp + policy.ttl)
        except OverflowError:   # a year-9999 joinTimestamp: never "expires" rather than a crash (issue 17)
            limits.append(NEVER)
    if claim.expires_at is not None:
        limits.append(claim.expires_at)
    return min(limits) if limits else None


NEVER = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)


def skip_reason(policy, claim, now):
    """A Finding(severity=skipped) when the claim is revoked or expired, else None."""
    if claim.revoked:
        return Finding(claim.ref, "spec.revoked", "claim-revoked", "revoked by an administrator; skipped", SKIPPED)
    if policy is not None and policy.ttl_invalid:
        # routerd fails closed: an unparsable ttl means no claim of the policy is admitted.
        return Finding(claim.ref, "spec.policyRef", "claim-expired",
                       "SAMEnrollmentPolicy/%s ttl is invalid; skipped (fail closed)" % policy.name, SKIPPED)
    until = expiry(policy, claim)
    if until is not None and now is not None and until <= now:
        return Finding(claim.ref, "spec.expiresAt" if claim.expires_at == until else "spec.joinTimestamp",
                       "claim-expired", "expired at %s; skipped" % until.isoformat(), SKIPPED)
    return None


def sort_key(claim):
    # The earliest join keeps an identity; later claims are the duplicates.
    ts = claim.timestamp.timestamp() if claim.timestamp is not None else float("inf")
    return (ts, claim.name)


# Route admission binds routes by tunnel address and owned /32 on the whole RR, and the leafID names the
# BGP neighbor's prefix-list and route-map, so these three must be unique across policies too (beyond
# routerd's per-policy rule).
GLOBAL_UNIQUE_FIELDS = tuple(f for f in UNIQUE_FIELDS
                             if f[0] in ("duplicate-leaf-id", "duplicate-tunnel-address", "duplicate-owned-address"))


def find_duplicates(claims, fields=UNIQUE_FIELDS):
    """Findings for claims reusing another claim's identity.

    Returns (findings, set of rejected claim names).  Pass the active claims
    of one policy (``UNIQUE_FIELDS``) or of every policy (``GLOBAL_UNIQUE_FIELDS``).
    """
    findings, rejected = [], set()
    seen = {}
    for _sort, claim, identities in sorted((_identities(c, fields) for c in claims), key=lambda i: i[0]):
        for key in identities:
            owner = seen.setdefault(key, claim.name)
            if owner != claim.name:
                rule, value = key
                _rule, path, label, _keys = next(f for f in fields if f[0] == rule)
                findings.append(Finding(claim.ref, path, rule, "%s %s is already used by SAMEnrollmentClaim/%s"
                                        % (label, value, owner), ERROR))
                rejected.add(claim.name)
    return findings, rejected


# fields -> Claim -> (sort key, Claim, ((rule, value), ...)): an RR checks every active claim for duplicates on each
# change, and reading each identity again was a third of its validation at 5,000 claims (issue 19).
_IDENTITIES = {}


def _identities(claim, fields):
    memo = _IDENTITIES.get(fields)
    if memo is None:
        memo = _IDENTITIES.setdefault(fields, ByIdentity())
    hit = memo.get(claim)
    if hit is None:
        # an address as its text: the same equality, and a str hashes in C (ipaddress hashes in Python)
        keys = tuple((rule, value if isinstance(value, str) else str(value))
                     for rule, _path, _label, values in fields for value in values(claim) if value is not None)
        hit = memo.put(claim, (sort_key(claim), claim, keys))
    return hit


def resolve_duplicates(candidates):
    """(findings, rejected names) for {policy: [admissible claims]}: the one rule every caller applies.

    Per policy first (``UNIQUE_FIELDS``), then mesh-wide among the survivors (``GLOBAL_UNIQUE_FIELDS``);
    in each pass the earliest joinTimestamp, then the name, keeps an identity (``sort_key``).  It needs only
    the claims, so two RRs holding the same records pick the same winners (issue 17, class 3).
    """
    findings, rejected = [], set()
    for claims in candidates.values():
        dup, names = find_duplicates(claims)
        findings.extend(dup)
        rejected |= names
    dup, names = find_duplicates([c for cs in candidates.values() for c in cs if c.name not in rejected],
                                 GLOBAL_UNIQUE_FIELDS)
    findings.extend(dup)
    return findings, rejected | names


@dataclass(frozen=True)
class Decision:
    accepted: bool
    rule: str
    message: str
    claim: str = None


class RouteAdmission:
    """Binds each announced prefix to the BGP neighbor (tunnel address) that announced it."""

    def __init__(self, claims, pools, underlay_prefixes=(), length_min=32, length_max=32):
        self.by_neighbor = {}
        self.owner = {}
        for claim in claims:
            if claim.tunnel_address is not None:
                self.by_neighbor[claim.tunnel_address.network_address] = claim
            for net in claim.owned_nets:
                self.owner[net] = claim
        self.pools = tuple(p for p in pools if p is not None)
        self.underlay = tuple(underlay_prefixes)
        self.length_min = 32 if length_min is None else length_min
        self.length_max = 32 if length_max is None else length_max

    def admit_route(self, neighbor_address, prefix):
        try:
            neighbor = ipaddress.IPv4Address(str(neighbor_address).partition("/")[0].strip())
            net = ipaddress.IPv4Network(str(prefix).strip(), strict=False)
        except ValueError:
            return Decision(False, "malformed", "neighbor %r or prefix %r is not IPv4" % (neighbor_address, prefix))
        claim = self.by_neighbor.get(neighbor)
        if claim is None:
            return Decision(False, "unknown-neighbor", "%s is not the tunnel address of an admitted claim" % neighbor)
        reject = self._reject_reason(net, claim)
        if reject is not None:
            return Decision(False, reject[0], reject[1], claim.name)
        return Decision(True, "owned", "%s is owned by %s" % (net, claim.ref), claim.name)

    def _reject_reason(self, net, claim):
        if net.prefixlen == 0:
            return "default-route", "default route is never admitted"
        if any(net.overlaps(u) for u in self.underlay):
            return "underlay-prefix", "%s overlaps an underlay/management prefix" % net
        pool = next((p for p in self.pools if net.subnet_of(p)), None)
        if pool is None:
            if any(p.subnet_of(net) for p in self.pools):
                return "pool-aggregate", "%s aggregates the MobilityPool" % net
            return "outside-pool", "%s is outside every MobilityPool" % net
        if net == pool and net.prefixlen != 32:
            return "pool-aggregate", "%s is the MobilityPool aggregate" % net
        if not self.length_min <= net.prefixlen <= self.length_max or net.prefixlen != 32:
            return "not-host-route", "%s is not a /32 host route" % net
        owner = self.owner.get(net)
        if owner is None:
            return "unclaimed", "%s is in the pool but claimed by no one" % net
        if owner.name != claim.name:
            return "other-claim", "%s is owned by %s" % (net, owner.ref)
        return None
