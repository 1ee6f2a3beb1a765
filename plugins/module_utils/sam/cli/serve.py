# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl serve`: wire the RR daemon (rr/) together: documents, token files, TLS, signals, listeners."""

import datetime
import hmac
import logging
import os
import signal
import sqlite3
import ssl
import stat
import sys
import threading

from ..core import wire
from ..core.loader import load_resources
from ..core.render.frr import LEAF_ROUTES
from ..core.secrets import MIN_BEARER_LENGTH
from ..core.validate import DEFAULT_SKEW, validate
from ..io import tokens
from ..io.http_client import request
from ..rr import http_server, retention, rr_keys
from ..rr.replicate import Replicator
from ..rr.service import LOG, Service
from .common import FindingsError, InputError, add_gobgp_args, load_configs


def read_secret_file(path, what):
    """Token bytes from a file that only its owner can read; the error names the file, never the value."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError("%s %s: %s" % (what, path, exc.strerror or exc)) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError("%s %s is mode %04o; it must not be readable by group or others (chmod 0600)"
                         % (what, path, stat.S_IMODE(info.st_mode)))
    key = tokens.read_token(file=path)
    if isinstance(key, str):
        raise InputError("%s: %s" % (what, key))
    return key


def read_bearer_file(path, what):
    """read_secret_file() of a bearer token, refused under MIN_BEARER_LENGTH bytes (core/secrets.py says why)."""
    key = read_secret_file(path, what)
    if len(key) < MIN_BEARER_LENGTH:
        raise InputError("%s %s holds a token shorter than the minimum: bearer tokens must be at least %d "
                         "characters (a random one: openssl rand -hex 16)" % (what, path, MIN_BEARER_LENGTH))
    return key


def bearer_tokens(args):
    """(leaf, admin, peer) bearer tokens; InputError naming the options (never a value) on an operator mistake."""
    leaf = read_bearer_file(args.token_file, "--token-file")
    admin = read_bearer_file(args.admin_token_file, "--admin-token-file") if args.admin_token_file else None
    if admin is not None and hmac.compare_digest(leaf, admin):
        raise InputError("--token-file and --admin-token-file hold the same token: every leaf would be an admin; "
                         "give the admins their own token (vault.sam.admin_token)")
    peer = None
    if args.peer:
        peer = read_bearer_file(args.peer_token_file, "--peer-token-file") if args.peer_token_file else admin
        if not peer:
            raise InputError("--peer needs --admin-token-file or --peer-token-file (the peer's admin token)")
        if hmac.compare_digest(leaf, peer):
            raise InputError("--token-file and --peer-token-file hold the same token: the peer's admin token must "
                             "not be the leaf token every leaf holds")
    return leaf, admin, peer


def open_service(args, resources, leaf, admin, resolver):
    """The Service over --db; a corrupt or unopenable database is an InputError that says what to do."""
    try:
        service = Service(args.node, resources, args.db, leaf, admin, resolver)
        problem = service.store.quick_check()
    except sqlite3.OperationalError as exc:
        raise InputError("--db %s: cannot open the database (%s)" % (args.db, exc)) from None
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    except OSError as exc:
        raise InputError("--db %s: %s" % (args.db, exc.strerror or exc)) from None
    if problem != "ok":
        raise InputError(
            "--db %s is corrupt (SQLite: %s): move it aside with its -wal and -shm files (mv %s %s.corrupt) "
            "and start again: the RR creates an empty database and pulls the claims and nonces from its peer RR "
            "(--peer) before it listens. Without a peer that answers, restore a backup instead: an empty database "
            "has forgotten the used nonces (docs/operations.md, \"A corrupt claim DB\")"
            % (args.db, " ".join(str(problem).split()), args.db, args.db))
    return service


class PolicyTokens:
    """Join-token keys by policy ([keyring.JoinKey]), read once and re-read while one is unavailable."""

    def __init__(self, mesh):
        self.mesh = mesh
        self.cache = {}
        self.lock = threading.Lock()

    def __call__(self, name):
        with self.lock:
            keys = self.cache.get(name)
            if keys is not None and all(key.usable for key in keys):
                return keys
            policy = self.mesh.policies.get(name)
            if policy is None or not policy.tokens:
                return None
            keys = tokens.policy_keys(policy)
            self.cache[name] = keys
            return keys


def load_documents(args):
    """The RR's documents (validated) and their token resolver; FindingsError/InputError when unusable."""
    resources, findings = load_resources(load_configs(args.config))
    report = validate([r for r in resources if r.kind != "SAMEnrollmentClaim"], findings=findings)
    if not report.ok:
        raise FindingsError(report.errors)
    return resources, PolicyTokens(report.mesh)


