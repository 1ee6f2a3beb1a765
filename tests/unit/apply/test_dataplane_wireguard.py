"""apply/dataplane.py: the WireGuard step of `--reconcile all` (the kernel part runs in tests/lab)."""

from boma_mesh_utils.sam.apply import dataplane, netlink


def _peer(name, key="A" * 43 + "=", allowed=("10.20.0.31/32",)):
    return {"kind": "WireGuardPeer", "metadata": {"name": name},
            "spec": {"interface": "wg0", "publicKey": key, "endpoint": "198.51.100.31:51820",
                     "allowedIPs": list(allowed), "persistentKeepalive": 0, "localAddress": "10.20.0.2"}}


def test_no_wireguard_peers_means_no_wireguard_step():
    assert dataplane._wireguard_desired([], {"key_file": "/nonexistent"}, []) is None
    assert dataplane._apply_wireguard(None, None) is None


def test_a_missing_key_file_is_a_named_error_not_a_new_key(tmp_path):
    errors = []
    assert dataplane._wireguard_desired([_peer("leaf-a")], {"key_file": str(tmp_path / "wg.key")}, errors) is None
    assert errors and "no private key" in errors[0].message and not (tmp_path / "wg.key").exists()
    assert (errors[0].resource, errors[0].rule) == ("WireGuardPeer", "private-key-missing")


def test_a_bad_peer_key_is_reported_before_netlink(tmp_path):
    key = tmp_path / "wg.key"
    netlink.create_private_key(str(key))
    errors = []
    assert dataplane._wireguard_desired([_peer("leaf-a", key="short")], {"key_file": str(key)}, errors) is None
    assert any("publicKey [wireguard-key]" in netlink.text(e) for e in errors)
    assert [(f.resource, f.path, f.rule) for f in errors] == [("resources[0].spec", "publicKey", "wireguard-key")]


def test_the_plan_uses_the_local_address_and_purges(tmp_path, monkeypatch):
    key = tmp_path / "wg.key"
    netlink.create_private_key(str(key))
    seen = {}

    def plan(ipr, netns, interface, desired, state, purge):
        seen.update(interface=interface, desired=desired, state=state, purge=purge)
        return ["planned"]

    monkeypatch.setattr(dataplane.netlink, "plan_wireguard", plan)
    monkeypatch.setattr(dataplane.netlink, "apply_actions", lambda ipr, actions, netns, **keys: seen.update(
        applied=actions, keys=keys))
    errors = []
    wireguard = {"key_file": str(key), "listen_port": 51820}
    wg = dataplane._wireguard_desired([_peer("leaf-a")], wireguard, errors)
    _desired, private, interface = wg
    actions = dataplane._apply_wireguard(None, wg)
    assert errors == [] and actions == ["planned"] and interface == "wg0" and private
    assert seen["applied"] == ["planned"] and seen["keys"] == {"private_key": private, "interface": "wg0"}
    assert seen["desired"]["address"] == "10.20.0.2/32" and seen["desired"]["listen_port"] == 51820
    assert [p["allowed_ips"] for p in seen["desired"]["peers"]] == [["10.20.0.31/32"]]
    assert seen["purge"] is True and seen["state"] == "present"
    assert private not in repr(seen["desired"])
