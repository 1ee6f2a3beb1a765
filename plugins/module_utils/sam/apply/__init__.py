# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply side (effects on this host): FRR through frr-reload, the kernel through pyroute2.

Shared by the modules (sam_bgp, sam_tunnel, sam_route, sam_wireguard) and the RR daemon's reconcile loop
(and the leaf agent to come), so every writer converges on the same host state; imports only ``core``.
"""
