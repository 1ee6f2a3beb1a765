"""Run tests/integration/playbooks/core.yml on localhost: modules, filter, check mode, no secret at -vvv."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

from boma_sam import payload

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
TOKEN = "integration-join-token-do-not-print"


def _resource(kind, name, spec):
    return {"apiVersion": "mobility.routerd.net/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def _mesh():
    claim = {
        "policyRef": "SAMEnrollmentPolicy/cloudedge-private-fou-leaves", "rrSetRef": "SAMRRSet/cloudedge-rrs",
        "leafID": "leaf-b", "joinAudience": "cloudedge-private-underlay", "joinNonce": "leaf-b-0001",
        "joinTimestamp": "2026-06-28T00:00:00Z", "tunnelAddress": "10.255.0.32/32", "endpoint": "10.20.0.32",
        "mobility": {"ownedAddresses": ["10.77.60.32/32"]}, "bgp": {"asn": 64577, "routerID": "10.255.0.32"},
    }
    claim["joinHMAC"] = payload.join_hmac(TOKEN.encode(), claim)
    return [
        _resource("SAMRRSet", "cloudedge-rrs", {"members": [
            {"nodeRef": "rr-a", "endpoint": "10.10.0.2", "tunnelAddress": "10.99.0.2/32"},
            {"nodeRef": "rr-b", "endpoint": "10.10.0.3", "tunnelAddress": "10.99.0.3/32"}]}),
        _resource("SAMEnrollmentPolicy", "cloudedge-private-fou-leaves", {
            "rrSetRef": "SAMRRSet/cloudedge-rrs", "joinTokenFrom": {"file": "/nonexistent/join-token"},
            "joinAudience": "cloudedge-private-underlay", "allowedLeafIDs": {"pattern": "^leaf-[a-z0-9-]+$"},
            "tunnelAddressPrefixes": ["10.255.0.0/20"], "endpointPrefixes": ["10.20.0.0/24"],
            "mobilityPoolRefs": ["MobilityPool/cloudedge"], "ttl": "24h"}),
        _resource("MobilityPool", "cloudedge", {"prefix": "10.77.60.0/24"}),
        _resource("SAMEnrollmentClaim", "leaf-b", claim),
    ]


def _broken():
    claim = dict(_mesh()[-1]["spec"], leafID="leaf-x", joinNonce="leaf-x-1", tunnelAddress="10.255.0.40/32",
                 endpoint="10.20.0.40", mobility={"ownedAddresses": ["10.77.61.5/32"]})
    claim["bgp"] = {"asn": 64577, "routerID": "10.255.0.40"}
    return [
        _resource("SAMEnrollmentClaim", "leaf-x", claim),
        _resource("SAMTransportProfile", "rr-a-fou", {"selfNodeRef": "rr-a", "mode": "fou"}),
    ]


def _openssl_hmac(key, text):
    out = subprocess.run(["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:" + key.hex()],
                         input=text.encode(), capture_output=True, check=True).stdout.decode()
    return out.strip().split()[-1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    subprocess.run(["make", "-C", str(REPO), "collection"], check=True, capture_output=True)
    work = tmp_path_factory.mktemp("play")
    shutil.copy(REPO / "tests/integration/playbooks/core.yml", work / "core.yml")
    mesh = _mesh()
    (work / "mesh.yml").write_text(yaml.safe_dump({"mesh_resources": mesh, "broken_resources": _broken()}))
    token = work / "join-token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    spec = mesh[-1]["spec"]
    secrets = work / "secrets.yml"
    secrets.write_text(yaml.safe_dump({
        "token_file": str(token), "join_token": TOKEN,
        "expected_payload": payload.canonical_payload(spec),
        "expected_hmac": _openssl_hmac(TOKEN.encode(), payload.canonical_payload(spec))}))
    secrets.chmod(0o600)
    return work


def _play(workdir, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, PATH=str(BIN) + os.pathsep + os.environ["PATH"])
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", "@" + str(workdir / "secrets.yml"),
           str(workdir / "core.yml"), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=workdir)


def _recap(out):
    line = next(line for line in out.splitlines() if line.startswith("localhost"))
    return dict(part.split("=") for part in line.split()[2:])


def test_playbook_runs_modules_and_filter(workdir):
    proc = _play(workdir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = _recap(proc.stdout)
    assert recap["failed"] == "0" and recap["changed"] == "0"


def test_check_mode_run_reports_no_change(workdir):
    proc = _play(workdir, "--check")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert _recap(proc.stdout)["changed"] == "0"


def test_token_never_printed_at_vvv(workdir):
    proc = _play(workdir, "-vvv")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "sam_validate" in proc.stdout and len(proc.stdout) > 10000
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
