"""The floor plan holds: core/ is pure, imports point one way, modules never carry the daemon or the CLI.

docs/architecture.md draws the rooms; these tests keep the code in them, so a new file is checked by the
folder it lands in, not by a list someone has to remember to update.
"""

import ast
import pathlib

import pytest

PLUGINS = pathlib.Path(__file__).parents[2] / "plugins"
SAM = PLUGINS / "module_utils" / "sam"
# The NetBird agent's status reader: pure like core/, and nothing in sam/ depends on it or it on sam/.
NETBIRD = PLUGINS / "module_utils" / "netbird"
PURE_STDLIB = {"base64", "binascii", "dataclasses", "datetime", "hashlib", "hmac", "ipaddress", "json", "re", "tomllib"}
IO_NAMES = {"open", "print", "input", "exec", "eval", "__import__"}
# room -> the rooms its files may import from (itself included): cli -> rr -> (apply, io) -> core,
# cli -> leaf -> (apply, io) -> core, cli -> preflight -> core.
ALLOWED = {
    "core": {"core"},
    "preflight": {"preflight", "core"},
    "io": {"io", "core"},
    "apply": {"apply", "core"},
    "rr": {"rr", "apply", "io", "core"},
    "leaf": {"leaf", "apply", "io", "core"},
    "cli": {"cli", "rr", "leaf", "apply", "io", "preflight", "core"},
}
MODULE_UTILS_PREFIX = "ansible_collections.boma.mesh.plugins.module_utils.sam."
NOT_FOR_MODULES = {"rr", "leaf", "cli"}


def _room(path):
    return path.relative_to(SAM).parts[0] if len(path.relative_to(SAM).parts) > 1 else None


def _targets(path, node):
    """The sam/ rooms an ImportFrom reaches (relative imports resolved against the file's package)."""
    if node.level == 0:
        return []
    package = list(path.relative_to(SAM).parent.parts)
    base = package[:len(package) - (node.level - 1)]
    if node.level - 1 > len(package):
        return ["<outside sam>"]
    parts = base + (node.module.split(".") if node.module else [])
    if parts:
        return [parts[0]]
    return [alias.name for alias in node.names]   # "from .. import core" at the top of sam/


SAM_FILES = sorted(p for p in SAM.rglob("*.py") if _room(p))
CORE_FILES = [p for p in SAM_FILES if _room(p) == "core"]


def _assert_pure(path, own_room):
    """stdlib (PURE_STDLIB) and same-room relative imports only, and no I/O builtins."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name in PURE_STDLIB, "%s imports %s" % (path.name, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module in PURE_STDLIB, "%s imports from %s" % (path.name, node.module)
            else:
                assert own_room(node), "%s imports from outside its room" % path.name
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in IO_NAMES, "%s calls %s" % (path.name, node.func.id)


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(SAM)))
def test_core_file_is_pure(path):
    _assert_pure(path, lambda node: _targets(path, node) == ["core"])


@pytest.mark.parametrize("path", sorted(NETBIRD.rglob("*.py")), ids=lambda p: str(p.relative_to(NETBIRD)))
def test_netbird_file_is_pure(path):
    # `from .x import y` stays inside netbird/ (one level, the folder is flat)
    _assert_pure(path, lambda node: node.level == 1)


def test_module_utils_holds_only_the_known_rooms():
    assert sorted(p.name for p in (PLUGINS / "module_utils").iterdir() if p.name != "__pycache__") == [
        "netbird", "sam"]


@pytest.mark.parametrize("path", SAM_FILES, ids=lambda p: str(p.relative_to(SAM)))
def test_imports_point_one_way(path):
    room = _room(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            for target in _targets(path, node):
                assert target in ALLOWED[room], "%s (%s/) imports from %s/" % (path.name, room, target)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if getattr(node, "module", None) else [])
            assert not [n for n in names if n and n.split(".")[0] == "ansible"], "%s imports ansible" % path.name


@pytest.mark.parametrize("path", sorted((PLUGINS / "modules").glob("*.py")) + sorted((PLUGINS / "filter").glob("*.py")),
                         ids=lambda p: p.name)
def test_modules_never_import_the_daemon_or_the_cli(path):
    # AnsiballZ ships every module_utils file a module imports: the RR daemon and samctl stay on the host.
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(MODULE_UTILS_PREFIX):
            room = node.module[len(MODULE_UTILS_PREFIX):].split(".")[0]
            assert room not in NOT_FOR_MODULES, "%s imports sam/%s" % (path.name, room)


def test_every_sam_file_is_in_a_room():
    assert [p.name for p in SAM.glob("*.py")] == ["__init__.py"]
    assert {_room(p) for p in SAM_FILES} == set(ALLOWED)


@pytest.mark.parametrize("path", sorted(PLUGINS.rglob("*.py")), ids=lambda p: str(p.relative_to(PLUGINS)))
def test_no_plugin_file_is_a_floor_of_its_own(path):
    # One concern per file: past ~400 lines a file holds two (architecture.md, "Rooms").
    assert len(path.read_text().splitlines()) <= 420, path
