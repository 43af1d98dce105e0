#!/usr/bin/env python3
"""End-to-end tests of `heaptrace report` (issue 6).

    check_report.py PART HEAPTRACE REP_PROG DEMO

PART:
  oracle    rep_prog and the demo recorded with stacks; every figure of
            `report --json` is recomputed independently here from
            `heaptrace dump --format csv` (totals, apis, sources, peak,
            leaks, temporary, sizes, lifetimes, reallocs, mismatches,
            unknown and double frees, heaps, threads, range classes for
            a window between two markers) and must agree exactly.
  known     rep_prog's known behaviour: its sites by name (peak at
            hold_blocks, leaks at leak_blocks, temporaries), its mismatch
            counts, its custom heap's name, double free, unknown free and
            destroyed blocks; the text report has every section.
  filters   --pid, --heap, --top, --range with units; the same numbers
            as the oracle restricted the same way.
  bad       bad options, missing and truncated traces: one line on stderr,
            the right exit status, the intact part still reported.
  progress  a long report with stderr on a terminal (a pty) shows and
            erases a progress line; with stderr elsewhere it prints none.
"""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile

PLUMBING_API_FAMILY = {
    "new": "new", "delete": "new", "new[]": "new[]", "delete[]": "new[]", "heap": "heap", "": "heap",
}

TEMP_N, PEAK_N, PEAK_SZ, MM_N, LEAK_N, LEAK_SZ, POOL_LIVE = 1000, 300, 4096, 7, 5, 333, 4

failures = 0


def check(cond, what):
    global failures
    print("  %s  %s" % ("ok  " if cond else "FAIL", what), flush=True)
    if not cond:
        failures += 1
    return cond


def eq(got, want, what):
    return check(got == want, "%s: got %r, want %r" % (what, got, want))


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300, **kw)


def family(api):
    return PLUMBING_API_FAMILY.get(api, "malloc")


def digits(n):
    return len(str(n)) if n > 0 else 0


