# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gobgpd TOML for one node's materialized BGP state (see core/materialize.py).

``render_gobgp(state, options)`` returns the whole gobgpd configuration file as text;
``soft_reset_commands(old_state, new_state)`` says which ``gobgp`` CLI calls must follow
a configuration reload.  Pure: no I/O, stdlib only.

RR (``state["role"] == "rr"``)
    ``[global.config]``, one ``[[peer-groups]]`` per BGPDynamicPeer (peer-as; route-reflector client and cluster
    id when ``routeReflectorClient``; timers), one ``[[dynamic-neighbors]]`` per admitted leaf (its tunnel /32,
    inside the listen ranges), and the GLOBAL import policy ``SAM-ADMISSION`` (``default-import-policy =
    "reject-route"``; GoBGP silently ignores peer-group/neighbor policies of peers that are not route-server clients):
    per admitted claim a neighbor-set and a prefix-set ``SAM-LEAF-<leafID>`` (its tunnel /32; its owned prefixes,
    exact mask length) and a statement accepting only when BOTH match; ``SAM-ADMISSION-REJECT`` rejects the rest.
    Only constructs gobgpd 3.10 accepts are emitted: when it rejects any part of the policy it installs NO policy
    and import stays accept (fail open), hence ``nextHopRewrite: peer-address`` becomes the claim's own address.
    Fail closed: a claim with no usable owned prefix (none, or all outside ``allowedPrefixes`` / length bounds)
    gets no sets and no accept (GoBGP treats an empty set as match-anything). Malformed addresses raise
    ValueError; an identifier (node, peerGroup, leafID, nodeRef) outside core/identifiers.py's safe set raises
    RenderError (a ValueError), as does every other refusal.
    ``listenLimit`` (no GoBGP equivalent) is a comment.
    BGPPeers of an RR (``generatePeers: true``) become ``[[neighbors]]`` in the peer group whose
    listen range covers them.  RR-to-RR peering (``routeReflectorPeer``) is refused (ValueError).

Leaf (``state["role"] == "leaf"``)
    ``[global.config]``, one ``[[neighbors]]`` per BGPPeer (neighbor-address, peer-as, local-address,
    connect-retry, timers) and the global export policy ``SAM-EXPORT`` accepting only the
    BGPRouter ``exportPrefixes`` (``default-export-policy = "reject-route"``).  Nothing is announced
    here: a leaf originates its /32s with ``gobgp global rib add -a ipv4 <prefix>``.

Options (``options`` mapping, all optional): ``listen_port`` (179), ``connect_retry`` (leaf, 2 s),
``extra_announce`` (ignored: leaves announce through the CLI; accepted so callers pass one mapping),
``export_any`` (TESTS ONLY: a leaf exports every route so a test can announce a hostile set).

Output is deterministic (peers, sets and statements sorted by neighbor address) and names
are stable per leaf, so admitting one more leaf changes only that leaf's lines.
"""

import ipaddress
import re
from dataclasses import dataclass

from . import RenderError, identifier, peer_node, resource_label

ADMISSION_POLICY = "SAM-ADMISSION"
ADMISSION_REJECT = "SAM-ADMISSION-REJECT"
EXPORT_POLICY = "SAM-EXPORT"
EXPORT_ACCEPT = "SAM-EXPORT-OWNED"
EXPORT_REJECT = "SAM-EXPORT-REJECT"
LEAF_SET_PREFIX = "SAM-LEAF-"
AFI_SAFI = "ipv4-unicast"
GOBGP = "gobgp"

DEFAULT_OPTIONS = {"listen_port": 179, "connect_retry": 2, "extra_announce": (), "export_any": False}
# nextHopRewrite -> GoBGP set-next-hop.  gobgpd 3.10 has no "peer-address" keyword, and an unknown
# keyword makes gobgpd drop the WHOLE policy configuration silently (import then defaults to
# accept): so "peer-address" is rendered as the claim's own tunnel address, which is exactly the
# peer address because every accept statement is bound to that single neighbor.
NEXT_HOP_KEYWORDS = {"self": "self", "unchanged": "unchanged"}

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


# ---------------------------------------------------------------- TOML emitting

def toml_string(text):
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in str(text):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append("\\u%04X" % ord(char))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return toml_string(value)
    raise RenderError("cannot render %r as a TOML value" % (value,))


def _comment(text):
    """Data inside a ``#`` comment: control characters (a newline would end the comment) become '?'."""
    return "".join("?" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in str(text))


