"""The leaf client (`samctl enrollment-join`, `samctl claim`) against real RR services."""

import json
import os
import stat
import subprocess

from harness import ADMIN_TOKEN, JOIN_KEY, LEAF_TOKEN, SAMCTL, Mesh, claims, secret

from boma_mesh_utils.sam.core import wire


def join(mesh, endpoints, state, *extra):
    claim = claims(1)[0] if not hasattr(mesh, "claim") else mesh.claim
    mesh.claim = claim
    path = mesh.tmp / "leaf.json"
    path.write_text(json.dumps({"resources": [claim]}))
    argv = [SAMCTL, "enrollment-join", "--claim", "leaf-0", "--config", str(path), "--state-file", str(state),
            "--token-file", mesh.leaf_token, "--join-token-file", mesh.join_token]
    for endpoint in endpoints:
        argv += ["--rr-socket" if endpoint.startswith("/") else "--rr-url", endpoint]
    return subprocess.run(argv + list(extra), capture_output=True, text=True, timeout=60, check=False)


def test_leaf_joins_through_the_first_rr_that_answers_and_then_stays_quiet(pair, mesh):
    rr_a, rr_b = pair
    state = mesh.tmp / "state" / "enroll.json"
    state.parent.mkdir()
    first = join(mesh, ["http://127.0.0.1:9", rr_b.socket], state)
    assert first.returncode == 0, first.stderr
    assert "unix:" in first.stdout
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    saved = json.loads(state.read_text())
    assert [m["nodeRef"] for m in saved["rrSet"]["spec"]["members"]] == ["rr-a", "rr-b"]
    for value in (LEAF_TOKEN, JOIN_KEY.decode(), ADMIN_TOKEN):
        assert value not in state.read_text() and value not in first.stdout + first.stderr
    # A second run with a fresh state contacts nobody: even with every RR down it succeeds unchanged.
    rr_a.stop()
    rr_b.stop()
    again = join(mesh, [rr_a.url, rr_b.url], state)
    assert again.returncode == 0 and "fresh" in again.stdout
    assert json.loads(state.read_text()) == saved


def test_leaf_restart_with_lost_state_fetches_again_despite_the_used_nonce(pair, mesh):
    rr_a, _rr_b = pair
    state = mesh.tmp / "enroll.json"
    assert join(mesh, [rr_a.url], state).returncode == 0
    state.unlink()
    again = join(mesh, [rr_a.url], state)
    assert again.returncode == 0, again.stderr
    assert json.loads(state.read_text())["rrSet"]["metadata"]["name"] == "rrs"


def test_an_impostor_rr_without_the_join_token_is_refused(tmp_path, mesh):
    fake = Mesh(tmp_path / "impostor") if (tmp_path / "impostor").mkdir() is None else None
    # The impostor serves the same policy with another join token: it cannot produce the response MAC.
    secret(fake.tmp / "join-token", "not-the-real-token")
    impostor, real = fake.rr("rr-x").start(), mesh.rr("rr-a").start()
    try:
        state = mesh.tmp / "enroll.json"
        # The leaf's claim is signed with the real token, so the impostor even refuses it (422, MAC-less
        # or with its own MAC): the client must not take its word, and must end at the real RR.
        result = join(mesh, [impostor.url, real.url], state)
        assert result.returncode == 0, result.stderr
        assert real.url in result.stdout
    finally:
        impostor.stop()
        real.stop()


def test_admin_revocation_then_the_leaf_refresh_fails_and_backs_off(pair, mesh):
    rr_a, rr_b = pair
    state = mesh.tmp / "enroll.json"
    assert join(mesh, [rr_a.url], state).returncode == 0
    revoke = subprocess.run([SAMCTL, "claim", "revoke", "leaf-0", "--reason", "test", "--rr-url", rr_b.url,
                             "--admin-token-file", mesh.admin_token], capture_output=True, text=True, check=False)
    assert revoke.returncode == 0, revoke.stderr
    forced = join(mesh, [rr_a.url, rr_b.url], state, "--force")
    assert forced.returncode == 1 and "claim-revoked" in forced.stdout + forced.stderr
    saved = json.loads(state.read_text())
    assert saved["failures"] == 1 and saved["nextAttemptAt"]
    resp = rr_a.admin("GET", wire.claims_path())
    assert json.loads(resp.body)["items"][0]["revoked"] is True
