"""apply/gobgp.py and core/render/gobgp_lint.py against a fake gobgpd: lint first, check, write, reload, read back.

The fake answers ``gobgpd -d`` and the ``gobgp -j`` read-backs from the configuration file as a well-behaved
gobgpd would after a reload (``held`` may be told to lag or to drop the policy, as gobgpd 3.10 does when it
refuses part of one).  The real daemon is tests/netns/test_gobgp_apply.py's.
"""

import json
import os
import signal

import pytest
from mesh_views import node_state

from boma_mesh_utils.sam.apply import gobgp as apply_gobgp
from boma_mesh_utils.sam.core.render.gobgp import render_gobgp
from boma_mesh_utils.sam.core.render.gobgp_lint import lint_gobgp, parse, reset_commands


class FakeGobgpd:
    """What gobgpd holds is what ``loaded`` says (the text of the last reload); ``refuse`` fails gobgpd -d."""

    def __init__(self, path, loaded=None, refuse=False, drop_policy=False):
        self.path, self.loaded, self.refuse, self.drop_policy = path, loaded, refuse, drop_policy
        self.calls, self.signals, self.rib, self.dynamic = [], [], {}, []
        self.started = loaded      # gobgpd reads [global.config] when it starts, never on a reload

    def kill(self, pid, sig):
        self.signals.append((pid, sig))
        self.loaded = self.path.read_text()

    def run_command(self, argv):
        self.calls.append(argv)
        if argv[0].endswith("gobgpd"):
            return (1, "", "toml: line 3: expected a value") if self.refuse else (0, "", "")
        args = argv[argv.index("-p") + 2:] if "-p" in argv else argv[3:]
        if args[:1] == ["-j"]:
            return 0, json.dumps(self.answer(args[1:])), ""
        if args[:3] == ["global", "rib", "add"]:
            self.rib[args[-1]] = [{"nlri": {"prefix": args[-1]}}]
        elif args[:3] == ["global", "rib", "del"]:
            self.rib.pop(args[-1], None)
        return 0, "", ""

    def answer(self, args):
        doc = parse(self.loaded)[0] if self.loaded else {}
        want = apply_gobgp.expected(doc, "rr" if "import-policy-list" in str(doc) else "leaf")
        if args == ["global"]:
            glob = ((parse(self.started or self.loaded or "")[0] or {}).get("global") or {}).get("config") or {}
            return {"asn": glob.get("as"), "router_id": glob.get("router-id"), "listen_port": 179}
        if args[:2] == ["global", "policy"]:
            policies = [] if self.drop_policy else [{"name": name, "statements": [{"name": s} for s in statements]}
                                                    for name, statements in want["policies"]]
            return {"policies": policies, "default_action": apply_gobgp.ACCEPT if self.drop_policy else want["default"]}
        if args[:2] == ["policy", "prefix"]:
            return [{"name": n, "prefixes": [{"ip_prefix": p} for p in ps]} for n, ps in want["prefix_sets"].items()]
        if args[:2] == ["policy", "neighbor"]:
            return [{"name": n, "list": ps} for n, ps in want["neighbor_sets"].items()]
        if args[:1] == ["neighbor"]:
            return [{"conf": {"neighbor_address": a}} for a in want["neighbors"]] + [
                {"conf": {"peer_group": "leaves"}, "state": {"neighbor_address": a}} for a in self.dynamic]
        if args[:2] == ["global", "rib"]:
            return self.rib
        raise AssertionError(args)


@pytest.fixture
def conf(tmp_path):
    return tmp_path / "gobgpd.conf"


def gobgpd(fake):
    return apply_gobgp.Gobgpd(fake.run_command, config_path=str(fake.path), pid=4242, kill=fake.kill)


RR = render_gobgp(node_state("cloudedge", "rr-a")[0])
LEAF = render_gobgp(node_state("cloudedge", "leaf-a")[0])


def test_rendered_candidates_pass_the_lint():
    assert lint_gobgp(RR, "rr") == [] and lint_gobgp(LEAF, "leaf") == []


