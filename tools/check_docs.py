# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that ansible-doc renders every module, filter and connection plugin of the copied collection cleanly.

Usage: check_docs.py PATH/ansible_collections/NAMESPACE/NAME
Exit 0 when all render cleanly, 1 listing each plugin that fails or warns, 2 on a usage error.
"""

import ast
import os
import subprocess
import sys


def module_names(coll, kind="modules"):
    folder = os.path.join(coll, "plugins", kind)
    if not os.path.isdir(folder):
        return []
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py") and not name.startswith("_"))


def _filters_in(path):
    """Filter names a filter plugin file returns from FilterModule.filters(), read without importing it."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "FilterModule":
            for item in ast.walk(node):
                if isinstance(item, ast.Dict):
                    names.update(k.value for k in item.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
    return names


def filter_names(coll):
    folder = os.path.join(coll, "plugins", "filter")
    if not os.path.isdir(folder):
        return []
    names = set()
    for name in os.listdir(folder):
        if name.endswith(".py") and not name.startswith("_"):
            names.update(_filters_in(os.path.join(folder, name)))
        elif name.endswith((".yml", ".yaml")):
            names.add(name.rsplit(".", 1)[0])  # a sidecar must document a filter that exists
    return sorted(names)


def check(ansible_doc, env, plugin_type, fqcn):
    """Return a problem description, or None when the plugin renders cleanly."""
    try:
        proc = subprocess.run([ansible_doc, "-t", plugin_type, fqcn], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "could not run ansible-doc: %s" % exc
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return "exit code %d: %s" % (proc.returncode, " ".join((proc.stderr.strip() or proc.stdout.strip()).split()))
    warnings = [line.strip() for line in output.splitlines() if "WARNING" in line]
    if warnings:
        return "warning: " + " | ".join(warnings)
    if not proc.stdout.strip():
        return "rendered nothing"
    return None


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s PATH/ansible_collections/NAMESPACE/NAME\n" % argv[0])
        return 2
    coll = os.path.abspath(argv[1])
    parts = coll.split(os.sep)
    if len(parts) < 4 or parts[-3] != "ansible_collections" or not os.path.isdir(coll):
        sys.stderr.write("%s is not a collection directory at ansible_collections/NAMESPACE/NAME\n" % argv[1])
        return 2
    fqcn_prefix = "%s.%s." % (parts[-2], parts[-1])
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.sep.join(parts[:-3]) or os.sep
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "1"
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    if not os.access(ansible_doc, os.X_OK):
        sys.stderr.write("ansible-doc not found next to %s\n" % sys.executable)
        return 2
    problems, checked = [], 0
    for plugin_type, names in (("module", module_names(coll)), ("filter", filter_names(coll)),
                               ("connection", module_names(coll, "connection"))):
        for name in names:
            checked += 1
            problem = check(ansible_doc, env, plugin_type, fqcn_prefix + name)
            if problem is not None:
                problems.append("%s %s%s: %s" % (plugin_type, fqcn_prefix, name, problem))
    for line in problems:
        print("FAIL " + line)
    print("%d plugin(s) checked, %d problem(s)" % (checked, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
