# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options and requirements shared by the netlink (data-plane) modules."""


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
requirements:
  - pyroute2
options:
  netns:
    description: Operate inside this existing network namespace (name under C(/var/run/netns)).
    type: str
"""
