"""The core stays pure: stdlib only, relative imports, no I/O outside the named edge files."""

import ast
import pathlib

import pytest

CORE = pathlib.Path(__file__).parents[2] / "plugins" / "module_utils" / "sam"
# The only files allowed I/O (files, env, stdout, SQLite, sockets, threads):
EDGES = {"cli.py", "cli_io.py", "cli_serve.py", "cli_enroll.py", "tokens.py", "store.py", "service.py", "http_edge.py",
         "replicate.py", "enroll_client.py", "admin_client.py", "cli_preflight.py"}
PURE_STDLIB = {"base64", "binascii", "dataclasses", "datetime", "hashlib", "hmac", "ipaddress", "re"}
IO_NAMES = {"open", "print", "input", "exec", "eval", "__import__"}


@pytest.mark.parametrize("path", sorted(p for p in CORE.glob("*.py") if p.name not in EDGES), ids=lambda p: p.name)
def test_core_module_is_pure(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name in PURE_STDLIB, "%s imports %s" % (path.name, alias.name)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 1 or node.module in PURE_STDLIB, "%s imports from %s" % (path.name, node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in IO_NAMES, "%s calls %s" % (path.name, node.func.id)


def test_core_never_imports_ansible():
    for path in CORE.glob("*.py"):
        imports = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
        assert not [line for line in imports if "ansible" in line], path.name
