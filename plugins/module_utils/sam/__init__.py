# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""boma.mesh's SAM enrollment code, one folder per concern (docs/architecture.md).

core/ is pure; preflight/ builds the gate review; io/ talks to the enrollment API and reads
tokens; apply/ changes the host (FRR, netlink); rr/ is the RR daemon; cli/ is samctl.
Imports point one way, down: cli -> rr -> (apply, io) -> core and cli -> preflight -> core
(tests/unit/test_layout.py).  The same tree runs inside Ansible modules
(ansible_collections.boma.mesh.plugins.module_utils.sam) and as boma_mesh_utils.sam behind samctl and the
RR service (relative imports only).
"""