@pytest.mark.parametrize("edit, rule", [
    (('default-import-policy = "reject-route"', 'default-import-policy = "accept-route"'), "default-import-policy"),
    (('import-policy-list = ["SAM-ADMISSION"]', 'import-policy-list = ["SAM-OTHER"]'), "is not defined"),
    (('set-next-hop = "10.255.0.31"', 'set-next-hop = "peer-address"'), "drops the whole policy"),
    (('neighbor-set = "SAM-LEAF-leaf-a"', 'neighbor-set = "SAM-LEAF-nobody"'), "is not defined"),
    (('masklength-range = "32..32"', 'masklength-range = "8..32"'), "masklength-range"),
    (('route-disposition = "accept-route"', 'route-disposition = "accept"'), "route-disposition"),
    (("[global.config]", "[global.config"), "not TOML"),
])
def test_the_lint_names_what_gobgpd_would_run_open(edit, rule):
    text = RR.replace(*edit, 1)
    assert text != RR, edit
    problems = lint_gobgp(text, "rr")
    assert any(rule in problem for problem in problems), problems


def test_an_rr_accept_bound_to_no_neighbor_set_and_an_empty_set_are_refused():
    unbound = RR.replace("match-neighbor-set", "match-neighbor-set-unused", 1)
    assert any("must match a neighbor set" in p for p in lint_gobgp(unbound, "rr"))
    empty = RR.replace('neighbor-info-list = ["10.255.0.31/32"]', "neighbor-info-list = []")
    assert any("empty neighbor set matches every neighbor" in p for p in lint_gobgp(empty, "rr"))


def test_a_leaf_must_export_through_its_policy_unless_export_any():
    open_leaf = render_gobgp(node_state("cloudedge", "leaf-a")[0], {"export_any": True})
    assert any("default-export-policy" in p for p in lint_gobgp(open_leaf, "leaf"))
    assert lint_gobgp(open_leaf, "leaf", export_any=True) == []


def test_first_apply_writes_reloads_verifies_and_the_second_changes_nothing(conf):
    fake = FakeGobgpd(conf)
    result = apply_gobgp.apply(gobgpd(fake), RR, "rr")
    assert result["changed"] and conf.read_text() == RR and fake.signals == [(4242, signal.SIGHUP)]
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert result["commands"] == []              # first start: nothing to reset
    again = apply_gobgp.apply(gobgpd(fake), RR, "rr")
    assert not again["changed"] and len(fake.signals) == 1


def test_a_refused_candidate_changes_nothing(conf):
    conf.write_text(RR)
    fake = FakeGobgpd(conf, loaded=RR, refuse=True)
    with pytest.raises(apply_gobgp.GobgpError, match="candidate rejected, nothing applied: gobgpd -d"):
        apply_gobgp.apply(gobgpd(fake), RR.replace("10.77.60.31", "10.77.60.39"), "rr")
    assert conf.read_text() == RR and fake.signals == []
    opened = RR.replace('default-import-policy = "reject-route"', 'default-import-policy = "accept-route"')
    with pytest.raises(apply_gobgp.GobgpError, match="default-import-policy"):
        apply_gobgp.apply(gobgpd(FakeGobgpd(conf, loaded=RR)), opened, "rr")
    assert conf.read_text() == RR and [p.name for p in conf.parent.iterdir()] == ["gobgpd.conf"]


def test_a_policy_gobgpd_did_not_install_is_an_error_not_a_success(conf):
    fake = FakeGobgpd(conf, drop_policy=True)
    with pytest.raises(apply_gobgp.GobgpError, match="does not hold the candidate.*default action 1, expected 2"):
        apply_gobgp.apply(gobgpd(fake), RR, "rr", timeout=0.3)


