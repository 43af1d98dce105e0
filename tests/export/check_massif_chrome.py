#!/usr/bin/env python3
"""check_massif_chrome.py MODE HEAPTRACE EXP_MC_PROG SRCDIR

End-to-end tests of `heaptrace export --format massif|chrome` (issue 6):
exp_mc_prog (exp_mc_prog.c: known phases, sizes, call chains, markers) is
recorded, exported, and the output read by its real consumer (ms_print for
massif.out; json plus the Trace Event Format's rules for chrome).  The
expected numbers come from the program's own output and `heaptrace summary`;
the expected source lines from the `/* LINE: name */` markers of the source.
MODE:

  massif            --stacks fp: ms_print accepts the file and prints the
                    known peak (= summary's), the peak tree is the program's
                    call chains under massif's root with its 1% threshold,
                    the last snapshot's tree holds the leaks
  massif_nostacks   no stacks: the peak tree is one "[no call stack]" node
  massif_truncated  a trace cut inside a chunk: what is intact is exported
                    (ms_print reads it, its peak is summary's of the same
                    file), exit status 1, one line on stderr
  chrome            the JSON parses, every event has its phase's keys, the
                    counter's timestamps rise and its maximum is the peak,
                    markers (quotes, backslash, newline, control character,
                    invalid UTF-8) come back as written, thread names
  chrome_truncated  as massif_truncated, for chrome
  massif_forks      --follow-forks, a child holding 1000000 bytes through
                    the parent's peak: the peak is of both processes
                    together; the child's chain has an inlined frame
  chrome_forks      the same: a counter track per process, each with its
                    own peak, the global peak instant of both

Prints one ok/FAIL line per assertion and exits 1 if any failed.
"""
import json, os, re, shutil, struct, subprocess, sys, tempfile

mode, HT, PROG, SRC = sys.argv[1:5]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pycheck  # noqa: E402
from pycheck import check, die  # noqa: E402,F401


MARK = re.compile(r"/\* LINE: (\w+) \*/")
LINES = {}
with open(os.path.join(SRC, "exp_mc_prog.c")) as fh:
    for n, text in enumerate(fh, 1):
        for m in MARK.finditer(text):
            LINES[m.group(1)] = n

ROOT = "(heap allocation functions) malloc/new/new[], --alloc-fns, etc."
MARKERS = ["phase: grow", "peak reached",
           "free \"big\" blocks \\ now\nsecond line\x01\ttab, bad utf8 \ufffd\ufffd end",
           "phase: churn", "phase: end"]

# ---- running ----


