# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""samctl commands of the enrollment API client (edge): ``enrollment-join`` on a leaf, ``claim ...`` for admins.

Exit codes as in cli.py: 0 ok, 1 enrollment refused / no RR answered / API error, 2 unreadable input.
"""

import argparse
import datetime
import json
import random
import sys

from . import admin_client, enroll_client, keyring, tokens
from .cli_io import InputError, load_configs, parse_now
from .fields import format_time
from .loader import load_resources
from .model import build_mesh, split_ref

KIND = "SAMEnrollmentClaim"


def _url(text):
    try:
        return enroll_client.parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _socket(text):
    return enroll_client.Endpoint("unix", socket_path=text)


def _token(path, what):
    raw = tokens.read_token(file=path)
    if isinstance(raw, str):
        raise InputError("%s: %s" % (what, raw))
    try:
        return enroll_client.bearer_token(raw)
    except ValueError as exc:
        raise InputError("%s %s: %s" % (what, path, exc)) from None


def _check_ca(path):
    if path:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise InputError("--ca-file %s: %s" % (path, (exc.strerror or "unreadable").lower())) from None


def _claim(args):
    """(name, spec, join key) of --claim from the --config files."""
    resources, findings = load_resources(load_configs(args.config))
    name = args.claim.split("/", 1)[1] if args.claim.startswith(KIND + "/") else args.claim
    claims = {r.name: r for r in resources if r.kind == KIND}
    if name not in claims:
        errs = [str(f) for f in findings if f.severity == "error"]
        raise InputError("%s/%s not found in %s%s" % (KIND, name, ", ".join(args.config),
                                                      ("; " + "; ".join(errs)) if errs else ""))
    spec = claims[name].spec
    policy = build_mesh(resources, []).policies.get(split_ref(spec.get("policyRef"), "SAMEnrollmentPolicy") or "")
    token_source = policy.token if policy is not None else None
    if args.join_token_file:
        is_base64 = args.join_token_base64 or bool(token_source and token_source.base64)
        key = tokens.read_token(file=args.join_token_file, is_base64=is_base64)
    elif token_source is not None:
        # During a rotation the policy lists several tokens: the RRs answer with the one that signed the claim.
        keys = tokens.policy_keys(policy)
        found = keyring.signer(keys, spec)
        if not any(k.usable for k in keys):
            raise InputError("join token: " + "; ".join(k.key if len(keys) == 1 else "%s: %s" % (k.id, k.key)
                                                        for k in keys))
        if found is None:
            raise InputError("%s/%s spec.joinHMAC matches none of SAMEnrollmentPolicy/%s's readable join tokens "
                             "(%s)%s" % (KIND, name, policy.name, keyring.describe(keys),
                                         "; unavailable: " + "; ".join(keyring.unavailable(keys))
                                         if keyring.unavailable(keys) else ""))
        key = found.key
    else:
        raise InputError("no join token for %s/%s: pass --join-token-file or include its SAMEnrollmentPolicy "
                         "with joinTokenFrom or joinTokens in --config" % (KIND, name))
    if isinstance(key, str):
        raise InputError("join token: " + key)
    return name, spec, key


def cmd_enrollment_join(args, out):
    if not args.endpoints:
        raise InputError("give at least one --rr-url or --rr-socket")
    name, spec, key = _claim(args)
    api_token = _token(args.token_file, "--token-file")
    _check_ca(args.ca_file)
    now = parse_now(args.now, datetime.datetime.now(datetime.timezone.utc))
    state, note = enroll_client.read_state(args.state_file)
    if note:
        sys.stderr.write("samctl: note: %s\n" % note)
    try:
        result = enroll_client.join(args.endpoints, name, spec, api_token, key, state, now, random.random(),
                                    force=args.force, timeout=args.timeout, ca_file=args.ca_file)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if result.attempted:
        try:
            enroll_client.write_state(args.state_file, result.state)
        except OSError as exc:
            raise InputError("state file %s: cannot write: %s" % (
                args.state_file, (exc.strerror or "error").lower())) from None
    for skipped in result.skipped if result.ok else ():
        sys.stderr.write("samctl: note: skipped %s\n" % skipped)
    current = result.state or {}
    if result.ok and result.attempted:
        unchanged = "" if result.changed else " (lease unchanged)"
        out.write("refreshed from %s: expires %s%s\n" % (result.endpoint, current.get("expiresAt"), unchanged))
    elif result.ok and result.reason == "backoff":
        out.write("backoff: next attempt after %s (last error: %s)\n" % (
            format_time(result.not_before), current.get("lastError")))
    elif result.ok:
        out.write("%s: nothing to do (expires %s)\n" % (result.reason, current.get("expiresAt")))
    else:
        out.write("failed: %s: %s; next attempt after %s\n" % (result.rule, result.error,
                                                               current.get("nextAttemptAt")))
    return 0 if result.ok else 1


def _admin_call(args, call, *rest, **kw):
    if not args.endpoint:
        raise InputError("give --rr-url or --rr-socket")
    token = _token(args.admin_token_file, "--admin-token-file")
    _check_ca(args.ca_file)
    try:
        return call(args.endpoint, token, *rest, timeout=args.timeout, ca_file=args.ca_file, **kw)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _run_admin(args, out, call, text, *rest, **kw):
    try:
        doc = _admin_call(args, call, *rest, **kw)
    except enroll_client.EnrollError as exc:
        sys.stderr.write("samctl: %s\n" % exc)
        return 1
    if args.output == "json":
        json.dump(doc, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        for line in text(doc):
            out.write(line + "\n")
    return 0


def cmd_claim_revoke(args, out):
    return _run_admin(args, out, admin_client.revoke, lambda doc: ["revoked %s/%s" % (KIND, args.name)],
                      args.name, args.reason)


def cmd_claim_expire(args, out):
    return _run_admin(args, out, admin_client.set_expiry,
                      lambda doc: ["%s/%s expires %s" % (KIND, args.name, doc.get("expiresAt"))],
                      args.name, args.expires_at)


def _claim_lines(doc):
    items = doc.get("items") if isinstance(doc.get("items"), list) else []
    lines = []
    for item in items:
        status = "revoked" if item.get("revoked") else ("active" if item.get("active") else "inactive")
        lines.append("%s\t%s\tgeneration %s\texpires %s\tpolicy %s\tleafID %s\t%s%s" % (
            item.get("name"), status, item.get("generation"), item.get("expiresAt"), item.get("policy"),
            item.get("leafID"), _token_text(item.get("joinToken")),
            ("\treason " + item["revokedReason"]) if item.get("revokedReason") else ""))
    return lines + ["%d claim(s)" % len(items)]


def _token_text(token):
    """'token 2026-05 (retiring, not after T)' from a listing item's joinToken."""
    if not isinstance(token, dict):
        return "token -"
    if token.get("status") in ("retired", "unsigned", "unverified"):
        return "token %s" % token["status"]
    if token.get("notAfter"):
        return "token %s (retiring, not after %s)" % (token.get("id"), token["notAfter"])
    return "token %s" % token.get("id")


