"""attach_util.py - shared helpers of the attach tests (python3 stdlib only).

Every test script is run as

    python3 TEST.py HT_CLI HT_RUNTIME TARGET SECURE

(HT_CLI: the heaptrace command, HT_RUNTIME: libheaptrace.so, TARGET:
ht_attach_target built from target.c, SECURE: ht_attach_secure from
secure.c) and makes one Ctx:

  Ctx.c               the Checker (ok/FAIL line per assertion, exit status)
  Ctx.tmp, Ctx.rtdir  a scratch directory and, inside it, a private (0700)
                      runtime directory: HEAPTRACE_RUNTIME_DIR of both the
                      targets and the heaptrace commands
  Ctx.env()           environment for a command (optionally preloading the
                      runtime, optionally another runtime directory)
  Ctx.ht()            runs `heaptrace ARGS` with a timeout (a hang is a
                      result: rc None), optionally as another user
  Ctx.start()         starts a program in the background (killed at the end)
  Ctx.wait_endpoint() waits for PID's control socket and `status` to answer
  Ctx.status()        `heaptrace status PID` as a dict
  Ctx.ps()            `heaptrace ps` as a list of dicts
  Ctx.attach_bg()     `heaptrace attach` in the background, stderr to a file;
                      Ctx.wait_attached() waits for its "attached to" line
  proc_stats()        fds, threads and RSS of a process, from /proc
  tally()             streams `heaptrace dump --format csv` and counts
"""
import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "real"))
from htreal import Checker, read_summary  # noqa: E402,F401

# marker sizes of target.c
MARKER_CRASH = 77777
MARKER_PARENT = 11111
MARKER_FORK = 22222
MARKER_SPAWN = 33333
MARKER_FORKEXEC = 44444
MARKER_VFORK = 55555

HEAP_EVENTS = ("alloc", "free", "realloc")


class _Fatal(Exception):
    pass


class Result:
    def __init__(self, cmd, rc, out, err, secs):
        self.cmd, self.rc, self.out, self.err, self.secs = cmd, rc, out, err, secs

    @property
    def hung(self):
        return self.rc is None

    def short(self, n=400):
        """rc and the end of stderr, for a failure message."""
        e = self.err.strip().replace("\n", " | ")
        return "rc %s, %.2f s, stderr: %s" % ("TIMEOUT" if self.rc is None else self.rc, self.secs, e[-n:])


def _cmdline(cmd):
    return " ".join(str(a) for a in cmd)