def reload_service(service, args):
    """SIGHUP: re-read --config and the token files; a bad document set is refused and the old one kept."""
    try:
        resources, resolver = load_documents(args)
    except FindingsError as exc:
        LOG.error("reload refused, still serving the previous documents: %s",
                  "; ".join(f.describe() for f in exc.findings[:5]))
        return False
    except InputError as exc:
        LOG.error("reload refused, still serving the previous documents: %s", exc)
        return False
    service.reload(resources, resolver)
    policies = sorted(resolver.mesh.policies)
    LOG.info("reloaded documents: %d policies, join tokens %s", len(policies),
             {name: [key.id for key in resolver(name) or ()] for name in policies})
    return True


def build_service(args):
    resources, resolver = load_documents(args)
    leaf, admin, peer_token = bearer_tokens(args)
    service = open_service(args, resources, leaf, admin, resolver)
    try:   # this RR's WireGuard public key in the served RRSet, the peers' learned by replication (issue 18)
        service.member_keys = rr_keys.MemberKeys(service, args.node, args.wg_key_file)
    except rr_keys.KeyFileError as exc:
        raise InputError(str(exc)) from None
    if not 1 <= args.page_size <= wire.RECORDS_PAGE_MAX:
        raise InputError("--page-size must be between 1 and %d" % wire.RECORDS_PAGE_MAX)
    if args.peer:
        def peer_request(endpoint, method, path, token, body, timeout):
            return request(endpoint, method, path, token, body, timeout, ca_file=args.peer_ca_file)

        service.replicator = Replicator(args.peer, peer_token, peer_request, service.import_records,
                                        interval=args.resync_interval, page_size=args.page_size,
                                        horizons=lambda found: retention.import_horizons(service, found),
                                        keys=service.member_keys.learn)
    if args.reconcile:
        # Imported here: the apply side loads pyroute2 (about 0.1 s), which no other samctl command needs.
        from ..rr.reconcile import ReconcileError, Reconciler, factory  # noqa: PLC0415

        try:
            apply = factory(service, args)
        except ReconcileError as exc:     # a bad mode or a missing dependency: say so at start-up
            raise InputError(str(exc)) from None
        reconciler = Reconciler(apply, interval=args.reconcile_interval,
                                next_due=service.seconds_to_next_expiry)
        service.on_change = reconciler.trigger
        service.reconciler = reconciler
    return service


def tls_context(args):
    if not args.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise InputError("--tls-cert/--tls-key: %s" % (getattr(exc, "strerror", None) or exc)) from None
    return context


def check_limits(args):
    """Refuse impossible listener and timing options before anything starts (exit 2)."""
    if not args.listen and not args.socket:
        raise InputError("give --listen HOST:PORT and/or --socket PATH")
    per_source = 1 if args.max_connections_per_source is None else args.max_connections_per_source
    if min(args.client_timeout, args.head_timeout) <= 0 or min(args.max_connections, per_source) < 1:
        raise InputError("--client-timeout and --head-timeout must be above 0, --max-connections and "
                         "--max-connections-per-source at least 1")
    if args.repair_interval <= 0:
        raise InputError("--repair-interval must be above 0 seconds")


