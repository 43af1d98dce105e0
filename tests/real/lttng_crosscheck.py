#!/usr/bin/env python3
"""lttng_crosscheck.py HT_CLI PROGRAM [APIMIX_BIN] - heaptrace against an
independent tracer.

PROGRAM is `sqlite` (sqlite3 running a 20,000-insert script), `python`
(python3 with PYTHONHASHSEED=0 running the script of real_programs.py) or
`apimix` (ht_apimix, apimix.c: every allocation API a known number of times,
so that every row of the mapping below is exercised; its own counts are
checked too).  All are deterministic: run twice, they make the same heap
calls.

The program runs twice more: once under LTTng-UST's libc wrapper
(liblttng-ust-libc-wrapper.so, events lttng_ust_libc:malloc, calloc,
realloc, free, memalign, posix_memalign, recorded in a blocking channel so
that none is discarded), once under `heaptrace record` (block mode).  Both
runs get the same environment apart from LD_PRELOAD and
HEAPTRACE_SESSION's value.  The per-API counts and the requested bytes must
then agree EXACTLY, category by category:

  LTTng event                           heaptrace event (api)
  malloc                                alloc (malloc)
  calloc                                alloc (calloc), size = nmemb * size
  realloc, in_ptr == NULL               alloc (realloc) + alloc (reallocarray)
  realloc, size 0, ptr == NULL          free (realloc) + free (reallocarray): glibc frees the block
  realloc, any other                    realloc (realloc) + realloc (reallocarray)
  free, ptr != NULL                     free (free)
  free, ptr == NULL                     (none: heaptrace does not record free(NULL))
  memalign / posix_memalign             alloc (memalign / posix_memalign)

glibc's reallocarray calls realloc through the PLT, so the LTTng wrapper
sees each reallocarray as a realloc: hence the sums above (and heaptrace
must record a reallocarray once, as reallocarray, not also as the realloc
inside it).  heaptrace also records aligned_alloc, valloc, pvalloc and the
C++ operators; glibc serves those without calling any symbol the LTTng
wrapper overrides, so they have no LTTng counterpart (listed, not compared).

What LTTng sees that heaptrace does not is LTTng's own doing: events made by
LTTng's listener threads (vtid != vpid), and events whose caller (the `ip`
context) lies inside a liblttng-ust*.so object, located with the
lttng_ust_statedump:bin_info events of the same trace.  These are taken out
and listed; measured on Debian 12 (lttng-ust 2.13): 4 callocs at start-up
(lttng_ust_tracepoint_module_register in liblttng-ust-tracepoint.so, for the
tracepoint providers) and 2 frees of them at exit, all in the main thread.
Nothing else differs: after removing those, the match is exact.

Needs (Debian): lttng-tools (lttng, lttng-sessiond), liblttng-ust1 (the
wrapper library), babeltrace2 or babeltrace (to read the trace).  A missing
one is a failure: the install script provides them.  A session daemon is
started if none answers, and stopped again at the end.
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from htreal import (Checker, base_env, read_dump, record, remove_tmp, run, write_python_script,  # noqa: E402
                    write_sqlite_script)

LTTNG_TALLY = os.path.join(HERE, "lttng_tally.awk")
WRAPPER_NAMES = ["liblttng-ust-libc-wrapper.so.1", "liblttng-ust-libc-wrapper.so"]
LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
            "/usr/local/lib"]

# LTTng category -> the heaptrace (event, api) pairs it covers
MAPPING = {
    "malloc": [("alloc", "malloc")],
    "calloc": [("alloc", "calloc")],
    "realloc_null": [("alloc", "realloc"), ("alloc", "reallocarray")],
    "realloc_free": [("free", "realloc"), ("free", "reallocarray")],
    "realloc": [("realloc", "realloc"), ("realloc", "reallocarray")],
    "free": [("free", "free")],
    "memalign": [("alloc", "memalign")],
    "posix_memalign": [("alloc", "posix_memalign")],
}
MAPPED = {k for keys in MAPPING.values() for k in keys}
SIZED = ("malloc", "calloc", "realloc_null", "realloc", "memalign", "posix_memalign")


def find_wrapper():
    for d in LIB_DIRS + glob.glob("/usr/lib/*-linux-gnu"):
        for n in WRAPPER_NAMES:
            p = os.path.join(d, n)
            if os.path.exists(p):
                return p
    return None


class Lttng:
    """The lttng command line, with the session daemon started if needed."""

    def __init__(self, c, tmp):
        self.c = c
        self.env = dict(os.environ)
        if os.geteuid() == 0:
            # root's client talks to the root daemon whatever LTTNG_HOME says;
            # keep its ~/.lttngrc ("current session") out of the way
            self.env["LTTNG_HOME"] = tmp
        self.started_pid = None
        self.session = None

    def cmd(self, *args, check=True):
        p = subprocess.run(["lttng"] + list(args), env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        out = p.stdout.decode(errors="replace")
        if check and p.returncode != 0:
            self.c.fatal("`lttng %s` failed (status %d): %s" % (" ".join(args), p.returncode, out[-800:]))
        return p.returncode, out

    def ensure_daemon(self):
        rc, out = self.cmd("list", check=False)
        if rc == 0:
            print("  info  an LTTng session daemon is running; using it")
            return
        print("  info  no LTTng session daemon answers (%s); starting one" % out.strip()[:120])
        p = subprocess.run(["lttng-sessiond", "--daemonize", "--no-kernel"], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if p.returncode != 0:
            self.c.fatal("lttng-sessiond --daemonize failed: %s" % p.stdout.decode(errors="replace")[-800:])
        pidfile = ("/var/run/lttng/lttng-sessiond.pid" if os.geteuid() == 0 else
                   os.path.join(self.env.get("LTTNG_HOME", os.path.expanduser("~")), ".lttng",
                                "lttng-sessiond.pid"))
        try:
            with open(pidfile) as f:
                self.started_pid = int(f.read().strip())
        except (OSError, ValueError):
            print("  info  cannot read %s: the daemon will be left running" % pidfile)
        rc, out = self.cmd("list", check=False)
        if rc != 0:
            self.c.fatal("the session daemon started but `lttng list` still fails: %s" % out[-500:])

    def stop_daemon(self):
        if not self.started_pid:
            return
        try:
            os.kill(self.started_pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(self.started_pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def lttng_record(c, lt, tmp, name, cmd, env, cwd, stdin_path):
    """Runs CMD under the libc wrapper in a fresh session; returns
    (program pid, rc, stdout, stderr, trace dir)."""
    out_dir = os.path.join(tmp, "lttng-" + name)
    session = "ht-xcheck-%d-%s" % (os.getpid(), name)
    lt.cmd("create", session, "--output=" + out_dir)
    lt.session = session
    try:
        # blocking channel: a writer waits for space instead of discarding
        # (needs LTTNG_UST_ALLOW_BLOCKING=1 in the traced process)
        lt.cmd("enable-channel", "-u", "-s", session, "ch", "--subbuf-size=4M", "--num-subbuf=8",
               "--blocking-timeout=inf")
        lt.cmd("enable-event", "-u", "-s", session, "-c", "ch", "lttng_ust_libc:*")
        lt.cmd("enable-event", "-u", "-s", session, "-c", "ch", "lttng_ust_statedump:bin_info")
        lt.cmd("add-context", "-u", "-s", session, "-c", "ch", "-t", "vpid", "-t", "vtid", "-t", "ip")
        lt.cmd("start", session)
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=300)
        if stdin_path:
            stdin.close()
        lt.cmd("stop", session)
        rc, listing = lt.cmd("list", session)
        disc = [int(l.split(":")[1]) for l in listing.splitlines() if "Discarded events:" in l]
        lostp = [int(l.split(":")[1]) for l in listing.splitlines() if "Lost packets:" in l]
        c.check(len(disc) > 0 and sum(disc) == 0 and sum(lostp) == 0,
                "%s: LTTng discarded no events and lost no packets (Discarded events %s, Lost packets %s)" %
                (name, disc, lostp))
    finally:
        lt.cmd("destroy", session, check=False)
        lt.session = None
    return p.pid, p.returncode, out, err, out_dir


def read_lttng(c, name, trace_dir):
    bt = shutil.which("babeltrace2") or shutil.which("babeltrace")
    b = subprocess.Popen([bt, trace_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    a = subprocess.Popen(["awk", "-f", LTTNG_TALLY], stdin=b.stdout, stdout=subprocess.PIPE)
    b.stdout.close()
    tally = a.communicate()[0].decode()
    berr = b.stderr.read().decode(errors="replace")
    brc = b.wait()
    c.eq(brc, 0, "%s: %s reads the LTTng trace (stderr: %s)" % (name, os.path.basename(bt), berr[-300:]))
    c.check("discarded" not in berr.lower(), "%s: %s reports no discarded events" % (name, bt))
    events, bins, other = [], [], {}
    for line in tally.splitlines():
        w = line.split(" ")
        if w[0] == "ev":
            events.append((w[1], int(w[2]), w[3] == "1", int(w[4], 0) if w[4] else 0, int(w[5]), int(w[6]),
                           int(w[7])))
        elif w[0] == "bin":
            bins.append((int(w[1]), int(w[2], 0), int(w[3]), " ".join(w[4:])))
        elif w[0] == "other":
            other[w[1]] = int(w[2])
    return events, bins, other


def compare(c, name, pid, events, bins, d):
    vpids = {e[1] for e in events}
    c.eq(vpids, {pid}, "%s: LTTng libc events come from the traced process only" % name)
    own_ranges = [(base, base + size, path) for (vp, base, size, path) in bins
                  if vp == pid and "liblttng-ust" in os.path.basename(path)]
    c.check(len(own_ranges) >= 2, "%s: LTTng's statedump located its own libraries: %s" %
            (name, [os.path.basename(r[2]) for r in own_ranges]))

    def own_reason(main, ip):
        if not main:
            return "LTTng listener thread"
        for lo, hi, path in own_ranges:
            if lo <= ip < hi:
                return "called from " + os.path.basename(path)
        return None

    prog, prog_bytes, own = {}, {}, {}
    failed = {"alloc": 0, "realloc": 0}
    for cat, vpid, main, ip, cnt, nbytes, nfail in events:
        why = own_reason(main, ip)
        if why:
            own[(cat, why)] = own.get((cat, why), 0) + cnt
            continue
        prog[cat] = prog.get(cat, 0) + cnt
        prog_bytes[cat] = prog_bytes.get(cat, 0) + nbytes
        failed["realloc" if cat == "realloc" else "alloc"] += nfail
    by_api, by_api_bytes = d.by_api, d.bytes_by_api
    ht = {cat: sum(by_api.get(k, 0) for k in keys) for cat, keys in MAPPING.items()}
    ht_bytes = {cat: sum(by_api_bytes.get(k, 0) for k in keys) for cat, keys in MAPPING.items()}
    print("  info  %s: %-15s %12s %12s %14s %14s" % (name, "category", "lttng", "heaptrace", "lttng bytes",
                                                     "heaptrace bytes"))
    for cat in list(MAPPING) + ["free_null"]:
        print("  info  %s: %-15s %12d %12s %14s %14s" % (
            name, cat, prog.get(cat, 0), ht.get(cat, "-"),
            prog_bytes.get(cat, 0) if cat in SIZED else "-", ht_bytes.get(cat, 0) if cat in SIZED else "-"))
    for (cat, why), n in sorted(own.items()):
        print("  info  %s: LTTng's own, taken out: %d %s (%s)" % (name, n, cat, why))
    for cat, keys in MAPPING.items():
        c.eq(ht[cat], prog.get(cat, 0),
             "%s: %s calls: heaptrace %s events == LTTng %s events (LTTng's own taken out)" %
             (name, cat, " + ".join("/".join(k) for k in keys), cat))
        if cat in SIZED:
            c.eq(ht_bytes[cat], prog_bytes.get(cat, 0),
                 "%s: %s: bytes requested by the calls that succeeded agree" % (name, cat))
    c.eq((d.total("failed_allocs"), d.total("failed_reallocs")), (failed["alloc"], failed["realloc"]),
         "%s: failed allocations and failed reallocs: heaptrace == LTTng" % name)
    c.check(sum(own.values()) <= 64, "%s: LTTng's own events are few (%d): the attribution hides nothing "
            "big" % (name, sum(own.values())))
    extra = {k: v for k, v in by_api.items() if k not in MAPPED}
    if extra:
        print("  info  %s: heaptrace events with no LTTng counterpart (not compared): %s" % (name, extra))
    c.check(prog.get("malloc", 0) + prog.get("free", 0) > 1000,
            "%s: the comparison covers a real workload (%d mallocs + frees)" %
            (name, prog.get("malloc", 0) + prog.get("free", 0)))


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[2] not in ("sqlite", "python", "apimix") or \
            (sys.argv[2] == "apimix") != (len(sys.argv) == 4):
        print("usage: lttng_crosscheck.py HT_CLI sqlite|python|apimix [APIMIX_BIN]", file=sys.stderr)
        return 2
    ht, which = os.path.abspath(sys.argv[1]), sys.argv[2]
    c = Checker("lttng_crosscheck " + which)
    missing = []
    for tool, pkg in (("lttng", "lttng-tools"), ("lttng-sessiond", "lttng-tools")):
        if not shutil.which(tool):
            missing.append("%s (Debian package %s)" % (tool, pkg))
    if not (shutil.which("babeltrace2") or shutil.which("babeltrace")):
        missing.append("babeltrace2 or babeltrace (Debian package babeltrace2 or babeltrace)")
    wrapper = find_wrapper()
    if not wrapper:
        missing.append("liblttng-ust-libc-wrapper.so.1 (Debian package liblttng-ust1)")
    need = {"sqlite": "sqlite3", "python": "python3"}.get(which)
    if need and not shutil.which(need):
        missing.append("%s (Debian package %s)" % (need, need))
    if missing:
        c.fatal("missing test dependencies: " + "; ".join(missing))

    tmp = tempfile.mkdtemp(prefix="ht-lttng-%s-" % which)
    env = base_env(tmp)
    # same variables in both runs (python's os.environ, for one, depends on them)
    env["LTTNG_UST_ALLOW_BLOCKING"] = "1"
    env["LTTNG_UST_REGISTER_TIMEOUT"] = "20000"  # ms: never start before the session is set up
    stdin_path = None
    if which == "sqlite":
        stdin_path = os.path.join(tmp, "insert.sql")
        write_sqlite_script(stdin_path, 20000)
        db = os.path.join(tmp, "x.db")
        cmd = ["sqlite3", "-batch", db]
    elif which == "python":
        script = os.path.join(tmp, "work.py")
        write_python_script(script)
        env["PYTHONHASHSEED"] = "0"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        cmd = ["python3", script]
    else:
        cmd = [os.path.abspath(sys.argv[3]), "1000"]

    def fresh():
        if which == "sqlite":
            for s in ("", "-journal"):
                if os.path.exists(db + s):
                    os.unlink(db + s)

    lt = Lttng(c, tmp)
    try:
        lt.ensure_daemon()
        fresh()
        plain = run(cmd, env=env, cwd=tmp, stdin_path=stdin_path)
        fresh()
        trace = os.path.join(tmp, which + ".htrace")
        hrc, hout, herr = record(ht, trace, cmd, env=env, cwd=tmp, stdin_path=stdin_path)
        c.eq((hrc, hout), (plain[0], plain[1]), "%s: exit status and stdout under heaptrace == without" % which)
        d = read_dump(ht, trace)
        c.eq(d.rc, 0, "%s: heaptrace dump reads the trace" % which)
        c.eq(d.lost, 0, "%s: heaptrace lost no events (block mode)" % which)
        # one event per call: an address is never allocated twice while
        # live, and every free is of an address the session saw allocated
        c.eq((d.total("dup_allocs"), d.total("unknown_frees") + d.total("unknown_reallocs")), (0, 0),
             "%s: own replay of the heaptrace dump: (addresses allocated twice while live, unknown frees)"
             % which)
        lenv = dict(env)
        lenv["LD_PRELOAD"] = wrapper
        # heaptrace's run has HEAPTRACE_SESSION set: give this one the variable too
        lenv["HEAPTRACE_SESSION"] = os.path.join(tmp, "no-such-heaptrace-session.sock")
        # The LTTng side is compared twice at most: once (rarely, about one
        # run in twenty, with a session daemon just started) LTTng's trace
        # held one extra never-freed 128 KiB calloc that its own attribution
        # missed, while heaptrace's replay was clean.  heaptrace's recording
        # is deterministic, so a heaptrace bug fails both attempts.
        for attempt in (1, 2):
            cc = c if attempt == 2 else Checker(c.name + " (LTTng attempt 1)")
            fresh()
            pid, rc, out, err, tdir = lttng_record(cc, lt, tmp, which + str(attempt), cmd, lenv, tmp, stdin_path)
            cc.eq((rc, out), (plain[0], plain[1]), "%s: exit status and stdout under LTTng == without" % which)
            events, bins, other = read_lttng(cc, which, tdir)
            if other:
                print("  info  other LTTng events: %s" % other)
            compare(cc, which, pid, events, bins, d)
            shutil.rmtree(tdir, ignore_errors=True)
            if attempt == 1:
                if not cc.failed:
                    c.passed += cc.passed
                    break
                print("  info  LTTng attempt 1 disagreed (%s); recording with LTTng once more" % "; ".join(cc.failed))
        if which == "apimix":
            want = {}
            for line in plain[1].decode().splitlines():
                w = line.split()
                if w[0] == "expect":
                    want[(w[1], w[2])] = int(w[3])
            c.eq(d.by_api, want, "apimix: heaptrace's events, api by api == the calls the program made "
                 "(one event per call)")
    finally:
        lt.stop_daemon()
        remove_tmp(c, tmp)
    c.finish()


if __name__ == "__main__":
    sys.exit(main())
