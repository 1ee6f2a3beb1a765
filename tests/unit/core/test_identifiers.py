"""Issue 17: identifiers that reach configuration files have one safe set, enforced in validation and renderers."""

import copy
import datetime

import pytest

from boma_mesh_utils.sam.core import identifiers, payload
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.render.frr import RenderError, render_frr
from boma_mesh_utils.sam.core.render.gobgp import render_gobgp
from boma_mesh_utils.sam.core.validate import validate
from support import synthetic

KEY = b"identifier-test-token"
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)
STAMP = "2026-06-28T00:59:00Z"
INJECT = "leaf-1\nip prefix-list SAM-LEAF-leaf-1 seq 1 permit 0.0.0.0/0 le 32"

GOOD = ["a", "leaf-0", "pve-leaf-a", "Leaf_1.x", "0", "a" * 63]
BAD = ["", "-leaf", ".leaf", "_x", "leaf 1", "leaf-1\n", "leaf-1\r", "leaf\t1", "le\x00af", "leaf/1",
       "le\u0430f",            # Cyrillic a: a look-alike
       "leaf\u20101",          # hyphen look-alike
       "ｌｅａｆ",               # fullwidth
       "K\u212a",              # Kelvin sign (case-folds to k)
       "a" * 64, None, 7]


@pytest.mark.parametrize("value", GOOD)
def test_the_safe_set_accepts(value):
    assert identifiers.is_identifier(value) and identifiers.problem(value) is None


@pytest.mark.parametrize("value", BAD)
def test_the_safe_set_refuses(value):
    assert not identifiers.is_identifier(value) and identifiers.problem(value)


def test_interface_names_obey_the_kernel_limit():
    assert identifiers.is_ifname("wg-cloudedge") and identifiers.is_ifname("a" * 15)
    assert not identifiers.is_ifname("a" * 16) and not identifiers.is_ifname("eth0\n")


# ---------------------------------------------------------------- validation

def _docs(pattern="^leaf-[0-9]+$"):
    policy = copy.deepcopy(synthetic.POLICY_DOCS[1])
    if pattern is None:
        del policy["spec"]["allowedLeafIDs"]
    else:
        policy["spec"]["allowedLeafIDs"]["pattern"] = pattern
    extra = [
        {"kind": "BGPRouter", "metadata": {"name": "bgp"}, "spec": {"asn": 64577, "routerID": "10.99.0.2"}},
        {"kind": "BGPDynamicPeer", "metadata": {"name": "leaves"}, "spec": {
            "routerRef": "BGPRouter/bgp", "peerASN": 64577, "listen": {"sourcePrefixes": ["10.128.0.0/10"]}}},
        {"kind": "SAMTransportProfile", "metadata": {"name": "rr-a-ipip"}, "spec": {
            "selfNodeRef": "rr-a", "mode": "ipip", "underlayInterface": "eth0", "localEndpoint": "10.192.0.252",
            "peersFrom": [{"resource": "SAMEnrollmentPolicy/bench"}], "bgp": {"routerRef": "BGPRouter/bgp"}}},
    ]
    return copy.deepcopy([synthetic.POLICY_DOCS[0], policy, synthetic.RRSET_DOC] + extra)   # never the shared ones


def _claim(leaf_id="leaf-0", name="leaf-0"):
    doc = synthetic.signed_claims(1, KEY, timestamp=STAMP)[0]
    doc["metadata"]["name"] = name
    doc["spec"]["leafID"] = leaf_id
    doc["spec"]["joinHMAC"] = payload.join_hmac(KEY, doc["spec"])
    return doc


def _validate(docs):
    resources, findings = load_resources([("t", {"resources": docs})])
    return validate(resources, tokens={"bench": KEY}, now=NOW, findings=findings)


def _found(report, path, rule):
    return [f for f in report.findings if f.path == path and f.rule == rule]


def test_the_document_set_of_these_tests_is_valid():
    report = _validate(_docs() + [_claim()])
    assert [f for f in report.errors if f.rule == "identifier"] == []
    assert [c.name for c in report.active["bench"]] == ["leaf-0"]


@pytest.mark.parametrize("pattern", [None, ".*", "^leaf-"])
def test_a_leaf_id_outside_the_safe_set_is_refused_whatever_the_pattern(pattern):
    report = _validate(_docs(pattern) + [_claim(INJECT)])
    assert _found(report, "spec.leafID", "identifier"), report.findings
    assert report.active["bench"] == []


def test_the_leaf_id_pattern_matches_the_whole_string_and_never_a_trailing_newline():
    report = _validate(_docs("^leaf-[0-9]+$") + [_claim("leaf-1\n")])
    assert _found(report, "spec.leafID", "leaf-id-pattern")
    assert report.active["bench"] == []
    # Go's regexp (routerd) has no "$ before a final newline" either; and the pattern is anchored at both ends.
    assert _found(_validate(_docs("leaf-[0-9]+") + [_claim("leaf-1x")]), "spec.leafID", "leaf-id-pattern")
    assert not _found(_validate(_docs("leaf-[0-9]+") + [_claim("leaf-1")]), "spec.leafID", "leaf-id-pattern")


