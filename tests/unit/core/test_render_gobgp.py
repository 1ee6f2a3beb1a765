"""GoBGP rendering: global import policy bound to neighbor + owned /32s, fail closed, O(1) diffs."""

import copy
import difflib
import ipaddress
import random

import pytest
import tomllib
from mesh_views import node_state

from boma_mesh_utils.sam.core.render.gobgp import (
    ADMISSION_POLICY,
    ADMISSION_REJECT,
    EXPORT_POLICY,
    RenderError,
    _comment,
    _kv,
    render_gobgp,
    soft_reset_commands,
    toml_string,
)

OWNED = {"leaf-pve": ("10.255.0.21", "10.77.60.21/32"), "leaf-a": ("10.255.0.31", "10.77.60.31/32"),
         "leaf-b": ("10.255.0.32", "10.77.60.32/32")}


@pytest.fixture(scope="module")
def rr_state():
    return node_state("cloudedge", "rr-a")[0]


@pytest.fixture(scope="module")
def rr(rr_state):
    return tomllib.loads(render_gobgp(rr_state))


@pytest.fixture(scope="module")
def leaf_state():
    return node_state("cloudedge", "leaf-b")[0]


def dynamic_peer(state):
    return next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")


def synthetic_rr(count, skip=None):
    """RR state with ``count`` admitted leaves (leaf i: tunnel 10.255.x.y, owns 10.77.x.y/32); ``skip`` left out."""
    admitted = []
    for index in range(count):
        if index == skip:
            continue
        offset = index + 1
        admitted.append({"claimRef": "SAMEnrollmentClaim/leaf-%d" % index, "leafID": "leaf-%d" % index,
                         "neighbor": str(ipaddress.IPv4Address("10.255.0.0") + offset),
                         "prefixes": ["%s/32" % (ipaddress.IPv4Address("10.77.0.0") + offset)]})
    return {"node": "rr-a", "role": "rr", "resources": [
        {"kind": "BGPRouter", "metadata": {"name": "bgp"},
         "spec": {"asn": 64577, "routerID": "10.99.0.2", "exportPrefixes": []}},
        {"kind": "BGPDynamicPeer", "metadata": {"name": "leaves"}, "spec": {
            "peerGroup": "leaves", "listenRanges": ["10.255.0.0/16"], "listenLimit": None, "peerASN": 64577,
            "localASN": 64577, "routeReflectorClient": True, "clusterID": "10.99.0.254",
            "allowedPrefixes": ["10.77.0.0/16"], "allowedPrefixLengthMin": 32, "allowedPrefixLengthMax": 32,
            "nextHopRewrite": "peer-address", "admitted": admitted}},
    ]}


def sets(doc, kind):
    key, name, items = {"prefix": ("prefix-sets", "prefix-set-name", "prefix-list"),
                        "neighbor": ("neighbor-sets", "neighbor-set-name", "neighbor-info-list")}[kind]
    return {s[name]: s.get(items) for s in doc.get("defined-sets", {}).get(key, [])}


def statements(doc, policy=ADMISSION_POLICY):
    return next(p for p in doc["policy-definitions"] if p["name"] == policy)["statements"]


# ---------------------------------------------------------------- RR


def test_rr_global_import_policy_rejects_by_default(rr):
    assert rr["global"]["config"] == {"as": 64577, "router-id": "10.99.0.2", "port": 179}
    assert rr["global"]["apply-policy"]["config"] == {"import-policy-list": [ADMISSION_POLICY],
                                                      "default-import-policy": "reject-route"}
    assert "neighbors" not in rr  # leaves are dynamic neighbors; no peer-level policy anywhere
    assert "apply-policy" not in rr["peer-groups"][0]


