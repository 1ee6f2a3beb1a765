# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/check_netbird_pin.py against a test double apt repository (file://): output and exit codes 0/1/2/3."""

import gzip
import importlib.util
import itertools
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).parents[3]
SCRIPT = ROOT / "tools" / "check_netbird_pin.py"
_SPEC = importlib.util.spec_from_file_location("check_netbird_pin", SCRIPT)
pin_check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(pin_check)

ROLE_PIN = yaml.safe_load((ROOT / "roles" / "base" / "defaults" / "main.yml").read_text())["base__mesh_version"]
STANZA = """Package: {package}
Version: {version}
Architecture: {arch}
Maintainer: NetBird <dev@netbird.io>
Filename: pool/main/n/{package}/{package}_{version}_{arch}.deb
Size: 12345
Description: Netbird client
 A WireGuard-based mesh network client.
"""


def make_repo(tmp_path, versions, arch="amd64", gz=True, extra=()):
    """A one-index apt repository: dists/stable/main/binary-<arch>/Packages(.gz) with these netbird versions."""
    repo = tmp_path / "repo"
    index = repo / "dists" / "stable" / "main" / ("binary-%s" % arch)
    index.mkdir(parents=True)
    text = "\n".join(STANZA.format(package=p, version=v, arch=a)
                     for p, v, a in [("netbird", v, arch) for v in versions] + list(extra))
    if gz:
        (index / "Packages.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (index / "Packages").write_text(text)
    return repo.as_uri()


def run(*args):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False,
                          timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(("a", "b", "sign"), [
    ("0.59.0", "0.59.0", 0), ("0.59.0", "0.59.10", -1), ("0.60.0", "0.59.10", 1), ("0.9.0", "0.10.0", -1),
    ("1.0~rc1", "1.0", -1), ("1.0", "1.0-1", -1), ("1.0-1", "1.0-1ubuntu1", -1), ("1:0.1", "2.0", 1),
    ("1.0a", "1.0+", -1), ("1.0", "1.0a", -1), ("1.0~~", "1.0~", -1), ("0.59.0-1", "0.59.0-01", 0),
    ("2.0.0", "10.0.0", -1), ("0:1.2", "1.2", 0),
])
def test_dpkg_order(a, b, sign):
    assert pin_check._sign(pin_check.dpkg_compare(a, b)) == sign
    assert pin_check._sign(pin_check.dpkg_compare(b, a)) == -sign


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="no dpkg to compare the fallback with")
def test_fallback_orders_as_dpkg_does():
    versions = ["0.59.0", "0.59.10", "1.0~rc1", "1.0", "1.0-1", "1:0.1", "1.0a", "1.0+", "1.0~~", "2.0.0", "10.0.0",
                "1.0.0+dfsg-2", "1.0.0~beta.1", "1.0.0-0.1", "1.0-~"]
    for a, b in itertools.product(versions, versions):
        lower = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
        equal = subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode == 0
        assert pin_check._sign(pin_check.dpkg_compare(a, b)) == (-1 if lower else 0 if equal else 1), (a, b)


def test_stanzas_keep_continuations_and_blank_line_separation():
    text = STANZA.format(package="netbird", version="0.59.0", arch="amd64") + "\n\n" + STANZA.format(
        package="netbird-ui", version="0.59.0", arch="amd64")
    parsed = pin_check.stanzas(text)
    assert [s["Package"] for s in parsed] == ["netbird", "netbird-ui"]
    assert parsed[0]["Description"] == "Netbird client\nA WireGuard-based mesh network client."


def test_current_pin_exits_0(tmp_path):
    url = make_repo(tmp_path, ["0.58.2", ROLE_PIN, "0.9.1"])
    code, out, err = run("--repo-url", url)
    assert code == 0, out + err
    assert "netbird amd64 offered: 0.9.1, 0.58.2, %s (newest %s)" % (ROLE_PIN, ROLE_PIN) in out
    assert "pin %s ((role default)): current: the newest version offered" % ROLE_PIN in out


def test_older_pin_exits_1_and_names_the_newest(tmp_path):
    url = make_repo(tmp_path, ["0.60.1", ROLE_PIN, "0.61.0~rc1", "0.60.0"], gz=False)
    code, out, err = run("--repo-url", url)
    assert code == 1, out + err
    assert "(newest 0.61.0~rc1)" in out
    assert "older: 3 newer version(s) offered, the newest 0.61.0~rc1" in out


