# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl agent`: the leaf daemon (leaf/agent.py) and `samctl agent status` (its state file, as JSON).

Exit codes: 0 converged (--once) or stopped by SIGTERM/SIGINT, 1 refused / no RR answered / revoked (--once),
2 unreadable input.
"""

import datetime
import json
import logging
import os
import signal
import sys

from ..core import agent as decide
from ..io import enroll_client, tokens
from ..leaf import agent as leaf
from .common import (
    InputError,
    add_gobgp_args,
    add_transport_args,
    check_ca,
    endpoint_arg,
    gobgp_options,
    load_configs,
    parse_now,
    read_bearer,
    socket_arg,
)
from .enroll import add_response_mac_arg


def _inputs(args):
    """The loader the agent calls at start and on SIGHUP: the --config documents and the join token."""
    def load():
        documents = load_configs(args.config)
        key = tokens.read_token(file=args.join_token_file, is_base64=args.join_token_base64)
        if isinstance(key, str):
            raise InputError("--join-token-file: " + key)
        return documents, key
    return load


def _settings(args):
    missing = [opt for opt, value in (("--config", args.config), ("--node", args.node),
                                      ("--rr-url or --rr-socket", args.endpoints), ("--token-file", args.token_file),
                                      ("--join-token-file", args.join_token_file), ("--state-dir", args.state_dir))
               if not value]
    if missing:
        raise InputError("samctl agent needs " + ", ".join(missing))
    if min(args.refresh_interval, args.backoff_max, args.repair_interval) <= 0:
        raise InputError("--refresh-interval, --backoff-max and --repair-interval must be positive")
    if args.bgp_daemon == "gobgp" and args.bgp_bfd:
        raise InputError("--bgp-bfd is an FRR option, not for --bgp-daemon gobgp (docs/bgp.md)")
    check_ca(args.ca_file)
    try:
        os.makedirs(args.state_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise InputError("--state-dir %s: %s" % (args.state_dir, (exc.strerror or "error").lower())) from None
    return leaf.Settings(
        node=args.node, endpoints=args.endpoints, api_token=read_bearer(args.token_file, "--token-file"),
        state_dir=args.state_dir, claim=args.claim, apply=args.apply, refresh_interval=args.refresh_interval,
        backoff_max=args.backoff_max, wg_key_file=args.wg_key_file, textfile=args.textfile,
        frr_vty_socket=args.frr_vty_socket, frr_confdir=args.frr_confdir, ca_file=args.ca_file, timeout=args.timeout,
        bgp_bfd=args.bgp_bfd, bgp_connect_timer=args.bgp_connect_timer, wg_listen_port=args.wg_listen_port,
        repair_interval=args.repair_interval, bgp_daemon=args.bgp_daemon, response_mac=args.response_mac,
        gobgp=gobgp_options(args) if args.bgp_daemon == "gobgp" else None)


def cmd_status(args, out):
    if not args.state_dir:
        raise InputError("samctl agent status needs --state-dir")
    path = os.path.join(args.state_dir, leaf.STATE_FILE)
    state, note = enroll_client.read_state(path)
    if note or state is None:
        raise InputError(note or "%s: no agent state yet" % path)
    now = parse_now(args.now, datetime.datetime.now(datetime.timezone.utc))
    out.write(json.dumps(decide.status(state, now), sort_keys=True) + "\n")
    return 0


def _once(agent, out):
    """One pass; one JSON line (the play reads it: changed, the lease, the RRSet), exit 1 with the RR's reason."""
    try:
        agent.step(once=True)
    except ValueError as exc:   # local input problems (names, tokens) found by the client
        raise InputError(str(exc)) from None
    state, before = agent.state, agent.last_pass_before
    changed = decide.pass_changed(before, state)
    if state.get("revoked") or state.get("failures") or not state.get("rrSet"):
        reason = state.get("lastError") or "not enrolled"
        sys.stderr.write("samctl: agent: %s\n" % reason)
        out.write(json.dumps({"ok": False, "changed": changed, "error": reason, **decide.once_summary(state)},
                             sort_keys=True) + "\n")
        return 1
    out.write(json.dumps({"ok": True, "changed": changed, **decide.once_summary(state)}, sort_keys=True) + "\n")
    return 0


def _check(agent, out):
    """--once --check (Ansible's check mode): the saved state and whether a pass would sign; nothing is sent."""
    action = agent.preview()
    out.write(json.dumps({"ok": True, "changed": action.kind == decide.SIGN, "action": action.kind,
                          "reason": action.reason, **decide.once_summary(agent.state)}, sort_keys=True) + "\n")
    return 0


