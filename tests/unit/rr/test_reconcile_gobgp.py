"""samctl serve --bgp-daemon gobgp: the reconcile applies through apply/gobgp.apply_state, and refuses at start-up
what GoBGP is not built for here (RR-to-RR peering, FRR-only options)."""

import pytest

from boma_mesh_utils.sam.cli import main as cli
from boma_mesh_utils.sam.rr import reconcile

BASE = ["serve", "--config", "x.yml", "--node", "rr-a", "--db", "x.db", "--token-file", "t", "--reconcile", "bgp",
        "--bgp-daemon", "gobgp"]


def args(*extra):
    return cli.build_parser().parse_args(BASE + list(extra))


def test_a_gobgp_rr_reconciles_through_apply_state(monkeypatch):
    seen = {}
    state = {"node": "rr-a", "role": "rr", "resources": []}
    monkeypatch.setattr(reconcile, "desired_state", lambda service, node, rr_peering, steps=None: state)
    monkeypatch.setattr(reconcile, "apply_state", lambda gobgpd, st: seen.update(
        path=gobgpd.config_path, cli=gobgpd.cli(), pid=gobgpd.pid, state=st) or "gobgp unchanged (0 leaves)")
    monkeypatch.setattr(reconcile, "apply_bgp", lambda *a, **k: pytest.fail("FRR applied on a GoBGP RR"))
    apply = reconcile.factory(object(), args("--gobgp-config", "/srv/g.toml", "--gobgp-api-target",
                                             "unix:///run/g.sock", "--gobgp-pid", "42"))
    assert apply() == "gobgp unchanged (0 leaves)"
    assert seen == {"path": "/srv/g.toml", "cli": ["/usr/bin/gobgp", "--target", "unix:///run/g.sock"], "pid": 42,
                    "state": state}
    assert "gobgp" in apply.steps


@pytest.mark.parametrize("extra, word", [(["--rr-peering"], "--rr-peering"), (["--bgp-bfd"], "--bgp-bfd"),
                                         (["--bgp-leaf-routes", "aggregate"], "aggregate")])
def test_what_gobgp_is_not_built_for_is_refused_at_start_up(extra, word):
    with pytest.raises(reconcile.ReconcileError, match=word):
        reconcile.factory(object(), args(*extra))
