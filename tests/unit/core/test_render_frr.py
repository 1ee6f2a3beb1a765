"""FRR rendering: admission bound to neighbor + owned /32s, ordering FRR needs, lint, O(1) diffs."""

import copy
import difflib

import pytest
from mesh_views import node_state

from boma_mesh_utils.sam.core.agent import empty_state
from boma_mesh_utils.sam.core.render.frr import RenderError, lint_frr, render_frr
from support.synthetic import synthetic_rr_state


@pytest.fixture(scope="module")
def rr_text():
    return render_frr(node_state("cloudedge", "rr-a")[0])


@pytest.fixture(scope="module")
def leaf_text():
    return render_frr(node_state("cloudedge", "leaf-b")[0])


LEAVES = {"leaf-pve": 21, "leaf-a": 31, "leaf-b": 32}


def test_each_leaf_has_its_own_peer_group_defined_before_its_only_listen_range(rr_text):
    lines = rr_text.splitlines()
    ranges = [line for line in lines if line.startswith(" bgp listen range")]
    assert ranges == [" bgp listen range 10.255.0.%d/32 peer-group cloudedge-leaves@%s" % (i, leaf)
                      for leaf, i in sorted(LEAVES.items(), key=lambda kv: kv[1])]
    for leaf, i in LEAVES.items():
        group = "cloudedge-leaves@" + leaf
        assert lines.index(" neighbor %s peer-group" % group) < lines.index(
            " bgp listen range 10.255.0.%d/32 peer-group %s" % (i, group))
        assert " neighbor %s remote-as 64577" % group in lines
    assert " bgp listen limit 1000" in lines and " bgp cluster-id 10.99.0.254" in lines
    assert lint_frr(rr_text) == []


def test_rr_clients_reflect_with_soft_reconfiguration_and_only_their_own_list_inbound(rr_text):
    lines = rr_text.splitlines()
    for leaf in LEAVES:
        group = "cloudedge-leaves@" + leaf
        for line in ("  neighbor %s route-reflector-client" % group, "  neighbor %s next-hop-self force" % group,
                     "  neighbor %s soft-reconfiguration inbound" % group,
                     "  neighbor %s prefix-list SAM-LEAF-%s in" % (group, leaf)):
            assert line in lines
    assert [line for line in lines if "SAM-LEAF-leaf-b seq" in line] == [
        "ip prefix-list SAM-LEAF-leaf-b seq 5 permit 10.77.60.32/32"]
    # no shared per-leaf route-map: bgpd would process every entry again on any change (docs/scale.md)
    assert "SAM-IN-" not in rr_text and " match peer " not in rr_text


def test_rr_has_no_static_leaf_neighbors(rr_text):
    assert not [line for line in rr_text.splitlines() if line.startswith(" neighbor 10.")]


def test_leaf_peers_with_both_rrs_and_exports_only_its_owned_32(leaf_text):
    lines = leaf_text.splitlines()
    for rr in ("10.99.0.2", "10.99.0.3"):
        assert " neighbor %s remote-as 64577" % rr in lines
        assert " neighbor %s update-source 10.255.0.32" % rr in lines
        assert " neighbor %s timers connect 2" % rr in lines
        assert "  neighbor %s route-map SAM-EXPORT out" % rr in lines
    assert "ip prefix-list SAM-OWN seq 5 permit 10.77.60.32/32" in lines
    assert " match ip address prefix-list SAM-OWN" in lines and "  network 10.77.60.32/32" in lines


def test_a_leaf_that_owns_nothing_renders_a_lint_clean_deny_only_export():
    """The revoked leaf's teardown state (core/agent.empty_state): FRR must take it, and it exports nothing."""
    text = render_frr(empty_state("leaf-b", node_state("cloudedge", "leaf-b")[0]))
    assert lint_frr(text) == []
    assert "SAM-OWN" not in text and "  network " not in text and " neighbor " not in text
    assert "address-family" not in text      # FRR's running config shows none, so frr.apply would never converge
    assert "route-map SAM-EXPORT deny 65535" in text.splitlines()
    assert not [line for line in text.splitlines() if line.startswith("route-map SAM-EXPORT permit")]


