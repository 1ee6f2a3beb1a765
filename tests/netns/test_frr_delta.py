# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 19 on a real bgpd: changes go to FRR as deltas and converge; a mismatch or a failed delta takes the
whole-configuration path (frr-reload.py), is reported, and converges too.

"Converged" is frr-reload.py --test against the rendered candidate: no line to add or delete.
"""

from boma_mesh_utils.sam.apply import node
from boma_mesh_utils.sam.apply.frr import Frr, write_candidate
from boma_mesh_utils.sam.core.render.frr import render_frr
from support.synthetic import synthetic_rr_state


def rr_state(count, drop=()):
    state = synthetic_rr_state(count)
    peer = next(r for r in state["resources"] if r["kind"] == "BGPDynamicPeer")
    peer["spec"]["admitted"] = [a for a in peer["spec"]["admitted"] if a["leafID"] not in drop]
    return state


def left_over(frr_dirs, state):
    """frr-reload.py --test's (deletes, adds) between FRR's running config and the state's candidate."""
    frr = Frr(node.run_command, vtysh=node.VTYSH, vty_socket=frr_dirs.vty_dir, confdir=frr_dirs.config_dir)
    text = frr.with_host_lines(render_frr(state), frr.running())
    path = write_candidate(frr_dirs.vty_dir, text)
    return frr.delta(path)


def test_deltas_converge_and_a_mismatch_or_a_failed_delta_takes_the_full_path(topo):
    topo.add_host("rr")
    frr = topo.start_frr("rr", "hostname rr\n")
    events = []
    memory = node.FrrMemory(on_fallback=events.append)

    def apply(state):
        return node.apply_bgp(state, frr.vty_dir, frr.config_dir, memory=memory)

    assert apply(rr_state(20)).startswith("bgp changed")              # start-up: the whole path
    assert (memory.full_runs, memory.delta_runs) == (1, 0)
    # one more leaf, then a revocation: deltas, each verified, and FRR holds exactly the candidate
    out = apply(rr_state(21))
    assert out.startswith("bgp delta +9 -0 lines, 3 objects verified"), out   # its list, its peer-group
    assert left_over(frr, rr_state(21)) == ([], [])
    out = apply(rr_state(21, drop={"leaf-3"}))
    assert out.startswith("bgp delta +0 -3 lines, 3 objects verified"), out
    assert left_over(frr, rr_state(21, drop={"leaf-3"})) == ([], [])
    assert "leaf-3 " not in frr.vtysh("show running-config") and (memory.full_runs, memory.delta_runs) == (1, 2)
    assert apply(rr_state(21, drop={"leaf-3"})) == "bgp unchanged (20 leaves)"

    # A hand edit on an object the next delta touches: the delta applies, the read-back differs, the whole path
    # runs and removes the stray entry.
    frr.vtysh("configure terminal", "ip prefix-list SAM-LEAF-leaf-21 seq 10 permit 10.9.9.9/32")
    out = apply(rr_state(22, drop={"leaf-3"}))
    assert out.startswith("bgp changed"), out
    assert len(events) == 1 and "prefix-list SAM-LEAF-leaf-21" in events[0] and "differs" in events[0]
    assert left_over(frr, rr_state(22, drop={"leaf-3"})) == ([], [])
    assert "10.9.9.9" not in frr.vtysh("show running-config") and memory.full_runs == 2

    # A delta FRR refuses halfway (a group added by hand holds the new leaf's listen range): the whole path
    # again, which removes the stray group, converged.
    frr.vtysh("configure terminal", "router bgp 64577", "neighbor stray peer-group", "neighbor stray remote-as 64577",
              "bgp listen range 10.128.0.23/32 peer-group stray")
    out = apply(rr_state(23, drop={"leaf-3"}))
    assert out.startswith("bgp changed"), out
    assert len(events) == 2 and "vtysh failed to apply the delta" in events[1]
    assert left_over(frr, rr_state(23, drop={"leaf-3"})) == ([], [])
    assert (memory.full_runs, memory.fallbacks) == (3, 2)


def shared_route_map_config(count):
    """What render_frr wrote for synthetic_rr_state(count) before issue 19: one peer-group, one route-map entry
    per leaf (a running RR upgraded from 0.1.0 holds this)."""
    lines = ["ip prefix-list SAM-LEAF-leaf-%d seq 5 permit 10.64.0.%d/32" % (i, i + 1) for i in range(count)]
    for i in range(count):
        lines += ["route-map SAM-IN-leaves permit %d" % (i + 1), " match peer 10.128.0.%d" % (i + 1),
                  " match ip address prefix-list SAM-LEAF-leaf-%d" % i, "exit"]
    lines += ["route-map SAM-IN-leaves deny 65535", "exit", "router bgp 64577", " bgp router-id 10.99.0.2",
              " no bgp default ipv4-unicast", " neighbor leaves peer-group", " neighbor leaves remote-as 64577"]
    lines += [" bgp listen range 10.128.0.%d/32 peer-group leaves" % (i + 1) for i in range(count)]
    lines += [" address-family ipv4 unicast", "  neighbor leaves activate", "  neighbor leaves route-reflector-client",
              "  neighbor leaves route-map SAM-IN-leaves in", " exit-address-family", "exit"]
    return "\n".join(lines) + "\n"


def test_an_rr_configured_before_moves_to_one_peer_group_per_leaf_in_one_whole_run(topo):
    """The first run after an upgrade is the whole path (start-up): frr-reload.py removes the shared group and
    route-map and adds the per-leaf groups with the same listen ranges; FRR then holds exactly the candidate."""
    topo.add_host("rr")
    frr = topo.start_frr("rr", "hostname rr\n" + shared_route_map_config(5))
    out = node.apply_bgp(rr_state(5), frr.vty_dir, frr.config_dir, memory=node.FrrMemory())
    assert out.startswith("bgp changed"), out
    assert left_over(frr, rr_state(5)) == ([], [])
    running = frr.vtysh("show running-config")
    assert "SAM-IN-leaves" not in running and "neighbor leaves peer-group" not in running
    assert " bgp listen range 10.128.0.3/32 peer-group leaves@leaf-2" in running
