# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/lab/logcap.py: a flooding daemon's log never holds more than two files of the cap, and ends on EOF."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[3]
LOGCAP = ROOT / "tools" / "lab" / "logcap.py"


def test_a_flood_keeps_two_files_of_at_most_the_cap_and_the_newest_lines(tmp_path):
    log = tmp_path / "bgpd.log"
    log.write_bytes(b"from an earlier run\n")
    lines = b"".join(b"Attempting to process an I/O event but for fd: %d\n" % i for i in range(200_000))
    subprocess.run([sys.executable, str(LOGCAP), str(log), "65536"], input=lines, timeout=60, check=True)
    rotated = pathlib.Path(str(log) + ".1")
    assert 0 < log.stat().st_size <= 65536 and 0 < rotated.stat().st_size <= 65536
    assert (rotated.read_bytes() + log.read_bytes()).endswith(lines[-10_000:])
    assert sorted(os.listdir(tmp_path)) == ["bgpd.log", "bgpd.log.1"]


def test_a_quiet_daemon_keeps_appending_to_its_log(tmp_path):
    log = tmp_path / "zebra.log"
    log.write_bytes(b"one\n")
    subprocess.run([sys.executable, str(LOGCAP), str(log), "65536"], input=b"two\n", timeout=60, check=True)
    assert log.read_bytes() == b"one\ntwo\n" and not pathlib.Path(str(log) + ".1").exists()
