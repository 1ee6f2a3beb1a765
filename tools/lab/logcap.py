# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`logcap.py FILE MAX_BYTES`: copy standard input to FILE, keeping at most two files of MAX_BYTES (FILE, FILE.1).

The lab's FRR daemons log to their standard output through this (labdaemons.LabFrr).  Debian bookworm's bgpd
8.4.4 can loop on a polled fd it no longer watches and log the same error ~10,000 times a second (fixed upstream
by FRRouting/frr#17025); with a plain log file that fills the guest's 1.5 GB /run in about 12 minutes and every
later test of the lab fails for want of space.  The daemon never waits on this: it reads 64 KiB at a time.
"""

import os
import sys


def copy(source, path, limit):
    out = open(path, "ab")   # noqa: SIM115 - replaced on each rotation
    size = out.tell()
    try:
        while True:
            chunk = os.read(source, 65536)
            if not chunk:
                return
            if size + len(chunk) > limit and size:
                out.close()
                os.replace(path, path + ".1")
                out, size = open(path, "ab"), 0   # noqa: SIM115
            out.write(chunk)
            out.flush()
            size += len(chunk)
    finally:
        out.close()


if __name__ == "__main__":
    copy(sys.stdin.fileno(), sys.argv[1], int(sys.argv[2]))
