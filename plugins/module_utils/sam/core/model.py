# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed views of the SAM resources, built from routerd-shaped (camelCase) specs.

Parsing never raises: a wrong field becomes a Finding and the view holds None
or an empty value for it.  Field names follow routerd's API so a document
loads the same here and in routerd.
"""

import re
from dataclasses import dataclass, field

from .bgp_policy import prefix_list, read_import_policy
from .fields import Reader, endpoint_host, parse_host_prefix, parse_prefix
from .memo import ByIdentity, Memo, json_key

KINDS = ("SAMRRSet", "SAMEnrollmentPolicy", "SAMEnrollmentClaim", "SAMTransportProfile",
         "BGPRouter", "BGPDynamicPeer", "MobilityPool")
MODES = ("ipip", "gre", "fou")
ENCRYPTIONS = ("none", "wireguard")
ASN_MAX = 4294967295
# routerd's BGP timer presets (spec.timers.profile, SAMTransportProfile spec.bgp.timersPreset) as
# (keepalive, hold) seconds: the values routerd's GoBGP controller applies (goBGPTimers: fast 3/9,
# default 30/90, slow 60/180). No preset in the documents leaves the daemon's own default.
TIMER_PRESETS = {"fast": (3, 9), "default": (30, 90), "slow": (60, 180)}


def split_ref(ref, kind):
    """'Kind/name' or bare 'name' -> name when the kind matches, else None."""
    if not isinstance(ref, str) or not ref.strip():
        return None
    ref = ref.strip()
    if "/" not in ref:
        return ref
    ref_kind, name = ref.split("/", 1)
    return name if ref_kind == kind and name else None


@dataclass(frozen=True)
class TokenSource:
    file: str = None
    env: str = None
    base64: bool = False


@dataclass(frozen=True)
class JoinToken:
    """One join token a policy accepts: its id, where it is read from, and when it stops being accepted."""

    id: str
    source: TokenSource
    not_after: object = None   # aware datetime or None

    @property
    def retiring(self):
        return self.not_after is not None


# routerd's single joinTokenFrom is the token with this id; spec.joinTokens (ours) names each token.
DEFAULT_TOKEN_ID = "default"
TOKEN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class RRMember:
    node: str
    endpoint: object
    tunnel_address: object
    asn: int
    router_id: object
    wg_public_key: str = None
    wg_endpoint: str = None
    wg_allowed_ips: tuple = ()
    wg_keepalive: int = None
    # The RR's address inside the WireGuard overlay, which ipip-over-WireGuard tunnels target.
    wg_transport_endpoint: object = None


@dataclass(frozen=True)
class RRSet:
    name: str
    policy_ref: str
    pool_refs: tuple
    members: tuple


@dataclass(frozen=True)
class Policy:
    name: str
    rrset_ref: str
    transport_ref: str
    token: TokenSource
    allow_unsigned: bool
    audience: str
    leaf_id_pattern: object
    tunnel_prefixes: tuple
    endpoint_prefixes: tuple
    wg_endpoint_prefixes: tuple
    wg_extra_prefixes: tuple
    pool_refs: tuple
    mobility_prefixes: tuple
    ttl: object
    ttl_invalid: bool = False
    wg_keepalive: int = None
    tokens: tuple = ()   # JoinToken, in the policy's order; token is tokens[0].source (None: unsigned)


@dataclass(frozen=True)
class Claim:
    name: str
    spec: dict = field(compare=False, hash=False)
    policy_ref: str = None
    rrset_ref: str = None
    leaf_id: str = None
    audience: str = None
    nonce: str = None
    timestamp: object = None
    hmac: str = None
    tunnel_address: object = None
    endpoint: object = None
    owned: tuple = ()
    asn: int = None
    router_id: object = None
    wg_public_key: str = None
    wg_endpoint: str = None
    wg_endpoint_host: object = None
    wg_allowed_ips: tuple = ()
    expires_at: object = None
    revoked: bool = False
    wg_keepalive: int = None

    @property
    def ref(self):
        return "SAMEnrollmentClaim/" + self.name

    @property
    def owned_nets(self):
        """The parsed owned /32s (``owned`` keeps (index, text, network) for error paths)."""
        return [item[2] for item in self.owned if item[2] is not None]


@dataclass(frozen=True)
class TransportProfile:
    name: str
    node: str
    mode: str
    encryption: str
    encap_sport: int
    encap_dport: int
    underlay: str
    local_endpoint: object
    peers_from: tuple
    generate_peers: bool
    router_ref: str
    peer_asn: int
    timers: str = None          # a TIMER_PRESETS name or None


@dataclass(frozen=True)
class BGPRouter:
    name: str
    asn: int
    router_id: object
    timers: str = None
    import_policy: object = None   # bgp_policy.ImportPolicy: what a BGPDynamicPeer without its own allowlist inherits


@dataclass(frozen=True)
class DynamicPeer:
    name: str
    router_ref: str
    peer_asn: int
    source_prefixes: tuple
    rr_client: bool
    allowed_prefixes: tuple
    length_min: int
    length_max: int
    cluster_id: object = None
    listen_limit: int = None
    next_hop_rewrite: str = None
    timers: str = None


@dataclass(frozen=True)
class MobilityPool:
    name: str
    prefix: object


def parse_rrset(res, findings):
    r = Reader(res.ref, res.spec, findings)
    members = []
    for index, item in enumerate(r.list("members")):
        if not isinstance(item, dict):
            r.error("spec.members[%d]" % index, "type", "must be a mapping")
            continue
        m = Reader(res.ref, item, findings, base="spec.members[%d]" % index)
        members.append(RRMember(
            node=m.str("nodeRef", required=True), endpoint=m.address("endpoint", required=True),
            tunnel_address=_host(m, "tunnelAddress", required=True),
            asn=m.int("bgp.asn", minimum=1, maximum=ASN_MAX), router_id=m.address("bgp.routerID"),
            wg_public_key=m.str("wireGuard.publicKey"), wg_endpoint=m.str("wireGuard.endpoint"),
            wg_allowed_ips=tuple(str(p) for p in m.prefixes("wireGuard.allowedIPs")),
            wg_keepalive=m.int("wireGuard.persistentKeepalive", minimum=0, maximum=65535),
            wg_transport_endpoint=m.address("wireGuard.transportEndpoint")))
    return RRSet(res.name, r.str("enrollmentPolicyRef"), tuple(r.str_list("mobilityPoolRefs")), tuple(members))


def _host(r, path, required=False):
    text = r.str(path, required)
    if text is None:
        return None
    net = parse_host_prefix(text)
    if net is None or net.prefixlen != 32:
        r.error(r.at(path), "host-prefix", "%r must be an IPv4 /32" % text)
        return None
    return net


def _token_source(r, prefix, where):
    tf, te = r.str(prefix + "file"), r.str(prefix + "env")
    if bool(tf) == bool(te):
        r.error(where, "secret-source", "exactly one of file or env must be set")
    return TokenSource(file=tf, env=te, base64=r.bool(prefix + "base64"))


def _join_tokens(r):
    """spec.joinTokenFrom (one token, id 'default') or spec.joinTokens (ours: several, for rotation)."""
    if r.raw("joinTokenFrom") is not None:
        if r.raw("joinTokens") is not None:
            r.error(r.at("joinTokens"), "join-token-sources", "set joinTokenFrom or joinTokens, not both")
        return (JoinToken(DEFAULT_TOKEN_ID, _token_source(r, "joinTokenFrom.", r.at("joinTokenFrom"))),)
    out, seen = [], set()
    for index, item in enumerate(r.list("joinTokens")):
        path = "joinTokens[%d]" % index
        if not isinstance(item, dict):
            r.error(r.at(path), "type", "must be a mapping")
            continue
        sub = Reader(r.ref, item, r.findings, base=r.at(path))
        ident = sub.str("id", required=True)
        if ident is not None and not TOKEN_ID.fullmatch(ident):
            sub.error(sub.at("id"), "join-token-id", "%r must match %s" % (ident, TOKEN_ID.pattern))
        elif ident in seen:
            sub.error(sub.at("id"), "join-token-id", "%r is listed twice" % ident)
        seen.add(ident)
        out.append(JoinToken(ident or "", _token_source(sub, "", sub.base), sub.time("notAfter")))
    if r.raw("joinTokens") is not None and not out:
        r.error(r.at("joinTokens"), "required", "must list at least one token (or leave it out for an unsigned "
                "policy with allowUnsigned: true)")
    return tuple(out)


def parse_policy(res, findings):
    r = Reader(res.ref, res.spec, findings)
    tokens = _join_tokens(r)
    token = tokens[0].source if tokens else None
    pattern = None
    text = r.str("allowedLeafIDs.pattern")
    if text is not None:
        try:
            pattern = re.compile(text)
        except re.error as exc:
            r.error("spec.allowedLeafIDs.pattern", "regex", "invalid regular expression: %s" % exc)
    return Policy(
        name=res.name, rrset_ref=r.str("rrSetRef"), transport_ref=r.str("transportProfileRef"),
        token=token, allow_unsigned=r.bool("allowUnsigned"), audience=r.str("joinAudience"),
        leaf_id_pattern=pattern, tunnel_prefixes=tuple(r.prefixes("tunnelAddressPrefixes")),
        endpoint_prefixes=tuple(r.prefixes("endpointPrefixes")),
        wg_endpoint_prefixes=tuple(r.prefixes("wireGuard.endpointPrefixes")),
        wg_extra_prefixes=tuple(r.prefixes("wireGuard.allowedExtraIPPrefixes")),
        pool_refs=tuple(r.str_list("mobilityPoolRefs")), mobility_prefixes=tuple(r.prefixes("mobilityPrefixes")),
        ttl=r.duration("ttl"), ttl_invalid=r.str("ttl") is not None and r.duration("ttl") is None,
        wg_keepalive=r.int("wireGuard.persistentKeepalive", minimum=0, maximum=65535), tokens=tokens)


_PARSED = Memo()   # (ref, spec JSON) -> (Claim, findings): half of an RR's run at 1,000 leaves was parsing
_PARSED_BY_ID = ByIdentity()   # the same, by the Resource object: the registry reuses one per unchanged record


def parse_claim(res, findings):
    """The Claim of a SAMEnrollmentClaim resource (frozen: a memo hit is shared); problems go to ``findings``."""
    hit = _PARSED_BY_ID.cached(res, _parse_claim_memo)
    findings.extend(hit[1])
    return hit[0]


def _parse_claim_memo(res):
    key = json_key(res.spec, res.ref)
    hit = _PARSED.get(key)
    if hit is None:
        own = []
        hit = _PARSED.put(key, (_parse_claim(res, own), tuple(own)), len(key[1]) if key else 0)
    return hit


def _parse_claim(res, findings):
    r = Reader(res.ref, res.spec, findings)
    owned = []
    for index, text in enumerate(r.str_list("mobility.ownedAddresses")):
        owned.append((index, text, parse_host_prefix(text)))
    allowed = []
    for index, text in enumerate(r.str_list("wireGuard.allowedIPs")):
        allowed.append((index, text, parse_host_prefix(text)))
    wg_endpoint = r.str("wireGuard.endpoint")
    wg_host = _endpoint(r, "wireGuard.endpoint")
    return Claim(
        name=res.name, spec=res.spec, policy_ref=r.str("policyRef"), rrset_ref=r.str("rrSetRef"),
        leaf_id=r.str("leafID", required=True), audience=r.str("joinAudience"), nonce=r.str("joinNonce"),
        timestamp=r.time("joinTimestamp"), hmac=r.str("joinHMAC"),
        tunnel_address=_host(r, "tunnelAddress", required=True),
        endpoint=_endpoint(r, "endpoint"), owned=tuple(owned), asn=r.int("bgp.asn", minimum=1, maximum=ASN_MAX),
        router_id=r.address("bgp.routerID"), wg_public_key=r.str("wireGuard.publicKey"),
        wg_endpoint=wg_endpoint, wg_endpoint_host=wg_host, wg_allowed_ips=tuple(allowed),
        expires_at=r.time("expiresAt"), revoked=r.bool("revoked"),
        wg_keepalive=r.int("wireGuard.persistentKeepalive", minimum=0, maximum=65535))


def _endpoint(r, path):
    text = r.str(path)
    if text is None:
        return None
    host = endpoint_host(text)
    if host is None:
        r.error(r.at(path), "endpoint", "%r is not an IPv4 address, address/len or address:port" % text)
    return host


def _timers(r, *paths):
    """The first timer preset set at ``paths`` (routerd: spec.bgp.timers.profile wins over timersPreset)."""
    for path in paths:
        name = r.str(path)
        if name is None or name == "":
            continue
        if name not in TIMER_PRESETS:
            r.error(r.at(path), "timers-preset", "%r is not one of %s" % (name, ", ".join(sorted(TIMER_PRESETS))))
            return None
        return name
    return None


def parse_transport(res, findings):
    r = Reader(res.ref, res.spec, findings)
    mode = r.str("mode", required=True)
    if mode is not None and mode not in MODES:
        r.error("spec.mode", "choice", "%r is not one of %s" % (mode, ", ".join(MODES)))
    encryption = r.str("encryption") or "none"
    if encryption not in ENCRYPTIONS:
        r.error("spec.encryption", "choice", "%r is not one of %s" % (encryption, ", ".join(ENCRYPTIONS)))
    peers = []
    for index, item in enumerate(r.list("peersFrom")):
        ref = item.get("resource") if isinstance(item, dict) else None
        if not isinstance(ref, str) or not ref.strip():
            r.error("spec.peersFrom[%d].resource" % index, "required", "is required")
        else:
            peers.append(ref.strip())
    return TransportProfile(
        name=res.name, node=r.str("selfNodeRef"), mode=mode, encryption=encryption,
        encap_sport=r.int("encapSport", minimum=1, maximum=65535),
        encap_dport=r.int("encapDport", minimum=1, maximum=65535), underlay=r.str("underlayInterface"),
        local_endpoint=r.address("localEndpoint"), peers_from=tuple(peers),
        generate_peers=r.bool("bgp.generatePeers", default=True), router_ref=r.str("bgp.routerRef"),
        peer_asn=r.int("bgp.peerASN", minimum=1, maximum=ASN_MAX),
        timers=_timers(r, "bgp.timers.profile", "bgp.timersPreset"))


def parse_bgp_router(res, findings):
    r = Reader(res.ref, res.spec, findings)
    prefix_list(r, "exportPolicy.allowedPrefixes")
    return BGPRouter(res.name, r.int("asn", required=True, minimum=1, maximum=ASN_MAX), r.address("routerID"),
                     timers=_timers(r, "timers.profile"), import_policy=read_import_policy(r))


def parse_dynamic_peer(res, findings):
    r = Reader(res.ref, res.spec, findings)
    own = read_import_policy(r)
    prefix_list(r, "exportPolicy.allowedPrefixes")
    return DynamicPeer(
        name=res.name, router_ref=r.str("routerRef", required=True),
        peer_asn=r.int("peerASN", required=True, minimum=1, maximum=ASN_MAX),
        source_prefixes=tuple(prefix_list(r, "listen.sourcePrefixes")), rr_client=r.bool("routeReflectorClient"),
        allowed_prefixes=own.prefixes, length_min=own.length_min, length_max=own.length_max,
        cluster_id=r.address("routeReflectorClusterID"), listen_limit=r.int("listen.limit", minimum=1, maximum=65535),
        next_hop_rewrite=own.next_hop_rewrite, timers=_timers(r, "timers.profile"))


def parse_pool(res, findings):
    r = Reader(res.ref, res.spec, findings)
    text = r.str("prefix", required=True)
    net = parse_prefix(text) if text is not None else None
    if text is not None and net is None:
        r.error("spec.prefix", "ipv4-prefix", "%r is not an IPv4 prefix" % text)
    return MobilityPool(res.name, net)


PARSERS = {
    "SAMRRSet": parse_rrset,
    "SAMEnrollmentPolicy": parse_policy,
    "SAMEnrollmentClaim": parse_claim,
    "SAMTransportProfile": parse_transport,
    "BGPRouter": parse_bgp_router,
    "BGPDynamicPeer": parse_dynamic_peer,
    "MobilityPool": parse_pool,
}
