# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter boma.mesh.gobgp_config (documented in gobgp_config.yml): a node's gobgpd configuration as text.

The text is module_utils/sam/core/render/gobgp.py's, the one boma.mesh.sam_gobgp and the RR's reconcile apply;
the roles write it as gobgpd's first configuration (a gobgpd that has never run has no API to reload through).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.render.gobgp import RenderError, render_gobgp


def gobgp_config(state, connect_retry=2, listen_port=179):
    """render_gobgp(state) with sam_gobgp's options; a state that cannot be rendered is a filter error."""
    if not isinstance(state, dict):
        raise AnsibleFilterError("gobgp_config: input [type] must be a materialized state (a mapping), got %s"
                                 % type(state).__name__)
    try:
        return render_gobgp(state, {"connect_retry": int(connect_retry), "listen_port": int(listen_port)})
    except (RenderError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("gobgp_config: the state cannot be rendered: %s" % exc) from None


class FilterModule:
    """gobgpd configuration filters."""

    def filters(self):
        return {"gobgp_config": gobgp_config}
