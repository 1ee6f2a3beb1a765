"""module_utils/netbird/status.py: `netbird status --json` as the real agent prints it -> the picked state."""

import copy
import json

import pytest

from boma_mesh_utils.netbird.status import StatusError, find_peer, missing_peers, parse, problems

# Shaped as netbirdio/netbird client/status/status.go OutputOverview marshals it (0.59-era fields; values made up).
CONNECTED = {
    "peers": {
        "total": 3,
        "connected": 2,
        "details": [
            {"fqdn": "askari.netbird.selfhosted", "netbirdIp": "100.64.0.1", "publicKey": "A" * 43 + "=",
             "status": "Connected", "lastStatusUpdate": "2026-06-28T01:00:00Z", "connectionType": "P2P",
             "iceCandidateType": {"local": "host", "remote": "srflx"},
             "iceCandidateEndpoint": {"local": "10.0.0.5:51820", "remote": "203.0.113.7:51820"},
             "relayAddress": "", "lastWireguardHandshake": "2026-06-28T01:00:05Z", "transferReceived": 1200,
             "transferSent": 900, "latency": 1500000, "quantumResistance": False, "networks": []},
            {"fqdn": "ubongo.netbird.selfhosted", "netbirdIp": "100.64.0.2", "publicKey": "B" * 43 + "=",
             "status": "Connected", "lastStatusUpdate": "2026-06-28T01:00:00Z", "connectionType": "Relayed",
             "iceCandidateType": {"local": "", "remote": ""}, "iceCandidateEndpoint": {"local": "", "remote": ""},
             "relayAddress": "rels://netbird.askari.example:443", "lastWireguardHandshake": "2026-06-28T01:00:06Z",
             "transferReceived": 10, "transferSent": 20, "latency": 0, "quantumResistance": False, "networks": []},
            {"fqdn": "mamba.netbird.selfhosted", "netbirdIp": "100.64.0.9", "publicKey": "C" * 43 + "=",
             "status": "Idle", "lastStatusUpdate": "2026-06-28T00:59:00Z", "connectionType": "-",
             "iceCandidateType": {"local": "", "remote": ""}, "iceCandidateEndpoint": {"local": "", "remote": ""},
             "relayAddress": "", "lastWireguardHandshake": "0001-01-01T00:00:00Z", "transferReceived": 0,
             "transferSent": 0, "latency": 0, "quantumResistance": False, "networks": []},
        ],
    },
    "cliVersion": "0.59.0",
    "daemonVersion": "0.59.0",
    "daemonStatus": "Connected",
    "management": {"url": "https://netbird.askari.example:443", "connected": True, "error": ""},
    "signal": {"url": "https://netbird.askari.example:443", "connected": True, "error": ""},
    "relays": {"total": 1, "available": 1,
               "details": [{"uri": "rels://netbird.askari.example:443", "available": True, "error": ""}]},
    "netbirdIp": "100.64.0.7/16",
    "publicKey": "D" * 43 + "=",
    "usesKernelInterface": True,
    "wireguardPort": 51820,
    "fqdn": "boma-1.netbird.selfhosted",
    "quantumResistance": False,
    "quantumResistancePermissive": False,
    "networks": [],
    "forwardingRules": 0,
    "dnsServers": [],
    "events": [],
    "lazyConnectionEnabled": False,
    "profileName": "default",
    "sshServer": {"enabled": False, "sessions": []},
}
# client/cmd/status.go prints this (rc 0) instead of JSON while the agent needs a login.
LOGIN_TEXT = ("Daemon status: NeedsLogin\n\nRun UP command to log in with SSO (interactive login):\n\n netbird up \n\n"
              "If you are running a self-hosted version and no SSO provider has been configured in your Management "
              "Server,\nyou can use a setup-key:\n\n netbird up --management-url <YOUR_MANAGEMENT_URL> --setup-key "
              "<YOUR_SETUP_KEY>\n\nMore info: https://docs.netbird.io/how-to/register-machines-using-setup-keys\n\n")


def variant(**changes):
    doc = copy.deepcopy(CONNECTED)
    for dotted, value in changes.items():
        node, *path = dotted.split("__")
        if not path:
            doc[node] = value
            continue
        target = doc[node]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return json.dumps(doc, indent=2)


def test_connected_host_reads_every_picked_field():
    state = parse(json.dumps(CONNECTED))
    assert state["format"] == "json" and state["daemon_status"] == "Connected"
    assert state["version"] == state["cli_version"] == "0.59.0"
    assert state["management"] == {"url": "https://netbird.askari.example:443", "connected": True, "error": None}
    assert state["signal"]["connected"] is True
    assert state["ip"] == "100.64.0.7/16" and state["address"] == "100.64.0.7"
    assert state["fqdn"] == "boma-1.netbird.selfhosted"
    assert state["interface"] == {"kernel": True, "wireguard_port": 51820}
    assert (state["peers_total"], state["peers_connected"]) == (3, 2)
    assert state["peers"][1] == {"fqdn": "ubongo.netbird.selfhosted", "ip": "100.64.0.2", "status": "Connected",
                                 "connected": True, "connection_type": "Relayed",
                                 "last_handshake": "2026-06-28T01:00:06Z"}
    assert state["peers"][2]["last_handshake"] is None, "Go's zero time means never"
    assert problems(state) == []


