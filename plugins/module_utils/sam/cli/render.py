# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl render`: the BGP configuration a node's apply step would load, FRR or gobgpd, from its documents.

The same path as the modules and the RR's reconcile: validate, materialize (materialize.node_state), render
(core/render), and for FRR the semantic lint sam_bgp runs before it loads anything.  A refusal of the renderer
(an identifier it will not write, a shape the daemon cannot hold safely, RR peering on gobgpd) is exit 1 with the
renderer's message, as findings are.
"""

import sys

from ..core.render import RenderError
from ..core.render.frr import LEAF_ROUTES, lint_frr, render_frr
from ..core.render.gobgp import render_gobgp
from .materialize import add_node_args, node_state

FORMATS = ("frr", "gobgp")


def cmd_render(args, out):
    state = node_state(args)
    try:
        if args.format == "frr":
            text = render_frr(state, {"bfd": args.bfd, "leaf_routes": args.leaf_routes})
            problems = lint_frr(text)
        else:
            text, problems = render_gobgp(state), []
    except (RenderError, ValueError) as exc:   # render_gobgp refuses malformed addresses with ValueError
        sys.stderr.write("samctl: render %s: %s\n" % (args.format, exc))
        return 1
    if problems:
        for problem in problems:
            sys.stderr.write("samctl: render frr: %s\n" % problem)
        return 1
    out.write(text)
    return 0


def add_parser(sub):
    p = sub.add_parser("render", help="print a node's BGP configuration (FRR or gobgpd), as the apply step loads it")
    add_node_args(p)
    p.add_argument("--format", choices=FORMATS, default="frr", help="frr (default): frr.conf lines; gobgp: gobgpd TOML")
    p.add_argument("--rr-peering", action="store_true", help="RR: iBGP to the other SAMRRSet members (FRR only)")
    p.add_argument("--bfd", action="store_true", help="frr: BFD on every neighbour and leaf peer-group")
    p.add_argument("--leaf-routes", choices=LEAF_ROUTES, default="all",
                   help="frr, RR: what it sends leaves, every admitted /32 (all) or the pools (aggregate)")
    p.set_defaults(func=cmd_render)