def test_bfd_knob_adds_bfd_per_neighbor():
    text = render_frr(node_state("cloudedge", "leaf-b")[0], {"bfd": True})
    assert " neighbor 10.99.0.2 bfd" in text and " neighbor 10.99.0.3 bfd" in text
    assert " neighbor cloudedge-leaves@leaf-a bfd" in render_frr(node_state("cloudedge", "rr-a")[0], {"bfd": True})


def test_rr_client_asn_must_equal_local_asn():
    state = copy.deepcopy(node_state("cloudedge", "rr-a")[0])
    next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")["spec"]["peerASN"] = 65001
    with pytest.raises(RenderError, match="rr-client-asn"):
        render_frr(state)


def test_claim_without_prefixes_gets_no_permit_entry():
    state = synthetic_rr_state(3)
    dyn = next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")["spec"]
    dyn["admitted"][1]["prefixes"] = []
    text = render_frr(state)
    assert "match peer %s" % dyn["admitted"][1]["neighbor"] not in text


def test_rendered_configs_pass_the_lint(rr_text, leaf_text):
    assert lint_frr(rr_text) == [] and lint_frr(leaf_text) == []


def test_lint_catches_what_vtysh_minus_c_accepts():
    bad = "router bgp 1\n bgp listen range 10.0.0.0/8 peer-group G\n neighbor G peer-group\n" \
          " address-family ipv4 unicast\n  neighbor G route-map NOPE in\n exit-address-family\n" \
          "route-map X permit 1\n match ip address prefix-list MISSING\n"
    problems = lint_frr(bad)
    assert any("before it is defined" in p for p in problems)
    assert any("route-map NOPE is not defined" in p for p in problems)
    assert any("prefix-list MISSING is not defined" in p for p in problems)


def test_adding_one_leaf_to_1000_is_an_o1_diff():
    before = render_frr(synthetic_rr_state(1000)).splitlines()
    after = render_frr(synthetic_rr_state(1001)).splitlines()
    changed = [d for d in difflib.unified_diff(before, after, lineterm="", n=0)
               if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    assert 0 < len(changed) <= 9, changed


@pytest.mark.parametrize("prefix", ["not-a-prefix", ["10.64.0.1/32"], 7])
def test_a_malformed_admitted_prefix_is_refused_with_its_field(prefix):
    state = synthetic_rr_state(2)
    state["resources"][1]["spec"]["admitted"][0]["prefixes"] = [prefix]
    with pytest.raises(RenderError, match=r"spec.admitted \[ipv4-prefix\]"):
        render_frr(state)


def test_leaf_routes_aggregate_sends_each_leaf_the_pools_only():
    """Issue 19: one aggregate per pool to every leaf group, through an outbound list; the RR's inbound policy and
    the /32s the RRs exchange are unchanged, and "all" (the default) renders no aggregate at all."""
    text = render_frr(synthetic_rr_state(3), {"leaf_routes": "aggregate"})
    assert not lint_frr(text)
    assert "ip prefix-list SAM-TO-LEAVES seq 5 permit 10.64.0.0/16" in text
    assert text.count("  aggregate-address 10.64.0.0/16\n") == 1 and "summary-only" not in text
    for leaf in range(3):
        assert "  neighbor leaves@leaf-%d prefix-list SAM-TO-LEAVES out\n" % leaf in text
        assert "  neighbor leaves@leaf-%d prefix-list SAM-LEAF-leaf-%d in\n" % (leaf, leaf) in text
    plain = render_frr(synthetic_rr_state(3))
    assert "SAM-TO-LEAVES" not in plain and "aggregate-address" not in plain
    assert render_frr(synthetic_rr_state(3), {"leaf_routes": "all"}) == plain


def test_leaf_routes_refuses_an_unknown_mode_and_a_peer_without_pools():
    with pytest.raises(RenderError, match=r"\[leaf-routes\] leaf_routes must be one of all, aggregate"):
        render_frr(synthetic_rr_state(2), {"leaf_routes": "some"})
    state = synthetic_rr_state(2)
    state["resources"][1]["spec"]["allowedPrefixes"] = []
    with pytest.raises(RenderError, match=r"spec.allowedPrefixes \[leaf-routes\]"):
        render_frr(state, {"leaf_routes": "aggregate"})
    state["resources"][1]["spec"]["allowedPrefixes"] = ["10.64.0.0/16", "not-a-pool"]
    with pytest.raises(RenderError, match=r"allowedPrefixes\[1\] \[ipv4-prefix\]"):
        render_frr(state, {"leaf_routes": "aggregate"})
