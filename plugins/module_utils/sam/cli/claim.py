# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl claim revoke|expire|list|audit`: the admin calls of the enrollment API (admin token).

Exit codes: 0 ok, 1 API error or no answer, 2 unreadable input.
"""

import argparse
import json
import sys

from ..io import admin_client
from ..io.http_client import EnrollError
from .common import InputError, add_transport_args, check_ca, endpoint_arg, read_bearer, socket_arg

KIND = "SAMEnrollmentClaim"


def _admin_call(args, call, *rest, **kw):
    if not args.endpoint:
        raise InputError("give --rr-url or --rr-socket")
    token = read_bearer(args.admin_token_file, "--admin-token-file")
    check_ca(args.ca_file)
    try:
        return call(args.endpoint, token, *rest, timeout=args.timeout, ca_file=args.ca_file, **kw)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _run_admin(args, out, call, text, *rest, **kw):
    try:
        doc = _admin_call(args, call, *rest, **kw)
    except EnrollError as exc:
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
        if isinstance(item.get("conflict"), dict):
            status = "lost:" + str(item["conflict"].get("rule"))    # to an earlier claim (docs/api.md, Conflicts)
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


def _admin_parent():
    p = argparse.ArgumentParser(add_help=False)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--rr-url", dest="endpoint", type=endpoint_arg, metavar="URL", help="the RR's API, https://rr-a:8443")
    where.add_argument("--rr-socket", dest="endpoint", type=socket_arg, metavar="PATH", help="the RR's unix socket")
    p.add_argument("--admin-token-file", required=True, metavar="F", help="file holding the admin token")
    add_transport_args(p)
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    return p


def add_parser(sub):
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
