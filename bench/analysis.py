#!/usr/bin/env python3
"""bench/analysis.py - how fast and how small `heaptrace report` and
`heaptrace export` are, and how they compare with heaptrack_print (issue 6).

    bench/analysis.py [--build-dir DIR] [--runs N] [--out FILE] [--smoke]

1. Throughput: workload A (one thread, malloc/free pairs, a ring of a few
   hundred live blocks) recorded without stacks; report and each export
   format read it; median wall time of N runs (one core: the tools are
   single-threaded), records per second, peak RSS.
2. Flat memory: the same workload at 1/10 and at full length (same live
   set, 10x the events): the tools' peak RSS must not follow the events.
3. heaptrack_print: workload D (sqlite3 insert script) recorded by
   heaptrack and by heaptrace --stacks dwarf; heaptrack_print vs heaptrace
   report: time, peak RSS, and the answers (peak, leaked bytes, top site).

Writes a Markdown section to stdout and to FILE (default
bench/analysis-results.md; --smoke: a temporary file).  Public tools only:
its own timer (wait4 rusage) and the programs under test.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def timed(argv, stdin=None, stdout=subprocess.DEVNULL, env=None):
    """(wall seconds, max RSS KiB) of one run.  The peak RSS comes from GNU
    time: a child spawned from Python starts on Python's own memory (vfork),
    which exec folds into its ru_maxrss; GNU time's child is forked from a
    small process."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    rssf = tempfile.NamedTemporaryFile(prefix="ht-rss-", mode="r")
    t = time.monotonic()
    p = subprocess.Popen(["/usr/bin/time", "-o", rssf.name, "-f", "%M"] + argv, stdin=fin, stdout=stdout,
                         stderr=subprocess.PIPE, env=env)
    err = p.stderr.read().decode(errors="replace")
    p.wait()
    wall = time.monotonic() - t
    p.stderr.close()
    if fin is not subprocess.DEVNULL:
        fin.close()
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), p.returncode, err[-500:]))
    rss = int(rssf.read().split()[-1])
    rssf.close()
    return wall, rss


def median_run(argv, runs, **kw):
    """(median wall, best wall, max RSS) of runs.  The best run is shown
    too: this VM has bursts of contention that slow whole runs by 40%."""
    r = [timed(argv, **kw) for _ in range(runs)]
    return statistics.median(x[0] for x in r), min(x[0] for x in r), max(x[1] for x in r)


def build(build_dir):
    subprocess.run(["cmake", "-S", REPO, "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                    "-DBUILD_TESTING=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "-j2", "--target", "heaptrace", "heaptrace_rt",
                    "heaptrace_symbols"], check=True, stdout=subprocess.DEVNULL)
    wl = os.path.join(build_dir, "analysis-workloads")
    os.makedirs(wl, exist_ok=True)
    loop = os.path.join(wl, "loop")
    subprocess.run(["cc", "-O2", "-fno-omit-frame-pointer", "-pthread", "-o", loop,
                    os.path.join(HERE, "workloads", "loop.c")], check=True)
    return os.path.join(build_dir, "heaptrace"), loop


