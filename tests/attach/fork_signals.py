#!/usr/bin/env python3
"""fork_signals.py HT_CLI HT_RUNTIME TARGET SECURE

`target forkstorm`: the main thread forks children non-stop (they allocate
and exit - by _exit, by exit, or after running for 20-50 ms, some exec the
target again), a 2 kHz timer's handler mallocs/callocs/reallocs/frees, a
worker thread allocates; one long-lived fork child runs from the start.
While it runs, heaptrace attaches and detaches 100 times (--duration,
background + detach, background + SIGINT); in the middle, with a session
running, SIGUSR2 makes the target fork a child that execs `target work 0`.
Asserts:
  - no deadlock: every attach/detach ends (exit 0) within its timeout, the
    target and all its children end when told to (the target exits 0: every
    child exited 0);
  - the long-lived children - a plain fork child and a fork+exec child made
    during a session - have endpoints of their own pids, are idle (the
    parent's session did not take them along), and an attach to each
    records heap events of that pid only.
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attach_util import Ctx, tally  # noqa: E402

CYCLES = 100


def body(x):
    c = x.c
    longkids = os.path.join(x.tmp, "longkids")
    t = x.start_target(["forkstorm", longkids])
    pid = t.pid
    if not c.check(x.wait_endpoint(pid), "target %d opens its endpoint" % pid):
        c.fatal("no endpoint; target stderr %r" % x.read(t.err_path)[-300:])
    fails = []
    for i in range(CYCLES):
        if t.poll() is not None:
            fails.append("cycle %d: the target ended: status %s, stderr %r" % (i, t.returncode,
                                                                              x.read(t.err_path)[-300:]))
            break
        trace = os.path.join(x.tmp, "f%d.htrace" % i)
        k = i % 3
        if k == 0:
            r = x.ht("attach", pid, "-d", "0.02", "-q", "-o", trace, timeout=60)
            if r.rc != 0:
                fails.append("cycle %d: attach -d 0.02: %s" % (i, r.short()))
        else:
            p = x.attach_bg(pid, trace)
            if not x.wait_attached(p, pid, timeout=30):
                fails.append("cycle %d: attach never said attached: %r" % (i, x.read(p.err_path)[-300:]))
            if i == CYCLES // 2:
                os.kill(pid, signal.SIGUSR2)  # a fork+exec child, made while the session runs
                time.sleep(0.1)
            time.sleep(0.01)
            x.end_attach(p, pid, k == 1, fails, "cycle %d" % i, timeout=60)
        if i % 25 == 24 and os.path.exists(trace):
            tl = tally(x.htcli, trace)
            if not tl.finished or set(tl.heap_by_pid) - {pid}:
                fails.append("cycle %d: trace %s (heap events by pid %r)" % (i, tl.describe(), tl.heap_by_pid))
        if os.path.exists(trace):
            os.unlink(trace)
    for f in fails[:10]:
        print("  ..    " + f)
    c.eq(len(fails), 0, "failed attach/detach cycles out of %d (exit status, timeouts, traces)" % CYCLES)

    # the long-lived children
    kids = []
    for line in x.read(longkids).splitlines():
        w = line.split()
        if len(w) == 2:
            kids.append((w[0], int(w[1])))
    c.eq(sorted(k for k, _ in kids), ["exec", "fork"], "long-lived children listed by the target: %r" % kids)
    for kind, kp in kids:
        label = "%s child %d" % (kind, kp)
        ok = x.wait_endpoint(kp, timeout=10)
        c.check(ok, "%s: has its own endpoint %s" % (label, x.sock_path(kp)))
        if not ok:
            continue
        rc, st, err = x.status(kp)
        c.check(rc == 0 and st.get("state") == "idle" and st.get("pid") == str(kp),
                "%s: status says pid %d, idle: %r %r" % (label, kp, st, err))
        trace = os.path.join(x.tmp, "kid-%s.htrace" % kind)
        r = x.ht("attach", kp, "-d", "0.2", "-q", "-o", trace, timeout=60)
        c.eq(r.rc, 0, "%s: attach exit status (%s)" % (label, r.short()))
        tl = tally(x.htcli, trace)
        c.check(tl.finished and tl.heap_by_pid.get(kp, 0) > 0 and set(tl.heap_by_pid) == {kp},
                "%s: its trace is complete with heap events of pid %d only: %r, %s" %
                (label, kp, tl.heap_by_pid, tl.describe()))

    os.kill(pid, signal.SIGUSR1)
    rc = x.wait_proc(t, 120)
    out = x.read(t.out_path)
    c.eq(rc, 0, "exit status of the fork-storm target (every child exited 0; stderr %r)" %
         x.read(t.err_path)[-400:])
    fl = [l.split() for l in out.splitlines() if l.startswith("forks ")]
    w = fl[0] if fl else []
    c.check(len(w) >= 6 and int(w[1]) > 50 and int(w[5]) > 100,
            "the target forked (> 50) and its timer handler ran (> 100): %r" % out.strip()[-200:])
    pl = [l for l in out.splitlines() if l.startswith("phases ")]
    c.check(len(pl) == 1 and pl[0].endswith(" bad 0"),
            "the exec'd `work` child ended its work with no bad block: %r" % pl)


if __name__ == "__main__":
    Ctx("fork_signals").main(body)
