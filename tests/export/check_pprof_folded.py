#!/usr/bin/env python3
"""check_pprof_folded.py MODE HEAPTRACE SRCDIR EXP_PF_PROG

End-to-end tests of `heaptrace export --format pprof|folded` (issue 6).
exp_pf_prog allocates through known call chains with known counts and sizes
(see its header; the expected source lines are its `/* LINE: name */`
markers, read here).  Its traces are recorded with --stacks fp and exported;
the exports are read by their real consumers and compared with
`heaptrace summary` and with the program's own numbers.  MODE:

  pprof      go tool pprof (-top for each of the four sample types, -raw,
             -tags, -comments) reads the profile; totals equal the summary's;
             every sample is its chain (functions, files, lines, the inlined
             frame as a second Line of one Location) with its numbers; a pid
             label on every sample of a two-process trace and on none of a
             one-process trace; a trace without stacks is one
             "[no call stack]" sample; the same trace gives the same bytes
  folded     every --value: lines "outer;...;inner VALUE", sorted, unique,
             summing to the total; each chain's line, outermost first, with
             its value; a root frame "exp_pf_prog (PID)" only when the trace
             has two processes; --pid; flamegraph.pl or inferno-flamegraph
             turns it into an SVG when one is installed
  bad_input  unknown --format (exit 2), missing or foreign input, unwritable
             -o, a full file system (exit 1, one line, no file left), a trace
             cut in half (what is intact is exported, exit 1, one line naming
             the damage)

go tool pprof comes with Debian's golang-go (scripts/install-deps.sh); without
it the test fails, it is not skipped.  Prints one ok/FAIL line per assertion
and exits 1 if any failed.
"""
import json
import datetime, gzip, os, re, shutil, subprocess, sys, tempfile

mode, HT, SRC, PROG = sys.argv[1:5]
PROG_SRC = os.path.join(SRC, "exp_pf_prog.c")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pycheck  # noqa: E402
from pycheck import check, die  # noqa: E402,F401


# ---- what the program does (keep in step with exp_pf_prog.c) ----

LINES = {}
with open(PROG_SRC) as fh:
    for n, text in enumerate(fh, 1):
        for m in re.finditer(r"/\* LINE: (\w+) \*/", text):
            LINES[m.group(1)] = n

# chain: (function, LINE marker, inlined), innermost first, down to main
CHAINS = {
    "alpha": [("leaf_alpha", "leaf_alpha", False), ("stage_alpha", "stage_alpha", False), ("main", "main_alpha", False)],
    "beta": [("leaf_beta", "leaf_beta", False), ("mid_beta", "mid_beta", False), ("stage_beta", "stage_beta", False),
             ("main", "main_beta", False)],
    "gamma": [("inl_gamma", "inl_gamma", True), ("leaf_gamma", "leaf_gamma", False), ("main", "main_gamma", False)],
    "delta": [("leaf_delta", "leaf_delta", False), ("child_work", "child_work", False), ("main", "main_child", False)],
}
LEAF = {c[0][0]: name for name, c in CHAINS.items()}
# per chain: allocations, bytes, live blocks and bytes at the end, temporary allocations, bytes live at the peak
KNOWN = {
    "alpha": dict(allocs=100, bytes=100000, live_blocks=0, live_bytes=0, temporary=100, peak=0),
    "beta": dict(allocs=50, bytes=16650, live_blocks=7, live_bytes=2331, temporary=0, peak=2331),
    "gamma": dict(allocs=20, bytes=81920, live_blocks=1, live_bytes=4096, temporary=0, peak=81920),
    "delta": dict(allocs=10, bytes=20000, live_blocks=3, live_bytes=6000, temporary=7, peak=6000),
}
ONE = ("alpha", "beta", "gamma")          # chains of `exp_pf_prog`
TWO = ONE + ("delta",)                    # and of `exp_pf_prog fork`
PLUMBING = re.compile(r"^(malloc|calloc|realloc|free|operator new.*|_Znw\w*|\w*_traced)$|libheaptrace|libc\.so.*\+0x")