class Ctx:
    def __init__(self, name):
        if len(sys.argv) < 5:
            print("usage: %s HT_CLI HT_RUNTIME TARGET SECURE" % sys.argv[0], file=sys.stderr)
            sys.exit(2)
        self.name = name
        self.htcli, self.runtime, self.target, self.secure = (os.path.abspath(a) for a in sys.argv[1:5])
        self.c = Checker("attach " + name)
        self.tmp = tempfile.mkdtemp(prefix="ht-attach-%s-" % name)
        self.rtdir = os.path.join(self.tmp, "rt")
        os.mkdir(self.rtdir, 0o700)
        os.chmod(self.rtdir, 0o700)
        self.procs = []       # (Popen, files) started here; killed at the end by their pid
        self.cleanups = []    # functions run at the end
        self.is_root = os.geteuid() == 0
        self.c.fatal = self._fatal  # ends the test body, not the process: cleanup must run

    def _fatal(self, msg):
        print("  FATAL " + msg, flush=True)
        self.c.failed.append(msg)
        raise _Fatal(msg)

    # ---- environment and commands ----

    def env(self, preload=False, rtdir=None, extra=None):
        e = dict(os.environ)
        for k in ("LD_PRELOAD", "HEAPTRACE_SESSION", "HEAPTRACE_RUNTIME_DIR"):
            e.pop(k, None)
        e["HEAPTRACE_RUNTIME_DIR"] = rtdir or self.rtdir
        e["HEAPTRACE_RUNTIME"] = self.runtime
        if preload:
            e["LD_PRELOAD"] = preload if isinstance(preload, str) else self.runtime
        if extra:
            e.update(extra)
        return e

    @staticmethod
    def as_user(cmd, user, caps=None):
        """cmd run as USER = (uid, gid) through setpriv (util-linux).
        caps: e.g. "+dac_override", kept as an ambient capability."""
        if user is None:
            return list(cmd)
        pre = ["setpriv", "--reuid=%d" % user[0], "--regid=%d" % user[1], "--clear-groups"]
        if caps:
            pre += ["--inh-caps=" + caps, "--ambient-caps=" + caps]
        return pre + ["--"] + list(cmd)

    def run(self, cmd, timeout=60, env=None, user=None, caps=None, cwd=None, umask=None):
        full = self.as_user(cmd, user, caps)
        t0 = time.monotonic()
        pre = (lambda: os.umask(umask)) if umask is not None else None
        try:
            p = subprocess.run(full, env=env or self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, cwd=cwd or self.tmp, preexec_fn=pre)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = None, e.stdout or b"", e.stderr or b""
        return Result(full, rc, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t0)

    def ht(self, *args, timeout=60, env=None, user=None, caps=None, rtdir=None, umask=None):
        return self.run([self.htcli] + [str(a) for a in args], timeout=timeout,
                        env=env or self.env(rtdir=rtdir), user=user, caps=caps, umask=umask)

    def start(self, cmd, env=None, user=None, caps=None, stdout=None, stderr=None, cwd=None):
        """Starts CMD in the background; stdout/stderr go to files (paths)
        in the scratch directory.  Returns the Popen (p.out_path, p.err_path)."""
        n = len(self.procs)
        out_path = stdout or os.path.join(self.tmp, "bg%d.out" % n)
        err_path = stderr or os.path.join(self.tmp, "bg%d.err" % n)
        fo, fe = open(out_path, "wb"), open(err_path, "wb")
        p = subprocess.Popen(self.as_user(cmd, user, caps), env=env or self.env(), stdin=subprocess.DEVNULL,
                             stdout=fo, stderr=fe, cwd=cwd or self.tmp)
        fo.close()
        fe.close()
        p.out_path, p.err_path = out_path, err_path
        self.procs.append(p)
        return p

    def start_target(self, args, preload=True, rtdir=None, user=None, **kw):
        return self.start([self.target] + [str(a) for a in args],
                          env=kw.pop("env", None) or self.env(preload=preload, rtdir=rtdir), user=user, **kw)

    @staticmethod
    def read(path):
        try:
            with open(path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # ---- control endpoint ----

    def sock_path(self, pid, rtdir=None):
        return os.path.join(rtdir or self.rtdir, "%d.sock" % pid)

    def wait_endpoint(self, pid, timeout=10.0, rtdir=None, user=None):
        """True once PID's socket exists and `heaptrace status PID` says
        state idle or tracing."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if os.path.exists(self.sock_path(pid, rtdir)):
                rc, st, _ = self.status(pid, rtdir=rtdir, user=user)
                if rc == 0 and st.get("state") in ("idle", "tracing"):
                    return True
            time.sleep(0.02)
        return False

    def status(self, pid, rtdir=None, user=None, caps=None, timeout=30):
        """(rc, {key: value}, stderr) of `heaptrace status PID`."""
        r = self.ht("status", pid, rtdir=rtdir, user=user, caps=caps, timeout=timeout)
        d = {}
        for line in r.out.splitlines():
            parts = re.split(r"\s{2,}|\t", line.strip(), maxsplit=1)
            if len(parts) == 2:
                d[parts[0].strip()] = parts[1].strip()
            elif len(parts) == 1 and parts[0]:
                k, _, v = parts[0].partition(" ")
                d.setdefault(k, v.strip())
        return r.rc, d, r.err

    def wait_state(self, pid, state, timeout, rtdir=None):
        """Polls `status` until state == STATE; returns seconds taken or None."""
        t0 = time.monotonic()
        while True:
            rc, st, _ = self.status(pid, rtdir=rtdir)
            el = time.monotonic() - t0
            if rc == 0 and st.get("state") == state:
                return el
            if el > timeout:
                return None
            time.sleep(0.01)

    def ps(self, rtdir=None, user=None, caps=None):
        """(Result, [{pid, state, trace, command}]) of `heaptrace ps`."""
        r = self.ht("ps", rtdir=rtdir, user=user, caps=caps)
        rows = []
        lines = r.out.splitlines()
        for line in lines[1:]:
            w = line.split(None, 3)
            if len(w) >= 3 and w[0].isdigit():
                rows.append({"pid": int(w[0]), "state": w[1], "trace": w[2], "command": w[3] if len(w) > 3 else ""})
        return r, rows

    def attach_bg(self, pid, trace, opts=(), rtdir=None, user=None):
        """`heaptrace attach PID -o TRACE OPTS` in the background."""
        cmd = [self.htcli, "attach", str(pid), "-o", trace] + [str(o) for o in opts]
        p = self.start(cmd, env=self.env(rtdir=rtdir), user=user)
        p.t0 = time.monotonic()
        return p

    def wait_attached(self, p, pid, timeout=10.0):
        """True once P's stderr has its "heaptrace: attached to PID" line;
        False if it ended or timed out first."""
        t0 = time.monotonic()
        want = "heaptrace: attached to %d" % pid
        while time.monotonic() - t0 < timeout:
            if want in self.read(p.err_path):
                return True
            if p.poll() is not None:
                return want in self.read(p.err_path)
            time.sleep(0.005)
        return False

    def wait_proc(self, p, timeout):
        """Exit status of background process P, or None (then it is killed)."""
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(p)
            return None

    def end_attach(self, p, pid, by_detach, fails, label, timeout=30):
        """Ends background attach P: `heaptrace detach PID` or SIGINT to P;
        appends what went wrong to FAILS."""
        if by_detach:
            r = self.ht("detach", pid, timeout=timeout)
            if r.rc != 0:
                fails.append("%s: detach: %s" % (label, r.short()))
        else:
            os.kill(p.pid, signal.SIGINT)
        rc = self.wait_proc(p, timeout)
        if rc != 0:
            fails.append("%s: attach exit %s, stderr %r" % (label, rc, self.read(p.err_path)[-300:]))

    def kill(self, p, sig=signal.SIGKILL):
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGKILL:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    # ---- the end ----

    def finish(self):
        for p in self.procs:
            if p.poll() is None:
                self.kill(p)
        for f in reversed(self.cleanups):
            try:
                f()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                print("  (cleanup: %s)" % e)
        if self.c.failed and os.environ.get("HT_KEEP_TMP"):
            print("  (HT_KEEP_TMP: kept %s for inspection)" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.c.finish()

    def main(self, body):
        """Runs body(self), then finish(); an exception is a failure."""
        def on_term(sig, frame):
            raise _Fatal("terminated by signal %d" % sig)
        signal.signal(signal.SIGTERM, on_term)
        try:
            body(self)
        except _Fatal as e:
            if str(e) not in self.c.failed:
                self.c.failed.append(str(e))
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            self.c.failed.append("exception: %r" % e)
            print("  FAIL  exception: %r" % e, flush=True)
        self.finish()


# ---- /proc ----

def proc_stats(pid):
    """{fds, threads, rss_kb, rss_anon_kb, rss_file_kb, rss_shmem_kb} or None."""
    try:
        fds = len(os.listdir("/proc/%d/fd" % pid))
        st = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                st[k] = v.strip()
        kb = lambda k: int(st.get(k, "0 kB").split()[0])  # noqa: E731
        return {"fds": fds, "threads": int(st["Threads"]), "rss_kb": kb("VmRSS"), "rss_anon_kb": kb("RssAnon"),
                "rss_file_kb": kb("RssFile"), "rss_shmem_kb": kb("RssShmem")}
    except (OSError, KeyError, ValueError):
        return None


def warmup_baseline(x, pid, cycles):
    """fds / threads / RSS of PID, idle again, after CYCLES warm-up cycles."""
    x.wait_state(pid, "idle", 10)
    base = settled_stats(pid)
    print("  info  after %d warm-up cycles: %r" % (cycles, base), flush=True)
    return base


def check_no_growth(c, what, base, end):
    """fds and threads of WHAT at the end no more than after the warm-up."""
    if not (base and end):
        c.check(False, "%s: fd/thread counts could be read (%r, %r)" % (what, base, end))
        return
    c.check(end["fds"] <= base["fds"], "%s: open fds %d after warm-up, %d at the end" %
            (what, base["fds"], end["fds"]))
    c.check(end["threads"] <= base["threads"], "%s: threads %d after warm-up, %d at the end" %
            (what, base["threads"], end["threads"]))


def settled_stats(pid, samples=10, gap=0.05):
    """The smallest fds / threads / rss seen over a few samples: a leak stays,
    a thread or fd on its way out does not."""
    best = None
    for _ in range(samples):
        s = proc_stats(pid)
        if s is None:
            return best
        best = s if best is None else {k: min(best[k], s[k]) for k in s}
        time.sleep(gap)
    return best


def maps_of(pid, word="heaptrace"):
    """Lines of /proc/PID/maps naming a memfd that contains WORD."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return [l.strip() for l in f if "memfd:" in l and word in l]
    except OSError:
        return []


def child_pids(pid):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


# ---- traces ----

class Tally:
    def __init__(self):
        self.rc = None
        self.stderr = ""
        self.rows = 0
        self.events = {}         # event -> rows
        self.heap_by_pid = {}    # pid -> alloc/free/realloc rows
        self.markers = {}        # (pid, size) -> alloc rows of a marker size
        self.processes = {}      # pid -> [detail of each "process" row]
        self.process_end = {}    # pid -> detail
        self.session_end = {}    # key -> int
        self.lost = 0
        self.header = None
        self.sizes_out_of = 0    # heap rows of a tid in `tids` with a size outside `size_range`

    @property
    def complete(self):
        """dump exit 0 and nothing on stderr (no "problems" line)."""
        return self.rc == 0 and not self.stderr.strip()

    @property
    def finished(self):
        """complete, and the collector closed the session (session_end row):
        what a heaptrace that ended normally writes."""
        return self.complete and "session_end" in self.events

    def heap(self):
        return sum(self.heap_by_pid.values())

    def marker(self, pid, size):
        return self.markers.get((pid, size), 0)

    def marker_total(self, size):
        return sum(v for (p, s), v in self.markers.items() if s == size)

    def describe(self):
        return "rc %s, %d rows, events %s, stderr %r" % (self.rc, self.rows, sorted(self.events.items()),
                                                         self.stderr.strip()[-300:])


def tally(htcli, trace, marker_sizes=(), env=None, timeout=120, tids=None, size_range=None):
    """Streams `heaptrace dump TRACE --format csv` and counts its rows."""
    t = Tally()
    markers = set(marker_sizes)
    errf = tempfile.TemporaryFile()
    p = subprocess.Popen([htcli, "dump", trace, "--format", "csv"], stdout=subprocess.PIPE, stderr=errf,
                         stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    try:
        rd = csv.reader(io.TextIOWrapper(p.stdout, encoding="utf-8", errors="replace"))
        for row in rd:
            if t.header is None:
                t.header = row
                col = {n: i for i, n in enumerate(row)}
                continue
            if time.monotonic() > deadline:
                break
            t.rows += 1
            get = lambda n: row[col[n]] if col.get(n) is not None and col[n] < len(row) else ""  # noqa: E731
            ev = get("event")
            t.events[ev] = t.events.get(ev, 0) + 1
            pid = int(get("pid") or 0)
            if ev in HEAP_EVENTS:
                t.heap_by_pid[pid] = t.heap_by_pid.get(pid, 0) + 1
                size = get("size") if ev == "alloc" else get("new_size")
                if ev == "alloc" and size and int(size) in markers:
                    k = (pid, int(size))
                    t.markers[k] = t.markers.get(k, 0) + 1
                if tids is not None and size_range and size and int(get("tid") or 0) in tids:
                    if not size_range[0] <= int(size) <= size_range[1]:
                        t.sizes_out_of += 1
            elif ev == "lost":
                t.lost += int(get("detail") or 0)
            elif ev == "process":
                t.processes.setdefault(pid, []).append(get("detail"))
            elif ev == "process_end":
                t.process_end[pid] = get("detail")
            elif ev == "session_end":
                for kv in get("detail").split():
                    k, _, v = kv.partition("=")
                    try:
                        t.session_end[k] = int(v)
                    except ValueError:
                        pass
    finally:
        try:
            t.rc = p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            t.rc = None
        errf.seek(0)
        t.stderr = errf.read().decode(errors="replace")
        errf.close()
    return t


def parse_stats(text):
    """Numbers of the statistics block `record` / `attach` print on stderr."""
    s = {}
    for k, rx in (("events", r"^\s*events\s+(\d+)"), ("lost", r"^\s*events lost\s+(\d+)"),
                  ("damaged", r"damaged records\s+(\d+)"), ("bytes", r"^\s*bytes written\s+(\d+)"),
                  ("buffers", r"^\s*buffers written\s+(\d+)")):
        m = re.search(rx, text, re.M)
        if m:
            s[k] = int(m.group(1))
    return s


def file_mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return None