def cmd_agent(args, out):
    if args.action == "status":
        return cmd_status(args, out)
    settings = _settings(args)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="samctl agent: %(levelname)s %(message)s")
    clock = leaf.utcnow
    if args.now:
        fixed = parse_now(args.now)

        def clock():   # tests pin the time
            return fixed
    try:
        agent = leaf.Agent(settings, _inputs(args), clock=clock)
    except (leaf.AgentInputError, ValueError) as exc:
        raise InputError(str(exc)) from None
    if args.check:
        return _check(agent, out)
    if args.once:
        return _once(agent, out)
    signal.signal(signal.SIGHUP, agent.on_hup)
    signal.signal(signal.SIGTERM, agent.on_stop)
    signal.signal(signal.SIGINT, agent.on_stop)
    logging.getLogger("samctl.agent").info("started for %s (node %s, %d RR endpoint(s), apply %s)",
                                           agent.name, settings.node, len(settings.endpoints), settings.apply)
    try:
        agent.run()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    logging.getLogger("samctl.agent").info("stopped")
    return 0


def add_parser(sub):
    p = sub.add_parser("agent", help="the leaf daemon: sign and renew the claim, keep the RRSet, apply the state; "
                                     "'agent status' prints its state")
    p.add_argument("action", nargs="?", choices=("run", "status"), default="run",
                   help="run (default) or status (print the state in --state-dir as JSON)")
    p.add_argument("--config", action="append", metavar="FILE",
                   help="routerd Router YAML or boma.mesh vars YAML/JSON: the claim and the leaf's documents "
                        "(repeatable; re-read on SIGHUP)")
    p.add_argument("--node", help="this leaf's selfNodeRef")
    p.add_argument("--claim", help="SAMEnrollmentClaim name (default: the claim whose leafID is --node)")
    p.add_argument("--rr-url", dest="endpoints", action="append", type=endpoint_arg, metavar="URL",
                   help="an RR's enrollment API (repeatable, tried in order)")
    p.add_argument("--rr-socket", dest="endpoints", action="append", type=socket_arg, metavar="PATH",
                   help="an RR's unix socket (repeatable, tried in order)")
    p.add_argument("--token-file", metavar="F", help="file holding the API bearer token")
    p.add_argument("--join-token-file", metavar="F", help="file holding the policy's join token (signs the claim)")
    p.add_argument("--join-token-base64", action="store_true", help="the --join-token-file content is base64")
    p.add_argument("--state-dir", metavar="DIR", help="agent.json (0600) and, when generated, wg.key live here")
    p.add_argument("--apply", choices=("none", "bgp", "all"), default="none",
                   help="apply the materialized state: none (default), bgp (FRR) or all (FRR and data plane)")
    p.add_argument("--once", action="store_true", help="one pass, then exit (0 converged, 1 refused/unreachable)")
    p.add_argument("--check", action="store_true",
                   help="with --once: report the saved state and whether a pass would sign; send and apply nothing")
    p.add_argument("--refresh-interval", type=float, default=60.0, metavar="SECONDS",
                   help="fetch the RRSet this often (default 60)")
    p.add_argument("--backoff-max", type=float, default=decide.lease.BACKOFF_MAX.total_seconds(), metavar="SECONDS",
                   help="cap of the backoff after a failure (default 900)")
    p.add_argument("--wg-key-file", metavar="F",
                   help="WireGuard private key (default: STATE_DIR/wg.key, created 0600 when the claim uses WireGuard)")
    p.add_argument("--textfile", metavar="PATH", help="node_exporter textfile to write the agent's metrics to")
    p.add_argument("--frr-vty-socket", metavar="P", help="FRR's vty socket directory (--apply bgp|all)")
    p.add_argument("--frr-confdir", metavar="D", default="/etc/frr", help="FRR's configuration directory")
    p.add_argument("--bgp-bfd", action="store_true", help="BFD toward both RRs (as sam_bgp's bfd; needs bfdd)")
    p.add_argument("--bgp-connect-timer", type=int, default=2, metavar="S",
                   help="connect-retry toward the RRs in seconds (as sam_bgp's connect_timer, default 2)")
    p.add_argument("--wg-listen-port", type=int, metavar="PORT", help="WireGuard listen port (--apply all)")
    add_gobgp_args(p, "--apply bgp|all")
    p.add_argument("--repair-interval", type=float, default=300.0, metavar="SECONDS",
                   help="apply in full at least this often even when the desired state is unchanged (default 300)")
    add_transport_args(p)
    add_response_mac_arg(p)
    p.add_argument("--now", help="decide at this RFC 3339 time (tests)")
    p.set_defaults(func=cmd_agent)