def test_only_picked_fields_leave_the_parser():
    doc = copy.deepcopy(CONNECTED)
    doc.update(sessionExpiresAt="2026-07-01T00:00:00Z", setupKey="SECRET-NEVER-RETURNED")
    doc["peers"]["details"][0]["secret"] = "SECRET-NEVER-RETURNED"
    state = parse(json.dumps(doc))
    assert "SECRET-NEVER-RETURNED" not in json.dumps(state)
    assert set(state) == {"format", "daemon_status", "version", "cli_version", "management", "signal", "ip",
                          "address", "fqdn", "public_key", "interface", "peers", "peers_total", "peers_connected"}


def test_management_down_names_it_with_the_agent_error():
    state = parse(variant(management__connected=False, daemonStatus="Connecting",
                          management__error="rpc error: code = Unavailable desc = connection refused"))
    assert problems(state) == ["daemon status Connecting",
                               "management not connected (rpc error: code = Unavailable desc = connection refused)"]


def test_signal_down_alone():
    assert problems(parse(variant(signal__connected=False))) == ["signal not connected"]


@pytest.mark.parametrize("ip", ["", "not-an-ip"])
def test_no_mesh_ip(ip):
    state = parse(variant(netbirdIp=ip))
    assert state["address"] is None
    assert problems(state) == ["no mesh IP" + (" (netbirdIp 'not-an-ip')" if ip else "")]


def test_peers_mixed_names_exactly_the_missing_ones():
    state = parse(json.dumps(CONNECTED))
    required = ["askari", "UBONGO.netbird.selfhosted.", "100.64.0.9", "ghost"]
    assert problems(state, required) == ["peers not connected: 100.64.0.9 (Idle), ghost (not a peer)"]
    assert missing_peers(state, required) == [("100.64.0.9", "Idle"), ("ghost", "not a peer")]
    assert find_peer(state["peers"], "askari")["ip"] == "100.64.0.1"
    assert find_peer(state["peers"], "") is None


def test_everything_missing_at_once_in_a_fixed_order():
    state = parse(variant(daemonStatus="Idle", management__connected=False, signal__connected=False, netbirdIp="",
                          peers={"total": 0, "connected": 0, "details": None}))
    assert problems(state, ["askari"]) == ["daemon status Idle", "management not connected", "signal not connected",
                                           "no mesh IP", "peers not connected: askari (not a peer)"]


def test_older_agent_without_daemon_status_or_port():
    doc = copy.deepcopy(CONNECTED)
    del doc["daemonStatus"], doc["wireguardPort"]
    state = parse(json.dumps(doc))
    assert state["daemon_status"] is None and state["interface"]["wireguard_port"] is None
    assert problems(state) == []


@pytest.mark.parametrize("daemon", ["NeedsLogin", "LoginFailed", "SessionExpired"])
def test_login_text_is_a_host_off_the_mesh(daemon):
    state = parse(LOGIN_TEXT.replace("NeedsLogin", daemon))
    assert state["format"] == "text" and state["daemon_status"] == daemon
    assert problems(state) == ["daemon status %s" % daemon, "management not connected", "signal not connected",
                               "no mesh IP"]


@pytest.mark.parametrize("text, shown", [
    ("", "(empty output)"),
    ("Daemon version: 0.59.0\nManagement: Connected\n", "Daemon version: 0.59.0 Management: Connected"),
    ("[1, 2]", "[1, 2]"),
    ("x" * 1000, "x" * 200),
])
def test_anything_else_is_an_error_quoting_its_start(text, shown):
    with pytest.raises(StatusError) as caught:
        parse(text)
    assert str(caught.value).startswith("printed no JSON status")
    assert shown in str(caught.value) and "x" * 201 not in str(caught.value)


def test_wrong_types_never_raise():
    state = parse(json.dumps({"management": "yes", "signal": None, "netbirdIp": 7, "fqdn": ["a"],
                              "wireguardPort": True, "usesKernelInterface": "true",
                              "peers": {"details": [None, {"status": 1}]}}))
    assert state["management"]["connected"] is False and state["ip"] is None
    assert state["interface"] == {"kernel": False, "wireguard_port": None}
    assert state["peers"] == [{"fqdn": None, "ip": None, "status": None, "connected": False,
                               "connection_type": None, "last_handshake": None}]
