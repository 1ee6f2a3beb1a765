# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The memos that keep an RR's reconcile run cheap (issue 19) give what the uncached code gives, or nothing.

model.parse_claim (per claim spec), render/frr's per-leaf lines and frr_delta's last parse: a hit must be equal to a
fresh computation, findings included, and a value that cannot be a key must be computed (and refused) every time.
"""

import copy
import datetime

import pytest

from boma_mesh_utils.sam.core import model
from boma_mesh_utils.sam.core.loader import Resource, load_resources
from boma_mesh_utils.sam.core.registry import Registry
from boma_mesh_utils.sam.core.render import RenderError, frr_delta
from boma_mesh_utils.sam.core.render import frr as render
from boma_mesh_utils.sam.core.render.frr import render_frr
from boma_mesh_utils.sam.core.validate import validate_leaving_out
from support import synthetic
from support.synthetic import signed_claims, synthetic_rr_state

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def empty_memos():
    model._PARSED.clear()
    model._PARSED_BY_ID.clear()
    render._LEAF_LINES.clear()
    frr_delta._LAST[0] = (None, None)
    yield


def claim_resource(spec, name="leaf-0"):
    return Resource("SAMEnrollmentClaim", name, spec)


def test_a_parsed_claim_is_reused_with_its_findings():
    spec = copy.deepcopy(signed_claims(1, b"k")[0]["spec"])
    spec["joinTimestamp"] = "yesterday"
    first, second = [], []
    a = model.parse_claim(claim_resource(spec), first)
    b = model.parse_claim(claim_resource(copy.deepcopy(spec)), second)
    assert a is b and len(model._PARSED.values) == 1
    assert first and first == second, "the findings of a hit are the ones the parse gave"


def test_specs_that_differ_in_json_type_or_name_are_parsed_apart():
    spec = signed_claims(1, b"k")[0]["spec"]
    as_number = dict(spec, tunnelAddress=7)
    as_text = dict(spec, tunnelAddress="7")
    findings_number, findings_text = [], []
    model.parse_claim(claim_resource(as_number), findings_number)
    model.parse_claim(claim_resource(as_text), findings_text)
    assert len(model._PARSED.values) == 2 and findings_number and findings_text
    other = model.parse_claim(claim_resource(spec, name="leaf-1"), [])
    assert other.name == "leaf-1" and len(model._PARSED.values) == 3


def test_a_spec_json_cannot_hold_is_parsed_every_time():
    spec = dict(signed_claims(1, b"k")[0]["spec"], joinTimestamp=object())
    findings = []
    model.parse_claim(claim_resource(spec), findings)
    assert findings and model._PARSED.values == {}


def test_rendered_leaves_come_from_the_memo_and_equal_a_fresh_render():
    state = synthetic_rr_state(20)
    first = render_frr(state)
    assert len(render._LEAF_LINES.values) == 20
    render._LEAF_LINES.clear()
    render._LEAF_LINES.limit = 5            # the memo is bounded: emptied when full
    try:
        assert render_frr(state) == first and len(render._LEAF_LINES.values) <= 5
    finally:
        render._LEAF_LINES.limit = 50000
    timers = synthetic_rr_state(20)
    timers["resources"][1]["spec"]["timers"] = {"keepalive": 3, "holdTime": 9}
    assert " neighbor leaves@leaf-3 timers 3 9" in render_frr(timers), "a changed input is a different key"


def test_an_unhashable_admitted_value_is_refused_not_cached():
    state = synthetic_rr_state(2)
    state["resources"][1]["spec"]["admitted"][0]["prefixes"] = [["10.64.0.1/32"]]
    with pytest.raises(RenderError):
        render_frr(state)
    assert all(key[6] != "leaf-0" for key in render._LEAF_LINES.values)


def test_the_delta_reuses_the_last_parse_and_gives_the_same_delta():
    old, new = render_frr(synthetic_rr_state(10)), render_frr(synthetic_rr_state(11))
    fresh = frr_delta.delta(old, new)
    assert frr_delta._LAST[0][0] == new
    newer = render_frr(synthetic_rr_state(12))
    reused = frr_delta.delta(new, newer)
    frr_delta._LAST[0] = (None, None)
    assert reused == frr_delta.delta(new, newer) and fresh.script != reused.script


def test_the_claim_memo_is_bounded_in_bytes_against_large_hostile_specs():
    """Every submission is parsed, hostile ones too: a stream of large distinct specs never holds more than the
    bound (it empties the memo instead), and a spec larger than the bound is not kept at all."""
    memo = model._PARSED
    memo.max_bytes, saved = 20000, memo.max_bytes
    try:
        base = signed_claims(1, b"k")[0]["spec"]
        for index in range(50):
            model.parse_claim(claim_resource(dict(base, joinNonce="x" * 3000 + str(index))), [])
            assert memo.size <= 20000 and len(memo.values) <= 7
        memo.clear()
        model.parse_claim(claim_resource(dict(base, joinNonce="x" * 30000)), [])
        assert memo.values == {} and memo.size == 0
    finally:
        memo.max_bytes = saved


def registry_with(*docs, **extra):
    resources, _findings = load_resources([("rr", {"resources": synthetic.service_documents("/nonexistent")})])
    reg = Registry(resources)
    for doc in docs:
        reg.put(dict({"name": doc["metadata"]["name"], "policy": "bench", "nonce": doc["spec"]["joinNonce"],
                      "spec": doc["spec"], "generation": 1, "acceptedAt": "2026-11-23T11:00:00Z", "expiresAt": None,
                      "revoked": False, "revokedReason": None}, **extra.get(doc["metadata"]["name"], {})))
    return reg


def active_names(reg, now):
    report, left_out = validate_leaving_out(reg.desired_resources(now), now=now)
    return sorted(c.name for cs in report.active.values() for c in cs), sorted(left_out)


def test_the_registry_hands_the_reconcile_the_same_resource_until_the_record_changes():
    first, second = signed_claims(2, b"k", timestamp="2026-11-23T11:00:00Z")
    reg = registry_with(first, second)
    one, two = reg.desired_resources(NOW), reg.desired_resources(NOW)
    assert [a is b for a, b in zip(one, two)] == [True] * len(one)
    reg.put(dict(reg.records["leaf-1"], generation=2))           # a renewal is a new record
    three = reg.desired_resources(NOW)
    claims = {r.name: r for r in three if r.kind == "SAMEnrollmentClaim"}
    assert claims["leaf-0"] is next(r for r in two if r.name == "leaf-0")
    assert claims["leaf-1"] is not next(r for r in two if r.name == "leaf-1")


def test_a_claim_checked_from_the_memo_still_expires_and_still_comes_of_age():
    """The validation memo (a claim checked once is not checked again) reads ``now`` through the two instants it
    depends on: a lease that ends and a joinTimestamp too far ahead are decided at each run's ``now``."""
    early, late = signed_claims(2, b"k", timestamp="2026-11-23T11:00:00Z")
    late["spec"]["joinTimestamp"] = "2026-11-23T12:30:00Z"          # 30 min ahead of NOW, beyond the 5 min skew
    reg = registry_with(early, late, **{"leaf-0": {"expiresAt": "2026-11-23T13:00:00Z"}})
    assert active_names(reg, NOW) == (["leaf-0"], ["SAMEnrollmentClaim/leaf-1"])
    assert active_names(reg, NOW + datetime.timedelta(minutes=40)) == (["leaf-0", "leaf-1"], [])
    assert active_names(reg, NOW + datetime.timedelta(hours=2))[0] == ["leaf-1"]
    assert active_names(reg, NOW) == (["leaf-0"], ["SAMEnrollmentClaim/leaf-1"])
