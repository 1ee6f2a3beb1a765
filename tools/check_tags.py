# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fail on any task/play tag outside the closed vocabulary in tests/tags.yml.

Usage: check_tags.py [REPO_ROOT]
Scans roles/*/tasks/*.yml, roles/*/handlers/*.yml, playbooks/*.yml and molecule/**/*.yml for `tags:` keys
(also inside `apply:`, blocks and plays); exit 1 listing file, tag, 2 on unreadable YAML.
"""

import sys
from pathlib import Path

import yaml


class Loader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's !unsafe and !vault tags as plain values."""


Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
Loader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))

PATTERNS = ("roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "playbooks/*.yml", "molecule/**/*.yml")


def tag_values(node):
    """Every value of a `tags` key anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "tags":
                values = value if isinstance(value, list) else str(value).split(",")
                yield from (str(v).strip() for v in values)
            else:
                yield from tag_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from tag_values(item)


def main(argv):
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    with open(root / "tests" / "tags.yml", encoding="utf-8") as handle:
        allowed = set(yaml.safe_load(handle)["tags"])
    files = sorted({p for pattern in PATTERNS for p in root.glob(pattern)})
    unknown = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                docs = list(yaml.load_all(handle, Loader=Loader))  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as exc:
            print("%s: unreadable YAML: %s" % (path.relative_to(root), exc), file=sys.stderr)
            return 2
        for tag in tag_values(docs):
            if tag not in allowed and "{{" not in tag:
                unknown.append("%s: unknown tag %r (add it to tests/tags.yml)" % (path.relative_to(root), tag))
    for line in unknown:
        print(line)
    print("check-tags: %d file(s), %d unknown tag(s)" % (len(files), len(unknown)))
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
