# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RR enrollment service's request logic over the pure core/registry.Registry and rr/store.py's SQLite.

Three locks, always taken in this order so they cannot deadlock: ``commit_lock`` (one group commit at a
time) > ``lock`` (the registry and the batch of pending submissions) > ``store_lock`` (the one SQLite
connection).  A submission is validated (HMAC, scope) outside all of them; its duplicate check and the
reservation of its identities run under ``lock``; then the pending submissions are committed together (one
transaction, one fsync) under ``commit_lock`` and ``store_lock`` without ``lock``, so new submissions are
checked while the disk works and the reservations keep two of them from taking the same identity.
Revocations, expiry changes and replicated imports write under ``lock`` and ``store_lock`` together.
An answer leaves only after its commit, so an acknowledged claim survives kill -9.  Requests arrive
on rr/http_server.py's threads; docs/api.md has the wire contract.
"""

import datetime
import hmac
import json
import logging
import threading
from urllib.parse import parse_qs

from ..core import identifiers, keyring, lease, replay, wire
from ..core.fields import format_time, log_text
from ..core.registry import Registry, Rejection
from . import imports, metrics, paging
from .store import Store, StoreRejected

LOG = logging.getLogger("samctl.serve")
LEAF, ADMIN = "leaf", "admin"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class Service:
    """The RR's request logic; HTTP framing lives in http_server.py."""

    def __init__(self, node, config_resources, db_path, leaf_token, admin_token, policy_tokens,
                 on_change=None, replicator=None, clock=utcnow):
        self.node = node
        self.store = Store(db_path)
        self.tokens = policy_tokens          # callable(policy) -> [JoinKey] | key bytes | reason
        self.registry = Registry(config_resources, self.store.claims(), _TokenView(self.tokens, config_resources))
        self.bearer = {LEAF: leaf_token, ADMIN: admin_token}
        self.lock = threading.Lock()         # registry and the pending batch
        self.store_lock = threading.Lock()   # the one SQLite connection
        self.commit_lock = threading.Lock()  # one group commit at a time
        self.pending = []
        self.on_change = on_change or (lambda: None)
        self.replicator = replicator
        self.reconciler = None
        self.metrics = metrics.Metrics()   # GET /metrics (rr/metrics.py); member_keys: rr/rr_keys.py (issue 18)
        self.member_keys = None
        self.clock = clock
        self.reported = {}   # (event, claim ref) -> reason already in the audit, so a retry does not flood it

    # -- authentication --------------------------------------------------------------------------
    def role_of(self, header):
        """ADMIN, LEAF or None for an Authorization header value (constant-time compares)."""
        scheme, _sep, value = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        given = value.strip().encode("utf-8", "replace")
        for role in (ADMIN, LEAF):
            expected = self.bearer.get(role)
            if expected and hmac.compare_digest(given, expected):
                return role
        return None

    def claim_key(self, policy, spec, digest=None):
        """wire.MacKey for answers about ``spec``: only when its join HMAC verifies with one of the policy's tokens
        (keyed with that token), else None, so a refusal of a forged or garbled claim goes out unsigned."""
        try:
            key = keyring.signer(keyring.keys_of(self.registry.tokens.get(policy)), spec) if policy else None
            return wire.MacKey(key.key, digest or lease.claim_digest(spec)) if key is not None else None
        except UnicodeError:   # text no HMAC covers (a lone surrogate): not signed
            return None

    def record_key(self, name, digest=None):
        """MacKey of an accepted claim: the token that signed it (known since admission, so no HMAC is computed
        again per request); None for an unknown or a retired claim."""
        record, key = self.registry.records.get(name), self.registry.signed_with.get(name)
        if record is None or not isinstance(key, keyring.JoinKey) or not key.usable:
            return None
        return wire.MacKey(key.key, digest or lease.claim_digest(record["spec"]))

    def check_nonce(self, value):
        """A request's X-Boma-Request-Nonce: absent (a 0.1.x leaf: legacy MAC) or 16-64 lowercase hex."""
        if value is not None and not wire.is_request_nonce(value):
            raise Rejection(400, wire.REQUEST_NONCE_RULE, "%s: must be 16 to 64 lowercase hexadecimal characters"
                            % wire.REQUEST_NONCE_HEADER)

    def reload(self, config_resources, policy_tokens):
        """New documents and token sources (SIGHUP): the records stay, each re-checked against the new tokens.

        The new registry is built outside the locks (about a second per 10,000 claims), then records that changed
        meanwhile are carried over and it is swapped in under the writers' locks, with the reservations of
        submissions in flight: no admitted claim is lost and submissions do not stall.
        """
        with self.lock:
            snapshot = dict(self.registry.records)
        registry = Registry(config_resources, snapshot.values(), _TokenView(policy_tokens, config_resources))
        with self.commit_lock, self.lock:
            for name, record in self.registry.records.items():
                if snapshot.get(name) is not record:
                    registry.put(record)
            registry.reserved = dict(self.registry.reserved)
            self.tokens, self.registry = policy_tokens, registry
        self.on_change()

    # -- leaf endpoints --------------------------------------------------------------------------
    def submit(self, document):
        """(answer, wire.MacKey) for a SAMEnrollmentClaimSubmitRequest; raises Rejection (.mac_key: claim_key's)."""
        name, spec = parse_submit(document)
        if self.replicator is not None:
            self.replicator.check_admitting()   # 503 while --startup-sync require waits for a peer
        now = self.clock()
        try:
            claim, policy, signer, digest = self.registry.check(name, spec, self.registry.tokens, now)
        except Rejection as exc:
            exc.mac_key = self.claim_key(_policy_hint(spec), spec)
            raise
        key = wire.MacKey(signer.key, digest) if signer is not None else None
        until, joined = replay.window(self.registry.mesh.policies.get(policy), claim)   # nonce retention
        with self.lock:
            try:
                self.registry.check_conflicts(claim, policy, now)
            except Rejection as exc:
                exc.mac_key = key
                raise
            self.registry.reserve(claim, policy)
            ticket = _Ticket(claim, policy, signer, {
                "name": name, "policy": policy, "nonce": claim.nonce, "spec": spec,
                "expiresAt": spec.get("expiresAt") or None, "joinToken": signer.id if signer else None,
                "validUntil": until, "joinedAt": joined})
            self.pending.append(ticket)
        self._group_commit(ticket)
        if isinstance(ticket.result, StoreRejected):
            field = "spec.joinTimestamp" if ticket.result.rule == replay.RULE else "spec.joinNonce"
            exc = Rejection(409, ticket.result.rule, "SAMEnrollmentClaim/%s %s: %s"
                            % (name, field, ticket.result.message))
            exc.mac_key = key
            raise exc
        if isinstance(ticket.result, Exception):
            raise Rejection(503, "store-unavailable", "the claim store failed (%s); nothing was recorded"
                            % type(ticket.result).__name__)
        record = ticket.result
        self._changed([record], [{"policy": policy, "nonce": claim.nonce, "claim": name,
                                  "usedAt": record["acceptedAt"],
                                  **({"validUntil": until, "joinedAt": joined} if until else {})}])
        return self.registry.submit_answer(name, record["generation"], now), key

    def _group_commit(self, ticket):
        """Commit every pending submission in one transaction; whoever gets the commit lock leads.

        Submissions that arrive while a commit's fsync runs wait for the next one together, so the
        cost of durability is shared instead of serialized per claim.
        """
        with self.commit_lock:
            if ticket.done:
                return
            with self.lock:
                batch, self.pending = self.pending, []
            try:
                with self.store_lock:
                    results = self.store.accept_many([t.item for t in batch], format_time(self.clock()))
            except Exception as exc:  # noqa: BLE001 - a failed transaction rejects the whole batch, loses nothing
                LOG.error("store commit failed: %s", type(exc).__name__)
                results = [exc] * len(batch)
            with self.lock:
                for done, result in zip(batch, results):
                    self.registry.release(done.claim, done.policy)
                    if isinstance(result, dict):
                        self.registry.put(result, done.claim, done.signer)
                    done.result, done.done = result, True

    def topology(self, rrset, query):
        claim_ref = (parse_qs(query).get("claim") or [""])[0]
        name = claim_ref.rpartition("/")[2]
        try:
            answer = self.registry.topology(rrset, claim_ref, self.clock())
        except Rejection as exc:
            # A refusal about an accepted claim is signed with its token, so the leaf can trust it; an unknown
            # claim's 404 is not.
            exc.mac_key = self.record_key(name)
            raise
        if self.member_keys is not None:   # the RRs' own WireGuard keys win over the document's (issue 18)
            answer["rrSet"]["spec"] = self.member_keys.merge(rrset, answer["rrSet"]["spec"])
        return answer, self.record_key(name, answer["claimDigest"])

    # -- admin endpoints -------------------------------------------------------------------------
    def revoke(self, name, document):
        reason = document.get("reason") if isinstance(document, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise Rejection(400, "malformed-request", "reason: must be a string")
        with self.lock:
            record = self._known(name)
            if not record.get("revoked"):
                with self.store_lock:
                    self.store.revoke(name, reason or "revoked through the API", format_time(self.clock()))
                    record = self.store.record(name)
                self.registry.put(record)
                changed = True
            else:
                changed = False
        if changed:
            self._changed([record], [])
        return {"revoked": True, "claimRef": "SAMEnrollmentClaim/" + name, "changed": changed}, None

    def expiry(self, name, document):
        text = document.get("expiresAt") if isinstance(document, dict) else None
        with self.lock:
            self._known(name)
            now = self.clock()
            when = self.registry.new_expiry(name, text, now)
            changed = self.registry.records[name].get("expiresAt") != when
            if changed:
                with self.store_lock:
                    self.store.set_expiry(name, when, format_time(now))
                    record = self.store.record(name)
                self.registry.put(record)
        if changed:
            self._changed([record], [])
        return {"claimRef": "SAMEnrollmentClaim/" + name, "expiresAt": when, "changed": changed}, None

    def listing(self, query=""):
        retiring = (parse_qs(query).get("retiring") or ["false"])[0].lower()
        if retiring not in ("true", "false"):
            raise Rejection(400, "malformed-request", "retiring: must be true or false")
        with self.lock:
            return self.registry.listing(self.clock(), retiring=retiring == "true"), None

    def audit(self, query):
        try:
            limit = int((parse_qs(query).get("limit") or ["100"])[0])
        except ValueError:
            raise Rejection(400, "malformed-request", "limit: must be an integer") from None
        with self.store_lock:
            return {"items": self.store.audit(max(1, min(limit, 10000)))}, None

    def records(self, query=""):
        """One page of records and nonces (paging.py: ``limit``, ``after``; ``next`` is null on the last)."""
        with self.store_lock:
            answer = paging.page(self.store, query)
        advert = self.member_keys.advert() if self.member_keys is not None else None
        return (dict(answer, rrKey=advert) if advert else answer), None   # rrKey: this RR's WireGuard key

    def import_records(self, document):
        """Idempotent import from the peer RR: {"imported": records and nonces that changed, "refused": [...]}.

        Each record is checked like a submission (imports.check_record) and stored in its own transaction, so
        a bad or poisoned one is refused, audited once and never takes the others with it (issue 17, class 7).
        """
        records, nonces = _records_document(document)
        now = self.clock()
        changed, refused = 0, []
        for index, record in enumerate(records):
            try:
                with self.lock:
                    name = record.get("name") if isinstance(record, dict) else None
                    local = self.registry.records.get(name) if isinstance(name, str) else None
                imports.check_record(self.registry, index, record, local, now)
                with self.lock, self.store_lock:
                    if self.store.import_record(record, format_time(now)):
                        self.registry.put(self.store.record(record["name"]))
                        changed += 1
            except Rejection as exc:
                refused.append(imports.refusal(index, record, exc.rule, exc.message))
            except Exception as exc:  # noqa: BLE001 - the store refused this one record; the others go on
                refused.append(imports.refusal(index, record, "store-refused", type(exc).__name__))
        good = []
        for index, nonce in enumerate(nonces):
            problem = imports.nonce_problem(index, nonce, now)
            if problem:
                refused.append(imports.refusal(index, nonce, "malformed-nonce", problem, "nonces"))
            else:
                good.append(nonce)
        if good:
            with self.store_lock:
                changed += self.store.import_nonces(good)
        self._audit_once("import-refused", {r["ref"]: "[%s] %s" % (r["rule"], r["message"]) for r in refused})
        if changed:
            self._audit_conflicts()
            self.on_change()
        return {"imported": changed, "refused": refused}, None

    def note_left_out(self, left_out):
        """The reconcile left these claims ({ref: [Finding]}) out of the desired state: audit each once."""
        self._audit_once("left-out", {ref: "; ".join(f.describe() for f in found) for ref, found in left_out.items()})

    def _audit_conflicts(self):
        with self.lock:
            lost = self.registry.conflicts(self.clock())
        self._audit_once("conflict-lost", {"SAMEnrollmentClaim/" + n: f.describe() for n, f in lost.items()})

    def note_event(self, event, subject, reason):
        """One audit line (and log line) for something the RR did on its own, e.g. a full FRR reload after a
        failed delta (rr/reconcile.py)."""
        reason = log_text(reason, 500)
        LOG.warning("%s %s: %s", event, subject, reason)
        with self.store_lock:
            self.store.note(event, {subject: reason}, format_time(self.clock()))

    def _audit_once(self, event, reasons):
        """One audit line (and log line) per claim ref and reason; the same reason again is not repeated."""
        fresh = {ref: why for ref, why in reasons.items() if self.reported.get((event, ref)) != why}
        if not fresh:
            return
        for ref, why in fresh.items():
            self.reported[(event, ref)] = why
            LOG.warning("%s %s: %s", event, log_text(ref, 500), log_text(why, 500))
        with self.store_lock:
            self.store.note(event, fresh, format_time(self.clock()))

    def seconds_to_next_expiry(self):
        """For the reconciler: when the next admitted claim's lease (or its join token) ends."""
        now = self.clock()
        with self.lock:
            until = self.registry.next_expiry(now)
        return None if until is None else (until - now).total_seconds()

    def health(self):
        now = self.clock()
        with self.lock:
            active = sum(1 for name in list(self.registry.records) if self.registry.is_active(name, now))
            conflicts = len(self.registry.conflicts(now))
        # commits: durable SQLite transactions (one WAL fsync each with synchronous=FULL), for the bench.
        return {"status": "ok", "node": self.node, "claims": len(self.registry.records), "active": active,
                "commits": self.store.commits, "conflicts": conflicts,
                **(self.replicator.health() if self.replicator else {})}, None   # sync; degraded until synced

    def close(self):
        with self.commit_lock, self.store_lock:
            self.store.close()

    # -- helpers ---------------------------------------------------------------------------------
    def _known(self, name):
        record = self.registry.records.get(name)
        if record is None:
            raise Rejection(404, "unknown-claim", "SAMEnrollmentClaim/%s is not known" % name)
        return record

    def _changed(self, records, nonces):
        if self.replicator is not None:
            self.replicator.push({"records": records, "nonces": nonces})
        self.on_change()


class _Ticket:
    """One submission waiting for its group commit; result is the stored record or the error."""

    def __init__(self, claim, policy, signer, item):
        self.claim, self.policy, self.signer, self.item = claim, policy, signer, item
        self.result, self.done = None, False


class _TokenView:
    """The validator's token mapping, read through the service's resolver (re-read while unavailable)."""

    def __init__(self, resolve, config_resources):
        self.resolve = resolve
        self.policies = {r.name for r in config_resources if r.kind == "SAMEnrollmentPolicy"}

    def get(self, policy, default=None):
        return self.resolve(policy) if policy in self.policies else default


def _policy_hint(spec):
    ref = spec.get("policyRef") if isinstance(spec, dict) else None
    return ref.split("/", 1)[-1].strip() if isinstance(ref, str) else None


def parse_submit(document):
    """(name, spec) of a submit request, or Rejection 400 naming the missing field."""
    if not isinstance(document, dict):
        raise Rejection(400, "malformed-request", "body: must be a JSON object")
    if document.get("kind") not in (None, "SAMEnrollmentClaimSubmitRequest"):
        raise Rejection(400, "malformed-request", "kind: must be SAMEnrollmentClaimSubmitRequest")
    claim = document.get("claim")
    if not isinstance(claim, dict):
        raise Rejection(400, "malformed-request", "claim: must be a SAMEnrollmentClaim object")
    if claim.get("kind") not in (None, "SAMEnrollmentClaim"):
        raise Rejection(400, "malformed-request", "claim.kind: must be SAMEnrollmentClaim")
    meta = claim.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str):
        raise Rejection(400, "malformed-request", "claim.metadata.name: must be a string")
    # Exactly the safe set (issue 17), as submitted: a name that is accepted can always be revoked.
    if not identifiers.is_identifier(name):
        raise Rejection(400, identifiers.RULE, "claim.metadata.name: %s" % identifiers.problem(name))
    spec = claim.get("spec")
    if not isinstance(spec, dict):
        raise Rejection(400, "malformed-request", "claim.spec: must be an object")
    return name, spec


def _records_document(document):
    """(records, nonces) lists of an import; each item is checked on its own (rr/imports.py)."""
    if not isinstance(document, dict):
        raise Rejection(400, "malformed-request", "body: must be a JSON object")
    records, nonces = document.get("records") or [], document.get("nonces") or []
    if not isinstance(records, list) or not isinstance(nonces, list):
        raise Rejection(400, "malformed-request", "records, nonces: must be lists")
    return records, nonces


def encode(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def error_answer(exc):
    return wire.error_body(exc.status, exc.rule, exc.message, exc.findings)
