# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run tests/playbooks/playbooks/core.yml with ansible-playbook against localhost (connection local).

The collection copy under .build is rebuilt first (`make collection`).  The
expected HMAC is computed with `openssl dgst -sha256 -hmac` over a payload
written out by hand here, independently of the collection's code.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".build"
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
BIN = Path(sys.executable).parent
TIMEOUT = 600

# The canonical payload of SAMEnrollmentClaim/leaf-b in playbooks/vars/mesh.yml, as routerd defines it:
# key=value lines in this order, list items sorted and comma-joined, integers '0' when unset, no final newline.
EXPECTED_PAYLOAD = "\n".join([
    "policyRef=SAMEnrollmentPolicy/cloudedge-private-fou-leaves",
    "rrSetRef=SAMRRSet/cloudedge-rrs",
    "leafID=leaf-b",
    "joinAudience=cloudedge-private-underlay",
    "joinNonce=leaf-b-0001",
    "joinTimestamp=2026-06-28T00:00:00Z",
    "tunnelAddress=10.255.0.32/32",
    "endpoint=10.20.0.32",
    "mobility.ownedAddresses=10.77.60.32/32",
    "bgp.asn=64577",
    "bgp.routerID=10.255.0.32",
    "wireGuard.publicKey=",
    "wireGuard.endpoint=",
    "wireGuard.allowedIPs=",
    "wireGuard.persistentKeepalive=0",
])

RECAP_RE = re.compile(r"^localhost\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                      r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)"
                      r"\s+ignored=(?P<ignored>\d+)", re.MULTILINE)
# Tasks of core.yml that are expected to fail: four with ignore_errors, one rescued block.
EXPECTED_IGNORED = 4
EXPECTED_RESCUED = 1


@pytest.fixture(scope="session")
def collection():
    """Rebuild .build/ansible_collections/boma/mesh from the working tree."""
    subprocess.run(["make", "-C", str(ROOT), "collection"], check=True, capture_output=True, timeout=TIMEOUT)
    coll = BUILD / "ansible_collections" / "boma" / "mesh"
    assert (coll / "plugins" / "modules" / "sam_join_hmac.py").is_file()
    return coll


def openssl_hmac(key, text):
    openssl = shutil.which("openssl")
    assert openssl, "openssl is required (make setup installs it)"
    proc = subprocess.run([openssl, "dgst", "-sha256", "-hmac", key], input=text.encode("utf-8"),
                          capture_output=True, check=True, timeout=60)
    digest = proc.stdout.decode("ascii").strip().rsplit("=", 1)[-1].strip()
    assert re.fullmatch(r"[0-9a-f]{64}", digest), proc.stdout
    return digest


@pytest.fixture(scope="session")
def workspace(collection, tmp_path_factory):
    """A random join token in a 0600 file, the extra vars and an isolated Ansible environment."""
    base = tmp_path_factory.mktemp("sam-it")
    token = "boma-it-" + secrets.token_hex(16)
    token_file = base / "cloudedge-join-token"
    fd = os.open(str(token_file), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")  # a trailing newline, as editors write: it is trimmed
    assert token_file.stat().st_mode & 0o777 == 0o600
    extra = {
        "sam_token_file": str(token_file),
        "expected_payload": EXPECTED_PAYLOAD,
        "expected_hmac": openssl_hmac(token, EXPECTED_PAYLOAD),
        "ansible_python_interpreter": sys.executable,
    }
    extra_file = base / "extra-vars.json"
    extra_file.write_text(json.dumps(extra))
    config = base / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_COLLECTIONS_PATH": str(BUILD),
        "ANSIBLE_HOME": str(base / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(base / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(base / "ansible-remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "1",
    })
    return {"token": token, "extra_file": extra_file, "env": env}


def run_playbook(workspace, *args):
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", "@%s" % workspace["extra_file"],
           *args, "core.yml"]
    return subprocess.run(cmd, cwd=str(PLAYBOOKS), env=workspace["env"], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def recap(proc):
    match = RECAP_RE.search(proc.stdout)
    assert match, "no PLAY RECAP in output:\n%s\n%s" % (proc.stdout[-4000:], proc.stderr[-4000:])
    return {key: int(value) for key, value in match.groupdict().items()}


def assert_passed(proc):
    detail = "rc=%d\nSTDOUT:\n%s\nSTDERR:\n%s" % (proc.returncode, proc.stdout[-8000:], proc.stderr[-4000:])
    assert proc.returncode == 0, detail
    counts = recap(proc)
    assert counts["failed"] == 0 and counts["unreachable"] == 0, detail
    assert counts["changed"] == 0, detail
    assert counts["ignored"] == EXPECTED_IGNORED, detail
    assert counts["rescued"] == EXPECTED_RESCUED, detail
    return counts


def test_independent_hmac_is_sane(workspace):
    # openssl and the payload written here are the reference: cross-check them with the stdlib, not the collection.
    token = workspace["token"]
    reference = hmac.new(token.encode("ascii"), EXPECTED_PAYLOAD.encode("utf-8"), hashlib.sha256).hexdigest()
    assert openssl_hmac(token, EXPECTED_PAYLOAD) == reference
    assert openssl_hmac(token + "x", EXPECTED_PAYLOAD) != reference


def test_playbook(workspace):
    counts = assert_passed(run_playbook(workspace))
    assert counts["ok"] > 20


def test_playbook_check_mode(workspace):
    proc = run_playbook(workspace, "--check")
    assert_passed(proc)


def test_token_never_printed_at_vvv(workspace):
    proc = run_playbook(workspace, "-vvv")
    assert_passed(proc)
    token = workspace["token"]
    encoded = base64.b64encode(token.encode("ascii")).decode("ascii")
    output = proc.stdout + proc.stderr
    # -vvv prints every module result and invocation, so the check is meaningful.
    assert '"hmac_verified"' in output and '"secret": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in output
    assert token not in output
    assert encoded not in output