def _key(key):
    return key if _BARE_KEY.match(key) else toml_string(key)


def _kv(indent, key, value):
    return "%s%s = %s" % ("  " * indent, _key(key), toml_value(value))


def _table(indent, name, array=False):
    return "%s%s%s%s" % ("  " * indent, "[[" if array else "[", name, "]]" if array else "]")


# ---------------------------------------------------------------- inputs

def _opts(options):
    opts = dict(DEFAULT_OPTIONS)
    opts.update(options or {})
    for name in ("listen_port", "connect_retry"):
        if isinstance(opts[name], bool) or not isinstance(opts[name], int) or opts[name] < 0:
            raise RenderError("option %s must be a non-negative integer" % name)
    return opts


def _of_kind(state, kind):
    return [r for r in state.get("resources", ()) if r.get("kind") == kind]


def _spec(resource):
    return resource.get("spec") or {}


def _addr(text):
    """Normalized IPv4 address text from 'a.b.c.d' or 'a.b.c.d/32'; ValueError on anything else."""
    text = str(text)
    if "/" in text:
        net = ipaddress.IPv4Network(text)
        if net.prefixlen != 32:
            raise RenderError("%s is not a single address" % text)
        return str(net.network_address)
    return str(ipaddress.IPv4Address(text))


def _net(text):
    return ipaddress.IPv4Network(str(text), strict=True)


