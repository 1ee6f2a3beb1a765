# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one safe character set of every identifier that can reach a configuration file or a command.

leafID, resource and claim names (metadata.name), node names (selfNodeRef, nodeRef), policy and peer-group
names become parts of FRR prefix-list/route-map names, GoBGP set names, tunnel and WireGuard peer names and
URL paths of the enrollment API: a value outside this set is refused (validation: a Finding with rule
``identifier``; renderers: RenderError; the API: 400), never escaped.  Interface names also obey the
kernel's limit (IFNAMSIZ - 1 = 15 characters).  Patterns are matched with ``fullmatch`` only: no ``$``
that lets a trailing newline through.
"""

import re

from .findings import Finding

RULE = "identifier"
MAX_LENGTH = 63
IFNAME_MAX = 15
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")
DESCRIPTION = "1-%d ASCII characters: letters, digits, '.', '_', '-', starting with a letter or digit" % MAX_LENGTH
IFNAME_DESCRIPTION = "1-%d ASCII characters: letters, digits, '.', '_', '-', starting with a letter or digit" \
    % IFNAME_MAX


def is_identifier(value):
    return isinstance(value, str) and IDENTIFIER.fullmatch(value) is not None


def is_ifname(value):
    return isinstance(value, str) and IFNAME.fullmatch(value) is not None


def problem(value, ifname=False):
    """Why ``value`` is not a safe identifier (interface name with ``ifname``), or None when it is one."""
    if ifname:
        return None if is_ifname(value) else "%r is not an interface name (%s)" % (value, IFNAME_DESCRIPTION)
    return None if is_identifier(value) else "%r is not an identifier (%s)" % (value, DESCRIPTION)


def show(value):
    """``value`` for a message: as it is when safe, else its repr (no control character reaches a log line)."""
    return value if is_identifier(value) else repr(value)


# Mesh slot -> kind, for the resource names of a validated document set.
_SLOTS = (("rrsets", "SAMRRSet"), ("policies", "SAMEnrollmentPolicy"), ("transports", "SAMTransportProfile"),
          ("routers", "BGPRouter"), ("dynamic_peers", "BGPDynamicPeer"), ("pools", "MobilityPool"))


def _check(findings, resource, path, value, ifname=False):
    why = problem(value, ifname)
    if why is not None:
        findings.append(Finding(resource, path, RULE, why))


def check_mesh(mesh, findings):
    """Every identifier of the documents (claims aside: check_claim): resource names, node names, interfaces."""
    for slot, kind in _SLOTS:
        for name in getattr(mesh, slot):
            _check(findings, "%s/%s" % (kind, show(name)), "metadata.name", name)
    for rrset in mesh.rrsets.values():
        for index, member in enumerate(rrset.members):
            if member.node is not None:
                _check(findings, "SAMRRSet/" + show(rrset.name), "spec.members[%d].nodeRef" % index, member.node)
    for profile in mesh.transports.values():
        ref = "SAMTransportProfile/" + show(profile.name)
        if profile.node is not None:
            _check(findings, ref, "spec.selfNodeRef", profile.node)
        if profile.underlay is not None:
            _check(findings, ref, "spec.underlayInterface", profile.underlay, ifname=True)


def raw_leaf_id(claim):
    """The leafID exactly as the leaf signed it (the model strips whitespace; routerd would not)."""
    raw = claim.spec.get("leafID") if isinstance(claim.spec, dict) else None
    return raw if isinstance(raw, str) else claim.leaf_id


def check_claim(claim, findings):
    """A claim's name and leafID as signed, whatever its policy's allowedLeafIDs.pattern (claim.ref stays the key)."""
    _check(findings, claim.ref, "metadata.name", claim.name)
    if claim.leaf_id is not None:
        _check(findings, claim.ref, "spec.leafID", raw_leaf_id(claim))
