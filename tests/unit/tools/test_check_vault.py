# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/check_vault.py's walk: every CHANGEME by its dotted name, join tokens in both vault forms, never a value."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).parents[3]
_SPEC = importlib.util.spec_from_file_location("check_vault", ROOT / "tools" / "check_vault.py")
check_vault = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check_vault)

SECRET = "set-token-4c1d9e0b7a"


def _names(doc):
    return list(check_vault.placeholders(doc))


def test_rotation_form_names_each_token_id():
    doc = {"vault": {"sam": {"api_token": SECRET, "join_tokens": {
        "cloudedge-leaves": {"default": SECRET, "2026-07": "CHANGEME", "next.v2": " CHANGEME\n"},
        "pve-fou-leaves": "CHANGEME",
        "pve-wg-leaves": SECRET}}}}
    assert _names(doc) == ["vault.sam.join_tokens.cloudedge-leaves.2026-07",
                           "vault.sam.join_tokens.cloudedge-leaves.next.v2",
                           "vault.sam.join_tokens.pve-fou-leaves"]


def test_set_values_are_never_yielded():
    doc = {"vault": {"sam": {"join_tokens": {"p": {"a": SECRET, "b": SECRET}}, "admin_token": SECRET}}}
    assert _names(doc) == []


def test_main_prints_names_not_values(tmp_path, monkeypatch, capsys):
    doc = "vault:\n  sam:\n    join_tokens:\n      p:\n        old: %s\n        new: CHANGEME\n" % SECRET
    monkeypatch.setattr(check_vault, "decrypt", lambda path: doc)
    assert check_vault.main(["check_vault.py", str(tmp_path / "vault.yml")]) == 1
    out = capsys.readouterr().out
    assert "still CHANGEME: vault.sam.join_tokens.p.new\n" in out
    assert "vault.sam.join_tokens.p.old" not in out and SECRET not in out
