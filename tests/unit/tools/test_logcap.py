# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/lab/logcap.py: a flooding daemon's log is cut to its newest lines in place; the daemon's next line lands."""

import importlib.util
import os
import pathlib

ROOT = pathlib.Path(__file__).parents[3]
_SPEC = importlib.util.spec_from_file_location("logcap", ROOT / "tools" / "lab" / "logcap.py")
logcap = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(logcap)

LINE = b"BGP: [XETTR-D5MR0] Attempting to process an I/O event but for fd: %d(8) no thread to handle this!\n"


def test_a_flooded_log_is_cut_to_its_newest_lines_and_the_writer_goes_on_appending(tmp_path):
    path = tmp_path / "bgpd.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)   # as FRR opens its log file
    try:
        os.write(fd, b"".join(LINE % i for i in range(20_000)))
        assert logcap.cap(str(path), 1_000_000, keep=4096)
        text = path.read_bytes()
        assert text.startswith(b"[logcap: ") and text.endswith(LINE % 19_999) and len(text) < 4200
        os.write(fd, b"the next line\n")
        assert path.read_bytes() == text + b"the next line\n"      # O_APPEND: no hole at the old offset
    finally:
        os.close(fd)


def test_a_log_under_the_limit_and_a_missing_one_are_left_alone(tmp_path):
    path = tmp_path / "zebra.log"
    path.write_bytes(b"one\n")
    assert not logcap.cap(str(path), 1_000_000)
    assert path.read_bytes() == b"one\n"
    assert not logcap.cap(str(tmp_path / "gone.log"), 10)
