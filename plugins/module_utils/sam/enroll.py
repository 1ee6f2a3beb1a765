# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RR-side enrollment decisions (pure): admit a submitted claim, answer topology requests, rebuild state.

A ``Registry`` holds the RR's own documents (policies, RRSet, pools, profiles; claims in them are
ignored: the store is the source of accepted claims) and the accepted claim records.  Each record
is the store's row: name, policy, nonce, spec, generation, acceptedAt, expiresAt, revoked.  The
admin-owned ``expiresAt`` / ``revoked`` of a record override the submitted spec.

Checks are the validator's (the same rules as ``samctl validate``) plus duplicate identities against
every *active* accepted claim, looked up in hash maps so a submission costs the same with 10 or
10,000 claims.  Nonce replay is the store's job: it remembers nonces forever.
"""

from . import admission
from .client import claim_digest
from .fields import format_time, parse_time
from .findings import ERROR, SKIPPED
from .loader import Resource
from .model import build_mesh, parse_claim, split_ref
from .validate import DEFAULT_SKEW, validate_claim

CONTROL_API_VERSION = "control.routerd.net/v1alpha1"
# The nonce is unique forever in the store, not only among active claims.
_FIELDS = tuple(f for f in admission.UNIQUE_FIELDS if f[0] != "duplicate-join-nonce")


class Rejection(Exception):
    """A refused request: HTTP status, rule, message naming the field path, and the findings."""

    def __init__(self, status, rule, message, findings=()):
        super().__init__("[%s] %s" % (rule, message))
        self.status = status
        self.rule = rule
        self.message = message
        self.findings = [{"path": f.path, "rule": f.rule, "message": f.message} for f in findings]


def overlay(record):
    """The record's claim spec with the admin-owned fields the RR holds."""
    spec = dict(record["spec"])
    spec.pop("expiresAt", None)
    spec.pop("revoked", None)
    if record.get("expiresAt"):
        spec["expiresAt"] = record["expiresAt"]
    if record.get("revoked"):
        spec["revoked"] = True
    return spec


def _index_keys(policy, claim):
    """(scope, rule, value) of every identity a claim holds: per policy, and mesh-wide for route binding."""
    for scope, fields in ((policy, _FIELDS), ("*", admission.GLOBAL_UNIQUE_FIELDS)):
        for rule, _path, _label, keys in fields:
            for value in keys(claim):
                if value is not None:
                    yield scope, rule, value


