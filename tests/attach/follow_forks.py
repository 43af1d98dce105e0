#!/usr/bin/env python3
"""follow_forks.py HT_CLI HT_RUNTIME TARGET SECURE

`target family N` allocates N blocks of 11111 bytes, then makes four
children, one after the other, each allocating N blocks of its own marker
size: a fork child (22222), a posix_spawn child (33333), a fork+exec child
(44444) and a vfork+exec child (55555); it prints its own and the
children's pids.

  record --follow-forks: every child is in the trace as its own process
      (a "process" row of its pid, with ppid= the parent), with exactly its
      N marker allocations under its own pid; the parent's stream has its N
      parent markers and none of the children's; the trace is complete.
  record (no --follow-forks): the children's markers are absent (under any
      pid), no child pid has a process row, the parent has its N markers.
Both: the program's output and exit status are unchanged (exit 0).
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attach_util import (Ctx, tally, MARKER_PARENT, MARKER_FORK, MARKER_SPAWN, MARKER_FORKEXEC,  # noqa: E402
                         MARKER_VFORK)

N = 200
KIDS = {"fork": MARKER_FORK, "spawn": MARKER_SPAWN, "forkexec": MARKER_FORKEXEC, "vfork": MARKER_VFORK}
ALL = [MARKER_PARENT] + list(KIDS.values())


def parse_pids(out):
    pids = {}
    for line in out.splitlines():
        w = line.split()
        if len(w) == 2 and w[1].lstrip("-").isdigit():
            pids[w[0]] = int(w[1])
    return pids


def body(x):
    c = x.c
    for follow in (True, False):
        label = "record%s" % (" --follow-forks" if follow else "")
        trace = os.path.join(x.tmp, "ff%d.htrace" % follow)
        opts = ["--follow-forks"] if follow else []
        r = x.ht("record", "-q", *opts, "-o", trace, "--", x.target, "family", N, timeout=120)
        c.eq(r.rc, 0, "%s: exit status (%s)" % (label, r.short()))
        pids = parse_pids(r.out)
        if not c.check(set(pids) == {"parent"} | set(KIDS) and all(v > 0 for v in pids.values()),
                       "%s: the program printed its pid and its 4 children's: %r" % (label, pids)):
            continue
        parent = pids["parent"]
        tl = tally(x.htcli, trace, marker_sizes=ALL)
        c.check(tl.finished, "%s: the trace is complete: %s" % (label, tl.describe()))
        c.eq(tl.marker(parent, MARKER_PARENT), N, "%s: the parent's %d-byte allocations" % (label, MARKER_PARENT))
        for kind, size in KIDS.items():
            c.eq(tl.marker(parent, size), 0, "%s: %s child's %d-byte allocations in the parent's stream" %
                 (label, kind, size))
        for kind, size in KIDS.items():
            kp = pids[kind]
            if follow:
                c.eq(tl.marker(kp, size), N, "%s: %s child %d: its %d-byte allocations under its own pid" %
                     (label, kind, kp, size))
                c.eq(tl.marker_total(size), N, "%s: %d-byte allocations in the whole trace" % (label, size))
                details = tl.processes.get(kp, [])
                c.check(len(details) >= 1, "%s: %s child %d has a process row: %r" % (label, kind, kp, details))
                if details:
                    c.check("ppid=%d" % parent in details[0],
                            "%s: %s child %d's first process row names ppid=%d: %r" %
                            (label, kind, kp, parent, details[0]))
                if kind != "fork":
                    # an exec'd child: an image of it runs the target in kid mode
                    c.check(any("kid" in d for d in details),
                            "%s: %s child %d's process rows name the exec'd command: %r" %
                            (label, kind, kp, details))
            else:
                c.eq(tl.marker_total(size), 0, "%s: %s child's %d-byte allocations anywhere in the trace" %
                     (label, kind, size))
                c.check(kp not in tl.processes and kp not in tl.heap_by_pid,
                        "%s: %s child %d is not in the trace" % (label, kind, kp))
        if not follow:
            c.eq(sorted(tl.processes), [parent], "%s: the processes of the trace" % label)
        print("  info  %s: processes %r, heap events by pid %r" %
              (label, {p: d for p, d in tl.processes.items()}, tl.heap_by_pid), flush=True)


if __name__ == "__main__":
    Ctx("follow_forks").main(body)
