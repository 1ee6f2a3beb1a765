"""Enrollment load: C concurrent clients submit N signed claims to one real `samctl serve` (durable accepts).

Goal on this machine: >= 500 claims/s with p99 < 50 ms at 32 clients.  Prints throughput, p50/p99/max,
the durable commits the service reports and, when strace is present, the fsync/fdatasync calls counted
by `strace -f -c` on a second, identical run (strace slows the service, so that run is not timed).

Usage: .venv/bin/python bench/enroll_load.py [CLIENTS] [CLAIMS]
"""

import http.client
import json
import multiprocessing
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "service"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))   # tests/support: synthetic documents
from harness import LEAF_TOKEN, Mesh, claims  # noqa: E402

from boma_mesh_utils.sam.core import wire  # noqa: E402

PROCESSES = 4   # client processes, so the load generator's own GIL is not the bottleneck


def client_process(url, bodies, threads, queue):
    host, port = url.split("//")[1].split(":")
    latencies, statuses, lock = [], {}, threading.Lock()

    def worker(chunk):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)   # keep-alive, like a real client pool
        headers = {"Authorization": "Bearer " + LEAF_TOKEN, "Content-Type": "application/json"}
        for body in chunk:
            started = time.perf_counter()
            # A fresh request nonce, as a leaf sends (the RR answers with the request-bound MAC).
            headers["X-Boma-Request-Nonce"] = os.urandom(16).hex()
            conn.request("POST", wire.submit_path(), body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
        conn.close()

    workers = [threading.Thread(target=worker, args=(bodies[i::threads],)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    queue.put((latencies, statuses))


def run(clients, count, strace=False):
    tmp = tempfile.mkdtemp(prefix="enroll-load-")
    mesh = Mesh(tmp)
    rr = mesh.rr("rr-a")
    if strace:
        rr.argv_prefix = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", tmp + "/strace.txt"]
    rr.start()
    bodies = [json.dumps(wire.submit_request(d["metadata"]["name"], d["spec"])).encode() for d in claims(count)]
    queue = multiprocessing.Queue()
    per = max(1, clients // PROCESSES)
    procs = [multiprocessing.Process(target=client_process, args=(rr.url, bodies[i::PROCESSES], per, queue))
             for i in range(PROCESSES)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [queue.get() for _p in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    health = json.loads(rr.api("GET", wire.health_path(), token=None).body)
    if strace:
        # Stop the traced service itself; strace then writes its summary and exits.
        children = pathlib.Path("/proc/%d/task/%d/children" % (rr.proc.pid, rr.proc.pid)).read_text().split()
        for pid in children:
            os.kill(int(pid), signal.SIGTERM)
        rr.proc.wait(30)
    rr.stop()
    fsyncs = None
    if strace:
        text = pathlib.Path(tmp, "strace.txt").read_text()
        rows = [line.split() for line in text.splitlines()]
        fsyncs = sum(int(row[3]) for row in rows if row[-1:] in (["fsync"], ["fdatasync"]))
    shutil.rmtree(tmp, ignore_errors=True)
    latencies = sorted(x for lat, _s in results for x in lat)
    statuses = {}
    for _lat, stat in results:
        for code, number in stat.items():
            statuses[code] = statuses.get(code, 0) + number
    return elapsed, latencies, statuses, health, fsyncs


def main():
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    clients = int(numbers[0]) if numbers else 32
    count = int(numbers[1]) if len(numbers) > 1 else 5000
    elapsed, lat, statuses, health, _f = run(clients, count)

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    print("enroll load: %d clients, %d claims: %.0f claims/s (%.2f s)" % (clients, count, count / elapsed, elapsed))
    print("  latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; statuses %s"
          % (pct(0.5), pct(0.99), lat[-1] * 1000, statuses))
    print("  service: %d claims stored, %d durable commits (one WAL fsync each with synchronous=FULL)"
          % (health["claims"], health["commits"]))
    if shutil.which("strace") and "--no-strace" not in sys.argv:
        _e, _l, _s, health2, fsyncs = run(clients, min(count, 1000), strace=True)
        print("  strace run (%d claims, not timed): %d fsync/fdatasync calls for %d commits"
              % (min(count, 1000), fsyncs, health2["commits"]))


if __name__ == "__main__":
    main()
