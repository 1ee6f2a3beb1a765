# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client side of the edge (does I/O): token files, bearer tokens, the enrollment API over HTTP(S) or a
unix socket.

Used by modules (AnsiballZ ships it), the CLI and the RR daemon (its token files and replication requests,
wired in by cli/serve.py); imports only ``core``.
"""