def test_a_daemon_that_does_not_hold_its_file_is_reloaded_and_reported(conf):
    conf.write_text(RR)
    fake = FakeGobgpd(conf, loaded=RR.replace("10.77.60.32/32", "10.77.60.33/32"))   # reloaded by hand
    assert apply_gobgp.apply(gobgpd(fake), RR, "rr", check_mode=True)["changed"] and fake.signals == []
    result = apply_gobgp.apply(gobgpd(fake), RR, "rr")
    assert result["changed"] and fake.signals == [(4242, signal.SIGHUP)]


def test_check_mode_writes_nothing(conf):
    fake = FakeGobgpd(conf)
    result = apply_gobgp.apply(gobgpd(fake), RR, "rr", check_mode=True)
    assert result["changed"] and result["after"] == RR and not conf.exists() and fake.signals == []


def test_a_revocation_resets_in_and_a_leaf_originates_only_its_own_32s(conf):
    conf.write_text(RR)
    fake = FakeGobgpd(conf, loaded=RR)
    revoked = RR.replace("10.77.60.32/32", "10.77.60.33/32")
    assert apply_gobgp.apply(gobgpd(fake), revoked, "rr")["commands"] == ["neighbor all softresetin"]
    leaf_conf = conf.parent / "leaf.conf"
    leaf = FakeGobgpd(leaf_conf)
    leaf.rib = {"192.0.2.0/24": [{"nlri": {}}]}        # a local route that is not the leaf's: left alone
    result = apply_gobgp.apply(gobgpd(leaf), LEAF, "leaf")
    assert result["commands"] == ["global rib add -a ipv4 10.77.60.31/32"]
    assert sorted(leaf.rib) == ["10.77.60.31/32", "192.0.2.0/24"]
    moved = LEAF.replace("10.77.60.31/32", "10.77.60.35/32")
    result = apply_gobgp.apply(gobgpd(leaf), moved, "leaf")
    assert result["commands"] == ["neighbor all reset", "global rib add -a ipv4 10.77.60.35/32",
                                  "global rib del -a ipv4 10.77.60.31/32"]
    assert sorted(leaf.rib) == ["10.77.60.35/32", "192.0.2.0/24"]


def test_reset_commands_follow_the_rule_of_soft_reset_commands():
    gobgp = ["gobgp"]
    assert reset_commands(None, RR, gobgp) == [] and reset_commands(RR, RR, gobgp) == []
    extra = '\n    [[defined-sets.prefix-sets.prefix-list]]\n      ip-prefix = "10.77.60.36/32"'
    grown = LEAF.replace('masklength-range = "32..32"', 'masklength-range = "32..32"' + extra, 1)
    assert reset_commands(LEAF, grown, gobgp) == [["gobgp", "neighbor", "all", "softresetout"]]
    assert reset_commands(grown, LEAF, gobgp) == [["gobgp", "neighbor", "all", "reset"]]


def test_the_unit_main_pid_is_signalled_and_a_stopped_unit_is_an_error(conf):
    fake = FakeGobgpd(conf)
    answers = {"systemctl": (0, "4711\n", "")}
    runner = apply_gobgp.Gobgpd(lambda argv: answers.get(argv[0]) or fake.run_command(argv), config_path=str(conf),
                                kill=fake.kill)
    apply_gobgp.apply(runner, RR, "rr")
    assert fake.signals == [(4711, signal.SIGHUP)]
    answers["systemctl"] = (0, "0\n", "")
    with pytest.raises(apply_gobgp.GobgpError, match="gobgpd is not running"):
        apply_gobgp.apply(runner, RR.replace("10.77.60.32/32", "10.77.60.33/32"), "rr")


def test_an_rr_resets_the_session_of_a_leaf_no_range_admits_any_more(conf):
    conf.write_text(RR)
    fake = FakeGobgpd(conf, loaded=RR)
    fake.dynamic = ["10.255.0.31", "10.255.0.99"]       # leaf-a, admitted; .99, not (any more)
    assert 'prefix = "10.255.0.31/32"' in RR and "10.255.0.0/20" not in RR
    result = apply_gobgp.apply(gobgpd(fake), RR, "rr")
    assert result["changed"] and result["commands"] == ["neighbor 10.255.0.99 reset"] and fake.signals == []
    fake.dynamic = ["10.255.0.31"]
    assert apply_gobgp.apply(gobgpd(fake), RR, "rr") == dict(result, changed=False, commands=[])


