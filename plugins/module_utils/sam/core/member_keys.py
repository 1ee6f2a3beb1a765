# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RRs' own WireGuard public keys in the RRSet an RR serves (issue 18; pure).

Each RR derives its public key from its private key file and learns the other RRs' keys through replication
(rr/rr_keys.py).  The key an RR actually holds wins over a ``wireGuard.publicKey`` written in the operator's
SAMRRSet document: a key rotation must reach the leaves without an Ansible run.  A document key that differs
is reported (``mismatches``) so the operator can update or drop it.
"""

import base64
import binascii

KEY_LENGTH = 44   # base64 text of 32 bytes


def is_public_key(text):
    """True for the base64 text (44 characters) of exactly 32 bytes: a WireGuard (X25519) public key."""
    if not isinstance(text, str) or len(text) != KEY_LENGTH:
        return False
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def with_member_keys(spec, keys):
    """A copy of the SAMRRSet ``spec`` whose members named in ``keys`` ({nodeRef: public key}) carry that key as
    ``wireGuard.publicKey``; ``spec`` itself is never changed.  Keys that are not public keys are ignored."""
    members = spec.get("members") if isinstance(spec, dict) else None
    if not keys or not isinstance(members, list):
        return spec
    out = []
    for member in members:
        node = member.get("nodeRef") if isinstance(member, dict) else None
        key = keys.get(node) if isinstance(node, str) else None
        if is_public_key(key):
            wireguard = member.get("wireGuard")
            out.append(dict(member, wireGuard=dict(wireguard if isinstance(wireguard, dict) else {}, publicKey=key)))
        else:
            out.append(member)
    return dict(spec, members=out)


def mismatches(spec, keys):
    """{nodeRef: the document's publicKey} of the members whose document key differs from the held one."""
    out = {}
    for member in (spec.get("members") if isinstance(spec, dict) else None) or ():
        if not isinstance(member, dict) or not isinstance(member.get("nodeRef"), str):
            continue
        held = keys.get(member["nodeRef"])
        wireguard = member.get("wireGuard")
        written = wireguard.get("publicKey") if isinstance(wireguard, dict) else None
        if is_public_key(held) and written not in (None, "", held):
            out[member["nodeRef"]] = written
    return out


def member_nodes(specs):
    """Every nodeRef of the SAMRRSet ``specs``: the only names a peer may publish a key for."""
    return {m["nodeRef"] for spec in specs if isinstance(spec, dict)
            for m in spec.get("members") or () if isinstance(m, dict) and isinstance(m.get("nodeRef"), str)}
