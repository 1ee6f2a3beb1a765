# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one table from the field a netlink Finding names to the option of each data-plane module.

Validation in this package reports ``core.findings.Finding`` objects, never text to be read back:

* ``resource`` - where the caller found the object: ``resources[0].spec`` (an item of a module's
  ``resources``), ``peers[1]``, ``tunnel sam-rr-a`` / ``route 10.99.0.2/32`` (a desired object at plan time),
  ``BGPRouter`` / ``WireGuardPeer`` (the RR's reconcile); empty (``OPTIONS``) for the object or setting the
  module's own options describe.
* ``path`` - the field in the resource-spec vocabulary (``encapSport``, ``allowedIPs[1]``, ``netns``).
* ``rule`` and ``message``.

``location`` turns a Finding into what the user wrote: the module option (through ``OPTION_NAMES``) when it is
about the module's own options, ``resource.path`` otherwise; ``text`` is the ``location [rule] message`` line
the modules report and the RR's reconcile logs.
"""

OPTIONS = ""  # the resource of a Finding about the module's own options

# field (spec vocabulary) -> option, per module; an indexed path (loopbackAddresses[0]) keeps its index.
OPTION_NAMES = {
    "sam_tunnel": {
        "ifname": "ifname", "mode": "mode", "local": "local", "remote": "remote",
        "underlayInterface": "underlay_interface", "address": "address", "peerAddress": "peer_address",
        "encapSport": "encap_sport", "encapDport": "encap_dport", "encapSport/encapDport": "encap_sport/encap_dport",
        "key": "key", "mtu": "mtu", "netns": "netns",
    },
    "sam_route": {
        "destination": "destination", "device": "device", "source": "source",
        "loopbackAddresses": "loopback_addresses", "loopbackInterface": "loopback_interface", "netns": "netns",
    },
    "sam_wireguard": {
        "interface": "interface", "privateKeyPath": "private_key_path", "listenPort": "listen_port",
        "address": "address", "netns": "netns",
    },
}


def option_of(path, module):
    """The option of ``module`` for field ``path`` (its index kept), or ``path`` itself when the table has none."""
    names = OPTION_NAMES.get(module, {})
    for field, option in names.items():
        if path == field or path.startswith(field + "["):
            return option + path[len(field):]
    return path


def location(finding, module=None):
    """Where the problem is, in the words of ``module``'s input (the spec vocabulary without a module)."""
    if finding.resource == OPTIONS:
        return option_of(finding.path, module)
    return ".".join(part for part in (finding.resource, finding.path) if part)


def text(finding, module=None):
    """``location [rule] message``: one line of a module's failure message."""
    return "%s [%s] %s" % (location(finding, module), finding.rule, finding.message)


def as_dict(finding, module=None):
    """The Finding as a module returns it, with its ``location`` in the module's words."""
    out = finding.as_dict()
    out["location"] = location(finding, module)
    return out