def test_a_changed_as_is_refused_after_the_reload_with_the_restart_it_needs(conf):
    conf.write_text(RR)
    fake = FakeGobgpd(conf, loaded=RR)
    other = RR.replace("as = 64577", "as = 64578", 1)
    assert other != RR
    with pytest.raises(apply_gobgp.GobgpError, match=r"AS and router ID 64577/.*expected 64578/.*restart it"):
        apply_gobgp.apply(gobgpd(fake), other, "rr", timeout=0.1)


def test_the_pid_file_is_read_at_each_reload(conf, tmp_path):
    pid_file = tmp_path / "gobgpd.pid"
    fake = FakeGobgpd(conf)
    daemon = apply_gobgp.Gobgpd(fake.run_command, config_path=str(conf), pid_file=str(pid_file), kill=fake.kill)
    with pytest.raises(apply_gobgp.GobgpError, match="pid file"):
        apply_gobgp.apply(daemon, RR, "rr")
    assert not conf.exists() and not fake.signals     # no gobgpd to load it: nothing replaced
    pid_file.write_text("4343\n")
    apply_gobgp.apply(daemon, RR, "rr")
    assert fake.signals[-1] == (4343, signal.SIGHUP)


def test_the_replaced_file_keeps_its_owner_and_group(conf):
    conf.write_text(RR.replace("10.77", "10.78", 1))
    os.chown(conf, 0, 4242)
    fake = FakeGobgpd(conf, loaded=conf.read_text())
    apply_gobgp.apply(gobgpd(fake), RR, "rr")
    stat = conf.stat()
    assert (stat.st_gid, stat.st_mode & 0o777) == (4242, 0o640)


def test_nothing_is_replaced_while_gobgpd_is_not_running(conf):
    """The service's reconcile may run before the role starts gobgpd: it must not create the file (root-owned, which
    gobgpd's own user could not read) nor change one a stopped gobgpd would read at its next start."""
    fake = FakeGobgpd(conf)
    daemon = apply_gobgp.Gobgpd(lambda argv: (0, "0\n", "") if argv[0] == "systemctl" else fake.run_command(argv),
                                config_path=str(conf), kill=fake.kill)
    with pytest.raises(apply_gobgp.GobgpError, match="not running"):
        apply_gobgp.apply(daemon, RR, "rr")
    assert not conf.exists() and not fake.signals
    conf.write_text(LEAF)
    with pytest.raises(apply_gobgp.GobgpError, match="not running"):
        apply_gobgp.apply(daemon, RR, "rr")
    assert conf.read_text() == LEAF
    assert apply_gobgp.apply(daemon, RR, "rr", check_mode=True)["changed"]    # check mode needs no daemon


def test_a_gobgpd_whose_api_is_not_answering_yet_is_waited_for(conf):
    """Right after systemd started it (ready before its gRPC server accepts) the read-back is asked again."""
    conf.write_text(RR)
    fake = FakeGobgpd(conf, loaded=RR)
    refusals = {"left": 3}

    def run_command(argv):
        if argv[-1] == "global" and refusals["left"]:
            refusals["left"] -= 1
            return 1, "", '{"error":"context deadline exceeded"}'
        return fake.run_command(argv)

    daemon = apply_gobgp.Gobgpd(run_command, config_path=str(conf), pid=4242, kill=fake.kill)
    assert apply_gobgp.apply(daemon, RR, "rr", timeout=5)["changed"] is False
    assert refusals["left"] == 0
    refusals["left"] = 10**6
    with pytest.raises(apply_gobgp.GobgpError, match="context deadline exceeded"):
        apply_gobgp.apply(daemon, RR, "rr", timeout=0.3)
