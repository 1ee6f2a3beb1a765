"""Timer presets (routerd timersPreset / timers.profile) and RR-to-RR peering, materialize -> FRR / GoBGP."""

import copy
import io
import ipaddress
import json

import pytest
import tomllib
import yaml
from inprocess import collection_on_path, run_module
from mesh_views import NOW, host_vars, node_view

from boma_mesh_utils.sam.cli import main as cli
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.materialize import count_kinds, materialize
from boma_mesh_utils.sam.core.model import TIMER_PRESETS
from boma_mesh_utils.sam.core.render.frr import RR_PEER_LOCAL_PREF, RenderError, lint_frr, render_frr
from boma_mesh_utils.sam.core.render.gobgp import render_gobgp
from boma_mesh_utils.sam.core.validate import validate
from boma_mesh_utils.sam.rr import reconcile

FAST = {"profile": "fast", "keepalive": 3, "holdTime": 9}


def state_of(host, edit=None, rr_peering=False, inventory="cloudedge"):
    """Materialized state of an example host; ``edit(resources)`` may change the documents first."""
    docs = copy.deepcopy(node_view(inventory, host))
    if edit:
        edit(docs)
    resources, findings = load_resources([(host, docs)])
    report = validate(resources, now=NOW, findings=findings)
    assert report.ok, [str(f) for f in report.errors]
    return materialize(report, host_vars(inventory, host)["sam_node"], rr_peering=rr_peering)


def of(state, kind):
    return [r["spec"] for r in state["resources"] if r["kind"] == kind]


def spec_of(docs, kind, node=None):
    return next(d["spec"] for d in docs if d["kind"] == kind and (node is None or d["spec"].get("selfNodeRef") == node))


def test_presets_are_routerds_gobgp_values():
    # routerd goBGPTimers: fast 3/9 (connect 1), default 30/90, slow 60/180.
    assert TIMER_PRESETS == {"fast": (3, 9), "default": (30, 90), "slow": (60, 180)}


def test_fast_preset_reaches_the_leaf_neighbors_and_the_rr_peer_group():
    leaf = state_of("leaf-b")
    assert [p["timers"] for p in of(leaf, "BGPPeer")] == [FAST, FAST]
    lines = render_frr(leaf).splitlines()
    assert " neighbor 10.99.0.2 timers 3 9" in lines and " neighbor 10.99.0.3 timers 3 9" in lines
    rr = state_of("rr-a")
    (dyn,) = of(rr, "BGPDynamicPeer")
    assert dyn["timers"] == FAST
    assert " neighbor cloudedge-leaves@leaf-b timers 3 9" in render_frr(rr).splitlines()


def test_profile_timers_win_over_timers_preset_and_the_router():
    def edit(docs):
        bgp = spec_of(docs, "SAMTransportProfile", "leaf-b")["bgp"]
        bgp["timersPreset"] = "slow"
        spec_of(docs, "BGPRouter")["timers"] = {"profile": "default"}

    assert {p["timers"]["profile"] for p in of(state_of("leaf-b", edit), "BGPPeer")} == {"slow"}

    def edit_both(docs):
        edit(docs)
        spec_of(docs, "SAMTransportProfile", "leaf-b")["bgp"]["timers"] = {"profile": "fast"}

    assert {p["timers"]["profile"] for p in of(state_of("leaf-b", edit_both), "BGPPeer")} == {"fast"}


def test_router_preset_is_the_fallback_and_no_preset_leaves_the_daemon_default():
    def router_only(docs):
        spec_of(docs, "SAMTransportProfile", "leaf-b")["bgp"].pop("timersPreset")
        spec_of(docs, "BGPRouter")["timers"] = {"profile": "slow"}

    peers = of(state_of("leaf-b", router_only), "BGPPeer")
    assert {(p["timers"]["keepalive"], p["timers"]["holdTime"]) for p in peers} == {(60, 180)}

    def none(docs):
        spec_of(docs, "SAMTransportProfile", "leaf-b")["bgp"].pop("timersPreset")
        spec_of(docs, "BGPRouter").pop("timers")

    state = state_of("leaf-b", none)
    assert all("timers" not in p for p in of(state, "BGPPeer"))
    assert not [line for line in render_frr(state).splitlines() if " timers " in line and "connect" not in line]


