# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a built collection tarball (`ansible-galaxy collection build`) and `ansible-doc --json` output.

Usage:
  check_package.py tarball TARBALL [--repo DIR]
      List the members; fail on test, lab, CI or development clutter, on local secrets, on a top-level entry
      outside the allow-list and on a file of DIR's plugins/, roles/ or meta/ missing from the tarball; check
      MANIFEST.json against DIR/galaxy.yml. Prints the size and the file count.
  check_package.py docs KIND JSONFILE NAME...
      Fail unless `ansible-doc --json -t KIND` output JSONFILE documents every NAME (FQCN).
Exit 0 when clean, 1 listing every problem, 2 on a usage error.
"""

import argparse
import fnmatch
import json
import os
import sys
import tarfile

import yaml

# What a collection user gets: the product (plugins, roles, playbooks), its metadata, documentation, the example
# inventories the README points at and the vault layout. Anything else at the top level is a packaging mistake.
ALLOWED_TOP = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.rst", "COPYING", "LICENSES", "changelogs", "docs",
               "inventories", "meta", "playbooks", "plugins", "roles", "vault"}

# Clutter, matched against every member path and against each of its path components (fnmatch).
FORBIDDEN_PATHS = ("tests/*", "molecule/*", "tools/*", "bench/*", ".ci/*", ".build/*", ".venv/*", ".ansible/*",
                   ".git/*", ".github/*", "inventories/lab", "inventories/lab/*", "changelogs/fragments",
                   "changelogs/fragments/*", "context/*", "build/*", "vault/vault.yml", "Makefile",
                   "pyproject.toml", "requirements.txt", "requirements-dev.txt", "execution-environment.yml")
FORBIDDEN_NAMES = ("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".pytest_cache", ".hypothesis", ".ruff_cache",
                   ".mypy_cache", ".tox", ".gitignore", "*.retry", "*.swp", "*~", "*.tar.gz", "preflight-*.md",
                   ".vault-pass*", "*.vault-password", "*.decrypted", "*.plain", "*.dec.yml", ".DS_Store")

# Files every install needs, whatever the tree looks like.
REQUIRED = ("MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.rst", "COPYING", "meta/runtime.yml",
            "meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/bindep.txt", "playbooks/site.yml",
            "playbooks/preflight.yml", "vault/vault.example.yml", "changelogs/changelog.yaml")

# galaxy.yml keys that must be set (ansible-galaxy and Galaxy/Automation Hub show them).
METADATA = ("namespace", "name", "version", "authors", "description", "license", "tags", "repository",
            "documentation", "homepage", "issues")


def clutter(path):
    """The reason PATH must not ship, or None."""
    for pattern in FORBIDDEN_PATHS:
        if fnmatch.fnmatchcase(path, pattern):
            return "matches %s" % pattern
    for part in path.split("/"):
        for pattern in FORBIDDEN_NAMES:
            if fnmatch.fnmatchcase(part, pattern):
                return "%s matches %s" % (part, pattern)
    if path.startswith("vault/") and path != "vault/vault.example.yml":
        return "only vault/vault.example.yml ships from vault/"
    return None


def repo_files(repo):
    """Files of plugins/, roles/ and meta/ in the working tree (without bytecode)."""
    out = set()
    for top in ("plugins", "roles", "meta", "playbooks"):
        for folder, dirs, files in os.walk(os.path.join(repo, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if not name.endswith((".pyc", ".pyo")):
                    out.add(os.path.relpath(os.path.join(folder, name), repo).replace(os.sep, "/"))
    return out


def check_manifest(manifest, galaxy):
    problems = []
    info = manifest.get("collection_info", {})
    for key in METADATA:
        if not info.get(key):
            problems.append("MANIFEST.json: collection_info.%s is empty (set it in galaxy.yml)" % key)
        elif galaxy is not None and info.get(key) != galaxy.get(key):
            problems.append("MANIFEST.json: collection_info.%s is %r, galaxy.yml says %r"
                            % (key, info.get(key), galaxy.get(key)))
    return problems


def check_tarball(path, repo=None):
    problems = []
    with tarfile.open(path, "r:gz") as tar:
        members = tar.getmembers()
        names = {m.name.rstrip("/") for m in members}
        manifest = json.load(tar.extractfile("MANIFEST.json")) if "MANIFEST.json" in names else {}
    files = sorted(m.name for m in members if m.isfile())
    for member in members:
        name = member.name.rstrip("/")
        if name.startswith("/") or ".." in name.split("/"):
            problems.append("%s: unsafe member path" % name)
            continue
        if name.split("/")[0] not in ALLOWED_TOP:
            problems.append("%s: top-level entry not in the allow-list %s" % (name, sorted(ALLOWED_TOP)))
        reason = clutter(name)
        if reason:
            problems.append("%s: clutter (%s)" % (name, reason))
        if member.issym() or member.islnk():
            problems.append("%s: links do not survive every installer" % name)
    problems += ["%s: missing" % name for name in REQUIRED if name not in names]
    galaxy = None
    if repo:
        problems += ["%s: in the working tree but not in the tarball" % name
                     for name in sorted(repo_files(repo) - names) if not clutter(name)]
        with open(os.path.join(repo, "galaxy.yml"), encoding="utf-8") as handle:
            galaxy = yaml.safe_load(handle)
    problems += check_manifest(manifest, galaxy)
    size = os.path.getsize(path)
    print("%s: %d bytes (%.1f KiB), %d files, %d members"
          % (os.path.basename(path), size, size / 1024.0, len(files), len(members)))
    return problems


def check_docs(kind, json_file, names):
    with open(json_file, encoding="utf-8") as handle:
        docs = json.load(handle)
    problems = []
    for name in names:
        entry = docs.get(name)
        if not entry:
            problems.append("ansible-doc -t %s %s: not found" % (kind, name))
        elif kind != "role" and not (entry.get("doc") or {}).get("short_description"):
            problems.append("ansible-doc -t %s %s: no short_description" % (kind, name))
        elif kind == "role" and not (entry.get("entry_points") or {}).get("main"):
            problems.append("ansible-doc -t role %s: no main entry point" % name)
    extra = sorted(set(docs) - set(names))
    if extra:
        problems.append("ansible-doc -t %s: unexpected %s" % (kind, ", ".join(extra)))
    print("ansible-doc -t %s: %d of %d documented" % (kind, len(names) - len(problems), len(names)))
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tar = sub.add_parser("tarball")
    tar.add_argument("tarball")
    tar.add_argument("--repo", help="working tree to compare with (plugins/, roles/, meta/, galaxy.yml)")
    doc = sub.add_parser("docs")
    doc.add_argument("kind")
    doc.add_argument("json_file")
    doc.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "tarball":
        problems = check_tarball(args.tarball, args.repo)
    else:
        problems = check_docs(args.kind, args.json_file, args.names)
    for problem in problems:
        print("check_package: " + problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
