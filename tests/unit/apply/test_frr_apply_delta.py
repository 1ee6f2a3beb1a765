# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apply/frr.apply_delta and apply/node.FrrMemory over a fake vtysh: what is sent, what is never sent, the fallbacks.

The real bgpd is tests/netns/test_frr_delta.py; here each refusal is forced to check that nothing follows it.
"""

import json

import pytest

from boma_mesh_utils.sam.apply import frr as frr_mod
from boma_mesh_utils.sam.apply import node
from boma_mesh_utils.sam.core.render.frr import render_frr
from boma_mesh_utils.sam.core.render.frr_delta import DeltaUnsupported
from support.synthetic import synthetic_rr_state


def rr(count):
    return render_frr(synthetic_rr_state(count))


class FakeVtysh:
    """argv -> (rc, out, err); records every call; answers the read-back from ``held``."""

    def __init__(self, held=None):
        self.calls, self.dry_rc, self.apply_rc, self.held = [], 0, 0, held or {}

    def __call__(self, argv):
        self.calls.append(argv)
        if "-f" in argv:
            text = open(argv[argv.index("-f") + 1]).read()
            self.calls[-1] = argv + ["<<" + text]
            return (self.dry_rc, "", "line 1: % Unknown command") if "-C" in argv else (self.apply_rc, "", "")
        commands = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
        if commands[:1] == ["configure terminal"]:
            if self.apply_rc:
                return self.apply_rc, "", "% Unknown command"
            commands = commands[commands.index("end") + 1:]
        out = [json.dumps(self.held.get(command, {})) for command in commands]
        return 0, "\n".join(out), ""


def held_after_leaf(n):
    leaf = "leaf-%d" % (n - 1)
    group = "leaves@" + leaf
    return {
        "show ip prefix-list SAM-LEAF-%s json" % leaf: {"BGP": {"SAM-LEAF-" + leaf: {"entries": [
            {"sequenceNumber": 5, "type": "permit", "prefix": "10.64.0.%d/32" % n}]}}},
        "show bgp peer-group %s json" % group: {group: {"remoteAs": 64577, "dynamicRanges": {
            "IPv4": {"ranges": ["10.128.0.%d/32" % n]}}}},
    }


def test_a_delta_is_checked_then_sent_in_one_session_then_read_back(tmp_path):
    fake = FakeVtysh(held_after_leaf(11))
    frr = frr_mod.Frr(fake, vtysh="/usr/bin/vtysh", vty_socket=str(tmp_path))
    result = frr_mod.apply_delta(frr, rr(10), rr(11))
    assert result["changed"] and result["touched"] == 3 and len(result["adds"]) == 9 and not result["deletes"]
    dry, sent = fake.calls           # the grammar check, then one session: the delta and its read-back
    assert dry[:3] == ["/usr/bin/vtysh", "-C", "-f"] and "--vty_socket" in sent and "-C" not in sent
    script = [sent[i + 1] for i, a in enumerate(sent) if a == "-c"]
    assert script[0] == "configure terminal" and "\n".join(script[1:script.index("end")]) + "\n" == dry[-1][2:]
    assert " bgp listen range 10.128.0.11/32 peer-group leaves@leaf-10" in script
    shows = script[script.index("end") + 1:]
    assert len(shows) == 2 and all(s.startswith("show ") for s in shows)   # its prefix-list, its peer-group
    assert list(tmp_path.iterdir()) == []          # the delta file is removed


def test_a_large_batch_goes_through_a_file_then_is_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(frr_mod, "ONE_SESSION_LINES", 5)
    fake = FakeVtysh(held_after_leaf(11))
    frr_mod.apply_delta(frr_mod.Frr(fake, vty_socket=str(tmp_path)), rr(10), rr(11))
    dry, sent, shown = fake.calls
    assert "-C" in dry and "-f" in sent and "-C" not in sent and dry[-1] == sent[-1]
    assert sum(a == "-c" for a in shown) == 2 and "configure terminal" not in shown


def test_an_unchanged_candidate_sends_nothing(tmp_path):
    fake = FakeVtysh()
    result = frr_mod.apply_delta(frr_mod.Frr(fake, vty_socket=str(tmp_path)), rr(10), rr(10))
    assert result["changed"] is False and fake.calls == []


def test_a_delta_vtysh_refuses_is_never_applied(tmp_path):
    fake = FakeVtysh()
    fake.dry_rc = 2
    with pytest.raises(frr_mod.FrrError, match="refused by vtysh -C, nothing applied"):
        frr_mod.apply_delta(frr_mod.Frr(fake, vty_socket=str(tmp_path)), rr(10), rr(11))
    assert len(fake.calls) == 1


def test_a_candidate_the_lint_refuses_is_never_sent(tmp_path):
    fake = FakeVtysh()
    line = "  neighbor leaves@leaf-10 prefix-list SAM-LEAF-leaf-10 in\n"
    bad = rr(11).replace(line, line.replace("SAM-LEAF-leaf-10", "NOPE"))
    with pytest.raises(frr_mod.FrrError, match="prefix-list NOPE is not defined"):
        frr_mod.apply_delta(frr_mod.Frr(fake, vty_socket=str(tmp_path)), rr(10), bad)
    assert fake.calls == []


def test_a_read_back_that_differs_is_a_mismatch(tmp_path):
    held = held_after_leaf(11)
    held["show bgp peer-group leaves@leaf-10 json"] = {}     # FRR's answer for a peer-group it does not have
    with pytest.raises(frr_mod.FrrMismatch, match="peer-group leaves@leaf-10: missing"):
        frr_mod.apply_delta(frr_mod.Frr(FakeVtysh(held), vty_socket=str(tmp_path)), rr(10), rr(11))


def test_an_unsupported_change_raises_before_anything_is_sent(tmp_path):
    fake = FakeVtysh()
    with pytest.raises(DeltaUnsupported):
        frr_mod.apply_delta(frr_mod.Frr(fake, vty_socket=str(tmp_path)), rr(10),
                            rr(10).replace("router bgp 64577", "router bgp 64578"))
    assert fake.calls == []


def test_memory_falls_back_to_the_full_path_and_reports_it(monkeypatch, tmp_path):
    full, reported = [], []
    monkeypatch.setattr(node, "_apply_frr", lambda candidate, vty, confdir, persist: full.append(candidate) or {
        "changed": True, "deletes": [], "adds": ["x"], "candidate": "hostname rr\n!\n" + candidate})
    fake = FakeVtysh()
    fake.apply_rc = 1
    monkeypatch.setattr(node, "run_command", fake)
    memory = node.FrrMemory(on_fallback=reported.append)
    state10, state11 = synthetic_rr_state(10), synthetic_rr_state(11)
    node.apply_bgp(state10, str(tmp_path), str(tmp_path / "nope"), memory=memory)
    assert len(full) == 1 and memory.candidate == rr(10) and memory.host_lines == "hostname rr\n!\n"
    out = node.apply_bgp(state11, str(tmp_path), str(tmp_path / "nope"), memory=memory)
    assert out.startswith("bgp changed") and len(full) == 2 and memory.candidate == rr(11)
    assert memory.fallbacks == 1 and "vtysh failed to apply the delta" in reported[0]
    fake.apply_rc = 0
    # with full=True (the repair interval) the delta path is not even tried
    calls = len(fake.calls)
    node.apply_bgp(state10, str(tmp_path), str(tmp_path / "nope"), memory=memory, full=True)
    assert len(fake.calls) == calls and len(full) == 3
