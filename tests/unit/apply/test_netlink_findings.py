"""apply/netlink reports core.findings.Finding objects; one table (netlink/options.py) words them per module.

No kernel here: validation runs before any netlink call, and the table is checked against each module's
documented options, so a Finding about a module's own options always names an option the user can set.
"""

import importlib

import pytest
import yaml
from inprocess import collection_on_path

from boma_mesh_utils.sam.apply import netlink
from boma_mesh_utils.sam.apply.netlink import options
from boma_mesh_utils.sam.core.findings import ERROR, Finding

_COLLECTION_BASE = collection_on_path()
MODULES = sorted(options.OPTION_NAMES)


def documented_options(name):
    module = importlib.import_module("ansible_collections.boma.mesh.plugins.modules." + name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert "boma.mesh.netlink" in doc["extends_documentation_fragment"]
    return set(doc["options"]) | {"netns"}  # netns comes from the boma.mesh.netlink fragment


def test_the_table_covers_exactly_the_three_netlink_modules():
    assert MODULES == ["sam_route", "sam_tunnel", "sam_wireguard"]


@pytest.mark.parametrize("name", MODULES)
def test_every_option_in_the_table_is_a_documented_option_of_its_module(name):
    documented = documented_options(name)
    for field, option in options.OPTION_NAMES[name].items():
        assert set(option.split("/")) <= documented, "%s: %s -> %s is not an option" % (name, field, option)


def _bad_tunnel():
    return {"ifname": "much-too-long-a-name", "mode": "fou", "local": "x", "remote": "y", "underlayInterface": "a b",
            "address": "nope", "peerAddress": "nope", "encapSport": 0, "key": 7, "mtu": 3}


def _option_findings(name):
    """Every Finding a module can get about its own options (each validator fed bad values)."""
    errors = []
    if name == "sam_tunnel":
        netlink.tunnel_from_spec(_bad_tunnel(), options.OPTIONS, errors)
        netlink.tunnel_from_spec({"ifname": "sam-x", "mode": "ipip", "local": "10.0.0.1", "remote": "10.0.0.2",
                                  "encapDport": 5555}, options.OPTIONS, errors)
    elif name == "sam_route":
        netlink.route_from_spec({"destination": "10.0.0.0/33", "device": "", "source": "x"}, options.OPTIONS, errors)
        netlink.loopback_from_list(["10.0.0.0/24", "bad"], options.OPTIONS, "loopbackAddresses", errors)
        errors.append(Finding(options.OPTIONS, "loopbackInterface", "device-missing", "as plan_routes says"))
    else:
        netlink.parse_interface("bad", options.OPTIONS, "address", errors)
        errors += [Finding(options.OPTIONS, field, "rule", "as the module says")
                   for field in ("interface", "listenPort", "privateKeyPath")]
    with pytest.raises(netlink.NetlinkConfigError) as exc:
        netlink.open_ipr("no/such/namespace")
    return errors + exc.value.findings


@pytest.mark.parametrize("name", MODULES)
def test_a_finding_about_the_options_names_the_option(name):
    documented = documented_options(name)
    findings = _option_findings(name)
    assert findings and all(isinstance(f, Finding) and f.severity == ERROR for f in findings)
    for finding in findings:
        where = options.location(finding, name)
        assert set(where.split("[")[0].split("/")) <= documented, (name, finding)
        assert options.text(finding, name) == "%s [%s] %s" % (where, finding.rule, finding.message)


def test_the_single_tunnel_options_are_reported_by_option_name():
    errors = []
    assert netlink.tunnel_from_spec(_bad_tunnel(), options.OPTIONS, errors) is None
    lines = [options.text(f, "sam_tunnel") for f in errors]
    assert "encap_sport [port] 0 is not a UDP port (1-65535)" in lines
    assert "encap_sport/encap_dport [fou-ports] mode fou needs both encap ports" in lines
    assert "underlay_interface [ifname] 'a b' is not an interface name" in lines
    assert "peer_address [ipv4-interface] 'nope' is not an address with prefix length" in lines
    assert [f.rule for f in errors] == ["ifname", "port", "fou-ports", "ifname", "gre-key", "ipv4-address",
                                        "ipv4-address", "ipv4-interface", "ipv4-interface", "mtu"]


def test_an_item_of_resources_is_named_by_its_path_and_spec_field():
    errors = []
    spec = {"ifname": "sam-fou", "mode": "fou", "local": "10.0.0.1", "remote": "10.0.0.2", "encapSport": 5555}
    assert netlink.tunnel_from_spec(spec, "resources[3].spec", errors) is None
    (finding,) = errors
    assert (finding.resource, finding.path, finding.rule) == ("resources[3].spec", "encapSport/encapDport", "fou-ports")
    # the same words for every module and for the RR's reconcile (no module): the user wrote the spec
    for name in MODULES + [None]:
        assert options.text(finding, name) == ("resources[3].spec.encapSport/encapDport [fou-ports] "
                                               "mode fou needs both encap ports")


def test_an_index_is_kept_and_an_unknown_field_is_left_as_it_is():
    assert options.option_of("loopbackAddresses[2]", "sam_route") == "loopback_addresses[2]"
    assert options.option_of("loopbackAddresses", "sam_route") == "loopback_addresses"
    assert options.option_of("loopbackAddressesX", "sam_route") == "loopbackAddressesX"
    assert options.option_of("encapSport", None) == "encapSport"


def test_duplicates_name_both_places():
    errors = []
    route = {"destination": "10.99.0.2/32", "device": "sam-a", "source": None}
    netlink.check_route_set([route, dict(route)], ["resources[0].spec", "resources[4].spec"], errors)
    assert [options.text(f, "sam_route") for f in errors] == [
        "resources[4].spec.destination [duplicate] 10.99.0.2/32 is also at resources[0].spec"]
    errors = []
    peer = {"public_key": "A" * 43 + "="}
    netlink.check_peer_set([peer, peer], ["resources[1].spec", "peers[0]"], errors)
    assert [(f.resource, f.path, f.rule) for f in errors] == [("peers[0]", "publicKey", "duplicate")]


def test_the_config_error_carries_findings_and_reads_as_text():
    findings = [Finding("route 10.99.0.2/32", "device", "device-missing", "interface sam-a does not exist"),
                Finding(options.OPTIONS, "loopbackInterface", "device-missing", "interface lo does not exist")]
    exc = netlink.NetlinkConfigError(findings)
    assert exc.findings == findings
    assert str(exc) == ("route 10.99.0.2/32.device [device-missing] interface sam-a does not exist; "
                        "loopbackInterface [device-missing] interface lo does not exist")
    assert options.as_dict(findings[1], "sam_route") == {
        "resource": "", "path": "loopbackInterface", "rule": "device-missing",
        "message": "interface lo does not exist", "severity": ERROR, "location": "loopback_interface"}


def test_the_modules_never_read_error_text_back():
    """The table is the only place a field becomes an option: no module splits or maps message strings."""
    for name in MODULES:
        module = importlib.import_module("ansible_collections.boma.mesh.plugins.modules." + name)
        source = open(module.__file__, encoding="utf-8").read()
        for needle in ("OPTION_NAMES = {", ".partition(", ".lstrip(", "import re\n", ".errors"):
            assert needle not in source, "%s: %s" % (name, needle)
