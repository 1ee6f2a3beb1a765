# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""BGP import/export policies as routerd reads them (issue 20): a BGPRouter's and a BGPDynamicPeer's, and a dynamic
peer's effective import policy (its own, else its BGPRouter's: the seed's "effective allowlist").

Used by model.py's parsers (the per-document checks) and by rules, materialize and validate (the effective policy).
"""

from dataclasses import dataclass

from .fields import parse_prefix

NEXT_HOP_REWRITES = ("peer-address", "unchanged")


@dataclass(frozen=True)
class ImportPolicy:
    prefixes: tuple = ()
    length_min: int = None
    length_max: int = None
    next_hop_rewrite: str = None


def read_import_policy(r, base="importPolicy"):
    """The ImportPolicy at ``base``, with routerd's checks: IPv4 prefixes without duplicates, nextHopRewrite one
    of NEXT_HOP_REWRITES, min <= max, and no bound below an allowed prefix's own length."""
    prefixes = prefix_list(r, base + ".allowedPrefixes")
    lo = r.int(base + ".allowedPrefixLengthMin", minimum=0, maximum=32)
    hi = r.int(base + ".allowedPrefixLengthMax", minimum=0, maximum=32)
    rewrite = r.str(base + ".nextHopRewrite")
    if rewrite is not None and rewrite not in NEXT_HOP_REWRITES:
        r.error(r.at(base + ".nextHopRewrite"), "choice",
                "%r is not one of %s" % (rewrite, ", ".join(NEXT_HOP_REWRITES)))
    if lo is not None and hi is not None and lo > hi:
        r.error(r.at(base + ".allowedPrefixLengthMin"), "prefix-length-range",
                "allowedPrefixLengthMin %d is greater than allowedPrefixLengthMax %d" % (lo, hi))
    for key, bound in (("allowedPrefixLengthMin", lo), ("allowedPrefixLengthMax", hi)):
        # 0 is routerd's unset (Go's zero value): it bounds nothing, so only a set bound is compared.
        longest = max((p.prefixlen for p in prefixes if bound and bound < p.prefixlen), default=None)
        if longest is not None:
            r.error(r.at(base + "." + key), "prefix-length-bounds",
                    "%d is shorter than an allowed prefix (/%d): it must be >= the prefix length" % (bound, longest))
    return ImportPolicy(tuple(prefixes), lo, hi, rewrite)


def prefix_list(r, path):
    """IPv4 prefixes at ``path`` (masked, as routerd compares them); a repeated one is ``duplicate-prefix``."""
    out, seen = [], {}
    for index, item in enumerate(r.str_list(path)):
        where = "%s[%d]" % (r.at(path), index)
        net = parse_prefix(item)
        if net is None:
            r.error(where, "ipv4-prefix", "%r is not an IPv4 prefix" % item)
        elif net in seen:
            r.error(where, "duplicate-prefix", "%s duplicates %s[%d]" % (net, r.at(path), seen[net]))
        else:
            seen[net] = index
            out.append(net)
    return out


def effective_import(peer, router):
    """(ImportPolicy, where it comes from) of a BGPDynamicPeer: its own when it lists allowedPrefixes, else its
    BGPRouter's whole import policy (routerd's validateBGPDynamicEffectiveImportPolicy; the seed's "effective
    allowlist")."""
    if peer.allowed_prefixes or router is None or router.import_policy is None:
        own = ImportPolicy(peer.allowed_prefixes, peer.length_min, peer.length_max, peer.next_hop_rewrite)
        return own, "spec.importPolicy"
    return router.import_policy, "BGPRouter/%s spec.importPolicy" % router.name
