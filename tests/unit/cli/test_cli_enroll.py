"""samctl enrollment-join and samctl claim against the fake RR: output lines, exit codes, no token anywhere."""

import copy
import io
import json
import os
import stat

import pytest
from conftest import base_mesh, find
from enroll_fake import ADMIN_TOKEN, API_TOKEN, JOIN_TOKEN, FakeRR

from boma_mesh_utils.sam.cli import main as cli

SECRETS = (API_TOKEN, ADMIN_TOKEN, JOIN_TOKEN.decode())


def samctl(argv, capsys):
    """samctl's own main (dispatch and exit codes), output captured; no token may appear in it."""
    out = io.StringIO()
    code = cli.main(argv, out)
    err = capsys.readouterr().err
    for secret in SECRETS:
        assert secret not in out.getvalue() + err
    return code, out.getvalue(), err


@pytest.fixture
def leaf(tmp_path):
    """Paths of a leaf: config (claim + its policy reading the join token file), token files, state file."""
    (tmp_path / "join-token").write_bytes(JOIN_TOKEN + b"\n")
    (tmp_path / "api-token").write_text(API_TOKEN + "\n")
    (tmp_path / "admin-token").write_text(ADMIN_TOKEN)
    mesh = base_mesh()
    policy = copy.deepcopy(find(mesh, "SAMEnrollmentPolicy", "cloudedge-private-fou-leaves"))
    policy["spec"]["joinTokenFrom"] = {"file": str(tmp_path / "join-token")}
    config = tmp_path / "leaf.json"
    config.write_text(json.dumps({"resources": [policy, find(mesh, "SAMEnrollmentClaim", "leaf-b")]}))
    return tmp_path


@pytest.fixture
def rr():
    server = FakeRR()
    yield server
    server.stop()


def join_args(leaf, *urls, extra=()):
    argv = ["enrollment-join", "--claim", "leaf-b", "--config", str(leaf / "leaf.json"),
            "--state-file", str(leaf / "state.json"), "--token-file", str(leaf / "api-token"), "--timeout", "2"]
    for url in urls:
        argv += ["--rr-socket", url[5:]] if url.startswith("unix:") else ["--rr-url", url]
    return argv + list(extra)


def test_join_then_fresh(leaf, rr, capsys):
    code, out, err = samctl(join_args(leaf, rr.url), capsys)
    assert code == 0 and out == "refreshed from %s: expires %s\n" % (rr.url, rr.expires_at), err
    state_path = leaf / "state.json"
    assert stat.S_IMODE(os.stat(state_path).st_mode) == 0o600
    before = state_path.read_text()
    code, out, err = samctl(join_args(leaf, rr.url), capsys)
    assert code == 0 and out == "fresh: nothing to do (expires %s)\n" % rr.expires_at
    assert len(rr.requests) == 2 and state_path.read_text() == before
    code, out, err = samctl(join_args(leaf, rr.url, extra=["--force"]), capsys)
    assert code == 0 and out.endswith("(lease unchanged)\n") and [s for *_r, s in rr.requests][-2:] == [409, 200]


def test_join_token_file_overrides_the_policy_and_order_is_kept(leaf, rr, capsys):
    (leaf / "other").write_bytes(JOIN_TOKEN)
    impostor = FakeRR(mode="no-mac")
    try:
        argv = join_args(leaf, impostor.url, rr.url, extra=["--join-token-file", str(leaf / "other")])
        code, out, err = samctl(argv, capsys)
    finally:
        impostor.stop()
    assert code == 0 and out.startswith("refreshed from " + rr.url)
    assert "note: skipped response MAC missing or invalid from %s" % impostor.url in err