class Oracle:
    """The report's definitions (src/analysis/profile.h), from the dump."""

    def __init__(self, rows, pid=None, heap=None, t0=None, t1=None):
        self.live = {}
        self.dead = set()
        self.t = dict(allocations=0, failed_allocations=0, frees=0, reallocs=0, failed_reallocs=0,
                      blocks_allocated=0, bytes_allocated=0, bytes_freed=0, temporary=0, heap_events=0)
        self.api = {}
        self.src = {}
        self.live_bytes = 0
        self.peak = (0, 0, 0)  # bytes, blocks, ts
        self.unknown_frees = self.unknown_reallocs = self.double_frees = self.destroyed = 0
        self.sizes = {}
        self.life = {}
        self.mm = {}
        self.last_alloc = {}
        self.grow = self.shrink = self.same = self.inplace = self.moved = 0
        self.heaps = {}
        self.threads = {}
        self.rng = [[0, 0] for _ in range(4)]
        self.t0, self.t1 = t0, t1
        for r in rows:
            if pid is not None and int(r["pid"]) != pid:
                continue
            ev = r["event"]
            if heap is not None and ev in ("alloc", "free", "realloc", "heap_create", "heap_destroy") and \
                    int(r["heap"] or 0) != heap:
                continue
            getattr(self, "ev_" + ev, lambda r: None)(r)
        if t0 is not None:
            for (p, h, a), (size, ts, api) in self.live.items():
                if ts < t1:
                    self.rng[1 if ts >= t0 else 3][0] += 1
                    self.rng[1 if ts >= t0 else 3][1] += size

    def heap_of(self, r):
        k = (int(r["pid"]), int(r["heap"]))
        return self.heaps.setdefault(k, dict(allocations=0, frees=0, reallocs=0, bytes=0, live_blocks=0,
                                             live_bytes=0, peak_bytes=0, destroyed_blocks=0))

    def thread_of(self, r):
        k = (int(r["pid"]), int(r["tid"]))
        return self.threads.setdefault(k, dict(allocations=0, frees=0, reallocs=0, bytes=0))

    def heap_event(self, r):
        self.t["heap_events"] += 1
        self.api[r["api"]] = self.api.get(r["api"], 0) + 1
        self.src[r["source"]] = self.src.get(r["source"], 0) + 1

    def end_block(self, key, ts):
        size, ats, api = self.live.pop(key)
        self.dead.add(key)
        self.live_bytes -= size
        self.t["bytes_freed"] += size
        h = self.heaps[(key[0], key[1])]
        h["live_blocks"] -= 1
        h["live_bytes"] -= size
        d = digits(max(ts - ats, 0))
        d = min(d, 11)
        self.life[d] = self.life.get(d, 0) + 1
        if self.t0 is not None:
            if self.t0 <= ats < self.t1:
                c = 0 if ts < self.t1 else 1
            elif ats < self.t0 <= ts:
                c = 2 if ts < self.t1 else 3
            else:
                c = None
            if c is not None:
                self.rng[c][0] += 1
                self.rng[c][1] += size
        return size, api

    def allocate(self, r, addr, size):
        key = (int(r["pid"]), int(r["heap"]), addr)
        ts = int(r["ts_ns"])
        if key in self.live:
            self.end_block(key, ts)
        self.dead.discard(key)
        self.live[key] = (size, ts, r["api"])
        self.t["blocks_allocated"] += 1
        self.t["bytes_allocated"] += size
        self.src_bytes = None
        b = size.bit_length()
        self.sizes[b] = self.sizes.get(b, 0) + 1
        self.live_bytes += size
        if self.live_bytes > self.peak[0]:
            self.peak = (self.live_bytes, len(self.live), ts)
        h = self.heap_of(r)
        h["bytes"] += size
        h["live_blocks"] += 1
        h["live_bytes"] += size
        h["peak_bytes"] = max(h["peak_bytes"], h["live_bytes"])
        self.thread_of(r)["bytes"] += size
        self.last_alloc[int(r["pid"])] = (addr, int(r["heap"]))

    def release(self, r, addr, fam, is_realloc):
        pid = int(r["pid"])
        key = (pid, int(r["heap"]), addr)
        temporary = self.last_alloc.get(pid) == (addr, int(r["heap"])) and addr != 0
        self.last_alloc[pid] = None
        if key not in self.live:
            if key in self.dead:
                self.double_frees += 1
            elif is_realloc:
                self.unknown_reallocs += 1
            else:
                self.unknown_frees += 1
            return None
        afam = family(self.live[key][2])
        if afam != fam and "heap" not in (afam, fam):
            self.mm[(afam, fam)] = self.mm.get((afam, fam), 0) + 1
        if temporary:
            self.t["temporary"] += 1
        size, _ = self.end_block(key, int(r["ts_ns"]))
        return size

    def ev_alloc(self, r):
        self.heap_event(r)
        self.t["allocations"] += 1
        self.heap_of(r)["allocations"] += 1
        self.thread_of(r)["allocations"] += 1
        addr = int(r["address"], 16)
        if addr == 0:
            self.t["failed_allocations"] += 1
            return
        self.allocate(r, addr, int(r["size"]))

    def ev_free(self, r):
        self.heap_event(r)
        self.t["frees"] += 1
        self.heap_of(r)["frees"] += 1
        self.thread_of(r)["frees"] += 1
        self.release(r, int(r["address"], 16), family(r["api"]), False)

    def ev_realloc(self, r):
        self.heap_event(r)
        self.t["reallocs"] += 1
        self.heap_of(r)["reallocs"] += 1
        self.thread_of(r)["reallocs"] += 1
        new = int(r["new_address"], 16) if r["new_address"] else 0
        if new == 0:
            self.t["failed_reallocs"] += 1
            return
        old = int(r["old_address"], 16) if r["old_address"] else 0
        osz = self.release(r, old, "malloc", True) if old else None
        if osz is None:
            osz = int(r["old_size"] or 0) or None
        size = int(r["new_size"])
        if osz is not None:
            if size > osz:
                self.grow += 1
            elif size < osz:
                self.shrink += 1
            else:
                self.same += 1
        if old:
            if new == old:
                self.inplace += 1
            else:
                self.moved += 1
        self.allocate(r, new, size)

    def ev_heap_destroy(self, r):
        pid, heap = int(r["pid"]), int(r["heap"])
        for key in [k for k in self.live if k[0] == pid and k[1] == heap]:
            self.end_block(key, int(r["ts_ns"]))
            self.destroyed += 1
            self.heaps[(pid, heap)]["destroyed_blocks"] += 1