class Registry:
    def __init__(self, config_resources, records=()):
        self.config = [r for r in config_resources if r.kind != "SAMEnrollmentClaim"]
        self.mesh = build_mesh(self.config, [])
        self.rrset_docs = {r.name: r for r in self.config if r.kind == "SAMRRSet"}
        self.records = {}
        self.claims = {}
        self.index = {}
        self.reserved = {}   # identities of claims being committed right now (group commit)
        for record in records:
            self.put(record)

    # -- admission -------------------------------------------------------------------------------
    def check(self, name, spec, tokens, now, skew=DEFAULT_SKEW):
        """(Claim, policy name) when ``spec`` may be admitted as SAMEnrollmentClaim/name, else Rejection."""
        res = Resource("SAMEnrollmentClaim", name, spec)
        report = validate_claim(self.mesh, res, tokens=tokens, now=now, skew=skew)
        mine = [f for f in report.findings if f.resource == res.ref]
        errors = [f for f in mine if f.severity == ERROR]
        if errors:
            raise Rejection(422, errors[0].rule, "; ".join(f.describe() for f in errors), errors)
        skipped = [f for f in mine if f.severity == SKIPPED]
        if skipped:
            raise Rejection(422, skipped[0].rule, skipped[0].describe(), skipped)
        claim = report.mesh.claims[name]
        policy = split_ref(claim.policy_ref, "SAMEnrollmentPolicy")
        if name in report.unverified:
            reason = tokens.get(policy) if isinstance(tokens.get(policy), str) else "no join token configured"
            raise Rejection(503, "token-unavailable",
                            "SAMEnrollmentPolicy/%s join token is unavailable on this RR (%s)" % (policy, reason))
        return claim, policy

    def check_conflicts(self, claim, policy, now):
        """Refuse an identity held by another active claim (call under the writer's lock)."""
        for scope, fields in ((policy, _FIELDS), ("*", admission.GLOBAL_UNIQUE_FIELDS)):
            for rule, path, label, keys in fields:
                for value in keys(claim):
                    if value is None:
                        continue
                    owner = self.reserved.get((scope, rule, value))
                    if owner is None or owner == claim.name:
                        owner = self.index.get((scope, rule, value))
                        owner = owner if owner is not None and self.is_active(owner, now) else None
                    if owner is not None and owner != claim.name:
                        raise Rejection(409, rule, "%s %s: %s %s is already used by SAMEnrollmentClaim/%s"
                                        % (claim.ref, path, label, value, owner))

    def reserve(self, claim, policy):
        """Hold a checked claim's identities while its commit is in flight."""
        for key in _index_keys(policy, claim):
            self.reserved[key] = claim.name

    def release(self, claim, policy):
        for key in _index_keys(policy, claim):
            if self.reserved.get(key) == claim.name:
                del self.reserved[key]

    def expiry_of(self, name):
        """Effective expiry (datetime or None) of an accepted claim."""
        claim = self.claims[name]
        policy = self.mesh.policies.get(split_ref(claim.policy_ref, "SAMEnrollmentPolicy") or "")
        return admission.expiry(policy, claim)

    def is_active(self, name, now):
        record = self.records.get(name)
        if record is None or record.get("revoked"):
            return False
        until = self.expiry_of(name)
        return until is None or until > now

    # -- records ---------------------------------------------------------------------------------
    def put(self, record, claim=None):
        """Add or replace an accepted record (after the store committed it); ``claim`` if already parsed."""
        name = record["name"]
        self.drop(name)
        if claim is None or record.get("expiresAt") != claim.spec.get("expiresAt") or record.get("revoked"):
            claim = parse_claim(Resource("SAMEnrollmentClaim", name, overlay(record)), [])
        self.records[name] = record
        self.claims[name] = claim
        if not record.get("revoked"):
            for key in _index_keys(record["policy"], claim):
                self.index.setdefault(key, name)

    def drop(self, name):
        old = self.claims.pop(name, None)
        record = self.records.pop(name, None)
        if old is None:
            return
        for key in _index_keys(record["policy"], old):
            if self.index.get(key) == name:
                del self.index[key]

    def new_expiry(self, name, text, now):
        """Validated admin expiry change: may only move the effective expiry earlier."""
        if name not in self.records:
            raise Rejection(404, "unknown-claim", "SAMEnrollmentClaim/%s is not known" % name)
        when = parse_time(text)
        if when is None:
            raise Rejection(422, "time-format", "expiresAt: %r is not an RFC 3339 timestamp" % (text,))
        current = self.expiry_of(name)
        if current is not None and when > current:
            raise Rejection(422, "expiry-extend", "expiresAt: %s is later than the effective expiry %s; the API only "
                            "shortens a lease (a longer one needs a newly signed claim)"
                            % (format_time(when), format_time(current)))
        return format_time(when)

    # -- answers ---------------------------------------------------------------------------------
    def submit_answer(self, name, generation, now):
        until = self.expiry_of(name)
        return {"apiVersion": CONTROL_API_VERSION, "kind": "SAMEnrollmentClaimSubmitResponse", "accepted": True,
                "claimRef": "SAMEnrollmentClaim/" + name, "generation": generation, "observedAt": format_time(now),
                "expiresAt": format_time(until) if until else None}

    def topology(self, rrset_name, claim_ref, now):
        name = split_ref(claim_ref or "", "SAMEnrollmentClaim")
        if not name or name not in self.records:
            raise Rejection(404, "unknown-claim", "claim: %r is not an accepted SAMEnrollmentClaim" % (claim_ref,))
        record, claim = self.records[name], self.claims[name]
        if record.get("revoked"):
            raise Rejection(410, "claim-revoked", "SAMEnrollmentClaim/%s was revoked" % name)
        if not self.is_active(name, now):
            raise Rejection(410, "claim-expired", "SAMEnrollmentClaim/%s has expired" % name)
        if split_ref(claim.rrset_ref or "", "SAMRRSet") != rrset_name:
            raise Rejection(403, "rrset-mismatch", "SAMEnrollmentClaim/%s spec.rrSetRef is %s, not SAMRRSet/%s"
                            % (name, claim.rrset_ref, rrset_name))
        doc = self.rrset_docs.get(rrset_name)
        if doc is None:
            raise Rejection(404, "unknown-rrset", "SAMRRSet/%s is not served by this RR" % rrset_name)
        until = self.expiry_of(name)
        return {"apiVersion": CONTROL_API_VERSION, "kind": "SAMEnrollmentTopology", "metadata": {"name": rrset_name},
                "claimRef": "SAMEnrollmentClaim/" + name, "claimDigest": claim_digest(record["spec"]),
                "generation": record["generation"], "expiresAt": format_time(until) if until else None,
                "observedAt": format_time(now),
                "rrSet": {"apiVersion": "mobility.routerd.net/v1alpha1", "kind": "SAMRRSet",
                          "metadata": {"name": rrset_name}, "spec": doc.spec}}

    def listing(self, now):
        items = []
        for name in sorted(self.records):
            record, claim = self.records[name], self.claims[name]
            until = self.expiry_of(name)
            items.append({"name": name, "policy": record["policy"], "leafID": claim.leaf_id,
                          "generation": record["generation"], "acceptedAt": record["acceptedAt"],
                          "expiresAt": format_time(until) if until else None, "revoked": bool(record.get("revoked")),
                          "revokedReason": record.get("revokedReason"), "active": self.is_active(name, now)})
        return {"items": items}

    def policy_of(self, name):
        record = self.records.get(name)
        return record["policy"] if record else None

    def desired_resources(self):
        """The RR's documents and every non-revoked record as resources, for validate() + materialize().

        Cheap on purpose: the caller takes it under the writers' lock and validates outside it.
        """
        claims = [Resource("SAMEnrollmentClaim", n, overlay(r)) for n, r in sorted(self.records.items())
                  if not r.get("revoked")]
        return self.config + claims
