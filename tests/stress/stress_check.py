#!/usr/bin/env python3
"""stress_check.py HT_CLI STRESS_BIN CASE - multi-threaded stress recordings.

STRESS_BIN is ht_stress (stress.c).  CASE is one of:

  local    block mode (the default settings): 8 threads each make 1,000,000
           malloc/free pairs (16..512 bytes), each thread freeing its own
           blocks.
  handoff  block mode: 4 producer threads each malloc 1,000,000 blocks and
           hand them to 4 consumer threads that free them (every free is
           of another thread's block; glibc hands the addresses back out).
  drop     drop mode with tiny buffers (--mode drop --buffer-size 4K
           --buffers 2): the 8 x 1,000,000 pairs of `local`; most events
           are dropped.
  order    block mode with small buffers (4K x 16, so that threads wait for
           buffers): 8 x 200,000 pairs.
In every case the dump must list the heap events of the process in time
order, as `heaptrace dump` promises.

The process makes a few heap calls of its own besides the workers' (glibc's
thread set-up: a calloc per thread for its TLS vector, and frees of some of
them at join; the stdout buffer).  They are measured exactly by recording
the same program with 0 iterations (the baseline) and must be the same
calls in the full run.

Block mode (local, handoff): 0 events lost; every worker thread has exactly
the heap events it made, api by api (1,000,000 mallocs and 1,000,000 frees
for a local worker), with the sizes it asked for (sum, 16..512); the
remaining events equal the baseline's; every free matches an allocation
(own replay of the dump and `heaptrace summary`), and what is live at the
end is what the baseline leaves live.

Drop mode: lost + recorded heap events == the calls the program made +
the baseline's calls, exactly; the trace's lost records, the session_end
record and the summary agree on the number lost.
"""
import os
import re
import sys
import tempfile
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "real"))
from htreal import Checker, read_dump, read_summary, record  # noqa: E402

CASES = {
    #          program args                    record options
    "local":   (["local", "8", "1000000"],   []),
    "handoff": (["handoff", "4", "1000000"], []),
    "drop":    (["local", "8", "1000000"],   ["--mode", "drop", "--buffer-size", "4K", "--buffers", "2"]),
    "order":   (["local", "8", "200000"],    ["--buffer-size", "4K", "--buffers", "16"]),
}


def parse_output(out):
    """worker lines -> {tid: (mallocs, frees, bytes)}, totals -> dict."""
    workers, totals = {}, {}
    for line in out.decode().splitlines():
        w = line.split()
        if w[0] == "worker":
            workers[int(w[1])] = (int(w[2]), int(w[3]), int(w[4]))
        else:
            totals[w[0]] = int(w[1])
    return workers, totals


