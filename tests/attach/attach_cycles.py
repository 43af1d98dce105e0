#!/usr/bin/env python3
"""attach_cycles.py HT_CLI HT_RUNTIME TARGET SECURE

A 4-thread target (`target work 0`: malloc/calloc/realloc/free of checked,
deterministic content, until SIGUSR1) runs with the runtime preloaded while
heaptrace attaches to it and detaches again >= 1000 times (HT_ATTACH_CYCLES
overrides), in a mix of ways:
  - `attach --duration 0.005 -q` (15 of 20 cycles)
  - `attach` in the background, then `heaptrace detach PID` (3 of 20; one
    in 20 of those with -q, waiting for `status` to say tracing)
  - `attach` in the background, then SIGINT / SIGTERM to it (1 of 20 each)
  - every 100th cycle: `attach --duration 0.05` with statistics, its trace
    checked: complete (dump exit 0, no problems), events of the target's
    pid only, summary readable.
Error cases: attach / status / detach of a pid that does not exist, of a
process without the runtime, detach of an idle process: exit 1 with one
line on stderr ("heaptrace: attach PID: ..." for attach).  attach without
-o writes heaptrace.COMM.PID.htrace in its working directory.  A stale
socket file left by a killed process of the same pid does not stop a new
process from opening its endpoint; ps lists no dead process.
Asserts: every attach / detach exits 0; `status` and `ps` tell idle and
tracing (with the trace file and the collector's pid) correctly; a second
attach while a session runs fails with "already being traced" and leaves
the first session alone; detach of an idle process fails; the target never
crashes, and its checksum after N phases equals the untraced `expect N`
(no block's content was changed); its fd count, thread count and RSS after
the cycles are not above what they were after 20 warm-up cycles (RSS:
+2 MiB tolerance), measured while idle.
"""
import os
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attach_util import Ctx, check_no_growth, warmup_baseline, settled_stats, tally, read_summary, parse_stats, file_mode  # noqa: E402

CYCLES = int(os.environ.get("HT_ATTACH_CYCLES", "1000"))
WARMUP = 20
PAUSE_US = 2000
KINDS = ("quick",) * 15 + ("detach", "detach", "detach", "sigint", "sigterm")


def dead_pid(x):
    """A pid that no process has: one that just ended (not reused that fast)."""
    p = x.start(["true"])
    p.wait()
    return p.pid