def test_unknown_preset_is_a_finding():
    docs = copy.deepcopy(node_view("cloudedge", "leaf-b"))
    spec_of(docs, "SAMTransportProfile", "leaf-b")["bgp"]["timersPreset"] = "turbo"
    resources, findings = load_resources([("leaf-b", docs)])
    report = validate(resources, now=NOW, findings=findings)
    assert [(f.rule, f.path) for f in report.errors] == [("timers-preset", "spec.bgp.timersPreset")]


def test_gobgp_gets_the_same_timers():
    doc = tomllib.loads(render_gobgp(state_of("rr-a")))
    assert doc["peer-groups"][0]["timers"]["config"] == {"keepalive-interval": 3, "hold-time": 9}
    leaf = tomllib.loads(render_gobgp(state_of("leaf-b")))
    assert {n["timers"]["config"]["hold-time"] for n in leaf["neighbors"]} == {9}


# ---------------------------------------------------------------- RR-to-RR peering

def test_rr_peering_is_opt_in_and_peers_the_other_member_over_the_endpoints():
    assert of(state_of("rr-a"), "BGPPeer") == []
    state = state_of("rr-a", rr_peering=True)
    assert of(state, "BGPPeer") == [{"address": "10.10.0.3", "remoteASN": 64577, "localAddress": "10.10.0.2",
                                     "nodeRef": "rr-b", "routeReflectorPeer": True, "owner": "boma.mesh",
                                     "timers": FAST}]
    assert count_kinds(state)["BGPPeer"] == 1
    # A leaf has no RR peers whatever the flag says.
    assert of(state_of("leaf-b", rr_peering=True), "BGPPeer") == of(state_of("leaf-b"), "BGPPeer")


@pytest.fixture(scope="module")
def peered():
    return render_frr(state_of("rr-a", rr_peering=True), {"bfd": True})


def test_rr_peer_is_reflected_to_with_next_hop_self_and_admission(peered):
    lines = peered.splitlines()
    for line in (" neighbor 10.10.0.3 remote-as 64577", " neighbor 10.10.0.3 update-source 10.10.0.2",
                 " neighbor 10.10.0.3 timers 3 9", " neighbor 10.10.0.3 bfd",
                 "  neighbor 10.10.0.3 activate", "  neighbor 10.10.0.3 next-hop-self force",
                 "  neighbor 10.10.0.3 soft-reconfiguration inbound", "  neighbor 10.10.0.3 route-map SAM-RR-IN in"):
        assert line in lines, line
    # Not a route-reflector client: the RRs reflect client routes to each other, not the other's.
    assert "  neighbor 10.10.0.3 route-reflector-client" not in lines
    assert lint_frr(peered) == []


def test_shared_cluster_id_is_dropped_with_rr_peering(peered):
    # The documents give both RRs 10.99.0.254: each would discard the other's reflected routes.
    assert " bgp cluster-id 10.99.0.254" in render_frr(state_of("rr-a")).splitlines()
    assert "cluster-id" not in peered


def test_routes_from_the_other_rr_are_limited_to_admitted_claims(peered):
    block = peered.split("route-map SAM-RR-IN permit 10\n")[1].split("exit")[0]
    assert block == " match ip address prefix-list SAM-ADMITTED\n set local-preference %d\n" % RR_PEER_LOCAL_PREF
    permits = [line for line in peered.splitlines() if line.startswith("route-map SAM-RR-IN ")]
    assert permits == ["route-map SAM-RR-IN permit 10", "route-map SAM-RR-IN deny 65535"]
    # one entry per admitted /32, its sequence the address: a leaf admitted or revoked is one line
    admitted = [line for line in peered.splitlines() if line.startswith("ip prefix-list SAM-ADMITTED ")]
    assert admitted == ["ip prefix-list SAM-ADMITTED seq %d permit 10.77.60.%d/32" % (int(ipaddress.IPv4Address(
        "10.77.60.%d" % i)), i) for i in (21, 31, 32)]


def test_a_revoked_claim_leaves_the_rr_peer_filter_too():
    claims = [r for leaf in ("leaf-a", "leaf-pve") for r in host_vars("cloudedge", leaf)["sam_node_resources"]
              if r["kind"] == "SAMEnrollmentClaim"]
    docs = node_view("cloudedge", "rr-a", claims=claims)
    resources, findings = load_resources([("rr-a", docs)])
    text = render_frr(materialize(validate(resources, now=NOW, findings=findings), "rr-a", rr_peering=True))
    assert "10.77.60.32/32" not in text and "SAM-LEAF-leaf-b" not in text
    assert "route-map SAM-RR-IN deny 65535" in text and "route-map SAM-RR-IN permit 10" in text