def dump_rows(ht, trace):
    r = run([ht, "dump", "--format", "csv", "--no-symbols", trace])
    if r.returncode != 0:
        print("dump failed: " + r.stderr)
        sys.exit(1)
    return list(csv.DictReader(io.StringIO(r.stdout)))


def report_json(ht, trace, *extra):
    r = run([ht, "report", "--json", trace] + list(extra))
    if not check(r.returncode == 0, "report --json %s exits 0 (stderr %r)" % (" ".join(extra), r.stderr[-300:])):
        return None
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        check(False, "report --json output parses as JSON: %s" % e)
        return None


def compare(label, d, o):
    t = d["totals"]
    for k, v in o.t.items():
        eq(t[k], v, "%s: totals.%s" % (label, k))
    eq({a["api"]: a["events"] for a in d["by_api"]}, o.api, "%s: events by api" % label)
    eq({s["source"]: s["events"] for s in d["by_source"]}, o.src, "%s: events by source" % label)
    eq((d["peak"]["bytes"], d["peak"]["blocks"], d["peak"]["ts_ns"]), o.peak, "%s: peak bytes, blocks, time" % label)
    eq((d["leaks"]["blocks"], d["leaks"]["bytes"]), (len(o.live), o.live_bytes), "%s: leaks" % label)
    bf = d["bad_frees"]
    eq((bf["unknown_frees"], bf["unknown_reallocs"], bf["double_frees"], bf["destroyed_with_heap"]),
       (o.unknown_frees, o.unknown_reallocs, o.double_frees, o.destroyed), "%s: unknown, double, destroyed" % label)
    eq(bf["bad_sizes"], 0, "%s: bad sizes" % label)
    eq({s["min"].bit_length() if s["min"] else 0: s["count"] for s in d["sizes"]}, o.sizes, "%s: size histogram" % label)
    labels = ["< 1 ns", "< 10 ns", "< 100 ns", "< 1 us", "< 10 us", "< 100 us", "< 1 ms", "< 10 ms", "< 100 ms",
              "< 1 s", "< 10 s", ">= 10 s"]
    eq({labels.index(x["below"]): x["count"] for x in d["lifetimes"]}, o.life, "%s: lifetime histogram" % label)
    ra = d["reallocs"]
    eq((ra["grow"], ra["shrink"], ra["same"], ra["in_place"], ra["moved"]),
       (o.grow, o.shrink, o.same, o.inplace, o.moved), "%s: realloc growth patterns" % label)
    fam = {"malloc/calloc/realloc": "malloc", "new": "new", "new[]": "new[]"}
    rel = {"free/realloc": "malloc", "delete": "new", "delete[]": "new[]"}
    eq({(fam[m["allocated_by"]], rel[m["released_by"]]): m["count"] for m in d["mismatches"]}, o.mm,
       "%s: mismatches" % label)
    got_heaps = {(h["pid"], h["heap"]): {k: h[k] for k in ("allocations", "frees", "reallocs", "bytes", "live_blocks",
                                                         "live_bytes", "peak_bytes", "destroyed_blocks")}
                 for h in d["heaps"]}
    eq(got_heaps, o.heaps, "%s: per heap" % label)
    got_thr = {(x["pid"], x["tid"]): {k: x[k] for k in ("allocations", "frees", "reallocs", "bytes")}
               for x in d["threads"] if x["allocations"] or x["frees"] or x["reallocs"]}
    eq(got_thr, o.threads, "%s: per thread" % label)
    # sites add up to the totals
    if d["top_bytes"]:
        check(sum(s["bytes"] for s in d["top_bytes"]) <= t["bytes_allocated"], "%s: top sites within the total" % label)
    if o.t0 is not None:
        got = {c["class"]: (c["count"], c["bytes"]) for c in d["range"]["classes"]}
        want = {n: tuple(o.rng[i]) for i, n in enumerate(["AIFI", "AIFO", "AOFI", "AOFO"])}
        eq(got, want, "%s: range classes [%d, %d)" % (label, o.t0, o.t1))


