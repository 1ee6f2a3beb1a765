"""Fail unless `ansible-doc` renders every module and filter of the collection without a warning.

Usage: python tools/check_docs.py <path to ansible_collections/boma/mesh>
"""

import os
import pathlib
import subprocess
import sys


def plugins(root):
    for path in sorted((root / "plugins" / "modules").glob("*.py")):
        yield "module", path.stem
    for path in sorted((root / "plugins" / "filter").glob("*.yml")):
        yield "filter", path.stem


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(root.parents[2]), ANSIBLE_NOCOLOR="1")
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    failed = []
    count = 0
    for kind, name in plugins(root):
        count += 1
        fqcn = "boma.mesh." + name
        proc = subprocess.run([ansible_doc, "-t", kind, fqcn], env=env, capture_output=True, text=True, check=False)
        problem = proc.returncode != 0 or "WARNING" in proc.stderr or "ERROR" in proc.stderr \
            or fqcn not in proc.stdout
        if problem:
            failed.append("%s %s: rc=%d %s" % (kind, fqcn, proc.returncode, proc.stderr.strip()[:400]))
    for line in failed:
        print("ansible-doc failed: " + line)
    print("ansible-doc: %d plugin(s) rendered, %d failed" % (count, len(failed)))
    return 1 if failed or not count else 0


if __name__ == "__main__":
    sys.exit(main())