def test_rr_one_accept_per_claim_binding_neighbor_and_prefix_set(rr):
    prefix_sets, neighbor_sets = sets(rr, "prefix"), sets(rr, "neighbor")
    stmts = statements(rr)
    assert [s["name"] for s in stmts] == ["SAM-LEAF-leaf-pve", "SAM-LEAF-leaf-a", "SAM-LEAF-leaf-b", ADMISSION_REJECT]
    for stmt in stmts[:-1]:
        leaf = stmt["name"][len("SAM-LEAF-"):]
        neighbor, owned = OWNED[leaf]
        cond = stmt["conditions"]
        assert cond["match-neighbor-set"] == {"neighbor-set": stmt["name"], "match-set-options": "any"}
        assert cond["match-prefix-set"] == {"prefix-set": stmt["name"], "match-set-options": "any"}
        assert neighbor_sets[stmt["name"]] == [neighbor + "/32"]
        assert prefix_sets[stmt["name"]] == [{"ip-prefix": owned, "masklength-range": "32..32"}]
        assert stmt["actions"]["route-disposition"] == "accept-route"
        # nextHopRewrite peer-address: the claim's own address (gobgpd 3.10 has no such keyword)
        assert stmt["actions"]["bgp-actions"] == {"set-next-hop": neighbor}
    assert stmts[-1] == {"name": ADMISSION_REJECT, "actions": {"route-disposition": "reject-route"}}


def test_rr_dynamic_neighbors_and_route_reflector_peer_group(rr):
    # one /32 range per admitted leaf (inside the listen range 10.255.0.0/20), none for the rest of the range
    assert rr["dynamic-neighbors"] == [{"config": {"prefix": "%s/32" % address, "peer-group": "cloudedge-leaves"}}
                                       for address in ("10.255.0.21", "10.255.0.31", "10.255.0.32")]
    group = rr["peer-groups"][0]
    assert group["config"] == {"peer-group-name": "cloudedge-leaves", "peer-as": 64577}
    assert group["route-reflector"]["config"] == {"route-reflector-client": True,
                                                  "route-reflector-cluster-id": "10.99.0.254"}
    assert group["afi-safis"] == [{"config": {"afi-safi-name": "ipv4-unicast"}}]


@pytest.mark.parametrize("prefixes", [[], ["10.88.0.1/32"], ["10.77.60.32/31"]],
                         ids=["no-prefixes", "outside-allowed", "wrong-length"])
def test_claim_without_admissible_prefix_gets_no_set_and_no_accept(rr_state, prefixes):
    state = copy.deepcopy(rr_state)
    next(a for a in dynamic_peer(state)["spec"]["admitted"] if a["leafID"] == "leaf-b")["prefixes"] = prefixes
    text = render_gobgp(state)
    doc = tomllib.loads(text)
    assert "SAM-LEAF-leaf-b" not in sets(doc, "prefix") and "SAM-LEAF-leaf-b" not in sets(doc, "neighbor")
    assert [s["name"] for s in statements(doc)] == ["SAM-LEAF-leaf-pve", "SAM-LEAF-leaf-a", ADMISSION_REJECT]
    assert all(items for items in sets(doc, "prefix").values())  # never an empty (match-all) set
    assert doc["global"]["apply-policy"]["config"]["default-import-policy"] == "reject-route"
    assert "# no accept statement (no admissible owned prefix): leaf-b" in text.splitlines()


def test_rr_with_nothing_admitted_still_rejects_everything(rr_state):
    state = copy.deepcopy(rr_state)
    dynamic_peer(state)["spec"]["admitted"] = []
    doc = tomllib.loads(render_gobgp(state))
    assert "defined-sets" not in doc
    assert statements(doc) == [{"name": ADMISSION_REJECT, "actions": {"route-disposition": "reject-route"}}]
    assert doc["global"]["apply-policy"]["config"]["default-import-policy"] == "reject-route"


def test_rr_output_is_deterministic_and_sorted_by_neighbor(rr_state):
    state = copy.deepcopy(rr_state)
    random.Random(7).shuffle(dynamic_peer(state)["spec"]["admitted"])
    assert render_gobgp(state) == render_gobgp(rr_state)
    big = synthetic_rr(300)
    shuffled = copy.deepcopy(big)
    random.Random(3).shuffle(dynamic_peer(shuffled)["spec"]["admitted"])
    text = render_gobgp(big)
    assert render_gobgp(shuffled) == text
    neighbors = [ipaddress.IPv4Address(v[0][:-3]) for v in sets(tomllib.loads(text), "neighbor").values()]
    assert neighbors == sorted(neighbors) and len(neighbors) == 300


