"""Operator mistakes (issue 17, class 8) are refused at start-up with a message, never a traceback or a secret."""

import os
import sqlite3
import stat
import subprocess

import pytest
from harness import ADMIN_TOKEN, LEAF_TOKEN, claims, secret

from boma_mesh_utils.sam.core.secrets import MIN_BEARER_LENGTH

SHORT = "short-token-15c"   # one character below the minimum
assert len(SHORT) == MIN_BEARER_LENGTH - 1


def serve(argv):
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)


def refused(proc, *names):
    """Exit 2, a one-line samctl message naming ``names``, no traceback, no token value."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("samctl: ") and "Traceback" not in proc.stderr, proc.stderr
    for name in names:
        assert name in proc.stderr, proc.stderr
    for value in (LEAF_TOKEN, ADMIN_TOKEN, SHORT):
        assert value not in proc.stderr


def test_serve_refuses_the_same_token_for_leaves_and_admins(mesh):
    # No trailing newline here: the token files are trimmed, so this is still the leaf token.
    with open(mesh.admin_token, "w", encoding="utf-8") as handle:
        handle.write(LEAF_TOKEN)
    rr = mesh.rr("rr-a")
    refused(serve(rr.argv()), "--token-file", "--admin-token-file", "every leaf")
    assert not os.path.exists(rr.db)   # refused before the database is touched


def test_serve_refuses_a_peer_token_that_is_the_leaf_token(mesh):
    peer_token = secret(mesh.tmp / "peer-token", LEAF_TOKEN)
    rr = mesh.rr("rr-a", peers=["rr-b"], extra=["--peer-token-file", peer_token])
    refused(serve(rr.argv()), "--token-file", "--peer-token-file")


@pytest.mark.parametrize("option", ["--token-file", "--admin-token-file", "--peer-token-file"])
def test_serve_refuses_a_short_bearer_token(mesh, option):
    short = secret(mesh.tmp / "short-token", SHORT)
    rr = mesh.rr("rr-a", peers=["rr-b"] if option == "--peer-token-file" else ())
    argv = rr.argv()
    if option == "--peer-token-file":
        argv += [option, short]
    else:
        argv[argv.index(option) + 1] = short
    refused(serve(argv), option, short, "at least %d" % MIN_BEARER_LENGTH)


def test_serve_accepts_tokens_of_exactly_the_minimum_length(mesh):
    secret(mesh.leaf_token, "l" * MIN_BEARER_LENGTH)
    secret(mesh.admin_token, "a" * MIN_BEARER_LENGTH)
    rr = mesh.rr("rr-a").start()
    rr.stop()


def _modes(db):
    return {path: stat.S_IMODE(os.stat(path).st_mode) for path in (db, db + "-wal", db + "-shm")
            if os.path.exists(path)}


def test_the_database_and_its_wal_files_are_private_whatever_the_umask(mesh):
    rr = mesh.rr("rr-a")
    old = os.umask(0o022)   # the default outside systemd: files 0644
    try:
        rr.start()
    finally:
        os.umask(old)
    try:
        assert rr.submit(claims(1)[0]).status == 200
        modes = _modes(rr.db)
        assert sorted(modes) == sorted([rr.db, rr.db + "-wal", rr.db + "-shm"])
        assert modes == {path: 0o600 for path in modes}
    finally:
        rr.stop()


def test_an_existing_database_readable_by_others_is_made_private(mesh):
    rr = mesh.rr("rr-a")
    sqlite3.connect(rr.db).close()
    os.chmod(rr.db, 0o644)
    rr.start()
    try:
        assert rr.submit(claims(1)[0]).status == 200
        assert _modes(rr.db) == {path: 0o600 for path in _modes(rr.db)}
    finally:
        rr.stop()


def _damage_pages(db):
    """Keep the header page (the schema), overwrite the tables' pages."""
    size = os.path.getsize(db)
    with open(db, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\xa5" * (size - 4096))


@pytest.mark.parametrize("damage", ["not-a-database", "damaged-pages"])
def test_a_corrupt_database_is_explained_not_a_traceback(mesh, damage):
    rr = mesh.rr("rr-a")
    if damage == "not-a-database":
        with open(rr.db, "wb") as handle:
            handle.write(b"this is not an SQLite database\n" * 256)
    else:
        rr.start()
        assert rr.submit(claims(3)[0]).status == 200
        rr.stop()
        assert os.path.getsize(rr.db) > 4096
        _damage_pages(rr.db)
    proc = serve(rr.argv())
    refused(proc, "--db", rr.db, "corrupt", "move it aside", "peer")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