def record(trace, opts, args=()):
    r = subprocess.run([HT, "record", "-q", "-f", "10", "-o", trace] + opts + ["--", PROG] + list(args),
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        die(f"record {' '.join(opts)}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    m = re.match(r"peak (\d+) big (\d+) mid (\d+) small (\d+) kept (\d+) child (\d+) own (\d+)", r.stdout)
    if not m:
        die(f"unexpected program output {r.stdout!r}")
    return dict(zip(("peak", "big", "mid", "small", "kept", "child", "own"), map(int, m.groups())))


def summary(trace):
    """(peak live bytes, live bytes at exit) as `heaptrace summary` says."""
    r = subprocess.run([HT, "summary", trace], capture_output=True, text=True, timeout=120)
    m = re.search(r"^\s*peak live\s+(\d+) bytes", r.stdout, re.M)
    e = re.search(r"^\s*live at exit\s+(\d+) blocks, (\d+) bytes", r.stdout, re.M)
    if not m or not e:
        die(f"summary of {trace} has no peak / live at exit line: {r.stdout!r} {r.stderr!r}")
    # the report must say the same (the exports' peak is the report's)
    rj = subprocess.run([HT, "report", "--json", trace], capture_output=True, text=True, timeout=120)
    try:
        t = json.loads(rj.stdout)
        same = (t["peak"]["bytes"], t["leaks"]["bytes"]) == (int(m.group(1)), int(e.group(2)))
    except (ValueError, KeyError):
        same = False
    check(same, f"report --json of {os.path.basename(trace)} has the summary's peak and live bytes")
    return int(m.group(1)), int(e.group(2))


def export(trace, fmt, out):
    if os.path.exists(out):
        os.unlink(out)
    return subprocess.run([HT, "export", trace, "--format", fmt, "-o", out], capture_output=True, text=True,
                          timeout=120)


def exported(trace, fmt, out):
    r = export(trace, fmt, out)
    check(r.returncode == 0 and r.stderr == "",
          f"export --format {fmt}: exit 0, nothing on stderr (got {r.returncode}, {r.stderr.strip()!r})")
    if not os.path.exists(out):
        die(f"export --format {fmt} wrote no {out}")


def one_stderr_line(r, what):
    lines = r.stderr.splitlines()
    check(r.returncode == 1, f"{what}: exit status 1 (got {r.returncode})")
    check(len(lines) == 1 and lines[0].startswith("heaptrace: "),
          f"{what}: exactly one stderr line starting 'heaptrace: ' (got {lines!r})")


# ---- massif ----

NODE = re.compile(r"^( *)n(\d+): (\d+) (.*)$")
INSIG = re.compile(r"^in (\d+) place(s, all|,) below massif's threshold \(1\.00%\)$")


class Node:
    def __init__(self, nch, size, label):
        self.nch, self.size, self.label, self.children = nch, size, label, []


def parse_massif(path):
    """Reads the file as strictly as massif writes it; returns (header,
    snapshots).  A snapshot is a dict with its fields and 'tree' (a Node or
    None)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        die(f"{path} is not UTF-8")
    lines = text.split("\n")
    check(lines[-1] == "", "massif file ends with a newline")
    lines = lines[:-1]
    check(all(not re.search(r"[\x00-\x1f\x7f]", ln) for ln in lines), "massif file: no control characters")
    if len(lines) < 3:
        die("massif file has no header")
    check(lines[0].startswith("desc: "), f"line 1 is 'desc: ...' ({lines[0]!r})")
    check(lines[1].startswith("cmd: "), f"line 2 is 'cmd: ...' ({lines[1]!r})")
    check(lines[2] == "time_unit: ms", f"line 3 is 'time_unit: ms' ({lines[2]!r})")
    header = {"cmd": lines[1][5:]}
    snaps, i = [], 3
    fields = ("time", "mem_heap_B", "mem_heap_extra_B", "mem_stacks_B")
    while i < len(lines):
        if lines[i] != "#-----------" or i + 8 > len(lines):
            die(f"line {i + 1}: expected '#-----------', got {lines[i]!r}")
        m = re.fullmatch(r"snapshot=(\d+)", lines[i + 1])
        if not m or lines[i + 2] != "#-----------":
            die(f"line {i + 2}: bad snapshot header {lines[i + 1:i + 3]!r}")
        s = {"num": int(m.group(1))}
        for k, f in enumerate(fields):
            m = re.fullmatch(f + r"=(\d+)", lines[i + 3 + k])
            if not m:
                die(f"line {i + 4 + k}: expected {f}=N, got {lines[i + 3 + k]!r}")
            s[f] = int(m.group(1))
        m = re.fullmatch(r"heap_tree=(empty|detailed|peak)", lines[i + 7])
        if not m:
            die(f"line {i + 8}: bad heap_tree line {lines[i + 7]!r}")
        s["kind"], s["tree"] = m.group(1), None
        i += 8
        if s["kind"] != "empty":
            s["tree"], i = parse_tree(lines, i, 0)
        snaps.append(s)
    return header, snaps


def parse_tree(lines, i, depth):
    if i >= len(lines):
        die("tree cut short")
    m = NODE.match(lines[i])
    if not m or len(m.group(1)) != depth:
        die(f"line {i + 1}: expected a tree node at depth {depth}, got {lines[i]!r}")
    node = Node(int(m.group(2)), int(m.group(3)), m.group(4))
    i += 1
    for _ in range(node.nch):
        child, i = parse_tree(lines, i, depth + 1)
        node.children.append(child)
    return node, i


def check_tree(tree, total, what):
    """massif's rules: the root is its allocation-functions node of the
    snapshot's total; children sum to at most their parent, are sorted
    biggest first, each at least 1% of the total or merged in the one
    'below massif's threshold' node, which has no children."""
    check(tree.label == ROOT, f"{what}: root is massif's '{ROOT[:30]}...' node ({tree.label!r})")
    check(tree.size == total, f"{what}: root bytes {tree.size} = mem_heap_B {total}")
    sig = total // 100
    bad = []

    def walk(n, top):
        if sum(c.size for c in n.children) > n.size:
            bad.append(f"children of {n.label!r} sum to more than {n.size}")
        if [c.size for c in n.children] != sorted((c.size for c in n.children), reverse=True):
            bad.append(f"children of {n.label!r} not biggest first")
        insig = [c for c in n.children if INSIG.match(c.label)]
        if len(insig) > 1:
            bad.append(f"{len(insig)} threshold nodes under {n.label!r}")
        for c in n.children:
            m = INSIG.match(c.label)
            if m:
                k = int(m.group(1))
                if c.nch != 0 or (k == 1) != (m.group(2) == ","):
                    bad.append(f"bad threshold node {c.label!r}")
            else:
                if c.size < sig:
                    bad.append(f"{c.label!r} ({c.size}) below the threshold {sig}")
                if not re.match(r"^0x[0-9A-F]+: \S", c.label):
                    bad.append(f"{c.label!r} is not '0xADDR: description'")
            walk(c, False)

    walk(tree, True)
    check(not bad, f"{what}: tree follows massif's rules{': ' + '; '.join(bad[:5]) if bad else ''}")


def frame_re(fn, line_mark):
    return re.compile(r"^0x[0-9A-F]+: " + re.escape(fn) + r" \(exp_mc_prog\.c:" + str(LINES[line_mark]) + r"\)$")


def expect_chain(node, chain, size, what):
    """node and its single-child descendants are exactly chain [(fn, mark)],
    each of size bytes, the last a leaf (massif stops at main)."""
    got = []
    n = node
    ok = True
    for k, (fn, mark) in enumerate(chain):
        if n is None:
            ok = False
            break
        got.append(n.label)
        if not frame_re(fn, mark).match(n.label) or n.size != size:
            ok = False
        last = k == len(chain) - 1
        if (last and n.nch != 0) or (not last and n.nch != 1):
            ok = False
        n = n.children[0] if n.children else None
    check(ok, f"{what}: {' <- '.join(f'{fn}:{LINES[m]}' for fn, m in chain)}, {size} bytes each "
              f"(got {got} {node.size if node else None})")


def run_ms_print(path):
    ms = shutil.which("ms_print")
    if not ms:
        die("ms_print (valgrind) is not installed")
    r = subprocess.run([ms, path], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and not r.stderr,
          f"ms_print reads the file: exit 0, no complaint (got {r.returncode}, {r.stderr.strip()[:300]!r})")
    if r.returncode:
        sys.exit(1)
    return r.stdout


def ms_print_peak(out):
    """The peak snapshot's total as ms_print prints it: the snapshot marked
    '(peak)' in the list of detailed ones, its row of the table."""
    m = re.search(r"Detailed snapshots: \[([^\]]*)\]", out)
    p = re.search(r"(\d+) \(peak\)", m.group(1)) if m else None
    if not p:
        return None
    rows = re.findall(r"^\s*(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s*$", out, re.M)
    for row in rows:
        if row[0] == p.group(1):
            return int(row[2].replace(",", ""))
    return None


def check_massif_common(path, peak, what):
    header, snaps = parse_massif(path)
    check(0 < len(snaps) <= 100, f"{what}: 1..100 snapshots, massif's default limit (got {len(snaps)})")
    check([s["num"] for s in snaps] == list(range(len(snaps))), f"{what}: snapshots numbered 0..n-1")
    times = [s["time"] for s in snaps]
    check(times == sorted(times), f"{what}: snapshot times never decrease")
    check(all(s["mem_heap_extra_B"] == 0 and s["mem_stacks_B"] == 0 for s in snaps),
          f"{what}: mem_heap_extra_B and mem_stacks_B are 0")
    peaks = [s for s in snaps if s["kind"] == "peak"]
    check(len(peaks) == 1, f"{what}: exactly one heap_tree=peak snapshot (got {len(peaks)})")
    if len(peaks) != 1:
        sys.exit(1)
    pk = peaks[0]
    check(pk["mem_heap_B"] == peak, f"{what}: peak snapshot mem_heap_B {pk['mem_heap_B']} = summary's peak {peak}")
    check(max(s["mem_heap_B"] for s in snaps) == peak, f"{what}: no snapshot above the peak")
    for s in snaps:
        if s["tree"]:
            check_tree(s["tree"], s["mem_heap_B"], f"{what}: snapshot {s['num']} ({s['kind']})")
    out = run_ms_print(path)
    check(ms_print_peak(out) == peak, f"{what}: ms_print's peak snapshot shows {peak} bytes "
                                      f"(got {ms_print_peak(out)})")
    return header, snaps, pk, out


def chunks(data):
    """(offset, stream, ts_first, stored_size) of each chunk (FORMAT.md §1-2)."""
    hsz = struct.unpack_from("<I", data, 12)[0]
    off, res = hsz, []
    while off + 48 <= len(data):
        magic, csz, stream, _fl, tsf, _tsl, _rec, _raw, stored, _crc = struct.unpack_from("<4sIIIQQIIII", data, off)
        if magic != b"HTCK":
            die(f"no chunk at offset {off}")
        res.append((off, stream, tsf, csz, stored))
        off += csz + stored
    return res


def truncated_trace(tmp):
    """A recording cut in the middle of a chunk of the traced process in the
    middle of the file: the chunks before it are intact."""
    full = os.path.join(tmp, "full.htrace")
    record(full, ["--stacks", "fp"])
    with open(full, "rb") as fh:
        data = fh.read()
    ch = [c for c in chunks(data) if c[1] != 0]
    if len(ch) < 3:
        die(f"the recording has only {len(ch)} chunks of the process; cannot cut one in the middle")
    off, _s, _t, csz, stored = ch[len(ch) // 2]
    cut = os.path.join(tmp, "cut.htrace")
    with open(cut, "wb") as fh:
        fh.write(data[:off + csz + stored // 2])
    return cut


# ---- modes ----

def mode_massif(tmp, stacks, forks=False):
    trace, out = os.path.join(tmp, "t.htrace"), os.path.join(tmp, "massif.out")
    known = record(trace, (["--stacks", "fp"] if stacks else []) + (["--follow-forks"] if forks else []),
                   ["fork"] if forks else [])
    peak, leak = summary(trace)
    check(peak == known["peak"], f"summary's peak {peak} = the program's known peak {known['peak']}")
    exported(trace, "massif", out)
    header, snaps, pk, msout = check_massif_common(out, peak, "massif")
    check("exp_mc_prog" in header["cmd"], f"cmd: names the program ({header['cmd']!r})")
    check(snaps[0]["time"] == 0 and snaps[0]["mem_heap_B"] == 0, "massif: starts from 0 bytes at time 0")
    check(snaps[-1]["mem_heap_B"] == leak, f"massif: last snapshot holds the bytes live at exit "
                                           f"({snaps[-1]['mem_heap_B']} vs {leak})")
    check(pk["time"] > 0 and pk["time"] <= snaps[-1]["time"], "massif: peak inside the run")
    # the profile's series (the chrome counter) has more points than massif
    # keeps: the downsampling keeps the budget's worth, the spikes with them
    js = os.path.join(tmp, "trace.json")
    exported(trace, "chrome", js)
    with open(js) as fh:
        npts = sum(1 for e in json.load(fh)["traceEvents"] if e["ph"] == "C")
    check(npts > 100 and 75 <= len(snaps) <= 100,
          f"massif: {npts} series points downsampled to 75..100 snapshots (got {len(snaps)})")
    tree = pk["tree"]
    if not stacks:
        check(len(tree.children) == 1 and tree.children[0].label == "0x0: [no call stack]"
              and tree.children[0].size == peak and tree.children[0].nch == 0,
              f"massif without stacks: the peak tree is one '0x0: [no call stack]' node of {peak} bytes "
              f"({[(c.label, c.size) for c in tree.children]})")
        return
    kids = tree.children
    want = 4 if forks else 3
    check(len(kids) == want, f"peak tree: {want} children, alloc_block, {'child_hold, ' if forks else ''}"
                             f"mid_alloc and the threshold node (got {[(c.label, c.size) for c in kids]})")
    if len(kids) != want:
        return
    expect_chain(kids[0], [("alloc_block", "alloc_block"), ("grow_level2", "grow_level2"),
                           ("grow_level1", "grow_level1"), ("grow_phase", "grow_phase"),
                           ("main", "main_grow")], known["big"], "peak tree, biggest child")
    if forks:
        expect_chain(kids[1], [("child_hold", "child_hold"), ("child", "child_main"), ("main", "main_child")],
                     known["child"], "peak tree, the child process's block")
        n = kids[1].children[0] if kids[1].children else None
        addr = lambda node: node.label.split(":")[0]
        check(n is not None and n.children and addr(n) == addr(n.children[0]),
              "peak tree: the inlined frame (child) has its caller's (main's) address, as massif shows it")
    expect_chain(kids[-2], [("mid_alloc", "mid_alloc"), ("main", "main_mid")], known["mid"],
                 "peak tree, the mid_alloc child")
    check(kids[-1].label == "in 3 places, all below massif's threshold (1.00%)" and
          kids[-1].size == known["small"] and kids[-1].nch == 0,
          f"peak tree: the three 640-byte sites merged below the threshold, {known['small']} bytes "
          f"({kids[-1].label!r}, {kids[-1].size})")
    check(re.search(r"^->\d\d\.\d\d% \(4,000,000B\) 0x[0-9A-F]+: alloc_block \(exp_mc_prog\.c:"
                    + str(LINES["alloc_block"]) + r"\)$", msout, re.M) is not None,
          "ms_print shows alloc_block's 4,000,000 bytes at the peak")
    end = snaps[-1]
    check(end["kind"] == "detailed" and end["tree"] is not None, "massif: the last snapshot is detailed (leaks)")
    if end["tree"]:
        big = [c for c in end["tree"].children if c.label.startswith("0x") and ": alloc_block " in c.label]
        check(len(big) == 1 and big[0].size == known["kept"] - known["small"],
              f"massif: the leaks tree holds alloc_block's 2 kept blocks ({[(c.label, c.size) for c in big]})")


def export_truncated(tmp, fmt, name):
    """A cut trace exported: one line on stderr, a file written; returns
    (the intact part's peak as the summary says, the output's path)."""
    cut = truncated_trace(tmp)
    peak, _ = summary(cut)
    check(peak > 0, f"the intact part of the cut trace has a peak ({peak})")
    out = os.path.join(tmp, name)
    r = export(cut, fmt, out)
    one_stderr_line(r, f"export --format {fmt} of a cut trace")
    if not os.path.exists(out):
        die("export of a cut trace wrote nothing")
    return peak, out


def mode_massif_truncated(tmp):
    peak, out = export_truncated(tmp, "massif", "massif.out")
    check_massif_common(out, peak, "massif of a cut trace")


def load_chrome(path):
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        check(False, f"chrome JSON is valid UTF-8 ({e})")
        sys.exit(1)
    try:
        doc = json.loads(text)
    except ValueError as e:
        check(False, f"chrome JSON parses ({e})")
        sys.exit(1)
    check(True, "chrome JSON parses (json.load)")
    check(isinstance(doc, dict) and isinstance(doc.get("traceEvents"), list),
          "object form with a traceEvents array")
    check(doc.get("displayTimeUnit") == "ms", "displayTimeUnit is ms")
    check(isinstance(doc.get("metadata"), dict), "metadata object")
    bad_ts = [t for t in re.findall(r'"ts":([-0-9.eE+]+)', text) if not re.fullmatch(r"\d+(\.\d{1,3})?", t)]
    check(not bad_ts, f"every ts is microseconds with at most 3 decimals ({bad_ts[:3]})")
    return doc, text


def check_events(evs):
    """The keys each phase needs (Trace Event Format), integers where the
    format has integers."""
    bad = []
    isint = lambda v: isinstance(v, int) and not isinstance(v, bool)
    isnum = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
    for e in evs:
        ph = e.get("ph")
        if not (isinstance(e.get("name"), str) and isint(e.get("pid")) and ph in ("M", "C", "i")):
            bad.append(e)
        elif ph == "M":
            if e["name"] not in ("process_name", "thread_name") or not isinstance(e.get("args", {}).get("name"), str)\
                    or not isint(e.get("tid")):
                bad.append(e)
        elif ph == "C":
            a = e.get("args")
            if not isnum(e.get("ts")) or not isinstance(a, dict) or not a or not all(isint(v) for v in a.values()):
                bad.append(e)
        elif ph == "i":
            if not isnum(e.get("ts")) or not isint(e.get("tid")) or e.get("s") not in ("t", "p", "g"):
                bad.append(e)
    check(not bad, f"every event has the keys of its phase ({len(evs)} events; bad: {bad[:3]})")


def counters(evs):
    tracks = {}
    for e in evs:
        if e.get("ph") == "C":
            tracks.setdefault((e["pid"], e["name"]), []).append((e["ts"], e["args"]))
    return tracks


def mode_chrome(tmp, forks=False):
    trace, out = os.path.join(tmp, "t.htrace"), os.path.join(tmp, "trace.json")
    known = record(trace, ["--stacks", "fp"] + (["--follow-forks"] if forks else []), ["fork"] if forks else [])
    peak, leak = summary(trace)
    check(peak == known["peak"], f"summary's peak {peak} = the program's known peak {known['peak']}")
    exported(trace, "chrome", out)
    doc, text = load_chrome(out)
    evs = doc["traceEvents"]
    check_events(evs)
    tracks = counters(evs)
    pn = {e["pid"]: e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "process_name"}
    nproc = 2 if forks else 1
    check(len(pn) == nproc and all("exp_mc_prog" in v for v in pn.values()),
          f"a process_name per process, naming the program ({pn})")
    check(sorted(p for p, _ in tracks) == sorted(pn) and all(n == "heap" for _, n in tracks),
          f"a 'heap' counter track per process ({list(tracks)})")
    if len(tracks) != nproc or not tracks:
        sys.exit(1)
    bypeak = sorted(tracks.items(), key=lambda kv: -max(a.get("live bytes", 0) for _, a in kv[1]))
    (pid, _), pts = bypeak[0]
    for (p, _), tp in tracks.items():
        check(all(list(a) == ["live bytes"] for _, a in tp), f"pid {p}: counter values are 'live bytes'")
        ts = [t for t, _ in tp]
        check(ts == sorted(ts), f"pid {p}: counter timestamps never decrease")
    ts = [t for t, _ in pts]
    vals = [a.get("live bytes", 0) for _, a in pts]
    check(max(vals) == known["own"], f"counter maximum {max(vals)} = the program's own peak {known['own']}")
    check(vals[-1] == leak, f"counter's last value {vals[-1]} = bytes live at exit {leak}")
    if forks:
        (kpid, _), kpts = bypeak[1]
        kv = [a.get("live bytes", 0) for _, a in kpts]
        check(max(kv) == known["child"] and kv[-1] == 0,
              f"the child's counter peaks at {known['child']} and ends at 0 ({max(kv)}, {kv[-1]})")
    else:
        check(max(vals) == peak, f"counter maximum {max(vals)} = summary's peak {peak}")
    tn = {e["args"]["name"]: e["tid"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"
          and e["pid"] == pid}
    check(tn.get("exp_mc_prog") == pid, f"thread_name of the main thread (tid = pid) ({tn})")
    check("exp-worker" in tn and tn["exp-worker"] != pid, f"thread_name 'exp-worker' of the churn thread ({tn})")
    mk = sorted((e for e in evs if e["ph"] == "i" and e.get("cat") == "marker"), key=lambda e: e["ts"])
    check([e["name"] for e in mk] == MARKERS, f"markers come back as written, in order ({[e['name'] for e in mk]})")
    check(all(e["pid"] == pid and e["tid"] == pid and e["s"] == "t" for e in mk),
          "markers: thread-scoped instants of the main thread")
    check('\\"big\\"' in text and "\\\\ now" in text and "\\u000a" in text.lower() and "\\u0001" in text
          and "\\ufffd" in text.lower(), "marker text escaped in the file (\\\", \\\\, \\u000a, \\u0001, \\ufffd)")
    pk = [e for e in evs if e["ph"] == "i" and e["name"] == "peak"]
    check(len(pk) == 1 and pk[0]["args"].get("live bytes") == peak and pk[0]["s"] == "g",
          f"one global 'peak' instant of {peak} bytes (both processes together)")
    if pk and mk:
        at = [v for t, v in zip(ts, vals) if t == pk[0]["ts"]]
        check(known["own"] in at, f"the program's counter is at its peak at the peak's time ({at})")
        check(mk[0]["ts"] <= pk[0]["ts"] <= mk[1]["ts"], "the peak lies between 'phase: grow' and 'peak reached'")
    md = doc["metadata"]
    check(md.get("peak_bytes") == peak and "exp_mc_prog" in md.get("command", ""),
          f"metadata: peak_bytes and command ({md})")


def mode_chrome_truncated(tmp):
    peak, out = export_truncated(tmp, "chrome", "trace.json")
    doc, _ = load_chrome(out)
    check_events(doc["traceEvents"])
    tracks = counters(doc["traceEvents"])
    vals = [a.get("live bytes", 0) for pts in tracks.values() for _, a in pts]
    check(vals and max(vals) == peak, f"counter maximum = summary's peak of the cut trace {peak}")


def main():
    tmp = tempfile.mkdtemp(prefix="ht-export-mc.")
    try:
        if mode == "massif":
            mode_massif(tmp, True)
        elif mode == "massif_nostacks":
            mode_massif(tmp, False)
        elif mode == "massif_truncated":
            mode_massif_truncated(tmp)
        elif mode == "chrome":
            mode_chrome(tmp)
        elif mode == "chrome_truncated":
            mode_chrome_truncated(tmp)
        elif mode == "massif_forks":
            mode_massif(tmp, True, forks=True)
        elif mode == "chrome_forks":
            mode_chrome(tmp, forks=True)
        else:
            die(f"unknown mode {mode}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{mode}: {'FAILED' if pycheck.failures else 'passed'}" + (f" ({pycheck.failures} failures)" if pycheck.failures else ""))
    sys.exit(1 if pycheck.failures else 0)


main()
