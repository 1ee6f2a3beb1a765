# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl materialize`: a node's desired state (tunnels, routes, BGP, WireGuard peers) as JSON."""

import json

from ..core.loader import load_resources
from ..core.materialize import MaterializeError, materialize, node_role
from ..core.mesh import build_mesh
from ..core.model import parse_rrset
from ..core.validate import validate
from .common import FindingsError, load_configs, load_file, parse_now


def node_state(args):
    """The materialized state of ``args.node`` from ``args.config`` (FindingsError when the documents are invalid)."""
    now = parse_now(getattr(args, "now", None))
    resources, findings = load_resources(load_configs(args.config))
    # A leaf's own claim may be an intent (identity only; samctl agent signs it): never on an RR.
    leaf = node_role(build_mesh(resources, []), args.node) == "leaf"
    report = validate(resources, now=now, findings=findings, intent_ok=leaf)
    if not report.ok:
        raise FindingsError(report.errors)
    fetched = {}
    for path in args.fetched_rrset or []:
        for _source, doc in load_file(path):
            fetched_resources, _findings = load_resources([(path, doc)])
            for res in fetched_resources:
                if res.kind == "SAMRRSet":
                    fetched[res.name] = parse_rrset(res, [])
    try:
        return materialize(report, args.node, fetched, rr_peering=getattr(args, "rr_peering", False))
    except MaterializeError as exc:
        raise FindingsError(exc.findings) from None


def cmd_materialize(args, out):
    json.dump(node_state(args), out, indent=2, sort_keys=True)
    out.write("\n")
    return 0


def add_node_args(p):
    p.add_argument("--config", action="append", required=True, metavar="FILE",
                   help="routerd Router YAML or boma.mesh vars YAML/JSON (repeatable; merged into one set)")
    p.add_argument("--node", required=True, help="selfNodeRef of the host (rr-a, leaf-b, ...)")
    p.add_argument("--fetched-rrset", action="append", metavar="FILE", help="an RRSet fetched by enrollment")
    p.add_argument("--now", help="evaluate expiry at this RFC 3339 time (default: now)")


def add_parser(sub):
    p = sub.add_parser("materialize", help="print a node's desired state as JSON")
    add_node_args(p)
    p.add_argument("--rr-peering", action="store_true", help="RR: add BGPPeers to the other SAMRRSet members")
    p.set_defaults(func=cmd_materialize)
