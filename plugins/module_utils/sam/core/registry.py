# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RR-side enrollment decisions (pure): admit a submitted claim, answer topology requests, rebuild state.

A ``Registry`` holds the RR's own documents (policies, RRSet, pools, profiles; claims in them are
ignored: the store is the source of accepted claims) and the accepted claim records.  Each record
is the store's row: name, policy, nonce, spec, generation, acceptedAt, expiresAt, revoked.  The
admin-owned ``expiresAt`` / ``revoked`` of a record override the submitted spec (records.overlay).

Checks are the validator's (the same rules as ``samctl validate``) plus duplicate identities against
every *active* accepted claim, looked up in hash maps so a submission costs the same with 10 or
10,000 claims.  Nonce replay is the store's job.

The two RRs can both accept claims that collide (the same /32 sent to each at the same moment); once
replicated, both RRs hold both records.  ``conflicts`` then picks the winner with the validator's own rule
(core/admission.resolve_duplicates: earliest joinTimestamp, then name), from the records alone, so both RRs
agree; the loser is inactive, left out of the desired state, and its leaf is told why.
"""

from . import admission, keyring
from .fields import format_time, parse_time
from .findings import ERROR, SKIPPED
from .lease import claim_digest
from .loader import Resource
from .mesh import build_mesh
from .model import parse_claim, split_ref
from .records import overlay, record_claims
from .validate import DEFAULT_SKEW, validate_claim

CONTROL_API_VERSION = "control.routerd.net/v1alpha1"
# A record none of its policy's listed tokens signed (its token was removed): never active again.
RETIRED = "retired"
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


def _index_keys(policy, claim):
    """(scope, rule, value) of every identity a claim holds: per policy, and mesh-wide for route binding."""
    for scope, fields in ((policy, _FIELDS), ("*", admission.GLOBAL_UNIQUE_FIELDS)):
        for rule, _path, _label, keys in fields:
            for value in keys(claim):
                if value is not None:
                    yield scope, rule, value


def _name_key(name):
    """The reservation key of a claim name in flight (no policy or rule is named '*claim-name*')."""
    return ("*claim-name*", "claim-name-taken", name)


class Registry:
    def __init__(self, config_resources, records=(), tokens=None):
        self.config = [r for r in config_resources if r.kind != "SAMEnrollmentClaim"]
        self.mesh = build_mesh(self.config, [])
        self.rrset_docs = {r.name: r for r in self.config if r.kind == "SAMRRSet"}
        # The validator's token mapping (policy -> keys): tells which of its policy's tokens signed a record.
        self.tokens = tokens if tokens is not None else {}
        self.records = {}
        self.claims = {}
        self.signed_with = {}   # name -> JoinKey, RETIRED (no listed token signed it) or None (not known here)
        self.holders = {}    # identity key -> names of the unrevoked records holding it
        self.contested = set()   # keys with two or more holders: usually empty, so conflicts() is free
        self._memo = None
        self.reserved = {}   # identities of claims being committed right now (group commit)
        self._resources = {}  # name -> (record, signer, Resource) of the last desired_resources()
        for record in records:
            self.put(record)

    # -- admission -------------------------------------------------------------------------------
    def check(self, name, spec, tokens, now, skew=DEFAULT_SKEW):
        """(Claim, policy name, JoinKey that signed it or None, claimDigest) when ``spec`` may be admitted, else
        Rejection.  The digest reuses the canonical payload the HMAC was checked over (one build per submit)."""
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
            reason = "; ".join(keyring.unavailable(keyring.keys_of(tokens.get(policy)))) or "no join token configured"
            raise Rejection(503, "token-unavailable",
                            "SAMEnrollmentPolicy/%s join token is unavailable on this RR (%s)" % (policy, reason))
        return claim, policy, report.signed_with.get(name), claim_digest(spec, report.payloads.get(name))

    def check_conflicts(self, claim, policy, now):
        """Refuse an identity held by another active claim (call under the writer's lock)."""
        self._check_name(claim, policy)
        for scope, fields in ((policy, _FIELDS), ("*", admission.GLOBAL_UNIQUE_FIELDS)):
            for rule, path, label, keys in fields:
                for value in keys(claim):
                    if value is None:
                        continue
                    owner = self.reserved.get((scope, rule, value))
                    if owner is None or owner == claim.name:
                        owner = self._holder((scope, rule, value), claim.name, now)
                    if owner is not None and owner != claim.name:
                        raise Rejection(409, rule, "%s %s: %s %s is already used by SAMEnrollmentClaim/%s"
                                        % (claim.ref, path, label, value, owner))

    def _check_name(self, claim, policy):
        """A claim name is bound to its leafID and policy, revoked or not: only they may replace its record."""
        bound = self.reserved.get(_name_key(claim.name))
        if bound is None and claim.name in self.records:
            bound = (self.records[claim.name]["policy"], self.claims[claim.name].leaf_id)
        if bound is not None and bound != (policy, claim.leaf_id):
            raise Rejection(409, "claim-name-taken", "%s metadata.name: the name belongs to leafID %s of "
                            "SAMEnrollmentPolicy/%s; a claim of leafID %s (SAMEnrollmentPolicy/%s) cannot replace it"
                            % (claim.ref, bound[1], bound[0], claim.leaf_id, policy))

    def reserve(self, claim, policy):
        """Hold a checked claim's identities (and its name) while its commit is in flight."""
        for key in _index_keys(policy, claim):
            self.reserved[key] = claim.name
        self.reserved[_name_key(claim.name)] = (policy, claim.leaf_id)

    def release(self, claim, policy):
        for key in _index_keys(policy, claim):
            if self.reserved.get(key) == claim.name:
                del self.reserved[key]
        if self.reserved.get(_name_key(claim.name)) == (policy, claim.leaf_id):
            del self.reserved[_name_key(claim.name)]

    def expiry_of(self, name):
        """Effective expiry (datetime or None) of an accepted claim: its lease, capped at its token's notAfter."""
        claim = self.claims[name]
        policy = self.mesh.policies.get(split_ref(claim.policy_ref, "SAMEnrollmentPolicy") or "")
        until = admission.expiry(policy, claim)
        key = self.signed_with.get(name)
        cap = key.not_after if isinstance(key, keyring.JoinKey) else None
        return cap if cap is not None and (until is None or cap < until) else until

    def _live(self, name, now):
        """Admitted, not revoked, retired or expired: may hold identities (before conflicts are resolved)."""
        record = self.records.get(name)
        if record is None or record.get("revoked") or self.signed_with.get(name) is RETIRED:
            return False
        until = self.expiry_of(name)
        return until is None or until > now

    def is_active(self, name, now):
        return self._live(name, now) and name not in self.conflicts(now)

    def _holder(self, key, other_than, now):
        """The active record holding an identity key, other than ``other_than`` (the earliest if several)."""
        holders = self.holders.get(key)
        if not holders or (len(holders) == 1 and other_than in holders):
            return None   # the common case: nobody else holds it, no conflicts to compute
        names = [n for n in holders if n != other_than and self.is_active(n, now)]
        return min(names, key=lambda n: admission.sort_key(self.claims[n])) if names else None

    def conflicts(self, now):
        """{loser name: Finding} among live records that collide, decided from the records alone."""
        if not self.contested:
            return {}
        if self._memo is not None and self._memo[0] == now:
            return self._memo[1]
        involved = {n for key in self.contested for n in self.holders.get(key, ()) if self._live(n, now)}
        candidates = {}
        for name in sorted(involved):
            candidates.setdefault(self.records[name]["policy"], []).append(self.claims[name])
        findings, rejected = admission.resolve_duplicates(candidates)
        lost = {}
        for finding in findings:
            name = split_ref(finding.resource, "SAMEnrollmentClaim")
            if name in rejected:
                lost.setdefault(name, finding)
        self._memo = (now, lost)
        return lost

    def next_expiry(self, now):
        """The earliest effective expiry after ``now`` among active claims (datetime), or None."""
        ends = [until for name in self.records if self.is_active(name, now)
                for until in (self.expiry_of(name),) if until is not None]
        return min(ends) if ends else None

    def _signer(self, record):
        """The JoinKey that signed a record, RETIRED when none of its policy's tokens did, None if unknown."""
        keys = keyring.keys_of(self.tokens.get(record["policy"]))
        policy = self.mesh.policies.get(record["policy"])
        if not keys or policy is None or not policy.tokens:
            return None
        key = keyring.signer(keys, record["spec"])
        if key is None and not keyring.unavailable(keys):
            return RETIRED
        return key

    # -- records ---------------------------------------------------------------------------------
    def put(self, record, claim=None, signer=None):
        """Add or replace an accepted record (after the store committed it); ``claim``/``key`` if known."""
        name = record["name"]
        self.drop(name)
        if claim is None or record.get("expiresAt") != claim.spec.get("expiresAt") or record.get("revoked"):
            claim = parse_claim(Resource("SAMEnrollmentClaim", name, overlay(record)), [])
        self.records[name] = record
        self.claims[name] = claim
        self._memo = None
        # A reload may have changed the tokens since the claim was checked: then the signer is found again.
        known = signer is not None and signer in keyring.keys_of(self.tokens.get(record["policy"]))
        self.signed_with[name] = signer if known else self._signer(record)
        if not record.get("revoked"):
            for key in _index_keys(record["policy"], claim):
                names = self.holders.setdefault(key, set())
                names.add(name)
                if len(names) > 1:
                    self.contested.add(key)

    def drop(self, name):
        old = self.claims.pop(name, None)
        record = self.records.pop(name, None)
        self.signed_with.pop(name, None)
        self._memo = None
        if old is None:
            return
        for key in _index_keys(record["policy"], old):
            names = self.holders.get(key)
            if names is None or name not in names:
                continue
            names.discard(name)
            if len(names) < 2:
                self.contested.discard(key)
            if not names:
                del self.holders[key]

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
                # dynamicSource: routerd's leaf refuses an answer without it (the claim it came from, as claimRef)
                "claimRef": "SAMEnrollmentClaim/" + name, "dynamicSource": "SAMEnrollmentClaim/" + name,
                "generation": generation, "observedAt": format_time(now),
                "expiresAt": format_time(until) if until else None}

    def topology(self, rrset_name, claim_ref, now):
        name = split_ref(claim_ref or "", "SAMEnrollmentClaim")
        if not name or name not in self.records:
            raise Rejection(404, "unknown-claim", "claim: %r is not an accepted SAMEnrollmentClaim" % (claim_ref,))
        record, claim = self.records[name], self.claims[name]
        if record.get("revoked"):
            raise Rejection(410, "claim-revoked", "SAMEnrollmentClaim/%s was revoked" % name)
        if self.signed_with.get(name) is RETIRED:
            raise Rejection(410, "join-token-retired", "SAMEnrollmentClaim/%s was signed with a join token "
                            "SAMEnrollmentPolicy/%s no longer lists: re-sign it" % (name, record["policy"]))
        lost = self.conflicts(now).get(name)
        if lost is not None:
            raise Rejection(409, lost.rule, "%s: %s; the claim with the earlier joinTimestamp (then name) keeps it, "
                            "this one is inactive on every RR: sign a claim with identities of its own"
                            % (claim.ref, lost.describe()), [lost])
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

    def listing(self, now, retiring=False):
        """Every record or, with ``retiring``, the unrevoked ones whose token is retiring or gone (to re-sign)."""
        items, lost = [], self.conflicts(now)
        for name in sorted(self.records):
            record, claim = self.records[name], self.claims[name]
            token = self.token_info(name)
            if retiring and not (token["retiring"] and not record.get("revoked")):
                continue
            until = self.expiry_of(name)
            items.append({"name": name, "policy": record["policy"], "leafID": claim.leaf_id,
                          "generation": record["generation"], "acceptedAt": record["acceptedAt"],
                          "expiresAt": format_time(until) if until else None, "revoked": bool(record.get("revoked")),
                          "revokedReason": record.get("revokedReason"), "active": self.is_active(name, now),
                          "joinToken": token})
            if name in lost:
                items[-1]["conflict"] = {"rule": lost[name].rule, "message": lost[name].message}
        return {"items": items}

    def token_info(self, name):
        """{id, notAfter, retiring, status} of the token that signed a record (no key material)."""
        key = self.signed_with.get(name)
        if key is RETIRED:
            return {"id": None, "notAfter": None, "retiring": True, "status": "retired"}
        if key is None:
            policy = self.mesh.policies.get(self.records[name]["policy"])
            status = "unsigned" if policy is None or not policy.tokens else "unverified"
            return {"id": None, "notAfter": None, "retiring": False, "status": status}
        return {"id": key.id, "notAfter": format_time(key.not_after) if key.not_after else None,
                "retiring": key.not_after is not None, "status": "retiring" if key.not_after else "current"}

    def desired_resources(self, now=None):
        """The RR's documents and every non-revoked record as resources, for validate() + materialize().

        Cheap on purpose: the caller takes it under the writers' lock and validates outside it.  With ``now``,
        the losers of conflicts are left out too (the validator would refuse the whole set over them).
        """
        lost = self.conflicts(now) if now is not None else {}
        # record_claims is what the sam_rr role applies too (filter boma.mesh.record_claims); the RR adds only
        # what the role cannot know: which token signed a record (a retired one drops it, a notAfter caps it).
        claims, cache = [], {}
        for name, record in sorted(self.records.items()):
            if self.signed_with.get(name) is RETIRED or name in lost or record.get("revoked"):
                continue
            key = self.signed_with.get(name)
            # The same Resource object for a record as it was: the reconcile's memos (validation, rendering) then
            # know it by identity instead of reading it again (issue 19: O(changed claims), not O(claims)).
            hit = self._resources.get(name)
            if hit is None or hit[0] is not record or hit[1] is not key:
                doc = record_claims([record])[0]
                spec = doc["spec"]
                if isinstance(key, keyring.JoinKey) and key.not_after is not None:
                    spec["expiresAt"] = format_time(self.expiry_of(name))   # the token's notAfter ends the lease too
                hit = (record, key, Resource(doc["kind"], name, spec))
            cache[name] = hit
            claims.append(hit[2])
        self._resources = cache
        return self.config + claims