def test_a_claim_name_outside_the_safe_set_is_refused():
    report = _validate(_docs() + [_claim(name="leaf 0")])
    assert _found(report, "metadata.name", "identifier")
    assert report.active["bench"] == []


def _set(docs, kind, path, value):
    doc = next(d for d in docs if d["kind"] == kind)
    keys = path.split(".")
    target = doc
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[keys[-1]] = value
    return docs


@pytest.mark.parametrize("kind, path, value, finding_path", [
    ("SAMEnrollmentPolicy", "metadata.name", "bench\nx", "metadata.name"),
    ("SAMRRSet", "metadata.name", "rrs x", "metadata.name"),
    ("MobilityPool", "metadata.name", "p\u043e\u043el", "metadata.name"),
    ("BGPRouter", "metadata.name", "bgp;x", "metadata.name"),
    ("BGPDynamicPeer", "metadata.name", "leaves\nneighbor x", "metadata.name"),
    ("SAMTransportProfile", "metadata.name", "p" * 64, "metadata.name"),
    ("SAMRRSet", "spec.members.0.nodeRef", "rr-a\nexit", "spec.members[0].nodeRef"),
    ("SAMTransportProfile", "spec.selfNodeRef", "rr a", "spec.selfNodeRef"),
    ("SAMTransportProfile", "spec.underlayInterface", "a" * 16, "spec.underlayInterface"),
    ("SAMTransportProfile", "spec.underlayInterface", "eth 0", "spec.underlayInterface"),
])
def test_every_identifier_of_the_documents_is_checked(kind, path, value, finding_path):
    report = _validate(_set(_docs(), kind, path, value) + [_claim()])
    assert _found(report, finding_path, "identifier"), [str(f) for f in report.findings]
    assert not report.ok


# ---------------------------------------------------------------- renderers, fed the state directly

def _rr_state():
    return synthetic.synthetic_rr_state(3)


def _leaf_state(node_ref="rr-a"):
    return {"node": "leaf-0", "role": "leaf", "resources": [
        {"kind": "BGPRouter", "metadata": {"name": "bgp"},
         "spec": {"asn": 64577, "routerID": "10.128.0.1", "exportPrefixes": ["10.64.0.1/32"]}},
        {"kind": "BGPPeer", "metadata": {"name": node_ref},
         "spec": {"address": "10.99.0.2", "remoteASN": 64577, "localAddress": "10.128.0.1", "nodeRef": node_ref}}]}


def _dyn(state):
    return next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")["spec"]


RENDERERS = [render_frr, render_gobgp]


@pytest.mark.parametrize("render", RENDERERS)
def test_renderers_refuse_an_unsafe_leaf_id_in_the_state(render):
    state = _rr_state()
    _dyn(state)["admitted"][1]["leafID"] = INJECT
    with pytest.raises(RenderError, match=r"BGPDynamicPeer/leaves .*leafID.*\[identifier\]"):
        render(state)


@pytest.mark.parametrize("render", RENDERERS)
def test_renderers_refuse_an_unsafe_peer_group(render):
    state = _rr_state()
    _dyn(state)["peerGroup"] = "leaves\n bgp listen range 0.0.0.0/0 peer-group leaves"
    with pytest.raises(RenderError, match=r"peerGroup.*\[identifier\]"):
        render(state)


@pytest.mark.parametrize("render", RENDERERS)
def test_renderers_refuse_an_unsafe_node(render):
    state = _leaf_state("rr-a\n neighbor 192.0.2.1 remote-as 1")
    with pytest.raises(RenderError, match=r"BGPPeer/.*nodeRef.*\[identifier\]"):
        render(state)
    state = _rr_state()
    state["node"] = "rr-a\n[global.config]"
    with pytest.raises(RenderError, match=r"node.*\[identifier\]"):
        render(state)


@pytest.mark.parametrize("render", RENDERERS)
def test_renderers_still_render_safe_states(render):
    assert "SAM-LEAF-leaf-1" in render(_rr_state())
    assert "10.99.0.2" in render(_leaf_state())


@pytest.mark.parametrize("render", RENDERERS)
def test_one_leaf_id_for_two_neighbors_is_refused_not_merged_into_one_prefix_list(render):
    # Two policies may each admit the same leafID; FRR would merge their SAM-LEAF-<leafID> prefix-lists.
    state = _rr_state()
    _dyn(state)["admitted"][2]["leafID"] = _dyn(state)["admitted"][0]["leafID"]
    with pytest.raises(RenderError, match="leaf-0"):
        render(state)
