"""Issue 17, class 6: an RR forgets expired nonces without reopening replay (core/replay.py, rr/retention.py)."""

import dataclasses
import datetime

import pytest

from boma_mesh_utils.sam.core import replay, wire
from boma_mesh_utils.sam.core.fields import format_time
from boma_mesh_utils.sam.core.loader import Resource, load_resources
from boma_mesh_utils.sam.core.mesh import build_mesh
from boma_mesh_utils.sam.core.model import parse_claim
from boma_mesh_utils.sam.core.registry import Rejection
from boma_mesh_utils.sam.rr import retention
from boma_mesh_utils.sam.rr.service import Service
from support import synthetic

KEY = b"retention-test-token-0123"
T0 = datetime.datetime(2026, 6, 28, 0, 0, tzinfo=datetime.timezone.utc)
MINUTE = datetime.timedelta(minutes=1)


def documents(ttl):
    docs = synthetic.service_documents("/nonexistent")
    docs[1] = dict(docs[1], spec=dict(docs[1]["spec"], ttl=ttl))
    return load_resources([("rr", {"resources": docs})])[0]


def claim(nonce, joined, index=0):
    doc = synthetic.signed_claims(1, KEY, timestamp=format_time(joined), start=index, nonce=nonce)[0]
    return wire.submit_request(doc["metadata"]["name"], doc["spec"])


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def service(tmp_path):
    clock = Clock()
    rr = Service("rr-a", documents("1h"), str(tmp_path / "rr.db"), b"l" * 16, b"a" * 16, lambda _p: KEY, clock=clock)
    rr.clock_at = clock
    yield rr
    rr.close()


def submit(service, document):
    try:
        return service.submit(document)[0]
    except Rejection as exc:
        return exc


def test_window_is_join_timestamp_plus_ttl_never_the_unsigned_expires_at():
    policy = build_mesh(documents("1h"), []).policies["bench"]
    spec = dict(synthetic.signed_claims(1, KEY)[0]["spec"], joinTimestamp="2026-06-28T00:00:00.2Z",
                expiresAt="2026-06-28T00:10:00Z")
    parsed = parse_claim(Resource("SAMEnrollmentClaim", "leaf-0", spec), [])
    # expiresAt is not signed: a replay can drop it, so only joinTimestamp + ttl bounds the replay (rounded up).
    assert replay.window(policy, parsed) == ("2026-06-28T01:00:01Z", "2026-06-28T00:00:01Z")
    assert replay.window(dataclasses.replace(policy, ttl=None), parsed) == (None, "2026-06-28T00:00:01Z")
    assert replay.window(policy, dataclasses.replace(parsed, timestamp=None)) == (None, None)


def test_a_forgotten_nonce_cannot_be_replayed_even_after_the_ttl_grows(service):
    first = claim("a", T0)
    assert submit(service, first)["generation"] == 1
    assert submit(service, claim("b", T0 + MINUTE))["generation"] == 2   # leaf-0 re-enrolled: nonce a unreferenced
    service.clock_at.now = T0 + 62 * MINUTE      # a expired (T0 + 1h) but within the 5 min clock margin
    assert retention.prune(service) == 0
    service.clock_at.now = T0 + 66 * MINUTE
    assert retention.prune(service) == 1
    assert not service.store.nonce_used("bench", "a-0") and service.store.nonce_used("bench", "b-0")
    assert service.store.horizons() == {"bench": "2026-06-28T00:00:00Z"}
    assert any(a["event"] == "nonces-pruned" and a["detail"]["count"] == 1 for a in service.store.audit())
    expired = submit(service, first)
    assert (expired.status, expired.rule) == (422, "claim-expired")
    # A longer ttl makes the old claim valid again: the horizon still refuses it.
    service.reload(documents("24h"), lambda _p: KEY)
    again = submit(service, first)
    assert (again.status, again.rule) == (409, "nonce-horizon")
    assert "SAMEnrollmentClaim/leaf-0 spec.joinTimestamp" in again.message
    assert submit(service, claim("c", service.clock_at.now))["generation"] == 3   # a fresh claim is fine


def test_rows_without_validity_are_backfilled_from_their_record(service):
    submit(service, claim("a", T0))
    service.store.db.execute("DELETE FROM nonce_validity")   # as a 0.1 database left it
    assert retention.backfill(service) == 1
    (entry,) = service.store.nonces_after("", "", 10)
    assert (entry["validUntil"], entry["joinedAt"]) == ("2026-06-28T01:00:00Z", "2026-06-28T00:00:00Z")


def test_submissions_and_pushes_carry_the_validity(service):
    pushed = []

    class Recorder:
        admitting = True

        def push(self, document):
            pushed.append(document)

        def check_admitting(self):
            pass

        def health(self):
            return {}

    service.replicator = Recorder()
    submit(service, claim("a", T0))
    (entry,) = pushed[0]["nonces"]
    assert (entry["validUntil"], entry["joinedAt"]) == ("2026-06-28T01:00:00Z", "2026-06-28T00:00:00Z")
