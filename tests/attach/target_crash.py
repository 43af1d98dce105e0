#!/usr/bin/env python3
"""target_crash.py HT_CLI HT_RUNTIME TARGET SECURE

The traced process dies mid-session: a null-pointer write (SIGSEGV),
abort() (SIGABRT), or SIGKILL from outside (after it said it is ready).
Before that it allocated N blocks of a marker size (77777 bytes), so
those events were committed to shared memory before the death; nothing
was flushed on the way out.  Under `heaptrace record` and under
`heaptrace attach` (the target waits until ht_enabled() says a session
records it, then allocates):
  - the heaptrace command ends by itself (no hang), record with the
    program's status (128+N), attach with exit 0 (a complete trace written);
  - the trace is complete (dump exit 0, no problems on stderr);
  - all N marker allocations are in it, under the target's pid;
  - under record, the summary's "process ended" names the signal.
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attach_util import Ctx, tally, read_summary, MARKER_CRASH  # noqa: E402

N = 300
HOW = (("segv", signal.SIGSEGV), ("abort", signal.SIGABRT), ("kill", signal.SIGKILL))


def wait_ready(x, path, p, timeout=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        w = x.read(path).split()
        if len(w) == 2 and w[0] == "ready":
            return int(w[1])
        if p is not None and p.poll() is not None:
            return None
        time.sleep(0.01)
    return None


def check_trace(x, label, trace, pid):
    c = x.c
    tl = tally(x.htcli, trace, marker_sizes=[MARKER_CRASH])
    c.check(tl.finished, "%s: the trace is complete (dump exit 0, no problems, session_end): %s" % (label, tl.describe()))
    if pid is None:  # the one process of the trace
        pids = list(tl.processes)
        pid = pids[0] if len(pids) == 1 else None
    c.eq(tl.marker(pid, MARKER_CRASH), N, "%s: %d-byte allocations of pid %s in the trace (all %d made before "
         "the death)" % (label, MARKER_CRASH, pid, N))
    c.eq(tl.marker_total(MARKER_CRASH), tl.marker(pid, MARKER_CRASH), "%s: no marker under another pid" % label)
    return tl


def body(x):
    c = x.c
    for how, sig in HOW:
        # ---- record ----
        label = "record/%s" % how
        trace = os.path.join(x.tmp, "rec-%s.htrace" % how)
        ready = os.path.join(x.tmp, "rec-%s.ready" % how)
        cmd = [x.htcli, "record", "-q", "-o", trace, "--", x.target, "crash", how, str(N), "0", ready]
        p = x.start(cmd, env=x.env())
        pid = None
        if how == "kill":
            pid = wait_ready(x, ready, p)
            if c.check(pid is not None, "%s: the target says ready" % label):
                os.kill(pid, signal.SIGKILL)
        rc = x.wait_proc(p, 60)
        c.eq(rc, 128 + sig, "%s: exit status of heaptrace record (stderr %r)" % (label, x.read(p.err_path)[-300:]))
        check_trace(x, label, trace, pid)
        rcs, s, text = read_summary(x.htcli, trace)
        c.eq(rcs, 0, "%s: heaptrace summary exit status" % label)
        ended = s.get("ended") or ""
        c.check("signal %d" % sig in ended, "%s: summary 'process ended' names signal %d: %r" % (label, sig, ended))

        # ---- attach ----
        label = "attach/%s" % how
        trace = os.path.join(x.tmp, "att-%s.htrace" % how)
        ready = os.path.join(x.tmp, "att-%s.ready" % how)
        t = x.start_target(["crash", how, N, "1", ready])
        if not c.check(x.wait_endpoint(t.pid), "%s: target %d opens its endpoint" % (label, t.pid)):
            x.kill(t)
            continue
        a = x.attach_bg(t.pid, trace)
        c.check(x.wait_attached(a, t.pid), "%s: attach says attached (stderr %r)" % (label, x.read(a.err_path)[-300:]))
        if how == "kill":
            rp = wait_ready(x, ready, t)
            if c.check(rp == t.pid, "%s: the target says ready" % label):
                os.kill(t.pid, signal.SIGKILL)
        trc = x.wait_proc(t, 30)
        c.eq(trc, -sig, "%s: the target died of signal %d" % (label, sig))
        rc = x.wait_proc(a, 30)
        c.eq(rc, 0, "%s: exit status of heaptrace attach after the target died (stderr %r)" %
             (label, x.read(a.err_path)[-300:]))
        tl = check_trace(x, label, trace, t.pid)
        print("  info  %s: process_end in the trace: %r" % (label, tl.process_end), flush=True)


if __name__ == "__main__":
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files from the crashes
    Ctx("target_crash").main(body)