def known_total(chains, key):
    return sum(KNOWN[c][key] for c in chains)


# ---- running ----

TMP = tempfile.mkdtemp(prefix="ht_export_pf_")


def run(args, binary=False, timeout=240, env=None):
    return subprocess.run(args, capture_output=True, text=not binary, timeout=timeout, env=env)


def record(name, opts, args):
    trace = os.path.join(TMP, name + ".htrace")
    r = run([HT, "record", "-q", "-o", trace] + opts + ["--", PROG] + args)
    if r.returncode != 0:
        die(f"record {' '.join(opts + args)}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return trace


def summary(trace):
    r = run([HT, "summary", trace])
    if r.returncode != 0:
        die(f"summary {trace}: exit {r.returncode}: {r.stderr.strip()}")
    s = r.stdout

    def num(rx):
        m = re.search(rx, s, re.M)
        if not m:
            die(f"summary of {trace} has no line matching {rx!r}:\n{s}")
        return m.groups()

    out = {"allocs": int(num(r"^\s+allocations\s+(\d+)")[0]),
           "bytes": int(num(r"^\s+bytes allocated\s+(\d+)")[0]),
           "peak": int(num(r"^\s+peak live\s+(\d+) bytes")[0])}
    lb, lby = num(r"^\s+live at exit\s+(\d+) blocks, (\d+) bytes")
    out["live_blocks"], out["live_bytes"] = int(lb), int(lby)
    d, unit = num(r"^\s+duration\s+([\d.]+) (ns|us|ms|s)$")
    out["duration_ns"] = float(d) * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]
    # the exports must agree with the report too: the report says the same
    rj = run([HT, "report", "--json", trace])
    if rj.returncode != 0:
        die(f"report --json {trace}: exit {rj.returncode}: {rj.stderr.strip()}")
    t = json.loads(rj.stdout)
    check((t["totals"]["allocations"], t["totals"]["bytes_allocated"], t["peak"]["bytes"], t["leaks"]["blocks"],
           t["leaks"]["bytes"]) == (out["allocs"], out["bytes"], out["peak"], out["live_blocks"], out["live_bytes"]),
          f"report --json of {os.path.basename(trace)} agrees with summary (allocations, bytes, peak, leaks)")
    return out


def export(trace, fmt, extra=(), binary=False):
    return run([HT, "export", trace, "--format", fmt] + list(extra), binary=binary)


def stderr_lines(r):
    e = r.stderr.decode(errors="replace") if isinstance(r.stderr, bytes) else r.stderr
    return [l for l in e.splitlines() if l.strip()]


# ---- frames as heaptrace renders them ----

FRAME = re.compile(r"^(?P<fn>\S.*?) \((?P<file>[^()]+):(?P<line>\d+)\)(?P<inl> \[inlined\])?$")


def frame_is(text, fn, marker, inlined):
    m = FRAME.match(text)
    return bool(m) and m["fn"] == fn and os.path.basename(m["file"]) == "exp_pf_prog.c" and \
        int(m["line"]) == LINES[marker] and bool(m["inl"]) == inlined


def want_text(chain):
    return ";".join(f"{fn} (exp_pf_prog.c:{LINES[mk]}){' [inlined]' if inl else ''}" for fn, mk, inl in reversed(chain))


# ---- go tool pprof ----

def go_tool():
    g = shutil.which("go") or ("/usr/bin/go" if os.access("/usr/bin/go", os.X_OK) else None)
    if not g:
        die("go tool pprof is needed to read the pprof export, and there is no go (/usr/bin/go missing): "
            "install Debian's golang-go (scripts/install-deps.sh lists it)")
    home = os.path.join(TMP, "gohome")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, GOCACHE=os.path.join(home, "cache"), GOPATH=os.path.join(home, "gopath"),
               PPROF_TMPDIR=os.path.join(home, "pprof"), PPROF_BINARY_PATH=home, GOFLAGS="", GOTOOLCHAIN="local",
               GOPROXY="off", GOTELEMETRY="off")
    r = run([g, "version"], env=env)
    if r.returncode != 0:
        die(f"'{g} version' failed: {r.stderr.strip()}")
    print(f"using {r.stdout.strip()}")
    return g, env


