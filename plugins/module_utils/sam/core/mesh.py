# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A document set as typed views (model.py's), by kind then name: what validation, materialization and the
registry read.

The views of an RR's own documents are kept by Resource (memo.ByIdentity): the reconcile builds the mesh again on
each change, and with the same policy, pool and router objects its per-claim memos stay valid (issue 19).
"""

from dataclasses import dataclass, field

from .memo import ByIdentity
from .model import PARSERS, parse_claim


@dataclass
class Mesh:
    """All interpreted resources of one document set, by kind then name."""
    rrsets: dict = field(default_factory=dict)
    policies: dict = field(default_factory=dict)
    claims: dict = field(default_factory=dict)
    transports: dict = field(default_factory=dict)
    routers: dict = field(default_factory=dict)
    dynamic_peers: dict = field(default_factory=dict)
    pools: dict = field(default_factory=dict)


_SLOTS = {"SAMRRSet": "rrsets", "SAMEnrollmentPolicy": "policies", "SAMEnrollmentClaim": "claims",
          "SAMTransportProfile": "transports", "BGPRouter": "routers", "BGPDynamicPeer": "dynamic_peers",
          "MobilityPool": "pools"}


_DOCS_BY_ID = ByIdentity(limit=10000)   # Resource -> (view, findings) of the kinds other than claims


def _parse_doc(res):
    own = []
    return PARSERS[res.kind](res, own), tuple(own)


def build_mesh(resources, findings):
    mesh = Mesh()
    for res in resources:
        parser = PARSERS.get(res.kind)
        if parser is None:
            continue
        parsed, own = (parser(res, findings), ()) if parser is parse_claim else _DOCS_BY_ID.cached(res, _parse_doc)
        findings.extend(own)
        getattr(mesh, _SLOTS[res.kind])[res.name] = parsed
    return mesh