@pytest.mark.parametrize(("versions", "state"), [
    (["0.58.0", "0.60.0"], "withdrawn or never published"),
    (["0.60.0", "0.61.0"], "older than anything offered"),
    (["0.50.0", "0.58.9"], "newer than anything offered"),
])
def test_missing_pin_exits_2(tmp_path, versions, state):
    url = make_repo(tmp_path, versions)
    code, out, err = run("--repo-url", url, "--version", "0.59.0")
    assert code == 2, out + err
    assert "pin 0.59.0 ((role default)): MISSING from the repository (%s)" % state in out


def test_other_packages_and_architectures_are_ignored(tmp_path):
    extra = [("netbird-ui", "0.70.0", "amd64"), ("netbird", "0.70.0", "arm64"), ("netbird", "0.59.0", "amd64")]
    url = make_repo(tmp_path, ["0.59.0"], extra=extra)
    code, out, _err = run("--repo-url", url, "--version", "0.59.0")
    assert code == 0 and "offered: 0.59.0 (newest 0.59.0)" in out


def test_the_arch_option_reads_that_index(tmp_path):
    url = make_repo(tmp_path, ["0.59.0", "0.60.0"], arch="arm64")
    assert run("--repo-url", url, "--version", "0.59.0")[0] == 3   # no binary-amd64 index
    code, out, _err = run("--repo-url", url, "--version", "0.59.0", "--arch", "arm64")
    assert code == 1 and "binary-arm64/Packages.gz: netbird arm64 offered" in out


def test_the_m5_inventory_pin_and_hosts(tmp_path):
    url = make_repo(tmp_path, [ROLE_PIN, "99.0.0"])
    code, out, err = run("--inventory", str(ROOT / "inventories" / "m5"), "--repo-url", url)
    assert code == 1, out + err
    assert "pin %s (askari, ubongo): older" % ROLE_PIN in out


def test_hosts_pinned_differently_return_the_worst_code(tmp_path):
    inventory = tmp_path / "inv"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all:\n  vars:\n    base__mesh_enabled: true\n  hosts:\n    a: {}\n"
                                         "    b: {}\n    c: {base__mesh_enabled: false}\n")
    (inventory / "host_vars" / "a.yml").write_text("base__mesh_version: '0.60.0'\n")
    (inventory / "host_vars" / "b.yml").write_text("base__mesh_version: '0.58.0'\n")
    url = make_repo(tmp_path, ["0.59.0", "0.60.0"])
    code, out, _err = run("--inventory", str(inventory), "--repo-url", url)
    assert code == 2
    assert "pin 0.60.0 (a): current" in out and "pin 0.58.0 (b): MISSING" in out and "(c)" not in out
    # The index is read once for both pins.
    assert out.count("offered:") == 1


def test_repo_knobs_come_from_the_inventory(tmp_path):
    url = make_repo(tmp_path, ["0.59.0"])
    inventory = tmp_path / "inv"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    a:\n      base__mesh_enabled: true\n"
                                         "      base__mesh_version: '0.59.0'\n      netbird_agent__repo_url: %s\n"
                                         % url)
    code, out, _err = run("--inventory", str(inventory))
    assert code == 0 and out.startswith(url + "/dists/stable/main/binary-amd64/Packages.gz")


@pytest.mark.parametrize("case", ["unreachable", "no-package", "templated-pin", "no-enrolling-host", "bad-gzip"])
def test_unchecked_exits_3(tmp_path, case):
    args = []
    if case == "unreachable":
        args = ["--repo-url", (tmp_path / "nothing").as_uri()]
    elif case == "no-package":
        args = ["--repo-url", make_repo(tmp_path, ["0.59.0"]), "--package", "netbird-server"]
    elif case == "templated-pin":
        args = ["--repo-url", make_repo(tmp_path, ["0.59.0"]), "--version", "{{ pin }}"]
    elif case == "no-enrolling-host":
        args = ["--inventory", str(ROOT / "inventories" / "cloudedge")]
    else:
        url = make_repo(tmp_path, ["0.59.0"])
        (tmp_path / "repo" / "dists" / "stable" / "main" / "binary-amd64" / "Packages.gz").write_bytes(b"not gzip")
        args = ["--repo-url", url]
    code, out, err = run(*args)
    assert code == 3, out + err
    assert err.startswith("check-netbird-pin: ")
