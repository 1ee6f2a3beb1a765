# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure SAM enrollment core: stdlib only, no I/O, relative imports only.

The same package runs inside Ansible modules (as
``ansible_collections.boma.mesh.plugins.module_utils.sam``) and as the
``boma_sam`` package behind the ``samctl`` command.  Every file here except
``cli.py`` is pure: it takes data and returns data.
"""
