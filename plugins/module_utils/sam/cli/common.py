# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input reading, error types and API-client options shared by the samctl commands (an edge: reads files)."""

import argparse
import json

from ..core.fields import parse_time
from ..io import http_client, tokens
from ..io.bearer import bearer_token


class InputError(Exception):
    """Unreadable input: exit code 2."""


class FindingsError(Exception):
    """The documents are invalid for the command: exit code 1 with the findings."""

    def __init__(self, findings):
        super().__init__("%d finding(s)" % len(findings))
        self.findings = findings


def parse_now(text, default=None):
    """The --now option: an RFC 3339 time, or ``default`` when it is not given."""
    if not text:
        return default
    now = parse_time(text)
    if now is None:
        raise InputError("--now %r is not an RFC 3339 timestamp" % text)
    return now


def load_file(path):
    """Parse a YAML (all documents) or JSON file -> [(source, document)]."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InputError("%s: %s" % (path, exc.strerror or exc)) from None
    if path.endswith(".json"):
        try:
            return [(path, json.loads(data.decode("utf-8")))]
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError("%s: invalid JSON: %s" % (path, exc)) from None
    try:
        import yaml  # noqa: PLC0415 - optional: JSON input works without PyYAML
    except ImportError:
        raise InputError("%s: PyYAML is required to read YAML (or pass a .json file)" % path) from None
    try:
        docs = [d for d in yaml.load_all(data, Loader=_string_time_loader(yaml)) if d is not None]
    except yaml.YAMLError as exc:
        raise InputError("%s: invalid YAML: %s" % (path, str(exc).replace("\n", " "))) from None
    return [(path, d) for d in docs]


def _string_time_loader(yaml):
    """SafeLoader (libyaml when present) that keeps timestamps as the text written.

    routerd reads joinTimestamp/expiresAt into Go strings, so the signed bytes are
    exactly what the file says; a datetime would re-format them.
    """
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # pylint: disable=too-many-ancestors
        pass

    Loader.yaml_implicit_resolvers = {
        key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
        for key, resolvers in base.yaml_implicit_resolvers.items()
    }
    return Loader


def load_configs(paths):
    documents = []
    for path in paths:
        documents.extend(load_file(path))
    return documents


# --- the enrollment API's clients: enrollment-join and claim ---------------------------------------------------


def endpoint_arg(text):
    """argparse type of --rr-url."""
    try:
        return http_client.parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def socket_arg(text):
    return http_client.Endpoint("unix", socket_path=text)


def read_bearer(path, what):
    """A header-safe bearer token from a file; InputError naming the file, never the value."""
    raw = tokens.read_token(file=path)
    if isinstance(raw, str):
        raise InputError("%s: %s" % (what, raw))
    try:
        return bearer_token(raw)
    except ValueError as exc:
        raise InputError("%s %s: %s" % (what, path, exc)) from None


def check_ca(path):
    if path:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise InputError("--ca-file %s: %s" % (path, (exc.strerror or "unreadable").lower())) from None


def add_transport_args(p):
    p.add_argument("--ca-file", metavar="F", help="CA bundle that signs the RRs' TLS certificates (https)")
    p.add_argument("--timeout", type=float, default=http_client.DEFAULT_TIMEOUT,
                   help="seconds per request (default 10)")


def add_gobgp_args(p, when):
    """--bgp-daemon and the gobgpd options, the same for `samctl serve --reconcile` and `samctl agent --apply`."""
    p.add_argument("--bgp-daemon", choices=("frr", "gobgp"), default="frr",
                   help="%s: the BGP daemon (gobgp: sam_gobgp's path, a reload of --gobgp-config)" % when)
    p.add_argument("--gobgp-config", default="/etc/gobgpd.conf", help="%s gobgp: gobgpd's configuration file" % when)
    p.add_argument("--gobgp-api-target", metavar="unix:///PATH",
                   help="%s gobgp: gobgpd's API on a unix socket (default: 127.0.0.1:50051)" % when)
    p.add_argument("--gobgp-service", default="gobgpd", help="%s gobgp: systemd unit signalled to reload" % when)
    pid = p.add_mutually_exclusive_group()
    pid.add_argument("--gobgp-pid", type=int, help="%s gobgp: PID of a gobgpd systemd does not run" % when)
    pid.add_argument("--gobgp-pid-file", metavar="F",
                     help="%s gobgp: pid file of a gobgpd systemd does not run, read at each reload" % when)


def gobgp_options(args):
    """apply/gobgp.Gobgpd's keyword arguments from add_gobgp_args' options."""
    return {"config_path": args.gobgp_config or "/etc/gobgpd.conf", "api_target": args.gobgp_api_target,
            "pid": args.gobgp_pid, "pid_file": args.gobgp_pid_file, "service": args.gobgp_service or "gobgpd"}
