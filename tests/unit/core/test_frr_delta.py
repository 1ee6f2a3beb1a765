# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""core/render/frr_delta.py: the vtysh script between two rendered configurations, and what it touches."""

import copy

import pytest
from mesh_views import node_state

from boma_mesh_utils.sam.core.agent import empty_state
from boma_mesh_utils.sam.core.render import frr_delta
from boma_mesh_utils.sam.core.render.frr import render_frr
from boma_mesh_utils.sam.core.render.frr_delta import DeltaUnsupported, delta, parse
from support.synthetic import synthetic_rr_state


def rr(count, drop=()):
    state = synthetic_rr_state(count)
    peer = next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")
    peer["spec"]["admitted"] = [a for a in peer["spec"]["admitted"] if a["leafID"] not in drop]
    return render_frr(state)


def test_the_same_configuration_is_an_empty_delta():
    d = delta(rr(50), rr(50))
    assert d.empty and d.script == [] and d.size() == 0


GROUP_LINES = ("activate", "route-reflector-client", "next-hop-self force", "soft-reconfiguration inbound")


def test_one_more_leaf_adds_its_prefix_list_then_its_peer_group_and_listen_range():
    d = delta(rr(50), rr(51))
    group = "leaves@leaf-50"
    assert d.script == [
        "ip prefix-list SAM-LEAF-leaf-50 seq 5 permit 10.64.0.51/32",
        "router bgp 64577", " neighbor %s peer-group" % group, " neighbor %s remote-as 64577" % group,
        " bgp listen range 10.128.0.51/32 peer-group %s" % group, " address-family ipv4 unicast",
        *["  neighbor %s %s" % (group, line) for line in GROUP_LINES],
        "  neighbor %s prefix-list SAM-LEAF-leaf-50 in" % group, " exit-address-family", "exit"]
    assert d.prefix_lists == {"SAM-LEAF-leaf-50": [(5, "permit", "10.64.0.51/32")]} and d.route_maps == {}
    assert d.listen_ranges == {("10.128.0.51/32", group): True} and d.peer_groups == {group: True}
    assert d.neighbors == {}


def test_a_revoked_leaf_loses_its_listen_range_and_peer_group_first_then_its_prefix_list():
    d = delta(rr(50), rr(50, drop={"leaf-7"}))
    assert d.script == ["router bgp 64577", " no bgp listen range 10.128.0.8/32 peer-group leaves@leaf-7",
                        " no neighbor leaves@leaf-7 peer-group", "exit",
                        "no ip prefix-list SAM-LEAF-leaf-7 seq 5 permit 10.64.0.8/32"]
    assert d.prefix_lists == {"SAM-LEAF-leaf-7": []} and d.route_maps == {}
    assert d.listen_ranges == {("10.128.0.8/32", "leaves@leaf-7"): False}
    assert d.peer_groups == {"leaves@leaf-7": False}


def test_a_batch_of_new_leaves_is_one_router_block():
    script = delta(rr(10), rr(60)).script
    assert script.count("router bgp 64577") == 1 and "exit" not in script[:script.index("router bgp 64577")]
    assert sum(line.startswith(" bgp listen range") for line in script) == 50


def test_the_delta_does_not_grow_with_the_number_of_leaves():
    small, large = delta(rr(200), rr(201)), delta(rr(5000), rr(5001))
    assert len(small.script) == len(large.script) == 13 and small.size() == large.size() == 3


def test_a_leaf_renewed_into_another_prefix_changes_its_prefix_list_only():
    state = synthetic_rr_state(5)
    moved = copy.deepcopy(state)
    next(r for r in moved["resources"] if r["kind"] == "BGPDynamicPeer")["spec"]["admitted"][2]["prefixes"] = [
        "10.64.9.9/32"]
    d = delta(render_frr(state), render_frr(moved))
    assert d.script == ["no ip prefix-list SAM-LEAF-leaf-2 seq 5 permit 10.64.0.3/32",
                        "ip prefix-list SAM-LEAF-leaf-2 seq 5 permit 10.64.9.9/32"]
    assert d.prefix_lists == {"SAM-LEAF-leaf-2": [(5, "permit", "10.64.9.9/32")]} and d.size() == 1


def test_a_leaf_that_gains_and_loses_an_rr_neighbour():
    leaf = node_state("cloudedge", "leaf-b")[0]
    one_rr = copy.deepcopy(leaf)
    one_rr["resources"] = [r for r in leaf["resources"]
                           if not (r["kind"] == "BGPPeer" and r["spec"]["address"] == "10.99.0.3")]
    full, partial = render_frr(leaf), render_frr(one_rr)
    added = delta(partial, full)
    assert added.script == [
        "router bgp 64577", " neighbor 10.99.0.3 remote-as 64577", " neighbor 10.99.0.3 description rr-b",
        " neighbor 10.99.0.3 update-source 10.255.0.32", " neighbor 10.99.0.3 timers 3 9",
        " neighbor 10.99.0.3 timers connect 2", " address-family ipv4 unicast", "  neighbor 10.99.0.3 activate",
        "  neighbor 10.99.0.3 route-map SAM-EXPORT out", " exit-address-family", "exit"]
    assert added.neighbors == {"10.99.0.3": True}
    removed = delta(full, partial)
    assert removed.script == ["router bgp 64577", " no neighbor 10.99.0.3", "exit"]   # one line removes it all
    assert removed.neighbors == {"10.99.0.3": False}


