# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the clients of the enrollment API (C(samctl serve))."""


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  ca_file:
    description:
      - CA bundle (PEM) on the managed host that signs the RRs' TLS certificates, for C(https://) endpoints.
      - Without it the system trust store is used. The certificate must name the host of the URL.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request (connect, send, answer) before the RR counts as unreachable.
    type: int
    default: 10
"""
