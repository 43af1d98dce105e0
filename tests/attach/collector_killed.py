#!/usr/bin/env python3
"""collector_killed.py HT_CLI HT_RUNTIME TARGET SECURE

`heaptrace attach -m block -b 4K -n 4` (4 sub-buffers for 4 busy threads:
the threads soon wait for the collector) to a busy target, then the attach
process is SIGKILLed mid-session - a few times, at different moments, once
while it was stopped (SIGSTOP) so that every thread was waiting for a
buffer, once in drop mode.  Each time:
  - `heaptrace status PID` says `state idle` within 1.5 s of the kill (the
    issue: the runtime notices a dead collector within a second);
  - the target keeps making progress (its phase counter, written to a file
    after each phase, moves on);
Then a new attach works (exit 0, complete trace with the target's events,
no event lost but at most one per thread that was waiting for a buffer
when the session ended),
and at the end the target's checksum equals the untraced computation.
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attach_util import Ctx, tally  # noqa: E402

IDLE_WITHIN = 1.5


def read_progress(x, path):
    try:
        return int(x.read(path).split()[0])
    except (IndexError, ValueError):
        return -1


def wait_progress(x, path, beyond, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = read_progress(x, path)
        if v > beyond:
            return v
        time.sleep(0.01)
    return None


def body(x):
    c = x.c
    progress = os.path.join(x.tmp, "progress")
    t = x.start_target(["work", "0", progress])
    pid = t.pid
    if not c.check(x.wait_endpoint(pid), "target %d opens its endpoint" % pid):
        c.fatal("no endpoint; target stderr %r" % x.read(t.err_path)[-300:])
    c.check(wait_progress(x, progress, 0, 10) is not None, "the target makes progress before any attach")

    rounds = [("block", 0.05, False), ("block", 0.4, False), ("block", 0.2, True), ("drop", 0.2, False),
              ("block", 0.0, False)]
    for n, (mode, delay, stop_first) in enumerate(rounds):
        label = "round %d (%s mode, kill after %.2f s%s)" % (n, mode, delay, ", stopped first" if stop_first else "")
        trace = os.path.join(x.tmp, "killed%d.htrace" % n)
        p = x.attach_bg(pid, trace, ["-m", mode, "-b", "4K", "-n", "4"])
        if not c.check(x.wait_attached(p, pid), "%s: attach says attached (stderr %r)" %
                       (label, x.read(p.err_path)[-300:])):
            x.kill(p)
            continue
        if n == 0:
            rc, st, err = x.status(pid)
            c.check(rc == 0 and st.get("state") == "tracing" and st.get("collector") == str(p.pid),
                    "%s: status says tracing, collector %d: %r %r" % (label, p.pid, st, err))
            c.check(st.get("buffers in use", "").endswith(" of 4"),
                    "%s: status 'buffers in use' is 'N of 4': %r" % (label, st.get("buffers in use")))
        time.sleep(delay)
        if stop_first:
            os.kill(p.pid, signal.SIGSTOP)
            time.sleep(0.5)  # every thread fills its buffer and waits for one
        before = read_progress(x, progress)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        el = x.wait_state(pid, "idle", 10)
        c.check(el is not None and el <= IDLE_WITHIN,
                "%s: state idle %s after the SIGKILL (want <= %.1f s)" %
                (label, "never (10 s)" if el is None else "%.3f s" % el, IDLE_WITHIN))
        v = wait_progress(x, progress, before + 2, 10)
        c.check(v is not None, "%s: the target goes on (phase %d at the kill, then %s; 10 s allowed)" %
                (label, before, v if v is not None else read_progress(x, progress)))
        c.check(t.poll() is None, "%s: the target is alive" % label)
        tl = tally(x.htcli, trace, timeout=60)
        print("  info  %s: the killed collector's partial trace: %s" % (label, tl.describe()), flush=True)

    # attach again, successfully
    trace = os.path.join(x.tmp, "after.htrace")
    r = x.ht("attach", pid, "-d", "0.3", "-m", "block", "-b", "4K", "-n", "4", "-o", trace, timeout=60)
    c.eq(r.rc, 0, "attach after the kills: exit status (%s)" % r.short())
    tl = tally(x.htcli, trace)
    c.check(tl.finished, "the new trace is complete: %s" % tl.describe())
    c.check(tl.heap_by_pid.get(pid, 0) > 0 and set(tl.heap_by_pid) == {pid},
            "the new trace has the target's heap events: %r" % tl.heap_by_pid)
    # Block mode loses nothing while the session runs; an event a thread was
    # waiting to write (for one of the 4 buffers) when the session ended is
    # counted as lost: at most one per allocating thread (4).
    c.check(tl.lost <= 4, "events lost in the block-mode trace after the kills: %d (at most one per thread, "
            "waiting at the session's end)" % tl.lost)

    os.kill(pid, signal.SIGUSR1)
    rc = x.wait_proc(t, 120)
    out = x.read(t.out_path).strip()
    c.eq(rc, 0, "exit status of the target (stderr %r)" % x.read(t.err_path)[-300:])
    w = out.split()
    if c.check(len(w) == 6 and w[5] == "0", "target output %r" % out):
        e = x.run([x.target, "expect", w[1]], timeout=120)
        c.eq(out, e.out.strip(), "checksum of the target vs untraced")


if __name__ == "__main__":
    Ctx("collector_killed").main(body)