GO = GOENV = None


def pprof(args, path):
    need_go()
    r = run([GO, "tool", "pprof", "-symbolize=none"] + args + [path], env=GOENV)
    if r.returncode != 0:
        check(False, f"go tool pprof {' '.join(args)} {os.path.basename(path)}: exit {r.returncode}: "
              f"{r.stderr.strip()[-500:]}")
        return None
    return r.stdout


def top_rows(out):
    """-top's table: function -> (flat, cum), the units stripped."""
    rows = {}
    for l in out.splitlines():
        m = re.match(r"^\s*(-?[\d.]+)(\w*)\s+[\d.]+%\s+[\d.]+%\s+(-?[\d.]+)(\w*)\s+[\d.]+%\s+(.+)$", l)
        if m:
            rows[m.group(5)] = (float(m.group(1)), float(m.group(3)))
    return rows


def top_total(out):
    m = re.search(r"of (-?[\d.]+)(\w*) total", out or "")
    return float(m.group(1)) if m else None


def parse_raw(out):
    """-raw: header, sample types, samples [(values, location ids, labels)], locations {id: [(fn, file, line)]},
    their addresses {id: address}."""
    types, samples, locs, addrs, sec, last = [], [], {}, {}, None, None
    head = {}
    for l in out.splitlines():
        if l in ("Samples:", "Locations", "Mappings"):
            sec = l
            continue
        if sec is None:
            k, _, v = l.partition(": ")
            head.setdefault(k, []).append(v)
        elif sec == "Samples:":
            if not types:
                types = l.split()
                continue
            m = re.match(r"^\s*(-?\d+(?:\s+-?\d+)*):((?:\s+\d+)*)\s*$", l)
            if m:
                samples.append(([int(v) for v in m.group(1).split()], [int(v) for v in m.group(2).split()], {}))
                continue
            m = re.match(r"^\s+(\w+):\[(.*)\]\s*$", l)
            if m and samples:
                samples[-1][2][m.group(1)] = m.group(2)
        elif sec == "Locations":
            m = re.match(r"^\s*(\d+): 0x([0-9a-f]+) (?:M=\d+ )?(.*?) (\S*):(\d+) s=\d+$", l)
            if m:
                last = int(m.group(1))
                addrs[last] = int(m.group(2), 16)
                locs[last] = [(m.group(3), m.group(4), int(m.group(5)))]
                continue
            m = re.match(r"^\s+(\S.*?) (\S*):(\d+) s=\d+$", l)
            if m and last is not None:
                locs[last].append((m.group(1), m.group(2), int(m.group(3))))
    return head, types, samples, locs, addrs


def sample_frames(s, locs):
    """The sample's lines, innermost first: (fn, file, line, inlined)."""
    out = []
    for lid in s[1]:
        lines = locs.get(lid, [])
        for i, (fn, f, ln) in enumerate(lines):
            out.append((fn, f, ln, i < len(lines) - 1))
    return out


def chain_of(frames):
    """Which chain's stack these frames are (by the leaf), and whether they are exactly it (then libc below main)."""
    if not frames or frames[0][0] not in LEAF:
        return None, False
    name = LEAF[frames[0][0]]
    ch = CHAINS[name]
    good = len(frames) >= len(ch) and all(
        fr[0] == fn and os.path.basename(fr[1]) == "exp_pf_prog.c" and fr[2] == LINES[mk] and fr[3] == inl
        for fr, (fn, mk, inl) in zip(frames, ch))
    good = good and all(fr[0] not in LEAF and fr[0] != "main" for fr in frames[len(ch):])
    return name, good