def test_adding_one_leaf_to_1000_changes_only_that_leafs_lines():
    before, after = render_gobgp(synthetic_rr(1001, skip=500)), render_gobgp(synthetic_rr(1001))
    changed = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed and all(line.startswith("+") for line in changed)
    assert len(changed) <= 30, changed     # its dynamic-neighbors range, sets and statement
    assert len(after.splitlines()) - len(before.splitlines()) == len(changed)
    names = {word for line in changed for word in line.replace('"', " ").split() if word.startswith("SAM-LEAF-")}
    assert names == {"SAM-LEAF-leaf-500"}


def test_rr_generated_peers_join_the_covering_peer_group(rr_state):
    state = copy.deepcopy(rr_state)
    state["resources"].append({"kind": "BGPPeer", "metadata": {"name": "leaf-b"}, "spec": {
        "address": "10.255.0.32", "remoteASN": 64577, "localAddress": "10.99.0.2"}})
    doc = tomllib.loads(render_gobgp(state))
    assert doc["neighbors"] == [{
        "config": {"neighbor-address": "10.255.0.32", "peer-as": 64577, "peer-group": "cloudedge-leaves"},
        "transport": {"config": {"local-address": "10.99.0.2"}},
        "afi-safis": [{"config": {"afi-safi-name": "ipv4-unicast"}}]}]
    assert doc["global"]["apply-policy"]["config"]["default-import-policy"] == "reject-route"


def test_conflicting_or_malformed_admission_raises(rr_state):
    state = copy.deepcopy(rr_state)
    admitted = dynamic_peer(state)["spec"]["admitted"]
    admitted.append(dict(admitted[0], leafID="leaf-evil"))  # same neighbor, second leaf
    with pytest.raises(ValueError, match="conflicting admission"):
        render_gobgp(state)
    state = copy.deepcopy(rr_state)
    dynamic_peer(state)["spec"]["admitted"][0]["neighbor"] = "10.255.0.0/24"
    with pytest.raises(ValueError):
        render_gobgp(state)
    with pytest.raises(ValueError, match="role"):
        render_gobgp({"node": "x", "role": "switch", "resources": []})


def test_names_and_values_are_quoted_for_toml(rr_state):
    assert toml_string('a"b\\c\nd\x01') == '"a\\"b\\\\c\\nd\\u0001"'
    # The emitter still escapes (defence in depth): a newline never ends a string or a comment ...
    hostile = 'leaf-"q"\\x\n[global.config]\nas = 1'
    assert tomllib.loads(_kv(0, "name", hostile) + "\n" + _comment("# rr\n[[neighbors]]")) == {"name": hostile}
    # ... but such identifiers never reach it since issue 17: the renderer refuses them (RenderError), never
    # escapes them into set names (tests/unit/core/test_identifiers.py, test_render_identifiers_property.py).
    state = copy.deepcopy(rr_state)
    dynamic_peer(state)["spec"]["admitted"][0]["leafID"] = hostile
    with pytest.raises(RenderError, match=r"leafID \[identifier\]"):
        render_gobgp(state)
    state = copy.deepcopy(rr_state)
    state["node"] = "rr\n[[neighbors]]"
    with pytest.raises(RenderError, match=r"node \[identifier\]"):
        render_gobgp(state)


# ---------------------------------------------------------------- leaf