def cmd_serve(args, out):
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s samctl-serve[%(process)d] %(levelname)s %(message)s")
    check_limits(args)
    service = build_service(args)
    context = tls_context(args)
    # Many short requests on few cores: a shorter GIL switch interval keeps the latency tail down.
    sys.setswitchinterval(0.001)
    sync_before_listening(service.replicator, args)
    try:
        servers, where = http_server.start(service, args.listen, args.socket, context, args.client_timeout,
                                           args.max_connections, args.head_timeout, args.max_connections_per_source)
    except OSError as exc:
        raise InputError("cannot listen: %s" % (exc.strerror or exc)) from None
    reconciler = service.reconciler
    if reconciler is not None:
        reconciler.start()
    wake, pending, stopped = threading.Event(), [], threading.Event()

    def on_signal(signo, _frame):
        # The handler runs in the main thread between two bytecodes, possibly inside wake.wait() while that
        # thread holds the Event's lock: setting the Event here would wait for that lock forever (a SIGTERM
        # that never stopped the service, seen in tests/service).  Another thread sets them instead.
        pending.append(signo)
        threading.Thread(target=lambda: (wake.set(), signo != signal.SIGHUP and stopped.set()), daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    out.write(where + "\n")
    out.flush()
    failed = not sync_after_listening(service.replicator, args, stopped)
    keeper = retention.Retention(service, args.resync_interval, datetime.timedelta(seconds=args.nonce_margin))
    if not failed:
        keeper.start()   # forgets expired nonces now and every --resync-interval
    while not failed and not stopped.is_set():
        # A timed wait: the kernel may deliver a signal to any thread, and Python runs the handler only when the
        # main thread next executes bytecode, so a blocked main thread would sit on a SIGHUP indefinitely.
        if not wake.wait(0.5):
            continue
        wake.clear()
        signals, pending[:] = list(pending), []
        if any(signo != signal.SIGHUP for signo in signals):
            break
        reload_service(service, args)
    LOG.info("stopping")
    http_server.stop(servers)
    keeper.stop()
    if service.replicator is not None:
        service.replicator.stop()
    if reconciler is not None:
        reconciler.stop()
    service.close()
    return 1 if failed and not stopped.is_set() else 0


def sync_before_listening(replicator, args):
    """warn: the start-up pull, before listening (a replay cannot slip in after a restart while the peer is up);
    require: listen first with submissions refused, so a peer restarting at the same time can pull from us."""
    if replicator is not None and args.startup_sync == "warn":
        startup_sync(replicator, args)
    elif replicator is not None:
        replicator.admitting = False


def sync_after_listening(replicator, args, stopped):
    """require: the start-up pull, retried (False: give up, exit 1); then the pushers and the periodic pull run."""
    if replicator is None:
        return True
    if not replicator.admitting and not startup_sync(replicator, args, stopped):
        return False
    replicator.admitting = True
    replicator.start()
    return True


def startup_sync(replicator, args, stopped=None):
    """The start-up pull (issue 17, class 6); False, said loudly, when no peer answered completely.

    warn: one attempt, then serve anyway (GET health says degraded until a pull succeeds).  require: retried
    for --startup-sync-timeout seconds while listening with submissions refused, then the caller exits 1.
    """
    require = args.startup_sync == "require"
    if replicator.startup_sync(require, args.startup_sync_timeout, stopped):
        LOG.info("start-up sync complete: %s", replicator.describe())
        return True
    if stopped is not None and stopped.is_set():
        return False
    if require:
        message = ("start-up sync failed: no peer answered completely within %gs (%s); refusing to serve "
                   "(--startup-sync require): this RR would not know the nonces its peers accepted"
                   % (args.startup_sync_timeout, replicator.describe()))
        LOG.error("%s", message)
        sys.stderr.write("samctl: %s\n" % message)
    else:
        LOG.error("start-up sync failed: no peer answered completely (%s); serving anyway (--startup-sync warn): "
                  "nonces used only on a peer are unknown here until a pull succeeds; GET health says degraded",
                  replicator.describe())
    return False


def add_parser(sub):
    p = sub.add_parser("serve", help="run the RR enrollment service (docs/api.md)")
    p.add_argument("--config", action="append", required=True, metavar="FILE",
                   help="the RR's documents: policies, RRSet, pools, profiles (repeatable)")
    p.add_argument("--node", required=True, help="this RR's selfNodeRef (rr-a)")
    p.add_argument("--db", required=True, help="SQLite database of accepted claims, nonces and audit")
    p.add_argument("--listen", metavar="HOST:PORT", help="TCP listener (port 0 picks a free one)")
    p.add_argument("--socket", metavar="PATH", help="unix socket listener (mode 0660)")
    p.add_argument("--token-file", required=True, help="leaf bearer token (0600 file, at least 16 characters)")
    p.add_argument("--admin-token-file", help="admin bearer token (0600 file, at least 16 characters, not the leaf "
                                              "token); admin paths are closed without it")
    p.add_argument("--peer", action="append", metavar="URL", help="peer RR to replicate with (repeatable)")
    p.add_argument("--peer-token-file", help="the peer's admin token (default: --admin-token-file)")
    p.add_argument("--peer-ca-file", help="CA bundle that signed the peers' TLS certificates")
    p.add_argument("--resync-interval", type=float, default=60.0,
                   help="seconds between pulls from peers (and between runs of the nonce retention)")
    p.add_argument("--startup-sync", choices=("require", "warn"), default="warn",
                   help="when no peer answers the start-up pull completely: require refuses submissions and exits 1 "
                        "after --startup-sync-timeout; warn (default) serves and reports degraded in GET health")
    p.add_argument("--startup-sync-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long --startup-sync require retries the pull")
    p.add_argument("--page-size", type=int, default=wire.RECORDS_PAGE, metavar="N",
                   help="records and nonces asked of a peer per page of its records (at most %d)"
                        % wire.RECORDS_PAGE_MAX)
    p.add_argument("--nonce-margin", type=float, default=DEFAULT_SKEW.total_seconds(), metavar="SECONDS",
                   help="a used nonce is forgotten this long after its claim would be refused as expired (clock "
                        "skew margin; default the validator's %ds)" % DEFAULT_SKEW.total_seconds())
    p.add_argument("--tls-cert", help="serve TLS with this certificate chain (PEM)")
    p.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    p.add_argument("--client-timeout", type=float, default=10.0, help="seconds a client has to send a request")
    p.add_argument("--head-timeout", type=float, default=5.0,
                   help="seconds a client has for its request line and headers together (at most --client-timeout)")
    p.add_argument("--max-connections", type=int, default=256, help="concurrent connections per listener")
    p.add_argument("--max-connections-per-source", type=int, metavar="N",
                   help="TCP connections from one IPv4 address or IPv6 /64 (default: max(4, --max-connections / 8))")
    p.add_argument("--reconcile", choices=("bgp", "all"), help="apply the RR's state after changes")
    p.add_argument("--reconcile-interval", type=float, default=0.5,
                   help="minimum seconds between reconcile runs that apply something (a run that found nothing "
                        "to do waits only as long as it took; default 0.5)")
    p.add_argument("--repair-interval", type=float, default=300.0, metavar="SECONDS",
                   help="reconcile: apply in full at least this often even when the desired state is unchanged "
                        "(a renewal changes nothing, so it touches neither FRR nor the kernel; default 300)")
    add_gobgp_args(p, "reconcile")
    p.add_argument("--frr-vty-socket", help="FRR vty socket directory (FRR in a namespace)")
    p.add_argument("--frr-confdir", default="/etc/frr", help="where frr.conf is persisted")
    # The same BGP options the sam_rr role gives sam_materialize/sam_bgp, so both writers render alike.
    p.add_argument("--bgp-bfd", action="store_true", help="reconcile: BFD on the leaves' peer-group (needs bfdd)")
    p.add_argument("--bgp-leaf-routes", choices=LEAF_ROUTES, default="all",
                   help="reconcile: what the RR sends each leaf: every admitted /32 (all, the default) or the pools' "
                        "aggregates (aggregate: one route per leaf session; sam_bgp's leaf_routes)")
    p.add_argument("--rr-peering", action="store_true", help="reconcile: iBGP with the other SAMRRSet members")
    p.add_argument("--wg-key-file", help="this RR's WireGuard private key file (0600): its public key is served in "
                                         "the RRSet (re-read when the file changes); reconcile all sets it on the "
                                         "interface")
    p.add_argument("--wg-listen-port", type=int, help="reconcile all: the WireGuard interface's UDP port")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (never tokens or bodies)")
    p.set_defaults(func=cmd_serve)