def records_of(ht, trace):
    out = subprocess.run([ht, "report", "--json", trace], check=True, stdout=subprocess.PIPE, text=True).stdout
    return int(re.search(r'"records": (\d+)', out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run: checks that the harness works")
    a = ap.parse_args()
    runs = 1 if a.smoke else a.runs
    pairs = 20000 if a.smoke else 10000000
    d_rows = 2000 if a.smoke else 300000
    out_path = a.out or (os.path.join(tempfile.gettempdir(), "analysis-smoke.md") if a.smoke
                         else os.path.join(HERE, "analysis-results.md"))
    ht, loop = build(a.build_dir)
    L = []
    cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True, stdout=subprocess.PIPE,
                         text=True).stdout.strip()
    L.append("# Analysis speed: report, export, heaptrack_print\n")
    L.append("Machine: %s, %d cores, kernel %s; %s. Median and best of %d runs, the commands taking turns; RSS is the maximum." %
             (cpu, os.cpu_count(), os.uname().release, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), runs))
    with tempfile.TemporaryDirectory(prefix="ht-analysis-") as tmp:
        # 1 + 2: throughput and flat memory
        traces = {}
        for frac, n in (("1/10", pairs // 10), ("full", pairs)):
            t = os.path.join(tmp, "A-%d.htrace" % n)
            subprocess.run([ht, "record", "-q", "-o", t, "--", loop, str(n), "1"], check=True,
                           stdout=subprocess.DEVNULL)
            traces[frac] = (t, records_of(ht, t))
        L.append("\n## Throughput and memory (workload A, no stacks)\n")
        L.append("| command | records | wall s (median) | wall s (best) | Mrecords/s (median) | Mrecords/s (best) "
                 "| peak RSS MiB (1/10 trace) | peak RSS MiB (full) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        cmds = [("report", ["report"]), ("report --json", ["report", "--json"])] + \
               [("export " + f, ["export", "--format", f, "-o", os.path.join(tmp, "out." + f)])
                for f in ("pprof", "massif", "folded", "chrome")]
        t_small, n_small = traces["1/10"]
        t_full, n_full = traces["full"]
        # round robin: a burst of contention on this VM slows whichever
        # command runs during it; interleaved, it slows one run of each
        walls = {name: [] for name, _ in cmds}
        rss = {name: [0, 0] for name, _ in cmds}
        for run_i in range(runs):
            for name, args in cmds:
                w, r = timed([ht] + args[:1] + [t_full] + args[1:])
                walls[name].append(w)
                rss[name][1] = max(rss[name][1], r)
                if run_i == 0:
                    rss[name][0] = timed([ht] + args[:1] + [t_small] + args[1:])[1]
        for name, _ in cmds:
            wall, best = statistics.median(walls[name]), min(walls[name])
            L.append("| heaptrace %s | %d | %.3f | %.3f | %.1f | %.1f | %.1f | %.1f |" %
                     (name, n_full, wall, best, n_full / wall / 1e6, n_full / best / 1e6, rss[name][0] / 1024,
                      rss[name][1] / 1024))
        L.append("\nThe two traces have the same live set (a ring of a few hundred blocks) and 10x apart in "
                 "events; equal RSS in the last two columns means memory follows the live set, not the events.")

        # 3: heaptrack_print on workload D
        hp = shutil.which("heaptrack_print")
        htk = shutil.which("heaptrack")
        sqlite = shutil.which("sqlite3")
        if not (hp and htk and sqlite):
            L.append("\n(heaptrack or sqlite3 missing: no heaptrack_print comparison)")
        else:
            sql = os.path.join(tmp, "insert.sql")
            subprocess.run([sys.executable, os.path.join(HERE, "workloads", "gen_sql.py"), str(d_rows), sql],
                           check=True)
            db = os.path.join(tmp, "d.db")

            def rm_db():
                if os.path.exists(db):
                    os.unlink(db)
            rm_db()
            hpfile = os.path.join(tmp, "d.heaptrack")
            subprocess.run([htk, "-o", hpfile, sqlite, "-batch", db], stdin=open(sql, "rb"), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            hpfile = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("d.heaptrack"))
            rm_db()
            htfile = os.path.join(tmp, "d.htrace")
            subprocess.run([ht, "record", "-q", "--stacks", "dwarf", "-o", htfile, "--", sqlite, "-batch", db],
                           stdin=open(sql, "rb"), check=True, stdout=subprocess.DEVNULL)
            rm_db()
            nsfile = os.path.join(tmp, "d-nostacks.htrace")
            subprocess.run([ht, "record", "-q", "-o", nsfile, "--", sqlite, "-batch", db], stdin=open(sql, "rb"),
                           check=True, stdout=subprocess.DEVNULL)
            n_ns = records_of(ht, nsfile)
            ns_wall, ns_best, ns_rss = median_run([ht, "report", nsfile], runs)
            L.append("\nWorkload D (sqlite3, %d-row insert script) recorded without stacks: `heaptrace report` reads "
                     "%d records in %.3f s median, %.3f s best: %.1f (best %.1f) Mrecords/s, peak RSS %.1f MiB." %
                     (d_rows, n_ns, ns_wall, ns_best, n_ns / ns_wall / 1e6, n_ns / ns_best / 1e6, ns_rss / 1024))
            hp_out = os.path.join(tmp, "hp.txt")
            ht_out = os.path.join(tmp, "ht.txt")
            hp_wall, hp_best, hp_rss = median_run([hp, hpfile], runs, stdout=open(hp_out, "w"))
            ht_wall, ht_best, ht_rss = median_run([ht, "report", htfile], runs, stdout=open(ht_out, "w"))
            hpt = open(hp_out).read()
            htt = open(ht_out).read()
            js = subprocess.run([ht, "report", "--json", "--top", "3", htfile], check=True, stdout=subprocess.PIPE,
                                text=True).stdout
            import json
            d = json.loads(js)

            def hp_num(pat):
                m = re.search(pat, hpt)
                return m.group(1) if m else "?"
            L.append("\n## heaptrack_print vs heaptrace report (workload D: sqlite3, %d-row insert script)\n" %
                     d_rows)
            L.append("Each program was recorded once by heaptrack and once by `heaptrace record --stacks dwarf`; "
                     "the two runs are separate, so the numbers agree only as far as sqlite3 is deterministic.\n")
            L.append("| | heaptrack_print | heaptrace report |")
            L.append("|---|---|---|")
            L.append("| input | %s (%.1f MiB) | %s (%.1f MiB) |" % (os.path.basename(hpfile),
                     os.path.getsize(hpfile) / 2**20, os.path.basename(htfile), os.path.getsize(htfile) / 2**20))
            L.append("| wall time, median (best) | %.3f s (%.3f) | %.3f s (%.3f) |" % (hp_wall, hp_best, ht_wall, ht_best))
            L.append("| heap events read per second, median | %.1f M | %.1f M |" % (
                (d["totals"]["heap_events"]) / hp_wall / 1e6, d["totals"]["heap_events"] / ht_wall / 1e6))
            L.append("| peak RSS | %.1f MiB | %.1f MiB |" % (hp_rss / 1024, ht_rss / 1024))
            L.append("| allocation calls | %s | %d (+%d reallocs) |" %
                     (hp_num(r"calls to allocation functions: (\d+)"), d["totals"]["allocations"],
                      d["totals"]["reallocs"]))
            L.append("| temporary | %s | %d |" % (hp_num(r"temporary memory allocations: (\d+)"),
                                                  d["totals"]["temporary"]))
            L.append("| peak heap | %s | %d B |" % (hp_num(r"peak heap memory consumption: ([^\n]+)"),
                                                    d["peak"]["bytes"]))
            L.append("| leaked | %s | %d B |" % (hp_num(r"total memory leaked: ([^\n]+)"), d["leaks"]["bytes"]))
            top_hp = re.search(r"MOST CALLS TO ALLOCATION FUNCTIONS\n(\d+) calls to allocation functions with "
                               r"[^\n]*\n([^\n]+)\n  ([^\n]+)", hpt)
            L.append("| top site by calls | %s | %s |" % (
                ("%s calls: %s %s" % (top_hp.group(1), top_hp.group(2)[:60], top_hp.group(3).strip()[:60]))
                if top_hp else "?",
                ("%d calls: %s" % (d["top_allocations"][0]["allocations"], d["top_allocations"][0]["site"][:80]))
                if d["top_allocations"] else "?"))
            top_pk = re.search(r"PEAK MEMORY CONSUMERS\n([^ ]+) peak memory consumed over[^\n]*\n([^\n]+)\n  ([^\n]+)",
                               hpt)
            L.append("| top site by peak (heaptrack: the site's own highest; heaptrace: its share at the peak) "
                     "| %s | %s |" % (
                ("%s: %s %s" % (top_pk.group(1), top_pk.group(2)[:60], top_pk.group(3).strip()[:60]))
                if top_pk else "?",
                ("%d B: %s" % (d["peak_sites"][0]["peak_bytes"], d["peak_sites"][0]["site"][:80]))
                if d["peak_sites"] else "?"))
    text = "\n".join(L) + "\n"
    sys.stdout.write(text)
    with open(out_path, "w") as f:
        f.write(text)
    print("(written to %s)" % out_path, file=sys.stderr)


if __name__ == "__main__":
    main()
