#!/usr/bin/env python3
"""harness.py - the measuring half of bench/run (python3 stdlib only).

bench/run builds heaptrace and the workloads, then runs this script; see
bench/README.md for what is measured and how to read the table.  In short:
every workload runs under every configuration, configurations alternating
(round r starts at configuration r, so none always runs first), after
warm-up rounds that are not counted; the table shows medians.

Per run it measures
  wall            perf_counter from spawning the configuration's command to
                  its exit (for the LTTng session configurations: the
                  program's run plus `lttng stop`, which waits until the
                  trace data is flushed; session set-up and destroy are not
                  counted)
  program         the traced program's own lifetime and CPU
  collector       CPU and peak RSS of the tracer's separate processes
  trace           bytes on disk, events lost
Per-process figures of processes that are not our direct children (the
program under `heaptrace record` or heaptrack, heaptrack's helpers) come
from the kernel's taskstats exit records (genetlink "TASKSTATS", needs root:
CAP_NET_ADMIN): one record per exiting thread with its user+system CPU time,
lifetime (ac_etime) and its process's peak RSS (hiwater_rss).  LTTng's
consumer daemon lives on between runs: its CPU is the delta of its threads'
/proc/PID/task/TID/schedstat run time and its peak RSS is VmHWM after a
reset (`echo 5 > /proc/PID/clear_refs`) before the run.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# --------------------------------------------------------------------------
# taskstats: per-thread exit records from the kernel
# --------------------------------------------------------------------------
NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 3, 1, 2
TASKSTATS_CMD_GET, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK = 1, 3
TASKSTATS_TYPE_PID, TASKSTATS_TYPE_STATS, TASKSTATS_TYPE_AGGR_PID = 1, 3, 4
NLMSG_ERROR = 2
SO_RCVBUFFORCE = 33
# offsets in struct taskstats (<linux/taskstats.h>, version >= 12; checked
# against the header of Debian 12's linux-libc-dev with offsetof)
TS_COMM, TS_PID, TS_PPID, TS_ETIME, TS_UTIME, TS_STIME, TS_HIWATER, TS_TGID = 80, 128, 132, 144, 152, 160, 200, 368


def _nlattr(t, data):
    n = 4 + len(data)
    return struct.pack("HH", n, t) + data + b"\0" * ((4 - n % 4) % 4)


def _nlattrs(b):
    i = 0
    while i + 4 <= len(b):
        n, t = struct.unpack_from("HH", b, i)
        if n < 4:
            break
        yield t & 0x3FFF, b[i + 4:i + n]
        i += (n + 3) & ~3


class TaskStats:
    """Listens to the exit records of every task on every CPU."""

    def __init__(self):
        self.sock = None
        self.error = None
        self.records = []  # dicts: tid, tgid, ppid, comm, cpu_us, etime_us, hiwater_kb
        self.overruns = 0
        try:
            self._open()
        except (OSError, ValueError) as e:
            self.error = str(e)
            if self.sock:
                self.sock.close()
            self.sock = None

    def _send(self, typ, flags, cmd, attrs):
        body = struct.pack("BBH", cmd, 1, 0) + attrs
        self.sock.send(struct.pack("IHHII", 16 + len(body), typ, flags, 1, 0) + body)

    def _open(self):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock = s
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        s.bind((0, 0))
        self._send(GENL_ID_CTRL, 1 | 4, CTRL_CMD_GETFAMILY, _nlattr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"))
        d = s.recv(65536)
        n, typ = struct.unpack_from("IH", d)
        if typ == NLMSG_ERROR:
            raise OSError("taskstats: genetlink family TASKSTATS not found (error %d)" %
                          struct.unpack_from("i", d, 16)[0])
        self.family = None
        for t, v in _nlattrs(d[20:n]):
            if t == CTRL_ATTR_FAMILY_ID:
                self.family = struct.unpack("H", v[:2])[0]
        if self.family is None:
            raise OSError("taskstats: no family id in the reply")
        cpus = "0-%d" % (os.cpu_count() - 1)
        self._send(self.family, 1 | 4, TASKSTATS_CMD_GET, _nlattr(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK,
                                                                   cpus.encode() + b"\0"))
        d = s.recv(65536)
        n, typ = struct.unpack_from("IH", d)
        if typ == NLMSG_ERROR and struct.unpack_from("i", d, 16)[0] != 0:
            raise OSError("taskstats: registering for exit records failed (error %d; root needed)" %
                          struct.unpack_from("i", d, 16)[0])
        s.setblocking(False)

    def fileno(self):
        return self.sock.fileno()

    def drain(self):
        """Reads every record queued on the socket (never blocks)."""
        if not self.sock:
            return
        while True:
            try:
                d = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError as e:  # ENOBUFS: the socket overflowed, records were lost
                self.overruns += 1
                print("bench: taskstats: %s" % e, file=sys.stderr)
                continue
            i = 0
            while i + 16 <= len(d):
                n, typ = struct.unpack_from("IH", d, i)
                if n < 16:
                    break
                if typ == self.family:
                    for t, v in _nlattrs(d[i + 20:i + n]):
                        if t != TASKSTATS_TYPE_AGGR_PID:
                            continue
                        for t2, st in _nlattrs(v):
                            if t2 == TASKSTATS_TYPE_STATS and len(st) >= TS_TGID + 4:
                                self.records.append(self._parse(st))
                i += (n + 3) & ~3

    @staticmethod
    def _parse(st):
        tid, ppid = struct.unpack_from("II", st, TS_PID)
        etime, utime, stime = struct.unpack_from("QQQ", st, TS_ETIME)
        return {"tid": tid, "tgid": struct.unpack_from("I", st, TS_TGID)[0] or tid, "ppid": ppid,
                "comm": st[TS_COMM:TS_COMM + 32].split(b"\0")[0].decode(errors="replace"),
                "cpu_us": utime + stime, "etime_us": etime,
                "hiwater_kb": struct.unpack_from("Q", st, TS_HIWATER)[0]}

    def mark(self):
        return len(self.records)

    def processes(self, since, root):
        """Processes of the tree under ROOT whose threads exited since the
        mark: {tgid: {comm, ppid, cpu_s, etime_s, rss_kb}}."""
        procs = {}
        for r in self.records[since:]:
            p = procs.setdefault(r["tgid"], {"comm": "", "ppid": 0, "cpu_s": 0.0, "etime_s": 0.0, "rss_kb": 0})
            p["cpu_s"] += r["cpu_us"] / 1e6
            p["rss_kb"] = max(p["rss_kb"], r["hiwater_kb"])
            if r["tid"] == r["tgid"]:
                p["comm"], p["ppid"], p["etime_s"] = r["comm"], r["ppid"], r["etime_us"] / 1e6
        tree, grew = {root}, True
        while grew:
            grew = False
            for tgid, p in procs.items():
                if tgid not in tree and p["ppid"] in tree:
                    tree.add(tgid)
                    grew = True
        return {t: p for t, p in procs.items() if t in tree}


# --------------------------------------------------------------------------
# LTTng
# --------------------------------------------------------------------------
LTTNG_WRAPPER_NAMES = ["liblttng-ust-libc-wrapper.so.1", "liblttng-ust-libc-wrapper.so"]


def find_lttng_wrapper():
    for d in ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
              "/usr/local/lib"] + glob.glob("/usr/lib/*-linux-gnu"):
        for n in LTTNG_WRAPPER_NAMES:
            if os.path.exists(os.path.join(d, n)):
                return os.path.join(d, n)
    return None


class Lttng:
    def __init__(self, home):
        self.env = dict(os.environ)
        self.env["LTTNG_HOME"] = home  # root's client talks to the root daemon; keep ~/.lttngrc alone
        self.started_pid = None
        self.session = None

    def cmd(self, *args, check=True):
        p = subprocess.run(["lttng"] + list(args), env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        out = p.stdout.decode(errors="replace")
        if check and p.returncode != 0:
            raise RuntimeError("`lttng %s` failed (status %d): %s" % (" ".join(args), p.returncode, out[-600:]))
        return p.returncode, out

    def ensure_daemon(self):
        if self.cmd("list", check=False)[0] == 0:
            log("an LTTng session daemon is running; using it")
            return
        log("no LTTng session daemon answers: starting lttng-sessiond --daemonize --no-kernel")
        p = subprocess.run(["lttng-sessiond", "--daemonize", "--no-kernel"], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("lttng-sessiond failed: " + p.stdout.decode(errors="replace")[-600:])
        pidfile = "/var/run/lttng/lttng-sessiond.pid" if os.geteuid() == 0 else \
            os.path.join(self.env["LTTNG_HOME"], ".lttng", "lttng-sessiond.pid")
        try:
            with open(pidfile) as f:
                self.started_pid = int(f.read().strip())
        except (OSError, ValueError):
            log("cannot read %s: the daemon will be left running" % pidfile)
        if self.cmd("list", check=False)[0] != 0:
            raise RuntimeError("the LTTng session daemon started but `lttng list` fails")

    def stop_daemon(self):
        if not self.started_pid:
            return
        log("stopping the LTTng session daemon this run started (pid %d)" % self.started_pid)
        try:
            os.kill(self.started_pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(200):
            try:
                os.kill(self.started_pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def setup(self, name, out_dir, blocking):
        self.cmd("create", name, "--output=" + out_dir)
        self.session = name
        ch = ["enable-channel", "-u", "-s", name, "ch"]
        if blocking:
            ch.append("--blocking-timeout=inf")
        self.cmd(*ch)
        self.cmd("enable-event", "-u", "-s", name, "-c", "ch", "lttng_ust_libc:*")
        self.cmd("start", name)

    def stop(self):
        self.cmd("stop", self.session)

    def foreign_sessions(self):
        """Recording sessions of someone else on the shared root session
        daemon: a session enabling lttng_ust_libc:* records every app that
        registers, ours included (and ours would record theirs)."""
        rc, out = self.cmd("list", check=False)
        if rc != 0:
            return []
        return [n for n in re.findall(r"^\s*\d+\) (\S+)", out, re.M) if not n.startswith("htbench-%d-" % os.getpid())]

    def wait_alone(self, limit):
        t0 = time.time()
        others = self.foreign_sessions()
        if others:
            log("waiting (at most %.0f s) for foreign LTTng sessions to go: %s" % (limit, ", ".join(others)))
        while others and time.time() - t0 < limit:
            time.sleep(1)
            others = self.foreign_sessions()
        return others

    def lost(self):
        """(discarded events, lost packets) of the stopped session."""
        out = self.cmd("list", self.session)[1]
        disc = [int(x) for x in re.findall(r"Discarded events:\s*(\d+)", out)]
        lostp = [int(x) for x in re.findall(r"Lost packets:\s*(\d+)", out)]
        if not disc:
            return None, None
        return sum(disc), sum(lostp)

    def destroy(self):
        if self.session:
            self.cmd("destroy", self.session, check=False)
            self.session = None


def consumerd_pids():
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/comm") as f:
                if f.read().strip() == "lttng-consumerd":
                    pids.append(int(os.path.basename(d)))
        except OSError:
            pass
    return pids


def proc_cpu_ns(pid):
    """Run time of all live threads of PID (schedstat, ns); None if gone."""
    total, found = 0, False
    for f in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(f) as fh:
                total += int(fh.read().split()[0])
                found = True
        except (OSError, ValueError, IndexError):
            pass
    if found:
        return total
    try:  # no schedstat: utime + stime in clock ticks
        with open("/proc/%d/stat" % pid) as f:
            w = f.read().rsplit(")", 1)[1].split()
        return (int(w[11]) + int(w[12])) * 1e9 / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def reset_hwm(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# workloads and configurations
# --------------------------------------------------------------------------
def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


class Workload:
    def __init__(self, key, title, argv, comm, stdin=None, env=None, prep=None, runs=None, check=None):
        self.key, self.title, self.argv, self.stdin = key, title, argv, stdin
        self.comms = comm
        self.env = env or {}
        self.prep = prep        # called before every run (removes the sqlite database)
        self.runs = runs        # overrides --runs (S is cheap: more runs)
        self.check = check      # check(summary dict) -> list of problems, for heaptrace's counts


def make_workloads(a):
    wb, smoke = a.workload_bin, a.smoke
    wd = a.work_dir
    n = {"A": 20000, "B": 10000, "C": 20000, "D": 2000, "P": 3000} if smoke else \
        {"A": 10000000, "B": 5000000, "C": 2000000, "D": 300000, "P": 200000}
    sql = os.path.join(wd, "insert-%d.sql" % n["D"])
    db = os.path.join(wd, "bench.db")
    subprocess.run([sys.executable, os.path.join(HERE, "workloads", "gen_sql.py"), str(n["D"]), sql], check=True)

    def rm_db():
        for s in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(db + s):
                os.unlink(db + s)

    def loop_check(pairs, threads):
        def check(s):
            want = pairs * threads
            if threads == 1:
                ok = s["allocations"] == want and s["frees"] == want and s["reallocs"] == 0
            else:  # thread creation adds a few allocations of glibc's own
                ok = want <= s["allocations"] <= want + 16 and want <= s["frees"] <= want + 16 and \
                    s["reallocs"] == 0
            return [] if ok else ["heaptrace counted %(allocations)d allocations, %(frees)d frees, %(reallocs)d "
                                  "reallocs" % s + "; the program made %d mallocs and %d frees" % (want, want)]
        return check

    def realloc_check(reallocs):
        def check(s):
            # realloc(NULL) is recorded as an allocation; +2: the callocs of the two arrays
            ok = s["allocations"] + s["reallocs"] == reallocs + 2 and s["frees"] == s["allocations"]
            return [] if ok else ["heaptrace counted %(allocations)d allocations + %(reallocs)d reallocs, "
                                  "%(frees)d frees" % s + "; the program made %d reallocs + 2 callocs and freed "
                                  "everything" % reallocs]
        return check

    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
    sqlite = shutil.which("sqlite3", path="/usr/local/bin:/usr/bin:/bin") or "/usr/bin/sqlite3"
    ws = [
        Workload("A", "one thread, %s malloc/free pairs, 16-512 B, 256 live in a ring" % fmt_count(n["A"]),
                 [os.path.join(wb, "loop"), str(n["A"]), "1"], ["loop"], check=loop_check(n["A"], 1)),
        Workload("B", "two threads, %s malloc/free pairs each" % fmt_count(n["B"]),
                 [os.path.join(wb, "loop"), str(n["B"]), "2"], ["loop"], check=loop_check(n["B"], 2)),
        Workload("C", "%s reallocs growing 1000 buffers by 8-64 B steps" % fmt_count(n["C"]),
                 [os.path.join(wb, "realloc_grow"), str(n["C"])], ["realloc_grow"], check=realloc_check(n["C"])),
        Workload("D", "sqlite3 %s: %s-row insert script (1 transaction, 1 index), then count + GROUP BY" %
                 (sqlite_version(sqlite), fmt_count(n["D"])),
                 [sqlite, "-batch", db], ["sqlite3"], stdin=sql, prep=rm_db),
        Workload("P", "python3 %s (PYTHONMALLOC=malloc): dict/list/str-heavy script, %s records" %
                 (platform_python_version(py), fmt_count(n["P"])),
                 [py, os.path.join(HERE, "workloads", "work.py"), str(n["P"])],
                 ["python3", os.path.basename(os.path.realpath(py))[:15]],
                 env={"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}),
        Workload("S", "empty program (start-up and exit cost only)", [os.path.join(wb, "empty")], ["empty"],
                 runs=None if smoke else max(a.runs, 11)),
    ]
    if a.workloads:
        keep = a.workloads.upper().split(",")
        ws = [w for w in ws if w.key in keep]
    return ws


CONFIGS = {
    # key: (label, description)
    "base": ("baseline", "nothing loaded"),
    "ht-idle": ("heaptrace idle", "libheaptrace.so preloaded, no session"),
    "ht-rec": ("heaptrace record", "`heaptrace record -q -m block` (no stacks)"),
    "ht-fp": ("heaptrace fp stacks", "`heaptrace record -q -m block --stacks fp --depth 16`"),
    "ht-dwarf": ("heaptrace dwarf stacks", "`heaptrace record -q -m block --stacks dwarf` (depth 64)"),
    "ht-dwarf-lu": ("heaptrace dwarf, libunwind", "the same with HEAPTRACE_UNWIND=libunwind: libunwind's "
                    "unw_backtrace does every walk instead of the runtime's own unwinder"),
    "heaptrack": ("heaptrack", "`heaptrack -o FILE` (zstd output)"),
    "lttng-idle": ("LTTng idle", "liblttng-ust-libc-wrapper preloaded, no session"),
    "lttng-disc": ("LTTng discard", "libc wrapper, channel in discard mode (defaults: 4 x 512 KiB)"),
    "lttng-block": ("LTTng blocking", "libc wrapper, channel --blocking-timeout=inf"),
}
FULL_CONFIGS = ["base", "ht-idle", "ht-rec", "ht-fp", "ht-dwarf", "ht-dwarf-lu", "heaptrack", "lttng-idle",
                "lttng-disc", "lttng-block"]
# heaptrace recording configurations and their extra options
HT_REC = {"ht-rec": [], "ht-fp": ["--stacks", "fp", "--depth", "16"], "ht-dwarf": ["--stacks", "dwarf"],
          "ht-dwarf-lu": ["--stacks", "dwarf"]}
SMOKE_CONFIGS = ["base", "ht-idle", "ht-rec"]


# --------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------
class Runner:
    def __init__(self, a, ts, lt, wrapper):
        self.a, self.ts, self.lt, self.wrapper = a, ts, lt, wrapper
        self.ht = os.path.join(a.build_dir, "heaptrace")
        self.rt = os.path.join(a.build_dir, "libheaptrace.so")
        self.trace_dir = os.path.join(a.work_dir, "traces")
        os.makedirs(self.trace_dir, exist_ok=True)
        self.base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": a.work_dir, "LANG": "C",
                         "LC_ALL": "C", "TZ": "UTC", "TERM": "dumb",
                         # the same in every configuration; only LTTng reads them
                         "LTTNG_UST_ALLOW_BLOCKING": "1", "LTTNG_UST_REGISTER_TIMEOUT": "20000",
                         # ht-dwarf-lu sets it to libunwind: the programs see as
                         # many variables in every configuration (python's
                         # environ dict would make a few allocations more)
                         "HEAPTRACE_UNWIND": "auto"}
        self.seq = 0

    def spawn_wait(self, argv, env, stdin, out, err):
        """Spawns ARGV; returns (status, wall_s, rusage, pid) when it exits,
        reading taskstats records meanwhile."""
        fa = [(os.POSIX_SPAWN_OPEN, 0, stdin or "/dev/null", os.O_RDONLY, 0),
              (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              (os.POSIX_SPAWN_OPEN, 2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
        pidfd = os.pidfd_open(pid)
        try:
            fds = [pidfd] + ([self.ts.fileno()] if self.ts.sock else [])
            deadline = time.monotonic() + self.a.timeout
            while True:
                r = select.select(fds, [], [], 1.0)[0]
                if pidfd in r:
                    t1 = time.perf_counter()
                    break
                if r:
                    self.ts.drain()
                if time.monotonic() > deadline:
                    log("timeout: killing %s (pid %d)" % (argv, pid))
                    os.kill(pid, signal.SIGKILL)
            _, status, ru = os.wait4(pid, 0)
        finally:
            os.close(pidfd)
        self.ts.drain()  # every exit record of the tree was queued before wait4 returned
        return os.waitstatus_to_exitcode(status), t1 - t0, ru, pid

    def run(self, w, cfg):
        self.seq += 1
        tag = "%s-%s-%d" % (w.key, cfg, self.seq)
        if w.prep:
            w.prep()
        env = dict(self.base_env)
        env.update(w.env)
        argv = list(w.argv)
        trace, lt_dir, lt_setup = None, None, False
        if cfg == "ht-idle":
            env["LD_PRELOAD"] = self.rt
        elif cfg in HT_REC:
            trace = os.path.join(self.trace_dir, tag + ".htrace")
            argv = [self.ht, "record", "-q", "-m", "block", "-o", trace] + HT_REC[cfg] + ["--"] + argv
            if cfg == "ht-dwarf-lu":
                env["HEAPTRACE_UNWIND"] = "libunwind"
        elif cfg == "heaptrack":
            trace = os.path.join(self.trace_dir, tag)  # heaptrack appends .zst (or .gz)
            argv = [shutil.which("heaptrack"), "-o", trace] + argv
        elif cfg.startswith("lttng"):
            env["LD_PRELOAD"] = self.wrapper
            if cfg != "lttng-idle":
                lt_dir = os.path.join(self.trace_dir, tag + ".lttng")
                self.lt.setup("htbench-%d-%s" % (os.getpid(), tag), lt_dir, cfg == "lttng-block")
                lt_setup = True
        out, err = os.path.join(self.a.work_dir, "stdout"), os.path.join(self.a.work_dir, "stderr")
        cons = {}
        if cfg.startswith("lttng"):
            for p in consumerd_pids():
                reset_hwm(p)
                cons[p] = proc_cpu_ns(p)
        mark = self.ts.mark()
        res = {"workload": w.key, "config": cfg, "problems": []}
        try:
            rc, wall, ru, pid = self.spawn_wait(argv, env, w.stdin, out, err)
            res["rc"] = rc
            res["wall"] = wall
            if lt_setup:
                t = time.perf_counter()
                self.lt.stop()
                res["stop_s"] = time.perf_counter() - t
                res["wall"] = wall + res["stop_s"]
                res["lost"], res["lost_packets"] = self.lt.lost()
        finally:
            if lt_setup:
                self.lt.destroy()
        res["prog_wall_top"] = wall
        # processes
        procs = self.ts.processes(mark, pid) if self.ts.sock else {}
        prog = [p for t, p in procs.items() if p["comm"] in w.comms]
        if cfg in ("base", "ht-idle", "lttng-idle", "lttng-disc", "lttng-block"):
            # the program is our direct child: its rusage CPU is exact.  Not its
            # ru_maxrss: posix_spawn's child starts on the harness's own memory
            # (vfork), which exec folds into maxrss; hiwater_rss is the program's.
            res["prog_cpu"] = ru.ru_utime + ru.ru_stime
            res["prog_rss_kb"] = prog[0]["rss_kb"] if prog else None
            res["prog_s"] = prog[0]["etime_s"] if prog else wall
        elif prog:
            p = max(prog, key=lambda q: q["etime_s"])
            res["prog_cpu"], res["prog_rss_kb"], res["prog_s"] = p["cpu_s"], p["rss_kb"], p["etime_s"]
        elif self.ts.sock:
            res["problems"].append("no taskstats record of the program (%s) under pid %d" % (w.comms, pid))
        if cfg in HT_REC and pid in procs:
            res["coll_cpu"], res["coll_rss_kb"] = procs[pid]["cpu_s"], procs[pid]["rss_kb"]
        elif cfg == "heaptrack":
            helpers = [p for p in procs.values() if p["comm"] in ("heaptrack_inter", "zstd", "gzip")]
            if helpers:
                res["coll_cpu"] = sum(p["cpu_s"] for p in helpers)
                res["coll_rss_kb"] = sum(p["rss_kb"] for p in helpers)
                res["coll_procs"] = sorted(p["comm"] for p in helpers)
            elif self.ts.sock:
                res["problems"].append("no taskstats record of heaptrack_interpret / zstd")
        elif cfg in ("lttng-disc", "lttng-block", "lttng-idle"):
            cpu, rss = 0.0, 0
            for p in consumerd_pids():
                now = proc_cpu_ns(p)
                if now is not None:
                    cpu += (now - (cons.get(p) or 0)) / 1e9
                rss += vm_hwm_kb(p) or 0
            res["coll_cpu"], res["coll_rss_kb"] = cpu, rss
        # output and trace
        with open(out, "rb") as f:
            res["stdout"] = f.read()
        with open(err, "rb") as f:
            res["stderr_tail"] = f.read()[-400:].decode(errors="replace")
        if rc != 0:
            res["problems"].append("exit status %d; stderr: %s" % (rc, res["stderr_tail"]))
        if cfg in HT_REC:
            res["trace_bytes"] = os.path.getsize(trace) if os.path.exists(trace) else None
            res["summary"] = ht_summary(self.ht, trace)
            if res["summary"] is None:
                res["problems"].append("`heaptrace summary` could not read the trace")
            else:
                res["lost"] = res["summary"].get("events lost")
                for p in (w.check(res["summary"]) if w.check else []):
                    res["problems"].append(p)
                if res["lost"]:
                    res["problems"].append("block mode lost %d events" % res["lost"])
            if os.path.exists(trace) and not self.a.keep_traces:
                os.unlink(trace)
        elif cfg == "heaptrack":
            files = glob.glob(trace + ".*")
            res["trace_bytes"] = sum(os.path.getsize(f) for f in files) if files else None
            if not files:
                res["problems"].append("heaptrack wrote no output file")
            if not self.a.keep_traces:
                for f in files:
                    os.unlink(f)
        elif lt_dir:
            res["trace_bytes"] = dir_bytes(lt_dir)
            if not self.a.keep_traces:
                shutil.rmtree(lt_dir, ignore_errors=True)
        return res


def dir_bytes(d):
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def ht_summary(ht, trace):
    if not os.path.exists(trace):
        return None
    p = subprocess.run([ht, "summary", trace], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = p.stdout.decode(errors="replace")
    s = {}
    for key in ("allocations", "frees", "reallocs", "events lost"):
        m = re.search(r"^\s*%s\s+(\d+)" % key, out, re.M)
        if m:
            s[key] = int(m.group(1))
    if p.returncode != 0 or not all(k in s for k in ("allocations", "frees", "reallocs")):
        return None
    return s


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------
def fmt_count(n):
    for div, suf in ((1000000, "M"), (1000, "k")):
        if n >= div and n % (div // 10) == 0:
            v = n / div
            return ("%d" % v if v == int(v) else "%.1f" % v) + suf
    return str(n)


def fmt_time(s):
    if s is None:
        return "-"
    if s >= 1:
        return "%.2f s" % s
    if s >= 0.001:
        return "%.1f ms" % (s * 1e3)
    return "%.0f µs" % (s * 1e6)


def fmt_bytes(b):
    if b is None:
        return "-"
    for div, suf in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if b >= div:
            return "%.1f %s" % (b / div, suf)
    return "%d B" % b


def fmt_mib(kb):
    return "-" if kb is None else "%.1f" % (kb / 1024.0)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def machine_info(a):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  timeout=30).stdout.decode(errors="replace").strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpu, flags = "?", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            clock = f.read().strip()
    except OSError:
        clock = "?"
    tsc = ", ".join(x for x in ("constant_tsc", "nonstop_tsc", "tsc_reliable") if x in flags)
    info = {
        "CPU": "%s (%s)" % (cpu, "virtual machine: hypervisor flag set" if "hypervisor" in flags else "bare metal"),
        "cores": "%d logical CPUs (%s)" % (os.cpu_count(), sh("lscpu | grep -E '^(Core|Thread|Socket)' | "
                                                              "sed 's/  */ /g' | paste -sd ';'")),
        "memory": "%.1f GiB" % (mem_kb / 1048576.0),
        "kernel": "%s %s" % (platform.system(), platform.release()),
        "glibc": "%s (Debian package libc6 %s)" % (os.confstr("CS_GNU_LIBC_VERSION"),
                                                    sh("dpkg-query -W -f='${Version}' libc6") or "?"),
        "clock source": "%s (TSC flags: %s)" % (clock, tsc or "none"),
        "compiler": sh("cc --version | head -1"),
        "heaptrace": "%s (%s build in %s)" % (
            a.heaptrace_desc or "working tree " + (sh("git -C %s describe --always --dirty 2>/dev/null" % REPO)
                                                   or "?"),
            sh("grep -m1 '^CMAKE_BUILD_TYPE' %s/CMakeCache.txt | cut -d= -f2" % a.build_dir) or "?",
            os.path.relpath(a.build_dir, REPO) if a.build_dir.startswith(REPO) else a.build_dir),
    }
    if not a.smoke:
        info["heaptrack"] = sh("heaptrack --version 2>&1 | head -1") + " (Debian " + \
            sh("dpkg-query -W -f='${Version}' heaptrack") + ")"
        info["LTTng"] = "%s, lttng-ust %s" % (sh("lttng --version | head -1"),
                                              sh("dpkg-query -W -f='${Version}' liblttng-ust1"))
    return info


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def report(a, info, workloads, configs, results, counts, started, load0, problems):
    L = []
    title = "heaptrace benchmark (smoke run: tiny sizes, 1 run, not a measurement)" if a.smoke else \
        "heaptrace benchmark"
    L.append("# " + title)
    L.append("")
    L.append("Produced by `bench/run%s` on %s in %.0f s (see bench/README.md for how to read it)." % (
        " --smoke" if a.smoke else "", started.strftime("%Y-%m-%d %H:%M UTC"), time.time() - a.t_start))
    L.append("")
    L.append("## Machine")
    L.append("")
    for k, v in info.items():
        L.append("- %s: %s" % (k, v))
    L.append("- load average (1/5/15 min): %s at the start, %s at the end.  The machine may be shared "
             "(e.g. with builds of the lead engineer) while the benchmark runs: compare configurations "
             "within one workload, where runs alternate, rather than absolute times across runs." %
             (load0, loadavg()))
    warm = "%d warm-up round%s" % (a.warmup, "" if a.warmup == 1 else "s")
    L.append("- runs: %s, then %d measured rounds (S: %d); in each round every configuration runs once, "
             "in rotated order; the figures are medians of the measured rounds." % (
                 warm, a.runs, max((w.runs or a.runs) for w in workloads)))
    L.append("")
    L.append("## Configurations")
    L.append("")
    for c in configs:
        L.append("- **%s** — %s" % (CONFIGS[c][0], CONFIGS[c][1]))
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("Columns: *wall* — median wall time of the command (LTTng sessions: program + `lttng stop`); "
             "*×* — ratio to the baseline's wall; *+ns/ev* — (wall − baseline wall) / heap events; "
             "*program* — median lifetime of the traced process itself; *prog CPU* / *coll CPU* — "
             "user+system CPU of the program / of the collector processes; *prog RSS* / *coll RSS* — "
             "peak RSS in MiB; *trace* — bytes on disk; *B/ev* — trace bytes per heap event; "
             "*lost* — events lost; *spread* — (max − min) / median of the walls.")
    for w in workloads:
        n_ev = counts.get(w.key)
        L.append("")
        L.append("### %s — %s" % (w.key, w.title))
        L.append("")
        L.append("Heap events (allocations + frees + reallocs, counted by heaptrace): %s." %
                 ("{:,}".format(n_ev) if n_ev is not None else "unknown"))
        L.append("")
        L.append("| config | wall | × | +ns/ev | program | prog CPU | coll CPU | prog RSS | coll RSS | "
                 "trace | B/ev | lost | spread |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        rs_base = [r for r in results if r["workload"] == w.key and r["config"] == "base"]
        base_wall = med([r.get("wall") for r in rs_base])
        for c in configs:
            rs = [r for r in results if r["workload"] == w.key and r["config"] == c]
            if not rs:
                continue
            walls = [r.get("wall") for r in rs if r.get("wall") is not None]
            wall = med(walls)
            ratio = "%.2f" % (wall / base_wall) if wall and base_wall else "-"
            if c == "base":
                added = "-"
            elif wall is not None and base_wall is not None and n_ev:
                added = "%.0f" % ((wall - base_wall) * 1e9 / n_ev)
            elif wall is not None and base_wall is not None:
                added = "(%+.1f ms)" % ((wall - base_wall) * 1e3)
            else:
                added = "-"
            tb = med([r.get("trace_bytes") for r in rs])
            if c == "heaptrack" or c in ("base", "ht-idle", "lttng-idle"):
                lost = "n/a" if c == "heaptrack" else "-"
            else:
                lv = [r.get("lost") for r in rs if r.get("lost") is not None]
                lp = [r.get("lost_packets") or 0 for r in rs]
                lost = ("%d" % med(lv) if lv else "?") + (" (+%d pkts)" % max(lp) if any(lp) else "")
                if len(lv) > 1 and min(lv) != max(lv):
                    lost += " [%d–%d]" % (min(lv), max(lv))
            coll_cpu = med([r.get("coll_cpu") for r in rs])
            spread = "%.0f%%" % ((max(walls) - min(walls)) / wall * 100) if len(walls) > 1 and wall else "-"
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                CONFIGS[c][0], fmt_time(wall), ratio, added, fmt_time(med([r.get("prog_s") for r in rs])),
                fmt_time(med([r.get("prog_cpu") for r in rs])),
                "-" if coll_cpu is None else fmt_time(coll_cpu),
                fmt_mib(med([r.get("prog_rss_kb") for r in rs])), fmt_mib(med([r.get("coll_rss_kb") for r in rs])),
                fmt_bytes(tb), "%.2f" % (tb / n_ev) if tb is not None and n_ev else "-", lost, spread))
    if any(c in configs for c in ("ht-fp", "ht-dwarf", "ht-dwarf-lu")):
        # issue #5's targets: stacks' cost above recording without them
        L.append("")
        L.append("## Call stacks")
        L.append("")
        L.append("ns per heap event above `heaptrace record` without stacks (walls, medians), and per "
                 "allocation event (allocations + reallocs: the events that get a stack by default); "
                 "trace bytes per event; heaptrack (which always unwinds, with libunwind) for comparison.")
        L.append("")
        L.append("| workload | fp depth 16 +ns/ev | fp +ns/alloc | dwarf +ns/ev | dwarf +ns/alloc | "
                 "dwarf via libunwind +ns/ev | heaptrack +ns/ev over baseline | B/ev none | B/ev fp | B/ev dwarf | "
                 "B/ev heaptrack |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for w in workloads:
            n_ev = counts.get(w.key)
            if not n_ev:
                continue
            sums = [r["summary"] for r in results if r["workload"] == w.key and r.get("summary")]
            n_alloc = sums[0]["allocations"] + sums[0]["reallocs"] if sums else None
            def wall_of(c):
                return med([r.get("wall") for r in results if r["workload"] == w.key and r["config"] == c])
            def bpe(c):
                tb = med([r.get("trace_bytes") for r in results if r["workload"] == w.key and r["config"] == c])
                return "%.2f" % (tb / n_ev) if tb is not None else "-"
            rec, base = wall_of("ht-rec"), wall_of("base")
            def above(c, ref, n=n_ev):
                v = wall_of(c)
                return "%.0f" % ((v - ref) * 1e9 / n) if v is not None and ref is not None and n else "-"
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w.key, above("ht-fp", rec), above("ht-fp", rec, n_alloc), above("ht-dwarf", rec),
                above("ht-dwarf", rec, n_alloc), above("ht-dwarf-lu", rec), above("heaptrack", base),
                bpe("ht-rec"), bpe("ht-fp"), bpe("ht-dwarf"), bpe("heaptrack")))
    L.append("")
    L.append("## Checks")
    L.append("")
    if problems:
        for p in problems:
            L.append("- PROBLEM: " + p)
    else:
        L.append("- every run exited with status 0 and printed what the baseline printed; heaptrace's "
                 "counts matched the workloads' known calls (A, B, C) and were the same in every run; "
                 "heaptrace lost no events in block mode.")
    L.append("")
    L.append("## Raw walls (s), measured rounds in order")
    L.append("")
    for w in workloads:
        parts = []
        for c in configs:
            rs = [r for r in results if r["workload"] == w.key and r["config"] == c]
            if rs:
                parts.append("%s: %s" % (c, " ".join("%.4f" % r["wall"] for r in rs if r.get("wall") is not None)))
        L.append("- %s — %s" % (w.key, "; ".join(parts)))
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------
def sqlite_version(path):
    try:
        return subprocess.run([path, "--version"], stdout=subprocess.PIPE, timeout=30).stdout.decode().split()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def platform_python_version(path):
    try:
        return subprocess.run([path, "-c", "import platform; print(platform.python_version())"],
                              stdout=subprocess.PIPE, timeout=30).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def main():
    ap = argparse.ArgumentParser(description="bench/run's measuring half (see bench/README.md)")
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--workload-bin", required=True, help="directory of the compiled workloads")
    ap.add_argument("--work-dir", required=True, help="scratch directory (traces, database, outputs)")
    ap.add_argument("--results", required=True, help="Markdown results file to write")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--workloads", default="", help="comma-separated subset of A,B,C,D,P,S")
    ap.add_argument("--configs", default="", help="comma-separated subset of " + ",".join(FULL_CONFIGS))
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a run is killed")
    ap.add_argument("--keep-traces", action="store_true")
    ap.add_argument("--lttng-wait", type=float, default=900,
                    help="seconds to wait for foreign LTTng sessions to end before an LTTng run")
    ap.add_argument("--heaptrace-desc", default="", help="what heaptrace build this is (bench/run --rev)")
    ap.add_argument("--json", help="also write every run's figures to this file")
    a = ap.parse_args()
    a.t_start = time.time()
    a.build_dir = os.path.abspath(a.build_dir)
    a.work_dir = os.path.abspath(a.work_dir)
    if a.smoke:
        a.runs, a.warmup = 1, 0
    configs = a.configs.split(",") if a.configs else (SMOKE_CONFIGS if a.smoke else FULL_CONFIGS)
    for c in configs:
        if c not in CONFIGS:
            ap.error("unknown configuration %r" % c)
    if "base" not in configs:
        configs = ["base"] + configs
    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = loadavg()

    ts = TaskStats()
    if ts.error:
        log("taskstats unavailable (%s): per-process figures of non-child processes will be missing" % ts.error)
    lt, wrapper = None, None
    needs_lttng = any(c.startswith("lttng") for c in configs)
    if needs_lttng:
        wrapper = find_lttng_wrapper()
        missing = [t for t in ("lttng", "lttng-sessiond") if not shutil.which(t)]
        if missing or not wrapper:
            sys.exit("bench: LTTng configurations need lttng-tools and liblttng-ust1 (missing: %s)" %
                     ", ".join(missing + ([] if wrapper else ["liblttng-ust-libc-wrapper.so"])))
        lt = Lttng(os.path.join(a.work_dir, "lttng-home"))
        os.makedirs(lt.env["LTTNG_HOME"], exist_ok=True)
    if "heaptrack" in configs and not shutil.which("heaptrack"):
        sys.exit("bench: the heaptrack configuration needs heaptrack (Debian package heaptrack)")

    info = machine_info(a)
    workloads = make_workloads(a)
    missing = ["%s (workload %s)" % (w.argv[0], w.key) for w in workloads if not os.access(w.argv[0], os.X_OK)]
    for x in (os.path.join(a.build_dir, "heaptrace"), os.path.join(a.build_dir, "libheaptrace.so")):
        if not os.path.exists(x):
            missing.append(x)
    if missing:
        sys.exit("bench: missing: %s (Debian packages: sqlite3 for D, python3 for P)" % ", ".join(missing))
    runner = Runner(a, ts, lt, wrapper)
    results, counts, problems = [], {}, []
    try:
        if lt:
            lt.ensure_daemon()
        for w in workloads:
            nruns = w.runs or a.runs
            base_out = None
            log("workload %s: %s (%d warm-up + %d rounds x %d configurations)" % (
                w.key, w.title, a.warmup, nruns, len(configs)))
            tw = time.time()
            for rnd in range(a.warmup + nruns):
                k = rnd % len(configs)
                order = configs[k:] + configs[:k]
                for c in order:
                    for attempt in range(3):
                        before = lt.wait_alone(a.lttng_wait) if c.startswith("lttng") else []
                        r = runner.run(w, c)
                        after = lt.foreign_sessions() if c.startswith("lttng") else []
                        if not before and not after:
                            break
                        r["problems"].append("foreign LTTng session(s) %s existed during the run: it recorded "
                                             "this program too" % sorted(set(before + after)))
                        if attempt < 2:
                            log("  %s / %s: foreign LTTng session during the run; running it again" % (w.key, c))
                    r["round"] = rnd
                    r["warmup"] = rnd < a.warmup
                    if c == "base" and base_out is None and r.get("rc") == 0:
                        base_out = r["stdout"]
                    out = r.pop("stdout")
                    if base_out is not None and r.get("rc") == 0:
                        same = base_out in out if c == "heaptrack" else out == base_out
                        if not same:
                            r["problems"].append("stdout differs from the baseline's")
                    if c in HT_REC and r.get("summary"):
                        s = r["summary"]
                        n = s["allocations"] + s["frees"] + s["reallocs"]
                        r["events"] = n
                        if w.key in counts and counts[w.key] != n:
                            r["problems"].append("heap events differ between runs: %d before, %d now" %
                                                 (counts[w.key], n))
                        # the workloads are deterministic: a smaller count is a loss
                        counts[w.key] = max(n, counts.get(w.key, 0))
                    for p in r["problems"]:
                        problems.append("%s / %s (round %d): %s" % (w.key, c, rnd, p))
                        log("PROBLEM: %s / %s: %s" % (w.key, c, p))
                    if not r["warmup"]:
                        results.append(r)
                    log("  %s round %d %-12s wall %s%s" % (w.key, rnd, c, fmt_time(r.get("wall")),
                                                           " (warm-up)" if r["warmup"] else ""))
            if w.key not in counts and "ht-rec" not in configs:
                # count the heap events once with a heaptrace recording
                r = runner.run(w, "ht-rec")
                if r.get("summary"):
                    s = r["summary"]
                    counts[w.key] = s["allocations"] + s["frees"] + s["reallocs"]
            log("workload %s done in %.0f s (total %.0f s)" % (w.key, time.time() - tw, time.time() - a.t_start))
    finally:
        if lt:
            lt.destroy()
            lt.stop_daemon()
    if ts.overruns:
        problems.append("the taskstats socket overflowed %d times: some per-process figures may be missing" %
                        ts.overruns)
    md = report(a, info, workloads, configs, results, counts, started, load0, problems)
    with open(a.results, "w") as f:
        f.write(md)
    print(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"info": info, "counts": counts, "runs": results}, f, indent=1, default=str)
    log("results written to %s" % a.results)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