def _audit_lines(doc):
    items = doc.get("items") if isinstance(doc.get("items"), list) else []
    return ["%s\t%s\t%s\t%s" % (i.get("at"), i.get("event"), i.get("claim"), _detail(i.get("detail"))) for i in items]


def _detail(detail):
    if isinstance(detail, dict):
        return " ".join("%s=%s" % (k, detail[k]) for k in sorted(detail))
    return "" if detail is None else str(detail)


def cmd_claim_list(args, out):
    return _run_admin(args, out, admin_client.list_claims, _claim_lines, retiring=args.retiring)


def cmd_claim_audit(args, out):
    return _run_admin(args, out, admin_client.audit, _audit_lines, limit=args.limit)


def _transport_args(p):
    p.add_argument("--ca-file", metavar="F", help="CA bundle that signs the RRs' TLS certificates (https)")
    p.add_argument("--timeout", type=float, default=enroll_client.DEFAULT_TIMEOUT,
                   help="seconds per request (default 10)")


def _admin_parent():
    p = argparse.ArgumentParser(add_help=False)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--rr-url", dest="endpoint", type=_url, metavar="URL", help="the RR's API, https://rr-a:8443")
    where.add_argument("--rr-socket", dest="endpoint", type=_socket, metavar="PATH", help="the RR's unix socket")
    p.add_argument("--admin-token-file", required=True, metavar="F", help="file holding the admin token")
    _transport_args(p)
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    return p


def add_parsers(sub):
    """Register ``enrollment-join`` and ``claim`` on samctl's subparsers."""
    p = sub.add_parser("enrollment-join", help="enroll this leaf with the RRs and fetch its RRSet when due")
    p.add_argument("--claim", required=True, help="SAMEnrollmentClaim name")
    p.add_argument("--config", action="append", required=True, metavar="FILE",
                   help="routerd Router YAML or boma.mesh vars YAML/JSON holding the claim (repeatable)")
    # One dest keeps the command-line order, which is the order the RRs are tried in.
    p.add_argument("--rr-url", dest="endpoints", action="append", type=_url, metavar="URL",
                   help="an RR's enrollment API (repeatable, tried in order)")
    p.add_argument("--rr-socket", dest="endpoints", action="append", type=_socket, metavar="PATH",
                   help="an RR's unix socket (repeatable, tried in order)")
    p.add_argument("--state-file", required=True, metavar="PATH", help="the leaf's enrollment state (JSON, 0600)")
    p.add_argument("--token-file", required=True, metavar="F", help="file holding the API bearer token")
    p.add_argument("--join-token-file", metavar="F",
                   help="file holding the join token (default: the policy's token that signed the claim)")
    p.add_argument("--join-token-base64", action="store_true", help="the --join-token-file content is base64")
    _transport_args(p)
    p.add_argument("--force", action="store_true", help="submit and fetch even when the state is fresh")
    p.add_argument("--now", help="decide at this RFC 3339 time (default: now)")
    p.set_defaults(func=cmd_enrollment_join)

    p = sub.add_parser("claim", help="administer the claims of an RR (admin token)")
    actions = p.add_subparsers(dest="claim_command", required=True)
    parent = _admin_parent()
    q = actions.add_parser("revoke", parents=[parent], help="revoke a claim (sticky, replicated)")
    q.add_argument("name")
    q.add_argument("--reason", help="reason recorded with the revocation")
    q.set_defaults(func=cmd_claim_revoke)
    q = actions.add_parser("expire", parents=[parent], help="shorten a claim's expiry")
    q.add_argument("name")
    q.add_argument("--expires-at", required=True, metavar="T", help="RFC 3339 time, not later than the current one")
    q.set_defaults(func=cmd_claim_expire)
    q = actions.add_parser("list", parents=[parent], help="list the claims the RR knows")
    q.add_argument("--retiring", action="store_true",
                   help="only unrevoked claims signed with a retiring join token (one with notAfter, or removed)")
    q.set_defaults(func=cmd_claim_list)
    q = actions.add_parser("audit", parents=[parent], help="show the audit log, newest first")
    q.add_argument("--limit", type=int, default=100)
    q.set_defaults(func=cmd_claim_audit)
