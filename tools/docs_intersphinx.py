# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the offline fallback intersphinx inventories for the antsibull-docs site (`make docs`).

The conf.py of `antsibull-docs sphinx-init` maps python, python3, jinja2 and ansible_devel to their online
inventories, each with a local fallback file DIR/NAME.inv. Sphinx uses the online inventory when it can reach it
and reads the fallback otherwise, so the build is the same (and warning-free) without network.
ansible_devel.inv holds what the Ansible docs define and the generated pages refer to, taken from the installed
ansible-core: every ansible.builtin module and plugin label, every configuration environment variable, and the
reference labels of antsibull-docs' templates. A reference to anything else still fails the build.
The other three inventories are empty.

Usage: docs_intersphinx.py DIR
"""

import glob
import os
import sys
import zlib

import ansible
import yaml
from ansible.release import __version__ as ANSIBLE_VERSION

ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/devel/"

# Labels antsibull-docs' templates refer to: (label, page#anchor, title).
LABELS = (
    ("common_return_values", "reference_appendices/common_return_values.html#common-return-values",
     "Return Values"),
    ("ansible_configuration_settings", "reference_appendices/config.html#ansible-configuration-settings",
     "Ansible Configuration Settings"),
    ("action_plugins", "plugins/action.html#action-plugins", "Action plugins"),
    ("callback_plugins", "plugins/callback.html#callback-plugins", "Callback plugins"),
    ("list_of_callback_plugins", "collections/index_callback.html#list-of-callback-plugins",
     "Index of all Callback Plugins"),
    ("list_of_collections", "collections/index.html#list-of-collections", "Collection Index"),
    ("collections_keyword",
     "collections_guide/collections_using_playbooks.html#simplifying-module-names-with-the-collections-keyword",
     "Simplifying module names with the collections keyword"),
)

PLUGIN_TYPES = ("become", "cache", "callback", "cliconf", "connection", "httpapi", "inventory", "lookup", "netconf",
                "shell", "strategy", "terminal", "vars")


def builtin_plugins(ansible_dir):
    """(name, type) of every documented ansible.builtin module and plugin."""
    found = []

    def names(pattern):
        return sorted(os.path.basename(path).rsplit(".", 1)[0] for path in glob.glob(os.path.join(ansible_dir, pattern))
                      if not os.path.basename(path).startswith("__"))

    found += [(name, "module") for name in names("modules/*.py")]
    for plugin_type in PLUGIN_TYPES:
        found += [(name, plugin_type) for name in names("plugins/%s/*.py" % plugin_type)]
    for plugin_type in ("filter", "test"):  # documented by their YAML sidecars
        found += [(name, plugin_type) for name in names("plugins/%s/*.yml" % plugin_type)]
    return found


def config_envvars(ansible_dir):
    with open(os.path.join(ansible_dir, "config", "base.yml"), encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    return sorted({env["name"] for entry in config.values() for env in entry.get("env") or () if "name" in env})


def write_inventory(path, project, lines):
    header = "# Sphinx inventory version 2\n# Project: %s\n# Version: devel\n" \
             "# The remainder of this file is compressed using zlib.\n" % project
    with open(path, "wb") as handle:
        handle.write(header.encode("utf-8"))
        handle.write(zlib.compress("".join(line + "\n" for line in lines).encode("utf-8")))


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        sys.stderr.write("usage: %s DIR (an existing directory)\n" % argv[0])
        return 2
    ansible_dir = os.path.dirname(ansible.__file__)
    lines = ["%s std:label -1 %s %s" % (label, ANSIBLE_DOCS + uri, title) for label, uri, title in LABELS]
    for name, plugin_type in builtin_plugins(ansible_dir):
        label = "ansible_collections.ansible.builtin.%s_%s" % (name, plugin_type)
        anchor = label.replace(".", "-").replace("_", "-")
        lines.append("%s std:label -1 %scollections/ansible/builtin/%s_%s.html#%s ansible.builtin.%s %s"
                     % (label, ANSIBLE_DOCS, name, plugin_type, anchor, name, plugin_type))
    for name in config_envvars(ansible_dir):
        lines.append("%s std:envvar 1 %sreference_appendices/config.html#envvar-%s -" % (name, ANSIBLE_DOCS, name))
    write_inventory(os.path.join(argv[1], "ansible_devel.inv"), "Ansible", lines)
    for name, project in (("python2", "Python"), ("python3", "Python"), ("jinja2", "Jinja")):
        write_inventory(os.path.join(argv[1], name + ".inv"), project, [])
    print("%s: ansible_devel.inv with %d entries (ansible-core %s); empty python2, python3, jinja2"
          % (argv[1], len(lines), ANSIBLE_VERSION))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
