# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl serve`: wire the RR daemon (rr/) together: documents, token files, TLS, signals, listeners."""

import hmac
import logging
import os
import signal
import sqlite3
import ssl
import stat
import sys
import threading

from ..core.loader import load_resources
from ..core.secrets import MIN_BEARER_LENGTH
from ..core.validate import validate
from ..io import tokens
from ..io.http_client import request
from ..rr import http_server
from ..rr.replicate import Replicator
from ..rr.service import LOG, Service
from .common import FindingsError, InputError, load_configs


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
    if args.peer:
        def peer_request(endpoint, method, path, token, body, timeout):
            return request(endpoint, method, path, token, body, timeout, ca_file=args.peer_ca_file)

        service.replicator = Replicator(args.peer, peer_token, peer_request, service.import_records,
                                        interval=args.resync_interval)
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


def cmd_serve(args, out):
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s samctl-serve[%(process)d] %(levelname)s %(message)s")
    if not args.listen and not args.socket:
        raise InputError("give --listen HOST:PORT and/or --socket PATH")
    service = build_service(args)
    context = tls_context(args)
    # Many short requests on few cores: a shorter GIL switch interval keeps the latency tail down.
    sys.setswitchinterval(0.001)
    if service.replicator is not None:
        # Learn the peer's nonces before accepting anything, so a replay cannot slip in after a restart.
        LOG.info("resync at start-up: %s", service.replicator.pull_once())
        service.replicator.start()
    try:
        servers, where = http_server.start(service, args.listen, args.socket, context, args.client_timeout,
                                           args.max_connections)
    except OSError as exc:
        raise InputError("cannot listen: %s" % (exc.strerror or exc)) from None
    reconciler = service.reconciler
    if reconciler is not None:
        reconciler.start()
    wake, pending = threading.Event(), []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda signo, _frame: (pending.append(signo), wake.set()))
    out.write(where + "\n")
    out.flush()
    while True:
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
    if service.replicator is not None:
        service.replicator.stop()
    if reconciler is not None:
        reconciler.stop()
    service.close()
    return 0


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
    p.add_argument("--resync-interval", type=float, default=60.0, help="seconds between pulls from peers")
    p.add_argument("--tls-cert", help="serve TLS with this certificate chain (PEM)")
    p.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    p.add_argument("--client-timeout", type=float, default=10.0, help="seconds a client has to send a request")
    p.add_argument("--max-connections", type=int, default=256)
    p.add_argument("--reconcile", choices=("bgp", "all"), help="apply the RR's state after changes")
    p.add_argument("--reconcile-interval", type=float, default=2.0, help="minimum seconds between reconciles")
    p.add_argument("--frr-vty-socket", help="FRR vty socket directory (FRR in a namespace)")
    p.add_argument("--frr-confdir", default="/etc/frr", help="where frr.conf is persisted")
    # The same BGP options the sam_rr role gives sam_materialize/sam_bgp, so both writers render alike.
    p.add_argument("--bgp-bfd", action="store_true", help="reconcile: BFD on the leaves' peer-group (needs bfdd)")
    p.add_argument("--rr-peering", action="store_true", help="reconcile: iBGP with the other SAMRRSet members")
    p.add_argument("--wg-key-file", help="reconcile all: the WireGuard interface's private key file (0600)")
    p.add_argument("--wg-listen-port", type=int, help="reconcile all: the WireGuard interface's UDP port")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (never tokens or bodies)")
    p.set_defaults(func=cmd_serve)
