# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""samctl: the command-line edge over the core; one file per subcommand, this one builds the parser.

Exit codes: 0 ok, 1 findings the user can fix in the documents (or a refusal the subcommand reports),
2 unreadable input (file missing, YAML/JSON syntax, secret not readable) or a usage error (argparse).
"""

import argparse
import sys

from . import agent, claim, enroll, hmac, materialize, preflight, render, serve, validate, wgkey
from .common import FindingsError, InputError


def build_parser():
    parser = argparse.ArgumentParser(prog="samctl", description="boma.mesh SAM enrollment tool")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (hmac, validate, materialize, render, serve, enroll, claim, preflight, agent, wgkey):
        command.add_parser(sub)
    return parser


def main(argv=None, out=None):
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, out)
    except InputError as exc:
        sys.stderr.write("samctl: %s\n" % exc)
        return 2
    except FindingsError as exc:
        for finding in exc.findings:
            sys.stderr.write("%s\n" % finding)
        return 1
    except BrokenPipeError:
        return 1