def _asn(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2 ** 32:
        raise RenderError("%s must be an AS number, got %r" % (what, value))
    return value


def _router(state):
    routers = _of_kind(state, "BGPRouter")
    if len(routers) != 1:
        raise RenderError("node %s needs exactly one BGPRouter (found %d)" % (state.get("node"), len(routers)))
    spec = _spec(routers[0])
    return spec, _asn(spec.get("asn"), "BGPRouter.asn"), _addr(spec.get("routerID"))


def _global(lines, asn, router_id, opts):
    lines += [_table(0, "global.config"), _kv(1, "as", asn), _kv(1, "router-id", router_id),
              _kv(1, "port", opts["listen_port"]), ""]


def _timers(lines, parent, spec, connect_retry=None):
    """The documents' timer preset (materialize: ``timers``) and a connect-retry, if any."""
    timers = spec.get("timers") or {}
    values = [("connect-retry", connect_retry), ("keepalive-interval", timers.get("keepalive")),
              ("hold-time", timers.get("holdTime"))]
    if any(v for _k, v in values):
        lines += [_table(1, parent + ".timers.config")] + [_kv(2, k, v) for k, v in values if v]


def _afi_safi(lines, indent, parent):
    lines += [_table(indent, parent + ".afi-safis", array=True),
              _table(indent + 1, parent + ".afi-safis.config"), _kv(indent + 2, "afi-safi-name", AFI_SAFI)]


# ---------------------------------------------------------------- RR

def _allowed(prefix, spec):
    """Defence in depth: the prefix lies inside allowedPrefixes (when set) and the length bounds."""
    low = spec.get("allowedPrefixLengthMin", 32)
    high = spec.get("allowedPrefixLengthMax", 32)
    if not low <= prefix.prefixlen <= high:
        return False
    allowed = [_net(p) for p in spec.get("allowedPrefixes") or ()]
    return not allowed or any(prefix.subnet_of(a) for a in allowed)


@dataclass(frozen=True)
class Admitted:
    """One admitted claim as the RR policy sees it."""

    neighbor: ipaddress.IPv4Address
    leaf: str
    nets: tuple  # IPv4Network, sorted; empty = nothing may be accepted
    next_hop: str = None

    @property
    def set_name(self):
        return LEAF_SET_PREFIX + self.leaf


def admission_entries(state):
    """Admitted claims of an RR state, sorted by neighbor address.

    Claims whose prefixes are all filtered out keep an empty ``nets``; the renderer emits
    nothing for them (no accept).  Conflicting duplicates raise ValueError.
    """
    by_neighbor, by_leaf = {}, {}
    for peer in _of_kind(state, "BGPDynamicPeer"):
        spec = _spec(peer)
        for index, item in enumerate(spec.get("admitted") or ()):
            leaf = str(item.get("leafID") or "")
            if not leaf:
                raise RenderError("admitted claim %s has no leafID" % item.get("claimRef"))
            identifier(item.get("leafID"), resource_label(peer), "spec.admitted[%d].leafID" % index)
            nets = sorted({n for n in (_net(p) for p in item.get("prefixes") or ()) if _allowed(n, spec)})
            entry = Admitted(ipaddress.IPv4Address(_addr(item.get("neighbor"))), leaf, tuple(nets),
                             spec.get("nextHopRewrite"))
            if by_neighbor.setdefault(entry.neighbor, entry) != entry or by_leaf.setdefault(leaf, entry) != entry:
                raise RenderError("conflicting admission for neighbor %s / leaf %s" % (entry.neighbor, leaf))
    return [by_neighbor[n] for n in sorted(by_neighbor)]


def _peer_group(lines, spec, label, entries):
    name = str(spec.get("peerGroup") or "")
    if not name:
        raise RenderError("BGPDynamicPeer without peerGroup")
    identifier(spec.get("peerGroup"), label, "spec.peerGroup")
    lines += [_table(0, "peer-groups", array=True), _table(1, "peer-groups.config"),
              _kv(2, "peer-group-name", name), _kv(2, "peer-as", _asn(spec.get("peerASN"), "peerASN"))]
    if spec.get("routeReflectorClient"):
        lines += [_table(1, "peer-groups.route-reflector.config"), _kv(2, "route-reflector-client", True)]
        if spec.get("clusterID"):
            lines.append(_kv(2, "route-reflector-cluster-id", _addr(spec["clusterID"])))
    _timers(lines, "peer-groups", spec)
    _afi_safi(lines, 1, "peer-groups")
    lines.append("")
    # One /32 range per admitted leaf inside the listen ranges, as for FRR: a leaf that is not admitted (or is
    # revoked: apply/gobgp resets its session) gets no session at all, not only its routes refused.
    ranges = [_net(p) for p in spec.get("listenRanges") or ()]
    for entry in entries:
        if entry.nets and any(entry.neighbor in r for r in ranges):
            lines += [_table(0, "dynamic-neighbors", array=True), _table(1, "dynamic-neighbors.config"),
                      _kv(2, "prefix", "%s/32" % entry.neighbor), _kv(2, "peer-group", name), ""]
    if spec.get("listenLimit") is not None:
        lines += [_comment("# listenLimit %s of %s is not enforced by GoBGP" % (spec["listenLimit"], name)), ""]


def _rr_static_peers(lines, state, groups):
    """BGPPeer resources of an RR (generatePeers): neighbors inheriting the covering peer group."""
    peers = sorted(_of_kind(state, "BGPPeer"), key=lambda r: ipaddress.IPv4Address(_addr(_spec(r)["address"])))
    if any(_spec(p).get("routeReflectorPeer") for p in peers):
        # Refused rather than rendered half: GoBGP's import policy is global and its export policy
        # cannot set next-hop-self toward one neighbor only (docs/bgp.md, "RR-to-RR peering").
        raise RenderError("RR-to-RR peering (routeReflectorPeer) is rendered for FRR only")
    for peer in peers:
        peer_node(peer)   # not rendered here; refused as render_frr refuses it
        spec = _spec(peer)
        address = ipaddress.IPv4Address(_addr(spec["address"]))
        group = next((name for name, ranges in groups if any(address in r for r in ranges)), None)
        _neighbor(lines, spec, None, group)


def _prefix_set(lines, name, nets):
    lines += [_table(0, "defined-sets.prefix-sets", array=True), _kv(1, "prefix-set-name", name)]
    for net in nets:
        lines += [_table(1, "defined-sets.prefix-sets.prefix-list", array=True), _kv(2, "ip-prefix", str(net)),
                  _kv(2, "masklength-range", "%d..%d" % (net.prefixlen, net.prefixlen))]
    lines.append("")


def _rr_policy(lines, entries):
    admitted = [e for e in entries if e.nets]  # never a set that is empty (GoBGP: matches anything)
    for entry in admitted:
        _prefix_set(lines, entry.set_name, entry.nets)
    for entry in admitted:
        lines += [_table(0, "defined-sets.neighbor-sets", array=True), _kv(1, "neighbor-set-name", entry.set_name),
                  _kv(1, "neighbor-info-list", ["%s/32" % entry.neighbor]), ""]
    lines += [_table(0, "policy-definitions", array=True), _kv(1, "name", ADMISSION_POLICY)]
    for entry in admitted:
        owned = ", ".join(str(n) for n in entry.nets)
        lines += [_comment("  # %s: %s from %s only" % (entry.leaf, owned, entry.neighbor)),
                  _table(1, "policy-definitions.statements", array=True), _kv(2, "name", entry.set_name),
                  _table(2, "policy-definitions.statements.conditions.match-neighbor-set"),
                  _kv(3, "neighbor-set", entry.set_name), _kv(3, "match-set-options", "any"),
                  _table(2, "policy-definitions.statements.conditions.match-prefix-set"),
                  _kv(3, "prefix-set", entry.set_name), _kv(3, "match-set-options", "any"),
                  _table(2, "policy-definitions.statements.actions"), _kv(3, "route-disposition", "accept-route")]
        next_hop = str(entry.neighbor) if entry.next_hop == "peer-address" else NEXT_HOP_KEYWORDS.get(entry.next_hop)
        if next_hop:
            lines += [_table(2, "policy-definitions.statements.actions.bgp-actions"), _kv(3, "set-next-hop", next_hop)]
    lines += ["  # everything else: other leaves' prefixes, unclaimed, aggregates, defaults, underlay",
              _table(1, "policy-definitions.statements", array=True), _kv(2, "name", ADMISSION_REJECT),
              _table(2, "policy-definitions.statements.actions"), _kv(3, "route-disposition", "reject-route"), ""]


def _render_rr(state, opts):
    asn, router_id = _router(state)[1:]
    lines = [_comment("# gobgpd configuration of RR %s, rendered by boma.mesh (render_gobgp); do not edit."
                      % state.get("node")),
             ""]
    _global(lines, asn, router_id, opts)
    lines += [_table(0, "global.apply-policy.config"), _kv(1, "import-policy-list", [ADMISSION_POLICY]),
              _kv(1, "default-import-policy", "reject-route"), ""]
    groups, entries = [], admission_entries(state)
    for peer in sorted(_of_kind(state, "BGPDynamicPeer"), key=lambda r: str(_spec(r).get("peerGroup"))):
        spec = _spec(peer)
        _peer_group(lines, spec, resource_label(peer), entries)
        groups.append((spec["peerGroup"], [_net(p) for p in spec.get("listenRanges") or ()]))
    _rr_static_peers(lines, state, groups)
    skipped = [e.leaf for e in entries if not e.nets]
    if skipped:
        lines += [_comment("# no accept statement (no admissible owned prefix): %s" % ", ".join(sorted(skipped))),
                  ""]
    _rr_policy(lines, entries)
    return "\n".join(lines)


# ---------------------------------------------------------------- leaf


def _neighbor(lines, spec, connect_retry, group=None):
    lines += [_table(0, "neighbors", array=True), _table(1, "neighbors.config"),
              _kv(2, "neighbor-address", _addr(spec["address"])),
              _kv(2, "peer-as", _asn(spec.get("remoteASN"), "BGPPeer.remoteASN"))]
    if group:
        lines.append(_kv(2, "peer-group", group))
    if spec.get("localAddress"):
        lines += [_table(1, "neighbors.transport.config"), _kv(2, "local-address", _addr(spec["localAddress"]))]
    _timers(lines, "neighbors", spec, connect_retry)
    _afi_safi(lines, 1, "neighbors")
    lines.append("")


def _render_leaf(state, opts):
    spec, asn, router_id = _router(state)
    lines = [_comment("# gobgpd configuration of leaf %s, rendered by boma.mesh (render_gobgp); do not edit."
                      % state.get("node")),
             "# Owned prefixes are announced with `gobgp global rib add -a ipv4 <prefix>`.", ""]
    _global(lines, asn, router_id, opts)
    exports = sorted({_net(p) for p in spec.get("exportPrefixes") or ()})
    if opts["export_any"]:
        lines += ["# export_any: TEST ONLY, every route is exported", _table(0, "global.apply-policy.config"),
                  _kv(1, "default-export-policy", "accept-route"), ""]
    else:
        lines += [_table(0, "global.apply-policy.config"), _kv(1, "export-policy-list", [EXPORT_POLICY]),
                  _kv(1, "default-export-policy", "reject-route"), ""]
    peers = sorted(_of_kind(state, "BGPPeer"), key=lambda r: ipaddress.IPv4Address(_addr(_spec(r)["address"])))
    for peer in peers:
        peer_node(peer)
        _neighbor(lines, _spec(peer), opts["connect_retry"])
    if exports:      # with export_any too: it says which local routes are the leaf's own (apply/gobgp originates them)
        _prefix_set(lines, EXPORT_POLICY, exports)
    if not opts["export_any"]:
        lines += [_table(0, "policy-definitions", array=True), _kv(1, "name", EXPORT_POLICY)]
        if exports:  # never an accept bound to an empty (match-anything) set
            lines += [_table(1, "policy-definitions.statements", array=True), _kv(2, "name", EXPORT_ACCEPT),
                      _table(2, "policy-definitions.statements.conditions.match-prefix-set"),
                      _kv(3, "prefix-set", EXPORT_POLICY), _kv(3, "match-set-options", "any"),
                      _table(2, "policy-definitions.statements.actions"), _kv(3, "route-disposition", "accept-route")]
        lines += [_table(1, "policy-definitions.statements", array=True), _kv(2, "name", EXPORT_REJECT),
                  _table(2, "policy-definitions.statements.actions"), _kv(3, "route-disposition", "reject-route"), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- API

def render_gobgp(state, options=None):
    """gobgpd TOML text for a materialized node state ({'node', 'role', 'resources'})."""
    opts = _opts(options)
    role = (state or {}).get("role")
    if (state or {}).get("node") is not None:
        identifier(state["node"], "state", "node")
    if role == "rr":
        return _render_rr(state, opts)
    if role == "leaf":
        return _render_leaf(state, opts)
    raise RenderError("cannot render gobgpd configuration for role %r" % (role,))


def _policy_view(state):
    """What the BGP policies of a state depend on (None for no state)."""
    if not state:
        return None
    if state.get("role") == "rr":
        return ("rr", tuple(admission_entries(state)))
    spec = _router(state)[0]
    return ("leaf", tuple(sorted(str(_net(p)) for p in spec.get("exportPrefixes") or ())))


def soft_reset_commands(old_state, new_state, api_port=None):
    """gobgp argv lists to run after gobgpd reloaded the configuration of ``new_state``.

    GoBGP re-evaluates routes it already holds only on a reset:
    - RR, admission changed: ``gobgp neighbor all softresetin`` re-runs the import policy
      over every adj-RIB-in, so a revoked leaf's routes leave the RIB (and are withdrawn
      from the other leaves) without dropping any session.  (gobgpd 3.10 also soft-resets
      in by itself when a SIGHUP reload changed the policy; running it again is harmless.)
    - leaf, export prefixes only added: ``softresetout`` advertises them.
    - leaf, an export prefix removed: gobgpd 3.10 ``softresetout`` does NOT withdraw routes
      that the new export policy filters (it keeps no adj-RIB-out; osrg/gobgp#1910), so only
      a hard ``neighbor all reset`` retracts them from the RRs.
    Nothing is needed on first start (``old_state`` None) or when nothing policy-relevant
    changed.  ``api_port`` inserts ``-p PORT`` (gobgpd's gRPC port).
    """
    old, new = _policy_view(old_state), _policy_view(new_state)
    if old is None or new is None or old == new:
        return []
    base = [GOBGP] + (["-p", str(int(api_port))] if api_port is not None else []) + ["neighbor", "all"]
    if "rr" in (old[0], new[0]):
        return [base + ["softresetin"]]
    if set(old[1]) - set(new[1]):
        return [base + ["reset"]]
    return [base + ["softresetout"]]