def check_pprof_trace(label, path, sm, chains, multi):
    """A pprof export of a trace of `chains` whose summary is sm."""
    with open(path, "rb") as fh:
        data = fh.read()
    check(data[:2] == b"\x1f\x8b", f"{label}: gzip-compressed (magic 1f 8b)")
    try:
        raw_pb = gzip.decompress(data)
        check(len(raw_pb) > 0 and raw_pb[0] == 0x0a, f"{label}: gunzips to a protobuf starting with field 1 "
              f"(sample_type), {len(raw_pb)} bytes")
    except OSError as e:
        check(False, f"{label}: gunzips ({e})")

    idx = {"alloc_objects": "allocs", "alloc_space": "bytes", "inuse_objects": "live_blocks",
           "inuse_space": "live_bytes"}
    for si, key in idx.items():
        unit = ["-unit=B"] if si.endswith("space") else []
        out = pprof(["-top", "-nodecount=100", "-nodefraction=0", "-edgefraction=0", f"-sample_index={si}"] + unit,
                    path)
        if out is None:
            continue
        check(f"Type: {si}" in out, f"{label} -top -sample_index={si}: 'Type: {si}'")
        tot = top_total(out)
        check(tot == sm[key] == known_total(chains, key),
              f"{label} -top {si}: 'of X total' {tot} = summary's {sm[key]} = the program's "
              f"{known_total(chains, key)}")
        rows = top_rows(out)
        for c in chains:
            leaf = CHAINS[c][0][0] + (" (inline)" if CHAINS[c][0][2] else "")
            want = KNOWN[c][key]
            got = rows.get(leaf, (0.0, 0.0))[0]
            check(got == want, f"{label} -top {si}: flat of {leaf} is {want} (got {got})")
            if want:
                for fn, _, inl in CHAINS[c][1:]:
                    name = fn + (" (inline)" if inl else "")
                    check(name in rows and rows[name][1] >= want,
                          f"{label} -top {si}: {name} listed, cum >= {want} ({rows.get(name)})")
            else:
                check(leaf not in rows, f"{label} -top {si}: {leaf} not listed (its value is 0)")
        bad = [f for f in rows if PLUMBING.search(f)]
        check(not bad, f"{label} -top {si}: no allocator plumbing listed ({bad})")

    out = pprof(["-top"], path)
    check(out is not None and "Type: alloc_space" in out, f"{label}: the default sample type is alloc_space")
    check(out is not None and f"File: {os.path.basename(PROG)}\n" in out,
          f"{label}: pprof takes the program's mapping for the main binary ('File: {os.path.basename(PROG)}')")
    if out:
        m = re.search(r"Duration: ([\d.]+)(ns|us|µs|ms|s)\b", out)
        d = float(m.group(1)) * {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}[m.group(2)] if m else None
        check(d is not None and abs(d - sm["duration_ns"]) <= 0.06 * sm["duration_ns"] + 2e5,
              f"{label}: pprof's duration {d} ns ~ the summary's {sm['duration_ns']:.0f} ns")
    out = pprof(["-comments"], path)
    check(out is not None and f"heaptrace export of {path[:-len('.pb.gz')]}.htrace" in out,
          f"{label}: -comments names the trace ({(out or '').strip()[:200]!r})")

    out = pprof(["-raw"], path)
    if out is None:
        return None
    head, types, samples, locs, addrs = parse_raw(out)
    check(types == ["alloc_objects/count", "alloc_space/bytes[dflt]", "inuse_objects/count", "inuse_space/bytes"],
          f"{label} -raw: sample types in order, alloc_space the default ({types})")
    check(head.get("PeriodType") == ["space bytes"] and head.get("Period") == ["1"],
          f"{label} -raw: period type space/bytes, period 1 ({head.get('PeriodType')}, {head.get('Period')})")
    t = head.get("Time", [""])[0]
    try:
        when = datetime.datetime.strptime(t[:19], "%Y-%m-%d %H:%M:%S")
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        age = abs((now - when).total_seconds())
    except ValueError:
        age = None
    check(age is not None and age < 600 and t.endswith("UTC"), f"{label} -raw: time_nanos is the recording's start "
          f"({t!r}, {age} s ago)")
    sums = [sum(s[0][i] for s in samples) for i in range(4)]
    check(sums == [sm["allocs"], sm["bytes"], sm["live_blocks"], sm["live_bytes"]],
          f"{label} -raw: the samples sum to the summary's allocations, bytes, live blocks, live bytes ({sums})")
    seen = {}
    for s in samples:
        fr = sample_frames(s, locs)
        name, good = chain_of(fr)
        shown = " <- ".join(f"{f[0]}@{os.path.basename(f[1])}:{f[2]}{'[inl]' if f[3] else ''}" for f in fr)
        check(good, f"{label} -raw: sample {s[0]} is chain {name}, innermost first, with its lines: {shown}")
        if name:
            k = KNOWN[name]
            check(s[0] == [k["allocs"], k["bytes"], k["live_blocks"], k["live_bytes"]],
                  f"{label} -raw: chain {name}'s values {s[0]}")
            seen.setdefault(name, []).append(s)
        check(("pid" in s[2]) == multi, f"{label} -raw: sample of {name} has {'a' if multi else 'no'} pid label "
              f"({s[2]})")
    check(sorted(seen) == sorted(chains) and all(len(v) == 1 for v in seen.values()),
          f"{label} -raw: one sample per chain ({ {k: len(v) for k, v in seen.items()} })")
    inl = [l for l in locs.values() if [x[0] for x in l] == ["inl_gamma", "leaf_gamma"]]
    check(len(inl) == 1 and inl[0][0][2] == LINES["inl_gamma"] and inl[0][1][2] == LINES["leaf_gamma"],
          f"{label} -raw: the inlined call is one Location with Lines inl_gamma:{LINES['inl_gamma']} then "
          f"leaf_gamma:{LINES['leaf_gamma']} ({inl})")
    mains = sorted(l[0][2] for l in locs.values() if l[0][0] == "main")
    want_mains = sorted({LINES[CHAINS[c][-1][1]] for c in chains})
    check(mains == want_mains, f"{label} -raw: one Location per call site in main, lines {want_mains} ({mains})")
    used = {lid for s in samples for lid in s[1]}
    check(used == set(locs), f"{label} -raw: every Location is used by a sample ({len(used)} of {len(locs)})")
    if not multi:  # (two processes have a Location each for the same address and function)
        keys = [(addrs[i], tuple(l)) for i, l in locs.items()]
        check(len(keys) == len(set(keys)), f"{label} -raw: no two Locations of the same address and lines")
        below = [l for l in locs.values() if l[0][0] not in LEAF and l[0][0] not in
                 {fn for c in CHAINS.values() for fn, _, _ in c}]
        check(0 < len(below) <= 4, f"{label} -raw: the few frames below main (libc's) are one Location each, "
              f"shared by the samples ({below})")
    return samples