def test_refused_and_unreachable_exit_1_and_record_the_backoff(leaf, capsys):
    refusing = FakeRR(mode="reject")
    try:
        code, out, err = samctl(join_args(leaf, refusing.url), capsys)
    finally:
        refusing.stop()
    assert code == 1 and out.startswith("failed: join-hmac: spec.joinHMAC: does not match [spec.endpoint, spec.jo")
    assert "; next attempt after 20" in out
    state = json.loads((leaf / "state.json").read_text())
    assert state["failures"] == 1
    code, out, err = samctl(join_args(leaf, refusing.url), capsys)
    assert code == 0 and out.startswith("backoff: next attempt after %s (last error: join-hmac: " % (
        state["nextAttemptAt"]))
    code, out, err = samctl(join_args(leaf, "unix:" + str(leaf / "nope.sock"), extra=["--force"]), capsys)
    assert code == 1 and out.startswith("failed: unreachable: no RR gave a usable answer: unix:")


@pytest.mark.parametrize("change, message", [
    (lambda leaf: (leaf / "leaf.json").unlink(), "leaf.json: no such file"),
    (lambda leaf: (leaf / "api-token").unlink(), "--token-file: token file"),
    (lambda leaf: (leaf / "join-token").unlink(), "join token: token file"),
    (lambda leaf: (leaf / "api-token").write_text("two words"), "not allowed in an HTTP header"),
    (lambda leaf: (leaf / "leaf.json").write_text('{"resources": []}'), "SAMEnrollmentClaim/leaf-b not found"),
])
def test_unreadable_input_exits_2(leaf, rr, capsys, change, message):
    change(leaf)
    code, out, err = samctl(join_args(leaf, rr.url), capsys)
    assert code == 2 and message.lower() in err.lower().replace("no such file or directory", "no such file"), err
    assert rr.requests == []


def test_missing_endpoint_and_corrupt_state(leaf, rr, capsys):
    assert samctl(join_args(leaf), capsys)[0] == 2
    (leaf / "state.json").write_text("garbage")
    code, out, err = samctl(join_args(leaf, rr.url), capsys)
    assert code == 0 and "is not valid JSON; starting over" in err


def admin_args(leaf, rr, *action, output="text"):
    return ["claim", *action, "--rr-url", rr.url, "--admin-token-file", str(leaf / "admin-token"), "-o", output]


def test_claim_admin_commands(leaf, rr, capsys):
    rr.accept("leaf-b", find(base_mesh(), "SAMEnrollmentClaim", "leaf-b")["spec"])
    code, out, err = samctl(admin_args(leaf, rr, "list"), capsys)
    assert code == 0 and out.startswith("leaf-b\tactive\tgeneration 1\t") and out.endswith("1 claim(s)\n")
    code, out, err = samctl(admin_args(leaf, rr, "expire", "leaf-b", "--expires-at", "2026-11-23T18:00:00Z"), capsys)
    assert (code, out) == (0, "SAMEnrollmentClaim/leaf-b expires 2026-11-23T18:00:00Z\n")
    code, out, err = samctl(admin_args(leaf, rr, "expire", "leaf-b", "--expires-at", "2030-01-01T00:00:00Z"), capsys)
    assert code == 1 and "expiry-extend" in err
    code, out, err = samctl(admin_args(leaf, rr, "revoke", "leaf-b", "--reason", "lost"), capsys)
    assert (code, out) == (0, "revoked SAMEnrollmentClaim/leaf-b\n")
    code, out, err = samctl(admin_args(leaf, rr, "audit", "--limit", "1"), capsys)
    assert (code, out) == (0, "%s\trevoked\tleaf-b\treason=lost\n" % rr.expires_at)
    code, out, err = samctl(admin_args(leaf, rr, "audit", "--limit", "5", output="json"), capsys)
    assert code == 0 and json.loads(out)["items"][0]["event"] == "revoked"
    code, out, err = samctl(admin_args(leaf, rr, "list", output="json"), capsys)
    assert json.loads(out)["items"][0]["revokedReason"] == "lost"


def test_claim_with_the_leaf_token_is_refused(leaf, rr, capsys):
    argv = ["claim", "list", "--rr-url", rr.url, "--admin-token-file", str(leaf / "api-token")]
    code, out, err = samctl(argv, capsys)
    assert code == 1 and "forbidden" in err
