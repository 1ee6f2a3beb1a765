# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the NetBird agent pin (base__mesh_version) against the versions the configured apt repository offers.

Usage: check_netbird_pin.py [--inventory DIR] [--version V] [--repo-url URL] [--suite S] [--component C]
                            [--arch A] [--package P] [--timeout SECONDS]
(`make check-netbird-pin [INVENTORY=inventories/m5] [ARCH=arm64]`; docs/netbird.md "Upgrading the pin")

The pin is ADR-011's: the role installs exactly `netbird=<pin>`, so a pin the repository no longer offers fails
the next install, and a pin far behind the newest misses fixes. The pin comes from --version, else from each
enrolling host of --inventory (base__mesh_enabled true; its base__mesh_version, else the role default), else
from roles/base/defaults/main.yml. The repository is netbird_agent's: netbird_agent__repo_url, _repo_suite and
_repo_component (the host's, else the role defaults), unless given here. The index read is
<repo>/dists/<suite>/<component>/binary-<arch>/Packages.gz (then Packages, uncompressed), by urllib: any
http(s) or file:// URL, so a test double repository works like the real one.

Versions are compared by apt_pkg.version_compare when python3-apt is importable, else by the same dpkg
algorithm written out below (epoch, upstream, revision; `~` sorts before everything, letters before other
symbols), which gives the same order for every well-formed Debian version.

Exit codes: 0 the pin is the newest version offered (current); 1 the pin is offered but a newer one is
(older); 2 the pin is not offered at all (missing: `apt-get install netbird=<pin>` would fail); 3 the check
could not be made (repository unreachable, no index, no such package, a pin that is not a literal version).
With several pins (hosts pinned differently) the highest of their codes is returned.
"""

import argparse
import gzip
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CURRENT, OLDER, MISSING, UNCHECKED = 0, 1, 2, 3
REPO_KNOBS = ("netbird_agent__repo_url", "netbird_agent__repo_suite", "netbird_agent__repo_component")
TRUE = ("true", "yes", "on", "1")


class CheckError(Exception):
    pass


# --- Debian version order -------------------------------------------------------------------------------------

def _order(char):
    """dpkg's order(): digits and the end 0, `~` before everything, letters before other symbols."""
    if not char or char.isdigit():
        return 0
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _verrevcmp(a, b):
    """dpkg's verrevcmp(): alternate non-digit runs (by _order) and digit runs (numerically)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i] if i < len(a) else "")
            bc = _order(b[j] if j < len(b) else "")
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and j < len(b) and a[i].isdigit() and b[j].isdigit():
            first_diff = first_diff or ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split(version):
    epoch, _sep, rest = version.partition(":") if ":" in version else ("0", "", version)
    upstream, _sep, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def dpkg_compare(a, b):
    """<0, 0, >0 as Debian orders versions a and b (the fallback when apt_pkg is not importable)."""
    (ea, ua, ra), (eb, ub, rb) = _split(a), _split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def version_compare(a, b):
    try:
        import apt_pkg  # noqa: PLC0415 - python3-apt, when this runs on a Debian host's python
    except ImportError:
        return dpkg_compare(a, b)
    apt_pkg.init_system()
    return apt_pkg.version_compare(a, b)


def _sign(value):
    return (value > 0) - (value < 0)


# --- The repository index -------------------------------------------------------------------------------------

def stanzas(text):
    """Each paragraph of a Packages index as {field: value} (continuation lines appended, as deb822 does)."""
    out, current, last = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last:
            current[last] += "\n" + line.strip()
        elif ":" in line:
            last, _sep, value = line.partition(":")
            last = last.strip()
            current[last] = value.strip()
    if current:
        out.append(current)
    return out


def index_urls(repo_url, suite, component, arch):
    base = "%s/dists/%s/%s/binary-%s/Packages" % (repo_url.rstrip("/"), suite, component, arch)
    return [base + ".gz", base]


def fetch_index(repo_url, suite, component, arch, timeout):
    """(url, text) of the first index that can be read; CheckError naming every URL tried otherwise."""
    tried = []
    for url in index_urls(repo_url, suite, component, arch):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - repository URL by design
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            tried.append("%s (%s)" % (url, getattr(exc, "reason", None) or exc))
            continue
        if url.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                tried.append("%s (%s)" % (url, exc))
                continue
        return url, data.decode("utf-8", "replace")
    raise CheckError("no Packages index could be read: " + "; ".join(tried))


def offered(text, package, arch):
    """The versions of ``package`` for ``arch`` (or all) in an index, oldest first, each once."""
    versions = {s["Version"] for s in stanzas(text)
                if s.get("Package") == package and s.get("Version") and s.get("Architecture", arch) in (arch, "all")}
    out = []
    for version in versions:
        at = len(out)
        while at > 0 and version_compare(out[at - 1], version) > 0:
            at -= 1
        out.insert(at, version)
    return out


def verdict(pin, versions):
    """(exit code, words) of one pin against the offered versions (oldest first)."""
    newest = versions[-1]
    if not any(version_compare(pin, v) == 0 for v in versions):
        if version_compare(pin, newest) > 0:
            state = "newer than anything offered"
        elif version_compare(pin, versions[0]) < 0:
            state = "older than anything offered"
        else:
            state = "withdrawn or never published"
        return MISSING, "MISSING from the repository (%s); the newest is %s" % (state, newest)
    if version_compare(pin, newest) == 0:
        return CURRENT, "current: the newest version offered"
    newer = [v for v in versions if version_compare(v, pin) > 0]
    return OLDER, "older: %d newer version(s) offered, the newest %s" % (len(newer), newest)


# --- Where the pin and the repository come from ----------------------------------------------------------------

def _defaults(role):
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _literal(name, value):
    text = str(value).strip()
    if not text or "{{" in text or "{%" in text:
        raise CheckError("%s is %r, not a literal value this check can read" % (name, value))
    return text


def targets(args):
    """{(repo_url, suite, component, pin): [hosts]}: what to check, from the options, the inventory, the roles."""
    base, agent = _defaults("base"), _defaults("netbird_agent")
    overrides = {"netbird_agent__repo_url": args.repo_url, "netbird_agent__repo_suite": args.suite,
                 "netbird_agent__repo_component": args.component}
    hosts = {"(role default)": {}}
    if args.inventory:
        from boma_mesh_utils.sam.cli.common import InputError  # noqa: PLC0415
        from boma_mesh_utils.sam.cli.preflight import load_inventory  # noqa: PLC0415 - samctl preflight's reader

        try:
            inventory = load_inventory(str(args.inventory))
        except InputError as exc:
            raise CheckError(str(exc)) from None
        hosts = {h: e["vars"] for h, e in inventory["hosts"].items()
                 if str(e["vars"].get("base__mesh_enabled", base.get("base__mesh_enabled"))).lower() in TRUE}
        if not hosts:
            raise CheckError("no host of %s enrols (base__mesh_enabled true); leave out --inventory to check the "
                             "role default" % args.inventory)
    out = {}
    for host, knobs in sorted(hosts.items()):
        repo = tuple(_literal(k, overrides[k] or knobs.get(k, agent[k])) for k in REPO_KNOBS)
        pin = args.version or knobs.get("base__mesh_version", base["base__mesh_version"])
        pin = _literal("base__mesh_version", pin)
        out.setdefault((*repo, pin), []).append(host)
    return out


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="check_netbird_pin.py", description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--inventory", "-i", type=Path, metavar="DIR",
                        help="static YAML inventory: the pins of its enrolling hosts (default: the role default)")
    parser.add_argument("--version", help="check this version instead of the configured pin (before a bump)")
    parser.add_argument("--repo-url", help="apt repository URL (default: netbird_agent__repo_url)")
    parser.add_argument("--suite", help="suite (default: netbird_agent__repo_suite)")
    parser.add_argument("--component", help="component (default: netbird_agent__repo_component)")
    parser.add_argument("--arch", default="amd64", help="Debian architecture of the hosts (default: amd64)")
    parser.add_argument("--package", default="netbird", help="package name (default: netbird)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: 30)")
    return parser.parse_args(argv[1:])


def main(argv):
    args = parse_args(argv)
    try:
        checks = targets(args)
    except CheckError as exc:
        print("check-netbird-pin: %s" % exc, file=sys.stderr)
        return UNCHECKED
    indexes, code = {}, CURRENT
    for (repo_url, suite, component, pin), hosts in checks.items():
        key = (repo_url, suite, component)
        try:
            if key not in indexes:
                url, text = fetch_index(repo_url, suite, component, args.arch, args.timeout)
                versions = offered(text, args.package, args.arch)
                if not versions:
                    raise CheckError("%s offers no %s package for %s" % (url, args.package, args.arch))
                indexes[key] = (url, versions)
                print("%s: %s %s offered: %s (newest %s)"
                      % (url, args.package, args.arch, ", ".join(versions), versions[-1]))
        except CheckError as exc:
            print("check-netbird-pin: %s" % exc, file=sys.stderr)
            code = max(code, UNCHECKED)
            continue
        result, words = verdict(pin, indexes[key][1])
        print("pin %s (%s): %s" % (pin, ", ".join(hosts), words))
        code = max(code, result)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
