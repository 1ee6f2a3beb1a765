"""samctl render: the BGP configuration of a node, FRR or gobgpd, with validate's exit codes."""

import io

import tomllib
import yaml
from mesh_views import node_state, node_view

from boma_mesh_utils.sam.cli import main as cli
from boma_mesh_utils.sam.core.render.frr import render_frr
from boma_mesh_utils.sam.core.render.gobgp import render_gobgp

NOW = "2026-06-28T01:00:00Z"


def _config(tmp_path, host, mutate=None):
    resources = node_view("cloudedge", host)
    if mutate:
        mutate(resources)
    path = tmp_path / ("%s.yml" % host)
    path.write_text(yaml.safe_dump({"sam_resources": resources}))
    return str(path)


def _run(*argv):
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def test_render_prints_what_the_apply_step_loads_for_frr_and_gobgp(tmp_path):
    for host in ("rr-a", "leaf-a"):
        config = _config(tmp_path, host)
        state = node_state("cloudedge", host)[0]
        code, out = _run("render", "--config", config, "--node", host, "--now", NOW)
        assert code == 0 and out == render_frr(state)
        code, out = _run("render", "--config", config, "--node", host, "--now", NOW, "--format", "gobgp")
        assert code == 0 and out == render_gobgp(state)
        assert tomllib.loads(out)["global"]["config"]["as"]


def test_render_takes_the_frr_options_the_roles_pass(tmp_path):
    config = _config(tmp_path, "rr-a")
    code, out = _run("render", "--config", config, "--node", "rr-a", "--now", NOW, "--leaf-routes", "aggregate",
                     "--bfd", "--rr-peering")
    assert code == 0
    assert "prefix-list SAM-TO-LEAVES out" in out and " bfd" in out and "route-map SAM-RR-IN in" in out


def test_a_refusal_of_the_renderer_is_exit_1_with_its_reason(tmp_path, capsys):
    code, out = _run("render", "--config", _config(tmp_path, "rr-a"), "--node", "rr-a", "--now", NOW,
                     "--format", "gobgp", "--rr-peering")
    assert code == 1 and out == ""
    assert "samctl: render gobgp:" in capsys.readouterr().err


def test_invalid_documents_are_exit_1_and_an_unreadable_file_exit_2(tmp_path, capsys):
    def break_policy(resources):
        for res in resources:
            if res["kind"] == "SAMEnrollmentClaim":
                res["spec"]["tunnelAddress"] = "not-an-address"
    code, out = _run("render", "--config", _config(tmp_path, "rr-a", break_policy), "--node", "rr-a", "--now", NOW)
    assert code == 1 and out == "" and "spec.tunnelAddress" in capsys.readouterr().err
    code, _out = _run("render", "--config", str(tmp_path / "missing.yml"), "--node", "rr-a")
    assert code == 2