def record(ht, tmp, name, prog, *args):
    trace = os.path.join(tmp, name + ".htrace")
    r = run([ht, "record", "-q", "--stacks", "fp", "-o", trace, "--", prog] + list(args))
    if r.returncode != 0:
        print("record of %s failed: %s" % (prog, r.stderr))
        sys.exit(1)
    return trace


def markers(rows):
    return {r["detail"]: int(r["ts_ns"]) for r in rows if r["event"] == "marker"}


def part_oracle(ht, prog, demo, tmp):
    for name, p in (("rep_prog", prog), ("demo", demo)):
        trace = record(ht, tmp, name, p)
        rows = dump_rows(ht, trace)
        m = markers(rows)
        if m:
            t0, t1 = m.get("phase2"), m.get("phase3")
        else:  # the demo: the middle third of the run
            ts = [int(r["ts_ns"]) for r in rows if r["event"] in ("alloc", "free", "realloc")]
            t0, t1 = ts[len(ts) // 3], ts[2 * len(ts) // 3]
        d = report_json(ht, trace)
        if d:
            compare(name, d, Oracle(rows))
        d = report_json(ht, trace, "--range", "%dns,%dns" % (t0, t1))
        if d:
            compare(name + " --range", d, Oracle(rows, t0=t0, t1=t1))


def site(d, key, name):
    for s in d[key]:
        if s["site"].startswith(name + " ") or s["site"] == name:
            return s
    return None


def part_known(ht, prog, demo, tmp):
    trace = record(ht, tmp, "known", prog)
    d = report_json(ht, trace)
    if not d:
        return
    s = site(d, "peak_sites", "hold_blocks")
    check(s is not None and s["peak_bytes"] == PEAK_N * PEAK_SZ and s["peak_blocks"] == PEAK_N,
          "the peak is held by hold_blocks: %d blocks of %d bytes (%r)" % (PEAK_N, PEAK_SZ, s))
    check(d["peak_sites"] and d["peak_sites"][0]["site"].startswith("hold_blocks"),
          "hold_blocks is the first site at the peak: %r" % (d["peak_sites"][0]["site"] if d["peak_sites"] else None))
    s = site(d, "leak_sites", "leak_blocks")
    check(s is not None and s["live_bytes"] == LEAK_N * LEAK_SZ and s["live_blocks"] == LEAK_N,
          "leaks at leak_blocks: %d blocks of %d bytes (%r)" % (LEAK_N, LEAK_SZ, s))
    s = site(d, "top_temporary", "temporaries")
    check(s is not None and s["temporary"] == TEMP_N and s["allocations"] == TEMP_N,
          "temporaries: %d temporary allocations of %d (%r)" % (TEMP_N, TEMP_N, s))
    check(d["totals"]["temporary"] >= TEMP_N, "total temporary >= %d: %d" % (TEMP_N, d["totals"]["temporary"]))
    mm = {(m["allocated_by"], m["released_by"]): m["count"] for m in d["mismatches"]}
    eq(mm.get(("new", "free/realloc")), MM_N, "new released by free")
    eq(mm.get(("malloc/calloc/realloc", "delete")), MM_N, "malloc released by delete")
    eq(mm.get(("new[]", "delete")), MM_N, "new[] released by delete")
    ex = d["mismatch_examples"]
    check(any(e["site"].startswith("mismatches") for e in ex), "mismatch examples name the allocating function")
    heaps = [h for h in d["heaps"] if h["name"] == "rep-pool"]
    check(len(heaps) == 1 and heaps[0]["destroyed"] and heaps[0]["destroyed_blocks"] == POOL_LIVE and
          heaps[0]["allocations"] == 8 and heaps[0]["frees"] == 6 and heaps[0]["live_blocks"] == 0,
          "custom heap rep-pool: 8 allocations, 6 frees, destroyed with %d blocks (%r)" % (POOL_LIVE, heaps))
    libc = [h for h in d["heaps"] if h["heap"] == 1]
    check(len(libc) == 1 and libc[0]["name"] == "libc", "the libc heap is named libc")
    bf = d["bad_frees"]
    eq(bf["double_frees"], 1, "double frees")
    eq(bf["unknown_frees"], 1, "frees of an address never allocated")
    eq(bf["destroyed_with_heap"], POOL_LIVE, "blocks released with their heap")
    src = {s["source"]: s["events"] for s in d["by_source"]}
    eq(src.get("LOOKASIDE"), 8 + 6, "LOOKASIDE events (the pool's)")
    # the text report: every section, and the numbers in it
    r = run([ht, "report", trace])
    eq(r.returncode, 0, "text report exit status")
    for sec in ("totals", "sites at the peak", "leaks: blocks live at the end", "top sites by bytes allocated",
                "top sites by allocations", "top sites by temporary allocations", "allocation sizes", "lifetimes",
                "heaps", "threads", "reallocs", "mismatched releases", "frees of unknown blocks"):
        check("\n" + sec in r.stdout, "text report has the section '%s'" % sec)
    check("rep-pool" in r.stdout and "hold_blocks" in r.stdout and "leak_blocks" in r.stdout,
          "text report names the pool and the sites")
    check("1 double frees" in " ".join(r.stdout.split()), "text report counts the double free")


def part_filters(ht, prog, demo, tmp):
    trace = record(ht, tmp, "filters", prog)
    rows = dump_rows(ht, trace)
    pid = int(next(r["pid"] for r in rows if r["event"] == "alloc"))
    d = report_json(ht, trace, "--pid", str(pid))
    if d:
        compare("--pid %d" % pid, d, Oracle(rows, pid=pid))
    d = report_json(ht, trace, "--pid", str(pid + 100000))
    if d:
        eq(d["totals"]["heap_events"], 0, "--pid of a process not in the trace: no events")
    d = report_json(ht, trace, "--heap", "1")
    if d:
        compare("--heap 1", d, Oracle(rows, heap=1))
        check(all(h["heap"] == 1 for h in d["heaps"]), "--heap 1 leaves the custom heap out")
    d = report_json(ht, trace, "--top", "1")
    if d:
        check(all(len(d[k]) <= 1 for k in ("peak_sites", "leak_sites", "top_bytes", "top_allocations",
                                          "top_temporary")), "--top 1: one row per list")
    m = markers(rows)
    t0, t1 = m["phase2"], m["phase3"]
    # units: the same window in microseconds (rounded outwards to whole us changes nothing here:
    # no heap event lies within a microsecond of the markers' own calls? check with the oracle)
    a0, a1 = t0 // 1000, (t1 + 999) // 1000
    d = report_json(ht, trace, "--range", "%dus,%dus" % (a0, a1))
    if d:
        compare("--range in us", d, Oracle(rows, t0=a0 * 1000, t1=a1 * 1000))
        aifi = next(c for c in d["range"]["classes"] if c["class"] == "AIFI")
        check(aifi["count"] >= PEAK_N and any(s["site"].startswith("hold_blocks") and s["count"] == PEAK_N
                                              for s in aifi["sites"]),
              "AIFI of phase 2 holds hold_blocks' %d blocks: %r" % (PEAK_N, aifi))
    d = report_json(ht, trace, "--range", "%fs," % (t0 / 1e9))
    if d:
        eq(d["range"]["t1_ns"], 2 ** 64 - 1, "--range T0, (open end)")


def part_bad(ht, prog, demo, tmp):
    trace = record(ht, tmp, "bad", prog)

    def one_line(r, code, what):
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        check(r.returncode == code and len(lines) == 1 and lines[0].startswith("heaptrace: "),
              "%s: exit %d and one line (got %d, %r)" % (what, code, r.returncode, r.stderr[-300:]))

    one_line(run([ht, "report", os.path.join(tmp, "missing.htrace")]), 1, "missing trace")
    one_line(run([ht, "report", trace, "--top", "0"]), 2, "--top 0")
    one_line(run([ht, "report", trace, "--range", "5,1"]), 2, "--range with T1 < T0")
    one_line(run([ht, "report", trace, "--range", "abc"]), 2, "--range without a comma")
    one_line(run([ht, "report", trace, "--range", "1x,2"]), 2, "--range with an unknown unit")
    one_line(run([ht, "report", trace, "--pid", "-3"]), 2, "--pid -3")
    one_line(run([ht, "report", trace, "--bogus"]), 2, "an unknown option")
    one_line(run([ht, "report"]), 2, "no file")
    notrace = os.path.join(tmp, "not-a-trace")
    with open(notrace, "w") as f:
        f.write("hello\n" * 100)
    one_line(run([ht, "report", notrace]), 1, "a file that is not a trace")
    # truncated: the intact part is reported, exit 1, one line naming the damage
    # (the demo's trace has many chunks; rep_prog's fits in one)
    data = open(record(ht, tmp, "demo", demo), "rb").read()
    cut = os.path.join(tmp, "cut.htrace")
    with open(cut, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    r = run([ht, "report", "--json", cut])
    one_line(r, 1, "a truncated trace")
    try:
        d = json.loads(r.stdout)
        check(d["totals"]["heap_events"] > 0, "the truncated trace's intact part is reported (%d heap events)" %
              d["totals"]["heap_events"])
    except ValueError:
        check(False, "the truncated trace's report is valid JSON")
    r = run([ht, "report", "--help"])
    check(r.returncode == 0 and "--range" in r.stdout and "--json" in r.stdout, "report --help")


def part_progress(ht, prog, demo, tmp):
    """On a terminal, a long report shows a progress line on stderr (and
    erases it); elsewhere stderr stays empty."""
    import pty
    import select
    trace = os.path.join(tmp, "many.htrace")
    r = run([ht, "record", "-q", "-o", trace, "--", prog, "many", "15000000"])
    if not check(r.returncode == 0, "record of 15M pairs (%s)" % r.stderr[-200:]):
        return
    master, slave = pty.openpty()
    p = subprocess.Popen([ht, "report", trace], stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    got = b""
    while True:
        rl, _, _ = select.select([master], [], [], 60)
        if not rl:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    p.wait(timeout=60)
    os.close(master)
    eq(p.returncode, 0, "report with stderr on a terminal: exit status")
    check(b"\rreading " in got and b"records)" in got, "a progress line on the terminal: %r" % got[:120])
    check(got.endswith(b"\r\x1b[K"), "the progress line is erased at the end: %r" % got[-20:])
    r = run([ht, "report", trace])
    eq(r.stderr, "", "stderr not a terminal: no progress line")


def main():
    part, ht, prog, demo = sys.argv[1:5]
    with tempfile.TemporaryDirectory(prefix="ht-report-") as tmp:
        {"oracle": part_oracle, "known": part_known, "filters": part_filters, "bad": part_bad,
         "progress": part_progress}[part](ht, prog, demo,
                                                                                                    tmp)
    print("report %s: %s" % (part, "FAILED (%d)" % failures if failures else "passed"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
