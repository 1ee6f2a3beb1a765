# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl enrollment-join`: enroll this leaf with the RRs and keep its RRSet fresh (io/enroll_client.py).

Exit codes: 0 ok, 1 enrollment refused / no RR answered, 2 unreadable input.
"""

import datetime
import random
import sys

from ..core import keyring, wire
from ..core.fields import format_time
from ..core.loader import load_resources
from ..core.mesh import build_mesh
from ..core.model import split_ref
from ..io import enroll_client, tokens
from .common import (
    InputError,
    add_transport_args,
    check_ca,
    endpoint_arg,
    load_configs,
    parse_now,
    read_bearer,
    socket_arg,
)

KIND = "SAMEnrollmentClaim"


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
    api_token = read_bearer(args.token_file, "--token-file")
    check_ca(args.ca_file)
    now = parse_now(args.now, datetime.datetime.now(datetime.timezone.utc))
    state, note = enroll_client.read_state(args.state_file)
    if note:
        sys.stderr.write("samctl: note: %s\n" % note)
    try:
        result = enroll_client.join(args.endpoints, name, spec, api_token, key, state, now, random.random(),
                                    force=args.force, timeout=args.timeout, ca_file=args.ca_file,
                                    response_mac=args.response_mac)
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
    if result.mac_verified is False:
        sys.stderr.write("samctl: warning: %s answered without a response MAC and was trusted (--response-mac "
                         "optional): the RRSet it served is not authenticated\n" % result.endpoint)
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


def add_response_mac_arg(p):
    p.add_argument("--response-mac", choices=wire.RESPONSE_MAC_CHOICES, default=wire.RESPONSE_MAC_REQUIRED,
                   help="optional: also trust an RR answer that carries no response MAC (routerd's RR sends none); a "
                        "DOWNGRADE: an attacker on the path can then forge the RRSet. A wrong MAC is refused either "
                        "way (default: required)")


def add_parser(sub):
    p = sub.add_parser("enrollment-join", help="enroll this leaf with the RRs and fetch its RRSet when due")
    p.add_argument("--claim", required=True, help="SAMEnrollmentClaim name")
    p.add_argument("--config", action="append", required=True, metavar="FILE",
                   help="routerd Router YAML or boma.mesh vars YAML/JSON holding the claim (repeatable)")
    # One dest keeps the command-line order, which is the order the RRs are tried in.
    p.add_argument("--rr-url", dest="endpoints", action="append", type=endpoint_arg, metavar="URL",
                   help="an RR's enrollment API (repeatable, tried in order)")
    p.add_argument("--rr-socket", dest="endpoints", action="append", type=socket_arg, metavar="PATH",
                   help="an RR's unix socket (repeatable, tried in order)")
    p.add_argument("--state-file", required=True, metavar="PATH", help="the leaf's enrollment state (JSON, 0600)")
    p.add_argument("--token-file", required=True, metavar="F", help="file holding the API bearer token")
    p.add_argument("--join-token-file", metavar="F",
                   help="file holding the join token (default: the policy's token that signed the claim)")
    p.add_argument("--join-token-base64", action="store_true", help="the --join-token-file content is base64")
    add_transport_args(p)
    add_response_mac_arg(p)
    p.add_argument("--force", action="store_true", help="submit and fetch even when the state is fresh")
    p.add_argument("--now", help="decide at this RFC 3339 time (default: now)")
    p.set_defaults(func=cmd_enrollment_join)
