# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`samctl preflight -i INVENTORY_DIR`: read a static YAML inventory, write the review report (an edge file).

Variables are merged the way Ansible does for a static inventory with its default ``hash_behaviour: replace``:
group ``all`` < parent groups < child groups (deeper wins, then by name) < the host; inside one level, the
inventory file < ``group_vars``/``host_vars`` files (sorted by path, later wins).  Vault files are never opened
for their content: anything under a path containing ``vault`` or starting with ``$ANSIBLE_VAULT`` is listed
as "not read".
"""

import datetime
import os
import sys

from ..preflight.markdown import render
from ..preflight.review import build_review
from .common import InputError, load_file, parse_now

VAULT_HEADER = b"$ANSIBLE_VAULT"


def add_parser(sub):
    p = sub.add_parser("preflight", help="write the Full Topology Gate review of an inventory as Markdown")
    p.add_argument("-i", "--inventory", required=True, metavar="DIR", help="static YAML inventory directory")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report here (default: stdout)")
    p.add_argument("--now", help="evaluate claim expiry at this RFC 3339 time (default: now)")
    p.add_argument("--vault-example", metavar="FILE",
                   help="vault example whose key NAMES are checked (default: vault/vault.example.yml of the repo "
                        "holding the inventory, when present); values are discarded")
    p.set_defaults(func=cmd_preflight)
    return p


def cmd_preflight(args, out):
    now = parse_now(args.now, datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0))
    inventory = load_inventory(args.inventory)
    example = args.vault_example or _default_example(args.inventory)
    names = vault_names(example) if example else ()
    review = build_review(inventory, now, names)
    text = render(review)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise InputError("%s: %s" % (args.output, exc.strerror or exc)) from None
        sys.stderr.write("samctl: wrote %s (%s)\n" % (args.output, "valid" if review["ok"] else "INVALID"))
    else:
        out.write(text)
    return 0 if review["ok"] else 1


def _default_example(inventory_dir):
    path = os.path.join(os.path.abspath(inventory_dir), os.pardir, os.pardir, "vault", "vault.example.yml")
    path = os.path.normpath(path)
    return path if os.path.isfile(path) else None


def vault_names(path):
    """Dotted key names of a vault example (``vault.sam.api_token``); the values are dropped here."""
    names = []

    def walk(value, prefix):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, "%s.%s" % (prefix, key) if prefix else str(key))
        elif prefix:
            names.append(prefix)

    for _source, doc in load_file(path):
        walk(doc, "")
    return sorted(names)


def _is_vault(rel, path):
    """Named like a vault (relative to the inventory) or encrypted: never parsed."""
    if "vault" in rel.lower():
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(len(VAULT_HEADER)) == VAULT_HEADER
    except OSError as exc:
        raise InputError("%s: %s" % (path, exc.strerror or exc)) from None


def _var_files(base, name):
    """<base>/<name>.yml|.yaml|.json and <base>/<name>/**, sorted (Ansible reads a directory in that order)."""
    files = [os.path.join(base, name + ext) for ext in ("", ".yml", ".yaml", ".json")
             if os.path.isfile(os.path.join(base, name + ext))]
    folder = os.path.join(base, name)
    if os.path.isdir(folder):
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith((".yml", ".yaml", ".json"))]
    return files


def _read_vars(paths, inventory_dir, not_read):
    merged = {}
    for path in paths:
        rel = os.path.relpath(path, inventory_dir)
        if _is_vault(rel, path):
            not_read.append(rel)
            continue
        for _source, doc in load_file(path):
            if not isinstance(doc, dict):
                raise InputError("%s: variables must be a mapping" % path)
            merged.update(doc)
    return merged


def _walk_groups(name, node, parents, groups, hosts, path):
    """Collect groups (vars, parents) and hosts (inline vars, direct groups) from the hosts.yml tree."""
    if node is None:
        node = {}
    if not isinstance(node, dict):
        raise InputError("%s: group %s must be a mapping" % (path, name))
    entry = groups.setdefault(name, {"vars": {}, "parents": set()})
    entry["parents"].update(parents)
    entry["vars"].update(node.get("vars") or {})
    for host, host_vars in (node.get("hosts") or {}).items():
        item = hosts.setdefault(str(host), {"vars": {}, "groups": set()})
        item["vars"].update(host_vars or {})
        item["groups"].add(name)
    for child, child_node in (node.get("children") or {}).items():
        _walk_groups(str(child), child_node, {name}, groups, hosts, path)


def _depth(name, groups, seen=()):
    parents = groups.get(name, {}).get("parents", ()) if name not in seen else ()
    return 1 + max((_depth(p, groups, seen + (name,)) for p in parents), default=-1)


def _ancestors(names, groups):
    out, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo += list(groups.get(name, {}).get("parents", ()))
    return out | {"all"}


def load_inventory(inventory_dir):
    """The preflight inventory dict of a static YAML inventory directory."""
    path = None
    for candidate in ("hosts.yml", "hosts.yaml"):
        if os.path.isfile(os.path.join(inventory_dir, candidate)):
            path = os.path.join(inventory_dir, candidate)
    if path is None:
        raise InputError("%s: no hosts.yml (a static YAML inventory directory is expected)" % inventory_dir)
    docs = load_file(path)
    tree = docs[0][1] if docs else {}
    if not isinstance(tree, dict):
        raise InputError("%s: the inventory must be a mapping of groups" % path)
    groups, hosts, not_read = {}, {}, []
    for name, node in tree.items():
        _walk_groups(str(name), node, set() if name == "all" else {"all"}, groups, hosts, path)
    group_vars = {}
    for name in groups:
        files = _var_files(os.path.join(inventory_dir, "group_vars"), name)
        group_vars[name] = dict(groups[name]["vars"], **_read_vars(files, inventory_dir, not_read))
    out = {}
    for host in sorted(hosts):
        member = _ancestors(hosts[host]["groups"], groups)
        merged = {}
        for name in sorted(member, key=lambda g: (_depth(g, groups), g)):
            merged.update(group_vars.get(name, {}))
        merged.update(hosts[host]["vars"])
        merged.update(_read_vars(_var_files(os.path.join(inventory_dir, "host_vars"), host), inventory_dir, not_read))
        out[host] = {"groups": sorted(member - {"all"}), "vars": merged}
    return {"name": os.path.basename(os.path.normpath(os.path.abspath(inventory_dir))), "hosts": out,
            "not_read": sorted(set(not_read))}