def test_two_dynamic_peers_with_leaves_at_the_same_offset_both_pass_the_rr_peer_filter():
    """Each leaf has its own peer-group and the RR-peer list is keyed by address: nothing derives from an offset
    in a listen range any more, so two policies' leaves at the same offset no longer clash."""
    state = copy.deepcopy(state_of("rr-a", rr_peering=True))
    dyn = next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")
    other = copy.deepcopy(dyn)
    other["spec"].update(peerGroup="other", listenRanges=["10.254.0.0/20"],
                         admitted=[{"leafID": "leaf-x", "neighbor": "10.254.0.32", "prefixes": ["10.77.60.99/32"]}])
    state["resources"].append(other)
    lines = render_frr(state).splitlines()
    assert " bgp listen range 10.254.0.32/32 peer-group other@leaf-x" in lines
    assert " bgp listen range 10.255.0.32/32 peer-group cloudedge-leaves@leaf-b" in lines
    assert "ip prefix-list SAM-ADMITTED seq %d permit 10.77.60.99/32" % int(ipaddress.IPv4Address("10.77.60.99")) \
        in lines


def test_rr_peer_filter_refuses_two_prefixes_on_one_sequence():
    state = copy.deepcopy(state_of("rr-a", rr_peering=True))
    dyn = next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")
    dyn["spec"]["admitted"][0]["prefixes"] = ["10.77.60.32/31"]      # leaf-b owns 10.77.60.32/32 too
    with pytest.raises(RenderError, match="rr-in-sequence"):
        render_frr(state)


def test_gobgp_refuses_rr_peering_instead_of_rendering_it_half():
    with pytest.raises(ValueError, match="FRR only"):
        render_gobgp(state_of("rr-a", rr_peering=True))


# ---------------------------------------------------------------- edges: module, samctl serve, reconcile

def test_sam_materialize_module_passes_rr_peering_and_changes_nothing():
    collection_on_path()
    args = {"resources": node_view("cloudedge", "rr-a"), "node": "rr-a", "now": "2026-06-28T01:00:00Z"}
    plain, _raw = run_module("sam_materialize", args, check=True)
    peered, _raw = run_module("sam_materialize", dict(args, rr_peering=True), check=True)
    assert not plain["changed"] and not peered["changed"]
    assert "BGPPeer" not in plain["counts"] and peered["counts"]["BGPPeer"] == 1


def test_serve_reconcile_renders_with_the_roles_options(monkeypatch):
    args = cli.build_parser().parse_args(["serve", "--config", "x.yml", "--node", "rr-a", "--db", "x.db",
                                          "--token-file", "t", "--reconcile", "bgp", "--bgp-bfd", "--rr-peering",
                                          "--bgp-leaf-routes", "aggregate"])
    seen = {}
    monkeypatch.setattr(reconcile, "desired_state", lambda service, node, rr_peering, steps=None: seen.update(
        node=node, rr_peering=rr_peering) or {"resources": []})
    monkeypatch.setattr(reconcile, "apply_bgp", lambda state, vty, confdir, options, **_kw: seen.update(
        options=options) or "bgp unchanged")
    assert reconcile.factory(object(), args)() == "bgp unchanged"
    assert seen == {"node": "rr-a", "rr_peering": True, "options": {"bfd": True, "leaf_routes": "aggregate"}}
    plain = cli.build_parser().parse_args(["serve", "--config", "x.yml", "--node", "rr-a", "--db", "x.db",
                                           "--token-file", "t", "--reconcile", "bgp"])
    reconcile.factory(object(), plain)()
    assert seen == {"node": "rr-a", "rr_peering": False, "options": {"bfd": False, "leaf_routes": "all"}}


def test_samctl_materialize_rr_peering(tmp_path):
    path = tmp_path / "rr-a.yml"
    path.write_text(yaml.safe_dump({"sam_resources": node_view("cloudedge", "rr-a")}))
    base = ["materialize", "--config", str(path), "--node", "rr-a", "--now", "2026-06-28T01:00:00Z"]
    for extra, peers in (([], []), (["--rr-peering"], ["rr-b"])):
        out = io.StringIO()
        assert cli.main(base + extra, out=out) == 0
        state = json.loads(out.getvalue())
        assert [r["metadata"]["name"] for r in state["resources"] if r["kind"] == "BGPPeer"] == peers