def test_leaf_peers_both_rrs_and_exports_only_its_own_32(leaf_state):
    doc = tomllib.loads(render_gobgp(leaf_state))
    assert doc["global"]["config"] == {"as": 64577, "router-id": "10.255.0.32", "port": 179}
    assert doc["global"]["apply-policy"]["config"] == {"export-policy-list": [EXPORT_POLICY],
                                                       "default-export-policy": "reject-route"}
    assert [n["config"] for n in doc["neighbors"]] == [{"neighbor-address": "10.99.0.2", "peer-as": 64577},
                                                       {"neighbor-address": "10.99.0.3", "peer-as": 64577}]
    for neighbor in doc["neighbors"]:
        assert neighbor["transport"]["config"] == {"local-address": "10.255.0.32"}
        # connect-retry is the option; keepalive/hold come from the documents' timersPreset: fast
        assert neighbor["timers"]["config"] == {"connect-retry": 2, "keepalive-interval": 3, "hold-time": 9}
    assert sets(doc, "prefix") == {EXPORT_POLICY: [{"ip-prefix": "10.77.60.32/32", "masklength-range": "32..32"}]}
    stmts = statements(doc, EXPORT_POLICY)
    assert stmts[0]["conditions"]["match-prefix-set"]["prefix-set"] == EXPORT_POLICY
    assert stmts[0]["actions"]["route-disposition"] == "accept-route"
    assert stmts[-1] == {"name": "SAM-EXPORT-REJECT", "actions": {"route-disposition": "reject-route"}}


def test_leaf_options(leaf_state):
    doc = tomllib.loads(render_gobgp(leaf_state, {"listen_port": 1179, "connect_retry": 5,
                                                  "extra_announce": ["10.77.60.99/32"]}))
    assert doc["global"]["config"]["port"] == 1179
    assert doc["neighbors"][0]["timers"]["config"]["connect-retry"] == 5
    assert "10.77.60.99/32" not in render_gobgp(leaf_state, {"extra_announce": ["10.77.60.99/32"]})
    with pytest.raises(ValueError):
        render_gobgp(leaf_state, {"listen_port": "179"})


def test_leaf_export_any_is_a_test_only_accept_all(leaf_state):
    text = render_gobgp(leaf_state, {"export_any": True})
    doc = tomllib.loads(text)
    assert doc["global"]["apply-policy"]["config"] == {"default-export-policy": "accept-route"}
    assert "policy-definitions" not in doc and "TEST ONLY" in text


def test_leaf_without_export_prefixes_exports_nothing(leaf_state):
    state = copy.deepcopy(leaf_state)
    next(r for r in state["resources"] if r["kind"] == "BGPRouter")["spec"]["exportPrefixes"] = []
    doc = tomllib.loads(render_gobgp(state))
    assert "defined-sets" not in doc
    assert statements(doc, EXPORT_POLICY) == [{"name": "SAM-EXPORT-REJECT",
                                               "actions": {"route-disposition": "reject-route"}}]


# ---------------------------------------------------------------- soft reset


def test_soft_reset_after_admission_change(rr_state):
    revoked = copy.deepcopy(rr_state)
    dyn = dynamic_peer(revoked)["spec"]
    dyn["admitted"] = [a for a in dyn["admitted"] if a["leafID"] != "leaf-b"]
    assert soft_reset_commands(rr_state, revoked) == [["gobgp", "neighbor", "all", "softresetin"]]
    assert soft_reset_commands(rr_state, revoked, api_port=50061) == [
        ["gobgp", "-p", "50061", "neighbor", "all", "softresetin"]]
    assert soft_reset_commands(rr_state, copy.deepcopy(rr_state)) == []
    assert soft_reset_commands(None, rr_state) == []


def test_soft_reset_after_leaf_export_change(leaf_state):
    grown = copy.deepcopy(leaf_state)
    router = next(r for r in grown["resources"] if r["kind"] == "BGPRouter")["spec"]
    router["exportPrefixes"] = router["exportPrefixes"] + ["10.77.60.33/32"]
    assert soft_reset_commands(leaf_state, grown) == [["gobgp", "neighbor", "all", "softresetout"]]
    # gobgpd 3.10 softresetout never withdraws newly filtered routes: a removal needs a hard reset
    assert soft_reset_commands(grown, leaf_state) == [["gobgp", "neighbor", "all", "reset"]]
