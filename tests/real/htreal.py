"""htreal.py - shared helpers for the end-to-end tests of real programs.

Used by real_programs.py and lttng_crosscheck.py (python3 stdlib only).

  Checker        collects failed checks, prints them all, exits 1 at the end
  run()          runs a command, returns (rc, stdout, stderr) as bytes
  record()       `heaptrace record -q [opts] -o TRACE -- CMD`
  read_dump()    streams `heaptrace dump --format csv` and tallies it,
                 replaying allocations per (pid, heap) independently of the
                 tool's own summary
  read_summary() parses `heaptrace summary`
  workloads      the deterministic SQL and Python scripts the tests run
"""
import io
import json
import os
import shutil
import random
import re
import subprocess
import sys

HEAP_EVENTS = ("alloc", "free", "realloc")
TALLY_AWK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tally.awk")
CSV_COLUMNS = ["event", "ts_ns", "pid", "tid", "heap", "api", "address", "size", "new_address",
               "new_size", "old_address", "old_size", "source", "detail", "stack"]


class Checker:
    def __init__(self, name):
        self.name = name
        self.failed = []
        self.passed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("  ok    " + what, flush=True)
        else:
            self.failed.append(what)
            print("  FAIL  " + what, flush=True)
        return cond

    def eq(self, got, want, what):
        return self.check(got == want, "%s: got %r, want %r" % (what, got, want))

    def fatal(self, msg):
        print("FATAL: " + msg, flush=True)
        self.failed.append(msg)
        self.finish()

    def finish(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, len(self.failed)), flush=True)
        if self.failed:
            print("failed checks:")
            for f in self.failed:
                print("  - " + f)
            sys.exit(1)
        sys.exit(0)


