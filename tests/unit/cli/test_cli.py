"""samctl enrollment-hmac and validate: output, exit codes, and no secret in any output."""

import io
import json
import subprocess
import sys

import yaml
from conftest import TOKEN, base_mesh, find

from boma_mesh_utils.sam.cli import main as cli
from boma_mesh_utils.sam.core import payload


def _write(tmp_path, docs, name="mesh.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"apiVersion": "routerd.net/v1alpha1", "kind": "Router",
                                    "metadata": {"name": "rr-a"}, "spec": {"resources": docs}}))
    return str(path)


def _token(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(TOKEN + b"\n")
    path.chmod(0o600)
    return str(path)


def _run(argv):
    out = io.StringIO()
    code = cli.main(argv, out=out)
    return code, out.getvalue()


def test_enrollment_hmac_prints_lowercase_hex(tmp_path):
    docs = base_mesh()
    code, out = _run(["enrollment-hmac", "--config", _write(tmp_path, docs), "--claim", "leaf-b",
                      "--secret-file", _token(tmp_path)])
    assert code == 0
    assert out == find(docs, "SAMEnrollmentClaim", "leaf-b")["spec"]["joinHMAC"] + "\n"


def test_enrollment_hmac_show_payload_prints_exact_payload_then_hmac(tmp_path, monkeypatch):
    docs = base_mesh()
    monkeypatch.setenv("JOIN_TOKEN", TOKEN.decode())
    code, out = _run(["enrollment-hmac", "--config", _write(tmp_path, docs), "--claim", "SAMEnrollmentClaim/leaf-b",
                      "--secret-env", "JOIN_TOKEN", "--show-payload"])
    spec = find(docs, "SAMEnrollmentClaim", "leaf-b")["spec"]
    assert code == 0
    assert out == payload.canonical_payload(spec) + "\n---\n" + spec["joinHMAC"] + "\n"
    assert TOKEN.decode() not in out


def test_enrollment_hmac_unknown_claim_and_missing_secret_exit_2(tmp_path, capsys):
    config = _write(tmp_path, base_mesh())
    assert _run(["enrollment-hmac", "--config", config, "--claim", "nope", "--secret-file", _token(tmp_path)])[0] == 2
    assert _run(["enrollment-hmac", "--config", config, "--claim", "leaf-b", "--secret-file", "/nonexistent"])[0] == 2
    assert "does not exist" in capsys.readouterr().err


def test_validate_exit_codes(tmp_path, capsys):
    docs = base_mesh()
    good = _write(tmp_path, docs)
    token = _token(tmp_path)
    tokens = ["--token-file", "cloudedge-leaves=" + token, "--token-file", "cloudedge-private-fou-leaves=" + token,
              "--token-file", "SAMEnrollmentPolicy/cloudedge-public-wg-leaves=" + token]
    code, out = _run(["validate", "--config", good, "--now", "2026-06-28T01:00:00Z"] + tokens)
    assert code == 0 and "HMAC verified for 3" in out
    find(docs, "SAMEnrollmentClaim", "leaf-b")["spec"]["mobility"]["ownedAddresses"] = ["10.77.61.5/32"]
    code, out = _run(["validate", "--config", _write(tmp_path, docs, "bad.yaml"), "--now",
                      "2026-06-28T01:00:00Z"] + tokens)
    assert code == 1 and "[mobility-pool-owned]" in out and "[join-hmac]" in out
    (tmp_path / "broken.yaml").write_text("spec: [unclosed\n")
    assert _run(["validate", "--config", str(tmp_path / "broken.yaml")])[0] == 2
    assert _run(["validate", "--config", str(tmp_path / "missing.yaml")])[0] == 2
    assert "invalid YAML" in capsys.readouterr().err


def test_validate_json_output_and_no_secret(tmp_path):
    token = _token(tmp_path)
    code, out = _run(["validate", "--config", _write(tmp_path, base_mesh()), "-o", "json", "--now",
                      "2026-06-28T01:00:00Z", "--token-file", "cloudedge-leaves=" + token])
    data = json.loads(out)
    assert code == 0 and data["ok"] and sorted(data["unverified"]) == ["leaf-a", "leaf-b"]
    assert TOKEN.decode() not in out


def test_samctl_console_script_is_installed():
    bindir = __import__("pathlib").Path(sys.executable).parent
    result = subprocess.run([str(bindir / "samctl"), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "enrollment-hmac" in result.stdout


def test_unquoted_yaml_timestamp_is_signed_as_written(tmp_path):
    docs = base_mesh()
    spec = find(docs, "SAMEnrollmentClaim", "leaf-b")["spec"]
    text = (tmp_path / _write(tmp_path, docs)).read_text().replace("'2026-06-28T00:00:00Z'", "2026-06-28T00:00:00.000Z")
    (tmp_path / "unquoted.yaml").write_text(text)
    code, out = _run(["enrollment-hmac", "--config", str(tmp_path / "unquoted.yaml"), "--claim", "leaf-b",
                      "--secret-file", _token(tmp_path), "--show-payload"])
    assert code == 0 and "joinTimestamp=2026-06-28T00:00:00.000Z\n" in out, "routerd reads it into a Go string"
    assert spec["joinTimestamp"] == "2026-06-28T00:00:00Z"


def test_datetime_from_an_ansible_yaml_loader_renders_as_rfc3339():
    import datetime as dt  # noqa: PLC0415
    spec = {"joinTimestamp": dt.datetime(2026, 6, 28, tzinfo=dt.timezone.utc)}
    assert "joinTimestamp=2026-06-28T00:00:00Z" in payload.canonical_payload(spec)


def test_token_file_override_is_decoded_like_the_policys_own_token(tmp_path):
    import base64  # noqa: PLC0415
    docs = base_mesh()
    find(docs, "SAMEnrollmentPolicy", "cloudedge-private-fou-leaves")["spec"]["joinTokenFrom"]["base64"] = True
    token = tmp_path / "b64"
    token.write_text(base64.b64encode(TOKEN).decode() + "\n")
    code, out = _run(["validate", "--config", _write(tmp_path, docs), "--now", "2026-06-28T01:00:00Z", "-o", "json",
                      "--token-file", "cloudedge-private-fou-leaves=" + str(token)])
    assert code == 0 and json.loads(out)["verified"] == ["leaf-b"]
