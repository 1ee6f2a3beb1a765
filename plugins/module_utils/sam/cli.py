# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""samctl: command-line edge over the pure core (this file and tokens.py do I/O).

Exit codes: 0 ok, 1 findings/usage problem the user can fix in the documents,
2 unreadable input (file missing, YAML/JSON syntax, secret not readable).
"""

import argparse
import datetime
import importlib
import json
import sys

from . import cli_enroll, cli_preflight, cli_serve, payload, tokens
from .cli_io import FindingsError, InputError, load_configs, load_file, parse_now
from .findings import ERROR
from .loader import load_resources
from .materialize import MaterializeError, materialize
from .model import parse_rrset
from .validate import DEFAULT_SKEW, validate


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


def _state(args):
    now = parse_now(getattr(args, "now", None))
    resources, findings = load_resources(load_configs(args.config))
    report = validate(resources, now=now, findings=findings)
    if not report.ok:
        raise FindingsError(report.errors)
    fetched = {}
    for path in args.fetched_rrset or []:
        for _source, doc in load_file(path):
            fetched_resources, _findings = load_resources([(path, doc)])
            for res in fetched_resources:
                if res.kind == "SAMRRSet":
                    fetched[res.name] = parse_rrset(res, [])
    try:
        return materialize(report, args.node, fetched, rr_peering=getattr(args, "rr_peering", False))
    except MaterializeError as exc:
        raise FindingsError(exc.findings) from None


def cmd_materialize(args, out):
    json.dump(_state(args), out, indent=2, sort_keys=True)
    out.write("\n")
    return 0


def _add_node_args(p):
    p.add_argument("--config", action="append", required=True, metavar="FILE",
                   help="routerd Router YAML or boma.mesh vars YAML/JSON (repeatable; merged into one set)")
    p.add_argument("--node", required=True, help="selfNodeRef of the host (rr-a, leaf-b, ...)")
    p.add_argument("--fetched-rrset", action="append", metavar="FILE", help="an RRSet fetched by enrollment")
    p.add_argument("--now", help="evaluate expiry at this RFC 3339 time (default: now)")


def reconcile_factory(service, args):
    """The RR apply step for `serve --reconcile`; it needs pyroute2/FRR helpers outside the pure core."""
    for name in ("boma_mesh_utils.reconcile", "ansible_collections.boma.mesh.plugins.module_utils.reconcile"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        try:
            return module.factory(service, args)
        except ValueError as exc:   # reconcile.ReconcileError: a bad mode or a missing dependency
            raise InputError(str(exc)) from None
    raise InputError("--reconcile needs boma.mesh's apply helpers (install the collection or `make setup`)")


def build_parser():
    parser = argparse.ArgumentParser(prog="samctl", description="boma.mesh SAM enrollment tool")
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("materialize", help="print a node's desired state as JSON")
    _add_node_args(p)
    p.add_argument("--rr-peering", action="store_true", help="RR: add BGPPeers to the other SAMRRSet members")
    p.set_defaults(func=cmd_materialize)

    cli_serve.add_parser(sub, reconcile_factory)
    cli_enroll.add_parsers(sub)
    cli_preflight.add_parser(sub)
    return parser


def main(argv=None, out=None):
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, out)
    except InputError as exc:
        sys.stderr.write("samctl: %s\n" % exc)
        return 2
    except FindingsError as exc:
        for finding in exc.findings:
            sys.stderr.write("%s\n" % finding)
        return 1
    except BrokenPipeError:
        return 1