def remove_tmp(c, tmp):
    """Remove a test's scratch directory, unless it failed and HT_KEEP_TMP is set."""
    if c.failed and os.environ.get("HT_KEEP_TMP"):
        print("  (HT_KEEP_TMP: kept %s for inspection)" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def run(cmd, env=None, cwd=None, stdin_path=None, timeout=300):
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    finally:
        if stdin_path:
            stdin.close()
    return p.returncode, p.stdout, p.stderr


def record(ht, trace, cmd, opts=(), **kw):
    """Records CMD; returns (rc, stdout, stderr) of `heaptrace record -q`."""
    if os.path.exists(trace):
        os.unlink(trace)
    return run([ht, "record", "-q"] + list(opts) + ["-o", trace, "--"] + list(cmd), **kw)


def base_env(home):
    """A small fixed environment: the programs' output must not depend on
    the caller's."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C",
        "LC_ALL": "C",
        "TZ": "UTC",
        "TERM": "dumb",
    }


class Dump:
    """Tallies of one dump (see tally.awk for what each one means)."""

    def __init__(self):
        self.rc = None
        self.stderr = b""
        self.header = None
        self.rows = 0
        self.counts = {}         # (event, api, pid, tid) -> heap events
        self.sizes = {}          # (event, api, pid, tid) -> (sum, min, max) of size / new_size,
                                 # successful allocations and reallocs only
        self.lost_by = {}        # (pid, tid) -> events lost (tid 0: reported at process end)
        self.processes = []      # (pid, detail) of the "process" records
        self.process_end = {}    # pid -> detail
        self.session_end = {}    # key -> int
        self.replay = {}         # pid -> {unknown_frees, unknown_reallocs, dup_allocs, failed_allocs,
                                 #         failed_reallocs, live}
        self.order = {}          # pid -> (inversions, max_back_ns)

    def _sum(self, keyf, table):
        out = {}
        for k, v in table.items():
            kk = keyf(k)
            out[kk] = out.get(kk, 0) + (v[0] if isinstance(v, tuple) else v)
        return out

    @property
    def by_api(self):
        """(event, api) -> count.  An alloc or free with api realloc (realloc
        of NULL, realloc to size 0) stays apart from a realloc event."""
        return self._sum(lambda k: (k[0], k[1]), self.counts)

    @property
    def bytes_by_api(self):
        return self._sum(lambda k: (k[0], k[1]), self.sizes)

    @property
    def kinds(self):
        return self._sum(lambda k: k[0], self.counts)

    @property
    def by_pid(self):
        return self._sum(lambda k: k[2], self.counts)

    @property
    def tids(self):
        return self._sum(lambda k: (k[2], k[3]), self.counts)

    @property
    def lost(self):
        return sum(self.lost_by.values())

    def heap_events(self):
        return sum(self.counts.values())

    def total(self, field):
        return sum(r[field] for r in self.replay.values())


def _tally_line(d, line):
    w = line.rstrip("\n").split(" ")
    t = w[0]
    if t == "count":
        d.counts[(w[1], w[2], int(w[3]), int(w[4]))] = int(w[5])
    elif t == "bytes":
        d.sizes[(w[1], w[2], int(w[3]), int(w[4]))] = (int(w[5]), int(w[6]), int(w[7]))
    elif t == "lost":
        d.lost_by[(int(w[1]), int(w[2] or 0))] = int(w[3])
    elif t == "process":
        d.processes.append((int(w[1]), " ".join(w[2:])))
    elif t == "process_end":
        d.process_end[int(w[1])] = " ".join(w[2:])
    elif t == "session_end":
        for kv in w[1:]:
            k, _, v = kv.partition("=")
            d.session_end[k] = int(v)
    elif t == "replay":
        d.replay[int(w[1])] = {w[i]: int(w[i + 1]) for i in range(2, len(w) - 1, 2)}
    elif t == "order":
        d.order[int(w[1])] = (int(w[3]), int(w[5]))
    elif t == "rows":
        d.rows = int(w[1])
    elif t == "header":
        d.header = line.rstrip("\n").split(" ", 1)[1].split(",")


def read_dump(ht, trace, fmt="csv"):
    """Tallies the dump of TRACE.  csv: streamed through tally.awk.  jsonl:
    parsed with json in python (slower: for small traces) into the same
    tallies, which makes the two formats comparable."""
    d = Dump()
    p = subprocess.Popen([ht, "dump", trace, "--format", fmt], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    if fmt == "csv":
        awk = subprocess.Popen(["awk", "-f", TALLY_AWK], stdin=p.stdout, stdout=subprocess.PIPE)
        p.stdout.close()
        for line in io.TextIOWrapper(awk.stdout, encoding="utf-8", errors="replace"):
            _tally_line(d, line)
        awk.wait()
    else:
        _tally_jsonl(d, io.TextIOWrapper(p.stdout, encoding="utf-8", errors="strict"))
    d.stderr = p.stderr.read()
    d.rc = p.wait()
    return d


def _tally_jsonl(d, lines):
    live = {}
    last = {}
    for line in lines:
        o = json.loads(line)
        d.rows += 1
        ev = o["event"]
        pid = o["pid"]
        if ev in HEAP_EVENTS:
            key = (ev, o["api"], pid, o["tid"])
            d.counts[key] = d.counts.get(key, 0) + 1
            rp = d.replay.setdefault(pid, dict.fromkeys(
                ("unknown_frees", "unknown_reallocs", "dup_allocs", "failed_allocs", "failed_reallocs", "live"), 0))
            inv, back = d.order.get(pid, (0, 0))
            if pid in last and o["ts_ns"] < last[pid]:
                inv, back = inv + 1, max(back, last[pid] - o["ts_ns"])
            d.order[pid] = (inv, back)
            last[pid] = o["ts_ns"]
            heap = o["heap"]
            if ev == "free":
                if live.pop((pid, heap, o["address"]), None) is None:
                    rp["unknown_frees"] += 1
                continue
            if ev == "alloc":
                new, size = o["address"], o["size"]
                if new == "0x0":
                    rp["failed_allocs"] += 1
                    continue
            else:
                new, size = o["new_address"], o["new_size"]
                if new == "0x0":
                    rp["failed_reallocs"] += 1
                    continue
                if live.pop((pid, heap, o["old_address"]), None) is None:
                    rp["unknown_reallocs"] += 1
            s = d.sizes.get(key)
            d.sizes[key] = (size, size, size) if s is None else (s[0] + size, min(s[1], size), max(s[2], size))
            if (pid, heap, new) in live:
                rp["dup_allocs"] += 1
            live[(pid, heap, new)] = 1
        elif ev == "lost":
            k = (pid, o["tid"])
            d.lost_by[k] = d.lost_by.get(k, 0) + int(o["detail"])
        elif ev == "process":
            d.processes.append((pid, o["detail"]))
        elif ev == "process_end":
            d.process_end[pid] = o["detail"]
        elif ev == "session_end":
            for kv in o["detail"].split():
                k, _, v = kv.partition("=")
                d.session_end[k] = int(v)
    for (pid, _, _) in live:
        d.replay[pid]["live"] += 1


SUMMARY_KEYS = {
    "allocations": r"allocations\s+(\d+) \((\d+) failed\)",
    "frees": r"frees\s+(\d+)",
    "reallocs": r"reallocs\s+(\d+) \((\d+) failed\)",
    "live": r"live at exit\s+(\d+) blocks",
    "unknown": r"unknown frees\s+(\d+)",
    "lost": r"events lost\s+(\d+)",
}


def read_summary(ht, trace):
    """Returns (rc, dict, text) of `heaptrace summary TRACE`."""
    rc, out, err = run([ht, "summary", trace])
    text = out.decode(errors="replace")
    s = {}
    for k, rx in SUMMARY_KEYS.items():
        m = re.search(rx, text)
        if m:
            s[k] = int(m.group(1))
            if m.lastindex and m.lastindex > 1:
                s[k + "_failed"] = int(m.group(2))
    m = re.search(r"process ended\s+(.*)", text)
    s["ended"] = m.group(1).strip() if m else None
    return rc, s, text + err.decode(errors="replace")


def check_trace(c, ht, trace, label, min_heap_events=1, jsonl=False):
    """The checks every block-mode recording gets.  Returns the Dump."""
    d = read_dump(ht, trace)
    c.eq(d.rc, 0, "%s: heaptrace dump --format csv exit status (stderr: %s)" %
         (label, d.stderr.decode(errors="replace").strip()[:300]))
    c.eq(d.header, CSV_COLUMNS, "%s: csv header" % label)
    n = d.heap_events()
    c.check(n >= min_heap_events, "%s: %d heap events recorded (want >= %d)" % (label, n, min_heap_events))
    c.eq(d.lost, 0, "%s: events lost (lost records in the dump), block mode" % label)
    c.eq(d.session_end.get("lost"), 0, "%s: session_end lost=" % label)
    c.eq(d.session_end.get("damaged"), 0, "%s: session_end damaged=" % label)
    c.eq(d.session_end.get("events"), n, "%s: session_end events= equals the heap events in the dump" % label)
    c.eq(d.total("dup_allocs"), 0,
         "%s: addresses allocated twice without a free between (own replay of the dump)" % label)
    c.eq(d.total("unknown_frees") + d.total("unknown_reallocs"), 0,
         "%s: frees/reallocs of addresses not allocated in the session (own replay of the dump)" % label)
    rc, s, text = read_summary(ht, trace)
    c.eq(rc, 0, "%s: heaptrace summary exit status" % label)
    kinds = d.kinds
    c.eq(s.get("allocations"), kinds.get("alloc", 0), "%s: summary allocations == alloc rows in the dump" % label)
    c.eq(s.get("frees"), kinds.get("free", 0), "%s: summary frees == free rows in the dump" % label)
    c.eq(s.get("reallocs"), kinds.get("realloc", 0), "%s: summary reallocs == realloc rows in the dump" % label)
    c.eq(s.get("unknown"), 0, "%s: summary unknown frees" % label)
    c.eq(s.get("lost"), 0, "%s: summary events lost" % label)
    c.eq(s.get("live"), d.total("live"), "%s: summary live-at-exit blocks == own replay of the dump" % label)
    # How the process ended is checked by the exit-status case of
    # real_programs.py only (one test per defect): here it is information.
    print("  info  %s: summary says process ended: %s" % (label, s.get("ended")))
    if jsonl:
        j = read_dump(ht, trace, "jsonl")
        c.eq(j.rc, 0, "%s: heaptrace dump --format jsonl exit status" % label)
        c.eq((j.rows, j.counts, j.sizes, j.lost_by, j.processes, j.process_end, j.session_end, j.replay),
             (d.rows, d.counts, d.sizes, d.lost_by, d.processes, d.process_end, d.session_end, d.replay),
             "%s: the jsonl dump parses as JSON and tallies exactly like the csv dump" % label)
    print("  info  %s: %d rows, heap events by (event, api): %s; processes %d; live at end %d" %
          (label, d.rows, sorted(d.by_api.items()), len(d.processes), d.total("live")), flush=True)
    return d


# ---- workloads ---------------------------------------------------------------

def write_sqlite_script(path, inserts, seed=42):
    """An insert-heavy SQL script: a table with two indexes, INSERTS rows in
    one transaction, an UPDATE and a DELETE, then a count and a GROUP BY."""
    r = random.Random(seed)
    with open(path, "w") as f:
        f.write("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, note TEXT);\n")
        f.write("CREATE INDEX t_name ON t(name);\nCREATE INDEX t_grp ON t(grp, val);\n")
        f.write("BEGIN;\n")
        for _ in range(inserts):
            name = "".join(r.choice("abcdefghij") for _ in range(r.randint(5, 30)))
            note = "n" * r.randint(0, 200)
            f.write("INSERT INTO t(name, grp, val, note) VALUES('%s', %d, %.3f, '%s');\n" %
                    (name, r.randint(0, 49), r.random() * 1000, note))
        f.write("COMMIT;\n")
        f.write("UPDATE t SET note = note || 'updated' WHERE grp % 7 = 0;\n")
        f.write("DELETE FROM t WHERE grp = 13;\n")
        f.write("SELECT count(*), sum(length(note)) FROM t;\n")
        f.write("SELECT grp, count(*), round(sum(val), 3), max(name) FROM t GROUP BY grp ORDER BY grp;\n")
        f.write("SELECT name FROM t WHERE name LIKE 'abc%' ORDER BY name LIMIT 5;\n")


PYTHON_SCRIPT = r'''
import sys, hashlib
words = {}
rows = []
for i in range(60000):
    k = "key-%d-%s" % (i, "x" * (i % 37))
    words[k] = [i, str(i * 7), {"n": i, "sq": i * i}]
    if i % 3 == 0:
        rows.append(("row", i, k.upper()))
big = {}
for i in range(2000):
    big[i] = "".join(chr(65 + (i * j) % 26) for j in range(i % 300))
text = " ".join(k for k in list(words)[:5000])
parts = text.split(" ")
joined = "|".join(sorted(parts, key=len))
s = set(p[:8] for p in parts)
del words
h = hashlib.sha256()
for r in rows:
    h.update(repr(r).encode())
h.update(joined.encode())
h.update(repr(sorted(big.items())[:50]).encode())
print("rows", len(rows), "parts", len(parts), "set", len(s))
print("set order (PYTHONHASHSEED=0):", list(s)[:8])
print("digest", h.hexdigest())
sys.stderr.write("stderr line\n")
sys.exit(37)
'''


def write_python_script(path):
    """Builds dicts, lists, strings and a set; prints a digest and the
    (hash-seed dependent) set order; exits with status 37."""
    with open(path, "w") as f:
        f.write(PYTHON_SCRIPT)
