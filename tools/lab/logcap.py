# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`logcap.py DIR MAX_BYTES [SECONDS]`: every SECONDS, cut each DIR/*.log longer than MAX_BYTES to its last 64 KiB.

labdaemons starts one per lab host next to its FRR daemons and leaves it running.  Debian bookworm's bgpd
8.4.4 can loop on a polled fd it no longer watches and log the same error thousands of times a second (fixed
upstream by FRRouting/frr#17025); with nothing watching, that fills the guest's 1.5 GB /run in minutes and every
later test of the lab fails for want of space.  FRR opens its log files with O_APPEND, so cutting one in place
is safe: the daemon's next line goes to the new end.  A pipe to a reader would be worse: a daemon whose reader
falls behind (a busy TCG guest) blocks on its log and misses its BGP keepalives.
"""

import os
import sys
import time

KEEP = 64 * 1024


def cap(path, limit, keep=KEEP):
    """Cut ``path`` to its last ``keep`` bytes when it is longer than ``limit``; True when it was cut."""
    try:
        with open(path, "r+b") as stream:
            size = stream.seek(0, os.SEEK_END)
            if size <= limit:
                return False
            stream.seek(size - keep)
            tail = stream.read(keep)
            stream.seek(0)
            stream.write(b"[logcap: %d bytes cut]\n" % (size - keep) + tail)
            stream.truncate()
            return True
    except OSError:
        return False


def watch(directory, limit, every):
    while os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.endswith(".log"):
                cap(os.path.join(directory, name), limit)
        time.sleep(every)


if __name__ == "__main__":
    watch(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 5.0)
