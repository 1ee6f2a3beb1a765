# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that every role's defaults/main.yml and meta/argument_specs.yml (entry point main) agree.

Usage: check_argspecs.py [ROLES_DIR]   (default: roles/ next to this tools/ directory)
Fails (exit 1) listing each role/variable whose name is only on one side or whose default differs;
a role with defaults but no argument_specs.yml is a failure too. Exit 2 on unreadable YAML.
"""

import sys
from pathlib import Path

import yaml


class Loader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's !unsafe and !vault tags as plain values."""


Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
Loader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=Loader) or {}  # noqa: S506 - SafeLoader subclass


def check_role(role):
    defaults_file = role / "defaults" / "main.yml"
    spec_file = role / "meta" / "argument_specs.yml"
    defaults = load(defaults_file) if defaults_file.exists() else {}
    if not spec_file.exists():
        return ["%s: meta/argument_specs.yml is missing" % role.name] if defaults else []
    spec = load(spec_file).get("argument_specs", {}).get("main")
    if spec is None:
        return ["%s: meta/argument_specs.yml has no entry point 'main'" % role.name]
    options = spec.get("options") or {}
    problems = []
    for name in sorted(set(defaults) - set(options)):
        problems.append("%s: %s is in defaults/main.yml but not documented in argument_specs.yml" % (role.name, name))
    for name in sorted(set(options) - set(defaults)):
        if "default" in options[name]:
            problems.append("%s: %s has a default in argument_specs.yml but none in defaults/main.yml"
                            % (role.name, name))
    for name in sorted(set(defaults) & set(options)):
        if "default" not in options[name]:
            problems.append("%s: %s: argument_specs.yml gives no default (defaults/main.yml: %r)"
                            % (role.name, name, defaults[name]))
        elif options[name]["default"] != defaults[name]:
            problems.append("%s: %s: default differs: defaults/main.yml %r, argument_specs.yml %r"
                            % (role.name, name, defaults[name], options[name]["default"]))
    return problems


def main(argv):
    roles_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "roles"
    problems = []
    roles = sorted(p for p in roles_dir.iterdir() if p.is_dir()) if roles_dir.is_dir() else []
    try:
        for role in roles:
            problems += check_role(role)
    except yaml.YAMLError as exc:
        print("unreadable YAML: %s" % exc, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    print("check-argspecs: %d role(s), %d problem(s)" % (len(roles), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