def need_go():
    global GO, GOENV
    if GO is None:
        GO, GOENV = go_tool()


def mode_pprof():
    need_go()
    one = record("one", ["--stacks", "fp"], [])
    sm = summary(one)
    pb = os.path.join(TMP, "one.pb.gz")
    r = export(one, "pprof", ["-o", pb])
    check(r.returncode == 0 and not r.stderr.strip(), f"export one.htrace -f pprof: exit 0, nothing on stderr "
          f"({r.returncode}, {r.stderr.strip()!r})")
    check_pprof_trace("one process", pb, sm, ONE, False)
    r = export(one, "pprof", binary=True)
    with open(pb, "rb") as fh:
        check(r.returncode == 0 and r.stdout == fh.read(), "pprof to standard output: the same bytes as -o "
              "(the same trace gives the same file)")

    two = record("two", ["--stacks", "fp", "--follow-forks"], ["fork"])
    sm2 = summary(two)
    pb2 = os.path.join(TMP, "two.pb.gz")
    r = export(two, "pprof", ["-o", pb2])
    check(r.returncode == 0, f"export two.htrace -f pprof: exit 0 ({r.stderr.strip()!r})")
    check_pprof_trace("two processes", pb2, sm2, TWO, True)
    by_pid = {}
    _, _, samples, locs, _ = parse_raw(pprof(["-raw"], pb2) or "")
    for s in samples:
        by_pid.setdefault(s[2].get("pid"), set()).add(chain_of(sample_frames(s, locs))[0])
    check(len(by_pid) == 2 and sorted(map(sorted, by_pid.values())) == [["alpha", "beta", "gamma"], ["delta"]],
          f"two processes: the child's pid label on its chain only, the parent's on the others ({by_pid})")
    out = pprof(["-tags"], pb2)
    check(out is not None and all(f": {p}" in out for p in by_pid if p), f"two processes: -tags lists both pids")

    ns = record("nostacks", [], [])
    smn = summary(ns)
    pbn = os.path.join(TMP, "nostacks.pb.gz")
    r = export(ns, "pprof", ["-o", pbn])
    check(r.returncode == 0, f"export of a trace without stacks: exit 0 ({r.stderr.strip()!r})")
    out = pprof(["-top", "-unit=B"], pbn)
    rows = top_rows(out or "")
    check(top_total(out) == smn["bytes"] and rows.get("[no call stack]", (0,))[0] == smn["bytes"] and len(rows) == 1,
          f"no stacks: one '[no call stack]' node holding all {smn['bytes']} bytes ({rows})")


