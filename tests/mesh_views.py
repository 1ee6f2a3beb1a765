"""Per-host views of the example inventories, as a role would pass them to the modules.

A host sees ``sam_resources`` (group_vars/all) + its own ``sam_node_resources``; an RR also sees every
leaf's SAMEnrollmentClaim (what the enrollment service admitted).
"""

import datetime
import json
import os
import pathlib

import yaml

from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.materialize import materialize
from boma_mesh_utils.sam.core.validate import validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)


# host -> expected counts (runbook "Expected preflight state" / "Expected local evidence"). IPv4Route also
# counts one route per WireGuard allowed IP into the WireGuard interface: the runbook's WireGuard
# controller part, next to the SAM transport's endpoint route per tunnel.
EXPECTED = {
    ("cloudedge", "leaf-b"): {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 2, "BGPPeer": 2},
    ("cloudedge", "leaf-a"): {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 4, "BGPPeer": 2, "WireGuardPeer": 2},
    ("cloudedge", "leaf-pve"): {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 2, "BGPPeer": 2},
    ("cloudedge", "rr-a"): {"BGPRouter": 1, "TunnelInterface": 3, "IPv4Route": 4, "WireGuardPeer": 1,
                            "BGPDynamicPeer": 1},
    ("cloudedge", "rr-b"): {"BGPRouter": 1, "TunnelInterface": 3, "IPv4Route": 4, "WireGuardPeer": 1,
                            "BGPDynamicPeer": 1},
    ("pve-minimal", "pve-leaf-a"): {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 4, "BGPPeer": 2,
                                    "WireGuardPeer": 2},
    ("pve-minimal", "pve-leaf-b"): {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 2, "BGPPeer": 2},
    ("pve-minimal", "pve-rr-a"): {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 3, "WireGuardPeer": 1,
                                  "BGPDynamicPeer": 1},
    ("pve-minimal", "pve-rr-b"): {"BGPRouter": 1, "TunnelInterface": 2, "IPv4Route": 3, "WireGuardPeer": 1,
                                  "BGPDynamicPeer": 1},
}


def _yaml(path):
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def groups(inventory):
    hosts = _yaml(ROOT / "inventories" / inventory / "hosts.yml")["all"]["children"]
    return {name: sorted(group["hosts"]) for name, group in hosts.items()}


def host_vars(inventory, host):
    return _yaml(ROOT / "inventories" / inventory / "host_vars" / (host + ".yml"))


def leaf_claims(inventory):
    return [res for leaf in groups(inventory)["sam_leaves"]
            for res in host_vars(inventory, leaf)["sam_node_resources"] if res["kind"] == "SAMEnrollmentClaim"]


def node_view(inventory, host, claims=None):
    shared = _yaml(ROOT / "inventories" / inventory / "group_vars" / "all" / "sam.yml")["sam_resources"]
    own = host_vars(inventory, host)["sam_node_resources"]
    if host in groups(inventory)["sam_rrs"]:
        own = own + (leaf_claims(inventory) if claims is None else claims)
    return shared + own


def node_state(inventory, host, claims=None, now=NOW):
    """(materialized state, validation report) of one inventory host."""
    resources, findings = load_resources([(host, node_view(inventory, host, claims))])
    report = validate(resources, now=now, findings=findings)
    assert report.ok, [str(f) for f in report.errors]
    return materialize(report, host_vars(inventory, host)["sam_node"]), report


def secret_file(path, value):
    """``value`` in a new 0600 file (a token a test's service reads); the path as a string."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return str(path)


def rr_view_reading(token_file, inventory="cloudedge", host="rr-a"):
    """The RR's view without claims (those come through the API), every policy reading ``token_file``."""
    docs = json.loads(json.dumps(node_view(inventory, host, claims=[])))   # a deep copy we may edit
    for doc in docs:
        if doc["kind"] == "SAMEnrollmentPolicy":
            doc["spec"]["joinTokenFrom"] = {"file": token_file}
    return docs
