"""samctl wireguard-key: creates a 0600 key once, prints only the public key, refuses a broken file."""

import base64
import io
import json
import os
import stat

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from boma_mesh_utils.sam.cli import main as cli


def _run(argv):
    out = io.StringIO()
    return cli.main(argv, out=out), out.getvalue()


def test_creates_a_0600_key_once_and_prints_its_public_key_only(tmp_path):
    path = tmp_path / "wg.key"
    rc, text = _run(["wireguard-key", "--file", str(path)])
    assert rc == 0 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = json.loads(text)
    private = path.read_text().strip()
    assert first["created"] is True and private not in text
    expected = X25519PrivateKey.from_private_bytes(base64.b64decode(private)).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)
    assert base64.b64decode(first["publicKey"]) == expected
    rc, text = _run(["wireguard-key", "--file", str(path)])
    assert rc == 0 and json.loads(text) == dict(first, created=False)
    assert path.read_text().strip() == private


def test_a_missing_file_with_no_create_or_a_broken_file_is_exit_2_without_its_content(tmp_path, capsys):
    assert _run(["wireguard-key", "--file", str(tmp_path / "absent"), "--no-create"])[0] == 2
    broken = tmp_path / "broken"
    broken.write_text("not-a-key-SECRETLOOKING\n")
    assert _run(["wireguard-key", "--file", str(broken)])[0] == 2
    assert "SECRETLOOKING" not in capsys.readouterr().err