# ---- folded ----

FOLDED_LINE = re.compile(r"^[^ ].* [0-9]+$")
VALUES = {"alloc": "bytes", "count": "allocs", "leaked": "live_bytes", "peak": "peak", "temporary": "temporary"}


def folded(label, trace, extra=()):
    r = export(trace, "folded", list(extra))
    check(r.returncode == 0 and not r.stderr.strip(), f"{label}: exit 0, nothing on stderr ({r.returncode}, "
          f"{r.stderr.strip()!r})")
    return r.stdout


def check_folded_format(label, out):
    lines = out.splitlines()
    check(out == "" or out.endswith("\n"), f"{label}: ends with a newline")
    bad = [l for l in lines if not FOLDED_LINE.match(l)]
    check(not bad, f"{label}: every line is 'stack VALUE' ({bad[:3]})")
    stacks = [l.rsplit(" ", 1)[0] for l in lines]
    check(stacks == sorted(stacks) and len(set(stacks)) == len(stacks), f"{label}: lines sorted, each stack once")
    zero = [l for l in lines if l.endswith(" 0")]
    check(not zero, f"{label}: no zero values ({zero[:3]})")
    return {l.rsplit(" ", 1)[0]: int(l.rsplit(" ", 1)[1]) for l in lines if FOLDED_LINE.match(l)}


def line_of(stacks, chain):
    """The stacks whose last frames are chain's (outermost first, so ending at the leaf)."""
    n = len(CHAINS[chain])
    got = []
    for st, v in stacks.items():
        fr = st.split(";")
        if len(fr) < n:
            continue
        if all(frame_is(t, fn, mk, inl) for t, (fn, mk, inl) in zip(reversed(fr), CHAINS[chain])):
            got.append((st, v))
    return got


