# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renderers (pure): a node's materialized BGP state as FRR configuration or GoBGP TOML."""

from .. import identifiers


class RenderError(ValueError):
    """The state cannot be rendered safely; the message names the resource and the rule."""


def identifier(value, resource, field):
    """``value`` when it is in the safe identifier set (core/identifiers.py), else RenderError naming where.

    Renderers refuse, never escape: an identifier becomes part of a configuration line or a name, and the
    state may come from anywhere (a module's ``desired`` option, a file), not only from validation.
    """
    why = identifiers.problem(value)
    if why is not None:
        raise RenderError("%s %s [%s] %s" % (resource, field, identifiers.RULE, why))
    return value


def peer_node(peer):
    """A BGPPeer's node name (spec.nodeRef, else metadata.name), which must be a safe identifier."""
    spec = peer.get("spec") or {}
    if spec.get("nodeRef"):
        return identifier(spec["nodeRef"], resource_label(peer), "spec.nodeRef")
    return identifier((peer.get("metadata") or {}).get("name"), resource_label(peer), "metadata.name")


def resource_label(res):
    """'Kind/name' of a state resource for a message (an unsafe name shown as its repr)."""
    meta = res.get("metadata") if isinstance(res, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return "%s/%s" % (res.get("kind") if isinstance(res, dict) else None, identifiers.show(name))
