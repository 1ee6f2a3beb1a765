"""Route admission is bound to the BGP neighbor (tunnel) address: only that claim's own /32s."""

import ipaddress

import pytest
from conftest import run

from boma_mesh_utils.sam.core.admission import RouteAdmission
from boma_mesh_utils.sam.core.model import Claim
from boma_mesh_utils.sam.core.validate import route_admission

LEAF_B = "10.255.0.32"  # tunnel address of leaf-b, which owns 10.77.60.32/32


@pytest.fixture
def admit(mesh):
    report = run(mesh)
    assert report.ok
    return route_admission(report).admit_route


def test_leaf_may_announce_its_own_claimed_32(admit):
    decision = admit(LEAF_B, "10.77.60.32/32")
    assert decision.accepted and decision.claim == "leaf-b"


@pytest.mark.parametrize("prefix,rule", [
    ("10.77.60.31/32", "other-claim"),        # leaf-a's /32
    ("10.77.60.99/32", "unclaimed"),          # in the pool, owned by nobody
    ("10.77.60.0/24", "pool-aggregate"),
    ("10.77.0.0/16", "pool-aggregate"),       # a supernet of the pool
    ("10.77.60.32/31", "not-host-route"),     # a non-/32 subprefix
    ("10.77.60.0/25", "not-host-route"),
    ("0.0.0.0/0", "default-route"),
    ("10.20.0.0/24", "underlay-prefix"),      # leaf underlay
    ("10.10.0.2/32", "underlay-prefix"),      # an RR's endpoint
    ("10.99.0.3/32", "underlay-prefix"),      # an RR's tunnel identity
    ("192.168.7.7/32", "outside-pool"),
])
def test_dynamic_admission_rejects(admit, prefix, rule):
    decision = admit(LEAF_B, prefix)
    assert not decision.accepted and decision.rule == rule, decision


def test_owned_32_announced_by_another_neighbor_is_rejected(admit):
    decision = admit("10.255.0.31", "10.77.60.32/32")
    assert (decision.accepted, decision.rule, decision.claim) == (False, "other-claim", "leaf-a")


def test_unknown_neighbor_is_rejected(admit):
    assert admit("10.255.0.99", "10.77.60.32/32").rule == "unknown-neighbor"


def test_revoked_claim_loses_its_routes(mesh):
    next(d for d in mesh if d["metadata"]["name"] == "leaf-b")["spec"]["revoked"] = True
    assert route_admission(run(mesh)).admit_route(LEAF_B, "10.77.60.32/32").rule == "unknown-neighbor"


def test_malformed_input_is_a_decision_not_an_exception(admit):
    assert admit("not-an-ip", "10.77.60.32/32").rule == "malformed"
    assert admit(LEAF_B, "10.77.60.300/32").rule == "malformed"


def test_admission_is_linear_hash_lookups():
    def claim(i):
        a, b = i // 250, i % 250 + 1
        return Claim(name="leaf-%d" % i, spec={}, tunnel_address=ipaddress.IPv4Network("10.255.%d.%d/32" % (a, b)),
                     owned=((0, "", ipaddress.IPv4Network("10.77.%d.%d/32" % (a, b))),))
    ra = RouteAdmission([claim(i) for i in range(5000)], [ipaddress.IPv4Network("10.77.0.0/16")])
    assert ra.admit_route("10.255.19.250", "10.77.19.250/32").accepted
    assert ra.admit_route("10.255.19.250", "10.77.19.249/32").rule == "other-claim"