def expected_worker_counts(mallocs, frees):
    want = {}
    if mallocs:
        want[("alloc", "malloc")] = mallocs
    if frees:
        want[("free", "free")] = frees
    return want


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in CASES:
        print("usage: stress_check.py HT_CLI STRESS_BIN %s" % "|".join(CASES), file=sys.stderr)
        return 2
    ht, prog, case = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    args, opts = CASES[case]
    c = Checker("stress " + case)
    tmp = tempfile.mkdtemp(prefix="ht-stress-%s-" % case)
    try:
        run_case(c, ht, prog, case, args, opts, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


def run_case(c, ht, prog, case, args, opts, tmp):
    # ---- baseline: the same program, set-up only ----
    base_args = args[:2] + ["0"]
    btrace = os.path.join(tmp, "baseline.htrace")
    rc, out, err = record(ht, btrace, [prog] + base_args)
    if rc != 0:
        c.fatal("baseline recording failed (status %d): %s" % (rc, err.decode(errors="replace")[-500:]))
    b = read_dump(ht, btrace)
    if b.rc != 0 or b.lost != 0:
        c.fatal("baseline trace unreadable or lossy: rc %d lost %d %s" % (b.rc, b.lost, b.stderr[-300:]))
    base = b.by_api
    base_total = b.heap_events()
    print("  info  baseline (%s): heap calls the process makes itself: %s, live at end %d" %
          (" ".join(base_args), sorted(base.items()), b.total("live")), flush=True)

    # ---- the run ----
    trace = os.path.join(tmp, case + ".htrace")
    rc, out, err = record(ht, trace, [prog] + args, opts=opts, timeout=600)
    c.eq(rc, 0, "exit status of `heaptrace record %s -- ht_stress %s` (stderr: %s)" %
         (" ".join(opts), " ".join(args), err.decode(errors="replace")[-300:]))
    workers, totals = parse_output(out)
    nthreads = int(args[1]) * (2 if args[0] == "handoff" else 1)
    iters = int(args[2])
    c.eq(len(workers), nthreads, "the program reports %d worker threads" % nthreads)
    # a malloc and a free per iteration per thread (local) or per pair (handoff)
    c.eq(totals.get("calls"), 2 * int(args[1]) * iters, "heap calls the workers made, by their own count")
    c.eq(totals.get("failed"), 0, "no malloc failed")
    calls = totals.get("calls", 0)

    d = read_dump(ht, trace)
    c.eq(d.rc, 0, "heaptrace dump exit status (stderr: %s)" % d.stderr.decode(errors="replace")[-300:])
    pids = set(d.by_pid)
    c.eq(len(pids), 1, "one process in the trace")
    pid = next(iter(pids)) if pids else 0
    recorded = d.heap_events()
    rc, s, text = read_summary(ht, trace)
    c.eq(rc, 0, "heaptrace summary exit status")
    c.eq(d.session_end.get("damaged"), 0, "session_end damaged=")
    c.eq(d.session_end.get("events"), recorded, "session_end events= == heap events in the dump")
    c.eq(d.session_end.get("lost"), d.lost, "session_end lost= == sum of the lost records in the dump")
    c.eq(s.get("lost"), d.lost, "summary events lost == sum of the lost records in the dump")
    kinds = d.kinds
    c.eq(s.get("allocations"), kinds.get("alloc", 0), "summary allocations == alloc rows in the dump")
    c.eq(s.get("frees"), kinds.get("free", 0), "summary frees == free rows in the dump")
    inv, back = d.order.get(pid, (0, 0))
    print("  info  %d heap events recorded, %d lost, %s; time-order inversions %d (largest %.1f ms back)" %
          (recorded, d.lost, sorted(d.by_api.items()), inv, back / 1e6), flush=True)

    if case == "drop":
        c.check(d.lost > 0, "drop mode with 2 x 4K buffers and 8 threads did drop events (lost %d)" % d.lost)
        c.eq(recorded + d.lost, calls + base_total,
             "recorded heap events + lost == calls made by the workers + the baseline's %d" % base_total)
        for tid, (m, f, nbytes) in workers.items():
            got = sum(v for (ev, api, p, t), v in d.counts.items() if t == tid)
            c.check(got <= m + f, "worker %d: %d recorded heap events <= %d calls it made" % (tid, got, m + f))
            sz = d.sizes.get(("alloc", "malloc", pid, tid))
            if sz:
                c.check(16 <= sz[1] and sz[2] <= 512,
                        "worker %d: recorded malloc sizes within 16..512 (min %d, max %d)" % (tid, sz[1], sz[2]))
        return

    # ---- block mode ----
    c.eq(d.lost, 0, "events lost in block mode")
    worker_tids = set(workers)
    for tid, (m, f, nbytes) in sorted(workers.items()):
        got = {(ev, api): v for (ev, api, p, t), v in d.counts.items() if t == tid}
        c.eq(got, expected_worker_counts(m, f), "worker %d: its heap events, api by api" % tid)
        if m:
            sz = d.sizes.get(("alloc", "malloc", pid, tid), (0, 0, 0))
            c.eq(sz[0], nbytes, "worker %d: sum of the sizes of its mallocs" % tid)
            c.check(16 <= sz[1] and sz[2] <= 512,
                    "worker %d: malloc sizes within 16..512 (min %d, max %d)" % (tid, sz[1], sz[2]))
    rest = {}
    for (ev, api, p, t), v in d.counts.items():
        if t not in worker_tids:
            rest[(ev, api)] = rest.get((ev, api), 0) + v
    c.eq(rest, base, "heap events outside the worker threads == the baseline's")
    wm = sum(m for m, f, _ in workers.values())
    wf = sum(f for m, f, _ in workers.values())
    base_allocs = sum(v for (ev, api), v in base.items() if ev == "alloc")
    base_frees = sum(v for (ev, api), v in base.items() if ev == "free")
    c.eq(kinds.get("alloc", 0), wm + base_allocs, "allocations == %d (workers) + %d (baseline)" % (wm, base_allocs))
    c.eq(kinds.get("free", 0), wf + base_frees, "frees == %d (workers) + %d (baseline)" % (wf, base_frees))
    c.eq(d.total("unknown_frees") + d.total("unknown_reallocs"), 0,
         "every free matches an allocation (own replay of the dump)")
    c.eq(d.total("dup_allocs"), 0, "no address allocated twice while live (own replay of the dump)")
    c.eq(s.get("unknown"), 0, "summary: unknown frees")
    c.eq(d.total("live"), b.total("live"), "blocks live at the end == the baseline's")
    c.eq(s.get("live"), d.total("live"), "summary live-at-exit blocks == own replay of the dump")
    # every case: the merge must never pass a record it has not read yet
    c.eq(inv, 0, "heap events of the process are in time order in the dump (inversions; largest step "
         "back %.1f ms)" % (back / 1e6))


if __name__ == "__main__":
    sys.exit(main())
