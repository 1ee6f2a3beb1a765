# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl wireguard-key --file F`: a host's WireGuard key, created 0600 when missing; prints only the public key.

The roles run it before the services start (sam_rr: the RR publishes its public key in the RRSet it serves;
sam_leaf: the agent signs its public key into the claim), so no key is ever copied by hand and the private key
never leaves the host or appears in argv, output or a log.
"""

import json
import os

from ..leaf import keys
from .common import InputError


def cmd_wireguard_key(args, out):
    existed = os.path.exists(args.file)
    try:
        _path, public = keys.load_or_create(args.file, create=not args.no_create)
    except keys.KeyFileError as exc:
        raise InputError("--file: %s" % exc) from None
    out.write(json.dumps({"file": args.file, "publicKey": public, "created": not existed}, sort_keys=True) + "\n")
    return 0


def add_parser(sub):
    p = sub.add_parser("wireguard-key", help="create a WireGuard private key file (0600) when missing and print "
                                             "its public key as JSON")
    p.add_argument("--file", required=True, metavar="F", help="the private key file (base64, as wg genkey writes it)")
    p.add_argument("--no-create", action="store_true", help="only read: a missing file is an error")
    p.set_defaults(func=cmd_wireguard_key)
