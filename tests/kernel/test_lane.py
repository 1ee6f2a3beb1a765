"""The kernel lane itself: the guest runs Debian's kernel, the tunnel modules are loaded, ipip carries a ping."""

import os
import subprocess

TUNNEL_MODULES = {"ipip", "fou", "ip_gre", "wireguard"}


def test_guest_runs_the_debian_kernel_not_the_hosts():
    release = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout.strip()
    assert release == os.environ["BOMA_KERNEL_KVER"]
    assert release != os.environ["BOMA_HOST_KVER"]
    with open("/proc/version") as version:
        assert "Debian" in version.read()


def test_tunnel_modules_are_loaded():
    with open("/proc/modules") as modules:
        loaded = {line.split()[0] for line in modules}
    assert TUNNEL_MODULES <= loaded, "missing: %s" % sorted(TUNNEL_MODULES - loaded)


def test_ipip_tunnel_between_namespaces_passes_a_ping(netns_pair):
    inner = {"a": "10.0.9.1", "b": "10.0.9.2"}
    for name, peer in (("a", "b"), ("b", "a")):
        ipr = netns_pair.ns[name]
        ipr.link(
            "add",
            ifname="ipip1",
            kind="ipip",
            ipip_local=netns_pair.addr[name],
            ipip_remote=netns_pair.addr[peer],
        )
        idx = ipr.link_lookup(ifname="ipip1")[0]
        ipr.addr("add", index=idx, address=inner[name], prefixlen=30)
        ipr.link("set", index=idx, state="up")

    (link,) = netns_pair.ns["a"].link("get", index=netns_pair.ns["a"].link_lookup(ifname="ipip1")[0])
    assert link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "ipip"
    result = netns_pair.ping("a", inner["b"])
    assert result.returncode == 0, result.stdout + result.stderr
