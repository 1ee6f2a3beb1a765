# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl enrollment-hmac`: print a claim's join HMAC (routerd's `routerctl mobility enrollment-hmac`)."""

from ..core import payload
from ..core.findings import ERROR
from ..core.loader import load_resources
from ..io import tokens
from .common import InputError, load_configs


def _secret_from_args(args):
    if args.secret_file:
        raw = tokens.read_token(file=args.secret_file, is_base64=args.base64)
    else:
        raw = tokens.read_token(env=args.secret_env, is_base64=args.base64)
    if isinstance(raw, str):
        raise InputError(raw)
    return raw


def cmd_enrollment_hmac(args, out):
    resources, findings = load_resources(load_configs(args.config))
    claims = {r.name: r for r in resources if r.kind == "SAMEnrollmentClaim"}
    name = args.claim.split("/", 1)[1] if args.claim.startswith("SAMEnrollmentClaim/") else args.claim
    if name not in claims:
        errs = [str(f) for f in findings if f.severity == ERROR]
        raise InputError("SAMEnrollmentClaim/%s not found in %s%s" % (
            name, ", ".join(args.config), ("; " + "; ".join(errs)) if errs else ""))
    key = _secret_from_args(args)
    spec = claims[name].spec
    if args.show_payload:
        out.write(payload.canonical_payload(spec) + "\n---\n")
    out.write(payload.join_hmac(key, spec) + "\n")
    return 0


def add_parser(sub):
    p = sub.add_parser("enrollment-hmac", help="print the join HMAC of a claim")
    p.add_argument("--config", action="append", required=True, metavar="FILE",
                   help="routerd Router YAML or boma.mesh vars YAML/JSON (repeatable)")
    p.add_argument("--claim", required=True, help="SAMEnrollmentClaim name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--secret-file", metavar="F", help="file holding the join token")
    src.add_argument("--secret-env", metavar="VAR", help="environment variable holding the join token")
    p.add_argument("--base64", action="store_true", help="the token is standard base64")
    p.add_argument("--show-payload", action="store_true", help="print the exact signed payload first")
    p.set_defaults(func=cmd_enrollment_hmac)
