#!/usr/bin/env python3
"""corrupt_shm.py HT_CLI HT_RUNTIME TARGET SECURE

`target scribble 1.5 W`: two threads allocate while a third overwrites
random bytes (32 runs of 1-16 bytes every 0.5 ms, and every 50th round a
random 4 KiB span) of every shared-memory mapping of heaptrace in the
process (/proc/self/maps: a memfd named *heaptrace*), for 1.5 s, then the
program exits 0.  Run twice under `heaptrace record` and twice under
`heaptrace attach` (the target waits for the session, then scribbles).

The collector treats shared memory as untrusted (the issue: a corrupted
region must not crash or hang it; it reports damage and keeps what was
intact), so:
  - heaptrace ends by itself (timeout: after 40 s the target is killed if
    it still runs, and heaptrace must then end within 20 s), and is not
    killed by a signal: record's status is the program's, attach exits 0;
  - its statistics report "damaged records N" with N > 0;
  - the trace file is complete: `heaptrace dump` exits 0 with no problem
    reported, `heaptrace summary` exits 0 - the collector wrote only what
    it validated, so the file itself is never corrupt.
What becomes of the target (whose own runtime reads the scribbled region)
is reported, not judged.
"""
import os
import signal
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attach_util import Ctx, tally, read_summary, parse_stats, child_pids  # noqa: E402

SECONDS = "1.5"


def finish_or_kill(x, hp, target_pid_fn, label):
    """Waits for heaptrace process HP; if still running after 40 s, kills the
    target (not heaptrace) and gives heaptrace 20 s more.  Returns its
    status (None: hung)."""
    rc = None
    try:
        rc = hp.wait(timeout=40)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
        tp = target_pid_fn()
        print("  info  %s: still running after 40 s; SIGKILL to the target %s" % (label, tp), flush=True)
        if tp:
            try:
                os.kill(tp, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rc = x.wait_proc(hp, 20)
    return rc


def check_result(x, label, rc, want_rc, err, trace):
    c = x.c
    c.check(rc is not None, "%s: heaptrace ended (no hang)" % label)
    if rc is None:
        return
    c.check(rc >= 0, "%s: heaptrace was not killed by a signal (status %d)" % (label, rc))
    if want_rc is not None:
        c.eq(rc, want_rc, "%s: exit status (stderr %r)" % (label, err[-500:]))
    s = parse_stats(err)
    c.check(s.get("damaged", 0) > 0, "%s: statistics report damaged records: %r (stderr %r)" %
            (label, s.get("damaged"), err[-600:]))
    tl = tally(x.htcli, trace, timeout=120)
    c.check(tl.finished, "%s: the trace is complete (dump exit 0, nothing on stderr) and closed (session_end): %s"
            % (label, tl.describe()))
    rcs, summ, text = read_summary(x.htcli, trace)
    c.eq(rcs, 0, "%s: heaptrace summary exit status" % label)
    print("  info  %s: statistics %r; trace session_end %r; %d heap events" %
          (label, s, tl.session_end, tl.heap()), flush=True)


def body(x):
    c = x.c
    for n in range(2):
        label = "record #%d" % n
        trace = os.path.join(x.tmp, "rec%d.htrace" % n)
        hp = x.start([x.htcli, "record", "-o", trace, "--", x.target, "scribble", SECONDS, "0"], env=x.env())
        rc = finish_or_kill(x, hp, lambda: (child_pids(hp.pid) or [None])[0], label)
        err = x.read(hp.err_path)
        out = x.read(hp.out_path).strip()
        print("  info  %s: target said %r, record status %s" % (label, out, rc), flush=True)
        check_result(x, label, rc, None, err, trace)

    for n in range(2):
        label = "attach #%d" % n
        trace = os.path.join(x.tmp, "att%d.htrace" % n)
        t = x.start_target(["scribble", SECONDS, "1"])
        if not c.check(x.wait_endpoint(t.pid), "%s: target %d opens its endpoint" % (label, t.pid)):
            x.kill(t)
            continue
        a = x.attach_bg(t.pid, trace)
        c.check(x.wait_attached(a, t.pid), "%s: attach says attached" % label)
        rc = finish_or_kill(x, a, lambda: t.pid if t.poll() is None else None, label)
        trc = x.wait_proc(t, 10)
        print("  info  %s: target status %s, said %r, stderr %r" %
              (label, trc, x.read(t.out_path).strip(), x.read(t.err_path).strip()[-200:]), flush=True)
        check_result(x, label, rc, 0, x.read(a.err_path), trace)


if __name__ == "__main__":
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    Ctx("corrupt_shm").main(body)
