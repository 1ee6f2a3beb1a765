"""Idle cost of the leaf agent: `samctl agent` against one real RR for N seconds with --refresh-interval 60.

Prints the agent's CPU seconds (utime + stime from /proc/PID/stat) extrapolated per hour, and its RSS (VmRSS)
in MiB.  The start-up (imports, first enrollment) is measured apart from the idle part.

Usage: .venv/bin/python bench/agent_idle.py [SECONDS]   (default 60)
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "service"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))   # tests/support: synthetic documents
from harness import SAMCTL, Mesh, claims, wait_for  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS     # utime, stime (fields 14 and 15)


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    tmp = tempfile.mkdtemp(prefix="agent-idle-")
    mesh = Mesh(tmp)
    rr = mesh.rr("rr-a").start()
    claim = claims(1)[0]
    for key in ("joinNonce", "joinTimestamp", "joinHMAC"):
        del claim["spec"][key]
    config = mesh.tmp / "leaf.json"
    config.write_text(json.dumps({"resources": [claim]}))
    state = mesh.tmp / "agent"
    argv = [SAMCTL, "agent", "--config", str(config), "--node", "leaf-0", "--rr-socket", rr.socket,
            "--token-file", mesh.leaf_token, "--join-token-file", mesh.join_token, "--state-dir", str(state),
            "--refresh-interval", "60", "--apply", "none"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_for((state / "agent.json").exists, timeout=30, step=0.1):
            raise SystemExit("the agent did not enroll")
        time.sleep(1)
        start_cpu, started = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        idle_cpu, elapsed = cpu_seconds(proc.pid) - start_cpu, time.monotonic() - started
        print("agent idle %.0f s (refresh-interval 60): start-up CPU %.2f s, idle CPU %.3f s = %.2f CPU s/hour, "
              "RSS %.1f MiB" % (elapsed, start_cpu, idle_cpu, idle_cpu * 3600 / elapsed, rss_mib(proc.pid)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        rr.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