def test_a_revoked_leaf_teardown_is_a_delta_too():
    leaf = node_state("cloudedge", "leaf-b")[0]
    d = delta(render_frr(leaf), render_frr(empty_state("leaf-b", leaf)))
    assert "no route-map SAM-EXPORT permit 10" in d.script and " no neighbor 10.99.0.2" in d.script
    assert "no ip prefix-list SAM-OWN seq 5 permit 10.77.60.32/32" in d.script
    assert d.networks == {"10.77.60.32/32": False}
    # the address-family lines of the neighbours go with them; the network goes on its own
    assert [line for line in d.script if "address-family" in line or "network" in line] == [
        " address-family ipv4 unicast", "  no network 10.77.60.32/32", " exit-address-family"]


@pytest.mark.parametrize("edit, rule", [
    (lambda t: t.replace("router bgp 64577", "router bgp 64578"), "router bgp"),
    (lambda t: t.replace(" bgp router-id 10.99.0.2", " bgp router-id 10.99.0.9"), "bgp router-id"),
    (lambda t: t.replace(" bgp listen limit 1000", " bgp listen limit 2000"), "listen limit"),
    (lambda t: t.replace(" neighbor leaves@leaf-2 remote-as 64577", " neighbor leaves@leaf-2 remote-as 65001"),
     "redefined"),
    (lambda t: t.replace("bgp route-map delay-timer 1", "bgp route-map delay-timer 5"), "delay-timer"),
    (lambda t: t + "interface lo\n ip address 10.1.1.1/32\nexit\n", "block"),
])
def test_anything_else_takes_the_full_path(edit, rule):
    with pytest.raises(DeltaUnsupported, match=rule):
        delta(rr(5), edit(rr(5)))


def test_a_neighbour_whose_remote_as_changes_takes_the_full_path():
    leaf = render_frr(node_state("cloudedge", "leaf-b")[0])
    with pytest.raises(DeltaUnsupported, match="redefined"):
        delta(leaf, leaf.replace("neighbor 10.99.0.2 remote-as 64577", "neighbor 10.99.0.2 remote-as 65001"))


def test_a_neighbour_setting_changes_in_place():
    leaf = render_frr(node_state("cloudedge", "leaf-b")[0])
    d = delta(leaf, leaf.replace("neighbor 10.99.0.2 timers 3 9", "neighbor 10.99.0.2 timers 5 15"))
    assert d.script == ["router bgp 64577", " no neighbor 10.99.0.2 timers 3 9", "exit",
                        "router bgp 64577", " neighbor 10.99.0.2 timers 5 15", "exit"]
    assert d.neighbors == {"10.99.0.2": True}


def test_parse_keeps_the_parts():
    parsed = parse(rr(2))
    assert parsed.router == "router bgp 64577" and parsed.top[0] == "bgp route-map delay-timer 1"
    assert parsed.maps == {}
    assert "bgp listen range 10.128.0.2/32 peer-group leaves@leaf-1" in parsed.bgp
    assert parsed.af[-1] == "neighbor leaves@leaf-1 prefix-list SAM-LEAF-leaf-1 in"


def test_with_leaf_routes_aggregate_a_new_leaf_is_a_delta_and_a_mode_switch_is_the_whole_path():
    aggregate = {"leaf_routes": "aggregate"}
    old, new = render_frr(synthetic_rr_state(3), aggregate), render_frr(synthetic_rr_state(4), aggregate)
    script = delta(old, new).script
    assert "  neighbor leaves@leaf-3 prefix-list SAM-TO-LEAVES out" in script
    assert not [line for line in script if "aggregate-address" in line or "SAM-TO-LEAVES seq" in line]
    with pytest.raises(DeltaUnsupported, match="aggregate-address"):
        delta(render_frr(synthetic_rr_state(3)), old)


def test_a_chain_of_deltas_keeps_the_same_indexes_and_script_as_parsing_afresh():
    """delta() derives the new configuration's neighbour and prefix-list indexes from the old one's and the changed
    lines (issue 19); along a chain of changes they, and each script, are what parsing both texts afresh gives."""
    texts = [rr(40), rr(41), rr(41, drop={"leaf-3", "leaf-9"}), rr(45), rr(45, drop={"leaf-44"}), rr(40)]
    for old, new in zip(texts, texts[1:]):
        chained = delta(old, new)
        derived = frr_delta._LAST[0][1].derived
        frr_delta._LAST[0] = (None, None)          # parse both afresh: the reference
        fresh_old, fresh_new = parse(old), parse(new)
        assert {k: sorted(v) for k, v in derived["neighbors"].items()} == \
            {k: sorted(v) for k, v in frr_delta._neighbors(fresh_new.bgp).items()}
        assert {k: sorted(v) for k, v in derived["plists"].items()} == \
            {k: sorted(v) for k, v in frr_delta._plists(fresh_new.top).items()}
        frr_delta._LAST[0] = (None, None)
        reference = delta(old, new)
        assert chained == reference and fresh_old.top == parse(old).top
        delta(texts[0], old)                       # leave _LAST on ``old`` as a caller would have it
        delta(old, new)