def body(x):
    c = x.c
    # the expect mode agrees with real work (what the checksum check relies on)
    a = x.run([x.target, "work", "70"], timeout=120)
    b = x.run([x.target, "expect", "70"], timeout=120)
    c.check(a.rc == 0 and a.out == b.out and "bad 0" in a.out,
            "plain `target work 70` (%r) == `target expect 70` (%r)" % (a.out.strip(), b.out.strip()))

    progress = os.path.join(x.tmp, "progress")
    # 2 ms pause per phase: the 4 threads keep allocating all the time but
    # leave one of CI's 2 CPUs to heaptrace (1000 cycles must fit in a minute)
    t = x.start_target(["work", "0", progress, PAUSE_US])
    pid = t.pid
    if not c.check(x.wait_endpoint(pid), "the preloaded target (pid %d) opens its control endpoint %s" %
                   (pid, x.sock_path(pid))):
        c.fatal("no endpoint; target stderr: %r" % x.read(t.err_path)[-300:])

    rc, st, err = x.status(pid)
    c.check(rc == 0 and st.get("state") == "idle" and st.get("pid") == str(pid),
            "status of the idle target: pid %s, state %r (rc %s, %r)" % (st.get("pid"), st.get("state"), rc, err))
    c.check("command" in st and "ht_attach_target" in st.get("command", ""),
            "status names the command: %r" % st.get("command"))
    r, rows = x.ps()
    mine = [w for w in rows if w["pid"] == pid]
    c.check(r.rc == 0 and len(mine) == 1 and mine[0]["state"] == "idle" and mine[0]["trace"] == "-"
            and "ht_attach_target" in mine[0]["command"],
            "ps lists the target as idle, trace '-': %r (rc %s, %r)" % (mine, r.rc, r.err.strip()))

    c.check(r.out.splitlines()[:1] and all(w in r.out.splitlines()[0] for w in ("PID", "STATE", "TRACE", "COMMAND")),
            "ps starts with a header line PID STATE TRACE COMMAND: %r" % r.out.splitlines()[:1])

    # the error cases: exit 1, one line on stderr
    r = x.ht("detach", pid)
    c.check(r.rc == 1 and len(r.err.strip().splitlines()) == 1 and r.err.startswith("heaptrace: "),
            "detach of an idle process: exit 1 with one line on stderr (%s)" % r.short())
    plain = x.start(["sleep", "60"])  # a process without the runtime
    time.sleep(0.1)
    dead = dead_pid(x)
    for what, q in (("a pid that does not exist", dead), ("a process without the runtime", plain.pid)):
        r = x.ht("attach", q, "-d", "0.1", "-o", os.path.join(x.tmp, "none.htrace"), timeout=30)
        lines = r.err.strip().splitlines()
        c.check(r.rc == 1 and len(lines) == 1 and lines[0].startswith("heaptrace: attach %d:" % q),
                "attach to %s: exit 1, one line 'heaptrace: attach %d: ...' (%s)" % (what, q, r.short()))
        r = x.ht("status", q, timeout=30)
        c.check(r.rc == 1 and len(r.err.strip().splitlines()) == 1,
                "status of %s: exit 1, one line on stderr (%s)" % (what, r.short()))
        r = x.ht("detach", q, timeout=30)
        c.check(r.rc == 1 and len(r.err.strip().splitlines()) == 1,
                "detach of %s: exit 1, one line on stderr (%s)" % (what, r.short()))
    x.kill(plain)

    # a stale socket file of an earlier process with the same pid (killed,
    # never cleaned up): the new process must still open its endpoint
    sh = x.start(["sh", "-c", "sleep 0.5; exec env LD_PRELOAD=\"$1\" \"$0\" work 0", x.target, x.runtime],
                 env=x.env())
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(x.sock_path(sh.pid))
    stale.close()  # the file stays, nobody listens
    c.check(x.wait_endpoint(sh.pid), "a process whose pid has a stale socket file in the runtime directory still "
            "opens its endpoint (pid reuse)")
    rc, st, err = x.status(sh.pid)
    c.check(rc == 0 and "work 0" in st.get("command", ""), "it answers status: %r (rc %s, %r)" % (st, rc, err))
    r, rows = x.ps()
    c.check([w["state"] for w in rows if w["pid"] == sh.pid] == ["idle"], "ps lists it once, idle: %r" %
            [w for w in rows if w["pid"] == sh.pid])
    x.kill(sh)
    r, rows = x.ps()
    c.check(all(w["pid"] != sh.pid for w in rows), "after a SIGKILL (socket file left behind) ps does not list "
            "the dead pid: %r" % [w for w in rows if w["pid"] == sh.pid])
    rc, st, err = x.status(sh.pid)
    c.check(rc == 1 and len(err.strip().splitlines()) == 1,
            "status of the SIGKILLed process: exit 1, one line (rc %s, %r)" % (rc, err))

    # the default trace file name: heaptrace.COMM.PID.htrace in the cwd
    comm = x.read("/proc/%d/comm" % pid).strip()
    r = x.ht("attach", pid, "-d", "0.02", "-q", timeout=30)
    want = os.path.join(x.tmp, "heaptrace.%s.%d.htrace" % (comm, pid))
    c.check(r.rc == 0 and os.path.exists(want), "attach without -o writes %s (%s; files: %r)" %
            (os.path.basename(want), r.short(), sorted(f for f in os.listdir(x.tmp) if f.endswith(".htrace"))))
    if os.path.exists(want):
        os.unlink(want)

    base = None
    fails = []
    checked = 0
    kinds = {}
    ktime = {}
    t_start = time.monotonic()
    for i in range(CYCLES):
        if t.poll() is not None:
            fails.append("cycle %d: the target ended (status %s): %r" % (i, t.returncode, x.read(t.err_path)[-300:]))
            break
        trace = os.path.join(x.tmp, "c%d.htrace" % i)
        kind = "check" if i % 100 == 99 else KINDS[i % len(KINDS)]
        kinds[kind] = kinds.get(kind, 0) + 1
        tk = time.monotonic()
        if kind == "quick":
            r = x.ht("attach", pid, "-d", "0.005", "-q", "-o", trace, timeout=30)
            if r.rc != 0:
                fails.append("cycle %d: attach -d 0.005 -q: %s" % (i, r.short()))
        elif kind == "check":
            r = x.ht("attach", pid, "-d", "0.05", "-o", trace, timeout=30)
            if r.rc != 0:
                fails.append("cycle %d: attach -d 0.05: %s" % (i, r.short()))
            else:
                checked += 1
                ok = "heaptrace: attached to %d" % pid in r.err
                s = parse_stats(r.err)
                tl = tally(x.htcli, trace)
                rcs, summ, text = read_summary(x.htcli, trace)
                if not ok or "events" not in s:
                    fails.append("cycle %d: attach stderr lacks the attached line or statistics: %r" %
                                 (i, r.err[-400:]))
                if not tl.finished or rcs != 0:
                    fails.append("cycle %d: trace not complete: dump %s; summary rc %s" % (i, tl.describe(), rcs))
                if tl.heap() == 0 or set(tl.heap_by_pid) != {pid}:
                    fails.append("cycle %d: heap events by pid %r, want some, all of pid %d" %
                                 (i, tl.heap_by_pid, pid))
                if s.get("events") is not None and tl.session_end.get("events") is not None and \
                        s["events"] != tl.session_end["events"]:
                    fails.append("cycle %d: statistics say %d events, session_end %d" %
                                 (i, s["events"], tl.session_end["events"]))
                if i == 99:
                    c.eq(file_mode(trace), 0o600, "mode of the trace file attach wrote")
                    print("  info  cycle %d: %d heap events in 50 ms, summary: %s" %
                          (i, tl.heap(), " / ".join(l.strip() for l in text.splitlines()[:3])), flush=True)
        else:
            quiet = kind == "detach" and i % 100 == 15
            p = x.attach_bg(pid, trace, ["-q"] if quiet else [])
            if quiet:
                # -q: no "attached" line; poll status for tracing
                if x.wait_state(pid, "tracing", 10) is None:
                    fails.append("cycle %d: attach -q in the background: state never tracing" % i)
            elif not x.wait_attached(p, pid):
                fails.append("cycle %d: background attach never said 'attached to %d': %r" %
                             (i, pid, x.read(p.err_path)[-300:]))
            if i % 100 in (16, 38):  # a detach and a sigint cycle
                rc, st, err = x.status(pid)
                good = (rc == 0 and st.get("state") == "tracing" and st.get("collector") == str(p.pid)
                        and os.path.abspath(st.get("trace", "")) == os.path.abspath(trace)
                        and all(k in st for k in ("events", "lost", "buffers in use", "buffers written",
                                                  "bytes written")))
                if not good:
                    fails.append("cycle %d: status while tracing (collector %d, trace %s): rc %s %r %r" %
                                 (i, p.pid, trace, rc, st, err))
                r, rows = x.ps()
                mine = [w for w in rows if w["pid"] == pid]
                if not (len(mine) == 1 and mine[0]["state"] == "tracing"
                        and os.path.abspath(mine[0]["trace"]) == os.path.abspath(trace)):
                    fails.append("cycle %d: ps while tracing: %r (%s)" % (i, mine, r.short()))
            if kind == "detach":
                r = x.ht("detach", pid, timeout=30)
                if r.rc != 0:
                    fails.append("cycle %d: detach: %s" % (i, r.short()))
            else:
                os.kill(p.pid, signal.SIGINT if kind == "sigint" else signal.SIGTERM)
            rc = x.wait_proc(p, 30)
            if rc != 0:
                fails.append("cycle %d: background attach ended by %s: exit %s, stderr %r" %
                             (i, kind, rc, x.read(p.err_path)[-300:]))
        ktime[kind] = ktime.get(kind, 0.0) + time.monotonic() - tk
        if os.path.exists(trace):
            os.unlink(trace)
        elif kind in ("quick", "check"):
            fails.append("cycle %d: attach wrote no trace file %s" % (i, trace))
        if i + 1 == WARMUP:
            base = warmup_baseline(x, pid, WARMUP)
        if len(fails) > 20:
            break
    secs = time.monotonic() - t_start
    print("  info  %d cycles in %.1f s (%s), %d traces checked" %
          (i + 1, secs, ", ".join("%s %d x %.0f ms" % (k, n, 1000 * ktime.get(k, 0) / n)
                                  for k, n in sorted(kinds.items())), checked), flush=True)
    for f in fails[:10]:
        print("  ..    " + f)
    c.eq(len(fails), 0, "failed cycles (attach/detach exit status, status/ps, traces) in %d cycles" % (i + 1))
    c.check(i + 1 == CYCLES, "all %d cycles ran" % CYCLES)

    # one session at a time
    trace = os.path.join(x.tmp, "first.htrace")
    p = x.attach_bg(pid, trace)
    if c.check(x.wait_attached(p, pid), "background attach for the double-attach check"):
        r = x.ht("attach", pid, "-d", "0.1", "-o", os.path.join(x.tmp, "second.htrace"), timeout=30)
        lines = r.err.strip().splitlines()
        c.check(r.rc == 1 and len(lines) == 1 and lines[0].startswith("heaptrace: attach %d:" % pid)
                and "already being traced" in r.err,
                "a second attach fails: exit 1, one line 'heaptrace: attach %d: ...already being traced' (%s)" %
                (pid, r.short()))
        rc, st, _ = x.status(pid)
        c.check(st.get("state") == "tracing" and st.get("collector") == str(p.pid),
                "the first session goes on after the refused attach: %r" % st)
        r = x.ht("detach", pid, timeout=30)
        c.eq(r.rc, 0, "detach of the first session (%s)" % r.short())
    c.eq(x.wait_proc(p, 30), 0, "exit status of the first attach")
    tl = tally(x.htcli, trace)
    c.check(tl.finished and tl.heap() > 0, "the first session's trace is complete, with events: %s" % tl.describe())

    # resources: no growth
    x.wait_state(pid, "idle", 10)
    end = settled_stats(pid)
    print("  info  after the cycles: %r" % (end,), flush=True)
    check_no_growth(c, "the target", base, end)
    if base and end:
        c.check(end["rss_kb"] <= base["rss_kb"] + 2048, "RSS of the target: %d KiB after warm-up, %d KiB at the "
                "end (tolerance +2048)" % (base["rss_kb"], end["rss_kb"]))
        c.check(end["rss_shmem_kb"] <= base["rss_shmem_kb"] + 256,
                "shared-memory RSS while idle: %d KiB after warm-up, %d KiB at the end" %
                (base["rss_shmem_kb"], end["rss_shmem_kb"]))
    else:
        c.check(False, "resource figures of the target could be read (%r, %r)" % (base, end))

    # stop it: its output must be what the untraced program computes
    os.kill(pid, signal.SIGUSR1)
    rc = x.wait_proc(t, 120)
    out = x.read(t.out_path).strip()
    c.eq(rc, 0, "exit status of the target (stderr %r)" % x.read(t.err_path)[-300:])
    w = out.split()
    if c.check(len(w) == 6 and w[0] == "phases" and w[5] == "0", "target output %r: phases, checksum, bad 0" % out):
        e = x.run([x.target, "expect", w[1]], timeout=120)
        c.eq(out, e.out.strip(), "checksum after %s phases, traced and attached %d times, vs untraced" %
             (w[1], CYCLES))
    print("  info  socket file after the target exited: %s" %
          ("still there" if os.path.exists(x.sock_path(pid)) else "removed"))


if __name__ == "__main__":
    Ctx("cycles").main(body)