def mode_folded():
    one = record("one", ["--stacks", "fp"], [])
    sm = summary(one)
    sm["temporary"] = known_total(ONE, "temporary")  # the summary has no temporary count
    for value, key in [(None, "bytes")] + list(VALUES.items()):
        label = f"folded --value {value}" if value else "folded (default: alloc)"
        out = folded(label, one, ["--value", value] if value else [])
        st = check_folded_format(label, out)
        total = sum(st.values())
        check(total == sm[key] == known_total(ONE, key), f"{label}: values sum to {sm[key]} (summary) = "
              f"{known_total(ONE, key)} (the program) (got {total})")
        for c in ONE:
            want = KNOWN[c][key]
            got = line_of(st, c)
            if want:
                check(len(got) == 1 and got[0][1] == want,
                      f"{label}: chain {c} is one line '...;{want_text(CHAINS[c])} {want}' ({got})")
            else:
                check(not got, f"{label}: no line for chain {c} (its value is 0) ({got})")
        for s in st:
            leaf = s.split(";")[-1]
            check(FRAME.match(leaf) and FRAME.match(leaf)["fn"] in LEAF,
                  f"{label}: the innermost frame is the allocating function, not the allocator ({leaf})")
            check(not s.startswith("exp_pf_prog ("), f"{label}: one process, so no process root frame ({s[:60]})")
        if value == "alloc":
            with open(os.path.join(TMP, "one.folded"), "w") as fh:
                fh.write(out)
    o = os.path.join(TMP, "one-o.folded")
    r = run([HT, "export", one, "-f", "folded", "-o", o])
    with open(os.path.join(TMP, "one.folded")) as a, open(o) as b:
        check(r.returncode == 0 and a.read() == b.read(), "folded -o FILE: the same text as standard output")

    two = record("two", ["--stacks", "fp", "--follow-forks"], ["fork"])
    sm2 = summary(two)
    sm2["temporary"] = known_total(TWO, "temporary")
    for value in ("alloc", "count", "leaked", "peak", "temporary"):
        key = VALUES[value]
        label = f"two processes, folded --value {value}"
        st = check_folded_format(label, folded(label, two, ["--value", value]))
        check(sum(st.values()) == sm2[key], f"{label}: values sum to the summary's {sm2[key]} "
              f"(got {sum(st.values())})")
        roots = {}
        for s in st:
            m = re.match(r"^exp_pf_prog \((\d+)\);", s)
            check(m is not None, f"{label}: the root frame is the process, 'exp_pf_prog (PID)' ({s[:70]})")
            if m:
                roots.setdefault(m.group(1), set()).add(LEAF.get(FRAME.match(s.split(";")[-1])["fn"]))
        if value in ("alloc", "count"):
            check(len(roots) == 2 and sorted(map(sorted, roots.values())) == [["alpha", "beta", "gamma"], ["delta"]],
                  f"{label}: two processes, the child's root over its chain only ({roots})")
            for c in TWO:
                got = line_of(st, c)
                check(len(got) == 1 and got[0][1] == KNOWN[c][key], f"{label}: chain {c} = {KNOWN[c][key]} ({got})")
        if value == "alloc":
            child = [p for p, v in roots.items() if v == {"delta"}]
            if check(len(child) == 1, f"{label}: the child's pid ({roots})"):
                st1 = check_folded_format("folded --pid CHILD", folded("folded --pid CHILD", two, ["--pid", child[0]]))
                got = line_of(st1, "delta")
                check(len(st1) == 1 and len(got) == 1 and got[0][1] == KNOWN["delta"]["bytes"] and
                      not got[0][0].startswith("exp_pf_prog ("),
                      f"folded --pid CHILD: one process, so no root frame: just its chain ({st1})")

    ns = record("nostacks", [], [])
    smn = summary(ns)
    out = folded("no stacks", ns)
    check(out == f"[no call stack] {smn['bytes']}\n", f"no stacks: one line '[no call stack] {smn['bytes']}' "
          f"({out!r})")

    fg = shutil.which("flamegraph.pl") or shutil.which("flamegraph") or shutil.which("inferno-flamegraph")
    if not fg:
        print("skip: neither flamegraph.pl nor inferno-flamegraph is installed (Debian 12 packages neither)")
    else:
        with open(os.path.join(TMP, "one.folded")) as fh:
            r = subprocess.run([fg], stdin=fh, capture_output=True, text=True, timeout=120)
        check(r.returncode == 0 and "<svg" in r.stdout and "leaf_alpha" in r.stdout and "leaf_beta" in r.stdout,
              f"{os.path.basename(fg)} makes an SVG of the folded stacks, naming the leaves "
              f"(exit {r.returncode}, {len(r.stdout)} bytes, {r.stderr.strip()[:200]!r})")


# ---- bad input ----

def expect_fail(label, args, code, want=None, no_file=None):
    r = run([HT, "export"] + args, binary=True)
    lines = stderr_lines(r)
    check(r.returncode == code, f"{label}: exit {code} (got {r.returncode})")
    check(len(lines) == 1, f"{label}: one line on stderr ({lines})")
    if want:
        check(bool(lines) and re.search(want, lines[0]) is not None, f"{label}: the line says {want!r}")
    if no_file:
        check(not os.path.exists(no_file), f"{label}: {no_file} not left behind")
    return r


