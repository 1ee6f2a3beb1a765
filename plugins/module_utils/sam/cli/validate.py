# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl validate`: every rule over a document set; exit 1 with the findings when invalid."""

import datetime
import json

from ..core.loader import load_resources
from ..core.validate import DEFAULT_SKEW, validate
from ..io import tokens
from .common import InputError, load_configs, parse_now


def cmd_validate(args, out):
    now = parse_now(getattr(args, "now", None))
    paths = {}
    for item in args.token_file or []:
        policy, sep, path = item.partition("=")
        if not sep:
            raise InputError("--token-file expects POLICY=PATH")
        paths[policy.split("/")[-1]] = path

    def resolve(mesh):
        # An override file is decoded like the policy's own token (joinTokenFrom.base64).
        overrides = {}
        for name, path in paths.items():
            policy = mesh.policies.get(name)
            key = tokens.read_token(file=path, is_base64=bool(policy and policy.token and policy.token.base64))
            if isinstance(key, str):
                raise InputError(key)
            overrides[name] = key
        return tokens.policy_tokens(mesh, overrides)

    resources, findings = load_resources(load_configs(args.config))
    report = validate(resources, tokens=resolve, now=now, skew=datetime.timedelta(seconds=args.skew),
                      findings=findings)
    if args.output == "json":
        json.dump({"ok": report.ok, "findings": [f.as_dict() for f in report.findings],
                   "active": {p: [c.name for c in cs] for p, cs in report.active.items()},
                   "skipped": report.skipped, "verified": report.verified, "unverified": report.unverified},
                  out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        for finding in report.findings:
            out.write(str(finding) + "\n")
        active = sum(len(v) for v in report.active.values())
        out.write("%s: %d error(s), %d active claim(s), %d skipped, HMAC verified for %d, not verified for %d\n"
                  % ("valid" if report.ok else "INVALID", len(report.errors), active, len(report.skipped),
                     len(report.verified), len(report.unverified)))
    return 0 if report.ok else 1


def add_parser(sub):
    p = sub.add_parser("validate", help="validate mesh documents; exit 1 with findings when invalid")
    p.add_argument("--config", action="append", required=True, metavar="FILE",
                   help="routerd Router YAML or boma.mesh vars YAML/JSON (repeatable; merged into one set)")
    p.add_argument("--token-file", action="append", metavar="POLICY=PATH",
                   help="join token for a policy, instead of its joinTokenFrom")
    p.add_argument("--now", help="evaluate expiry at this RFC 3339 time (default: now)")
    p.add_argument("--skew", type=int, default=int(DEFAULT_SKEW.total_seconds()),
                   help="allowed future joinTimestamp skew in seconds (default 300)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_validate)
