"""Issue 17, class 3: one conflicting or bad record is left out of the RR's desired state; the rest is applied."""

import threading

from unit.core.test_registry_conflicts import NOW, colliding, registry

from boma_mesh_utils.sam.rr import reconcile


class FakeService:
    def __init__(self, records):
        self.lock = threading.Lock()
        self.registry = registry(records)
        self.noted = []

    def clock(self):
        return NOW

    def note_left_out(self, left_out):
        self.noted.append({ref: [f.rule for f in found] for ref, found in left_out.items()})


def admitted(state):
    return sorted(state)


def fake_materialize(report, node, rr_peering=False):
    """The claims the state would be built from (the service documents here have no BGP or transport part)."""
    assert report.ok and node == "rr-a"
    return {claim.ref for claims in report.active.values() for claim in claims}


def test_a_conflict_does_not_stop_the_reconcile_of_the_others(monkeypatch):
    monkeypatch.setattr(reconcile, "materialize", fake_materialize)
    service = FakeService(colliding())
    state = reconcile.desired_state(service, "rr-a")
    assert admitted(state) == ["SAMEnrollmentClaim/leaf-1", "SAMEnrollmentClaim/leaf-2"]
    assert service.noted == [{"SAMEnrollmentClaim/leaf-0": ["duplicate-owned-address"]}]


def test_a_record_that_no_longer_validates_is_left_out_with_its_rule(monkeypatch):
    monkeypatch.setattr(reconcile, "materialize", fake_materialize)
    records = colliding()[1:]
    records[0]["spec"] = dict(records[0]["spec"], endpoint="192.0.2.1")   # outside endpointPrefixes
    service = FakeService(records)
    state = reconcile.desired_state(service, "rr-a")
    assert admitted(state) == ["SAMEnrollmentClaim/leaf-2"]
    assert service.noted == [{"SAMEnrollmentClaim/leaf-1": ["endpoint-prefix"]}]