def mode_bad_input():
    need_go()
    one = record("one", ["--stacks", "fp"], [])
    out = os.path.join(TMP, "x.out")
    r = expect_fail("unknown --format", [one, "--format", "bogus", "-o", out], 2, r"bogus", out)
    check(not r.stdout, "unknown --format: nothing on standard output")
    expect_fail("no --format", [one], 2)
    missing = os.path.join(TMP, "missing.htrace")
    for fmt in ("pprof", "folded"):
        expect_fail(f"{fmt}: missing file", [missing, "-f", fmt, "-o", out], 1, re.escape(missing), out)
        expect_fail(f"{fmt}: not a trace", [PROG_SRC, "-f", fmt, "-o", out], 1, r"not a heaptrace trace", out)
        bad = "/nonexistent/dir/x"
        expect_fail(f"{fmt}: unwritable -o {bad}", [one, "-f", fmt, "-o", bad], 1, re.escape(bad), bad)

    # a full file system: the write fails, one line, no half-written file left (needs root for the mount,
    # as tests/cli/full_disk.sh)
    if os.geteuid() != 0:
        print("skip: full file system (mounting a tmpfs needs root)")
    else:
        mnt = os.path.join(TMP, "full")
        os.mkdir(mnt)
        r = run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt])
        if check(r.returncode == 0, f"mount a 64 KiB tmpfs ({r.stderr.strip()})"):
            try:
                with open(os.path.join(mnt, "filler"), "wb") as fh:
                    try:
                        while True:
                            fh.write(b"x" * 4096)
                            fh.flush()
                    except OSError:
                        pass
            except OSError:
                pass
            try:
                for fmt in ("pprof", "folded"):
                    dst = os.path.join(mnt, "x." + fmt)
                    expect_fail(f"{fmt}: -o onto a full file system", [one, "-f", fmt, "-o", dst], 1,
                                r"No space left on device", dst)
            finally:
                run(["umount", mnt])

    # many chunks (4K buffers flushed every ms), then the second half cut off
    many = record("many", ["--stacks", "fp", "-b", "4K", "-f", "1"], ["many", "300"])
    full = sum(check_folded_format("whole trace", folded("whole trace", many)).values())
    check(full == 300 * KNOWN["alpha"]["bytes"], f"whole trace: {300 * KNOWN['alpha']['bytes']} bytes ({full})")
    with open(many, "rb") as fh:
        data = fh.read()
    check(data.count(b"HTCK") >= 4, f"the trace has several chunks ({data.count(b'HTCK')})")
    half = os.path.join(TMP, "half.htrace")
    with open(half, "wb") as fh:
        fh.write(data[:len(data) // 2])
    r = run([HT, "export", half, "-f", "folded"])
    lines = stderr_lines(r)
    check(r.returncode == 1, f"truncated trace, folded: exit 1 (got {r.returncode})")
    check(len(lines) == 1 and "truncated" in lines[0] and "half.htrace" in lines[0],
          f"truncated trace, folded: one line naming the damage ({lines})")
    st = check_folded_format("truncated trace, folded", r.stdout)
    got = sum(st.values())
    check(0 < got < full, f"truncated trace, folded: what is intact is exported (0 < {got} < {full})")
    pb = os.path.join(TMP, "half.pb.gz")
    r = run([HT, "export", half, "-f", "pprof", "-o", pb])
    lines = stderr_lines(r)
    check(r.returncode == 1 and len(lines) == 1 and "truncated" in lines[0],
          f"truncated trace, pprof: exit 1, one line naming the damage ({r.returncode}, {lines})")
    out = pprof(["-top", "-unit=B", "-sample_index=alloc_space"], pb) if os.path.exists(pb) else None
    check(top_total(out) == got, f"truncated trace, pprof: the file is kept and pprof reads it, "
          f"total {top_total(out)} = the folded export's {got}")


try:
    {"pprof": mode_pprof, "folded": mode_folded, "bad_input": mode_bad_input}[mode]()
finally:
    if pycheck.failures == 0:
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        print(f"kept {TMP}")
print(f"{'FAIL' if pycheck.failures else 'PASS'}: {mode}: {pycheck.failures} failure(s)")
sys.exit(1 if pycheck.failures else 0)
