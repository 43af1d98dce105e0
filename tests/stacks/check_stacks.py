#!/usr/bin/env python3
"""check_stacks.py MODE HEAPTRACE SRCDIR STK_CHAINS STK_PLUGIN STK_DEEP STK_BADFP STK_SIZELOOP STK_UNWMIX

End-to-end tests of call stacks (`heaptrace record --stacks fp|dwarf`, then
`heaptrace dump`).  The test programs allocate blocks of marker sizes through
known call chains; the expected source lines are the `/* LINE: name */`
markers of their sources (read here, never hard-coded).  MODE:

  chains       every marker size's stack is exactly its chain (names, files,
               lines, the inlined frame), fp and dwarf; the dlclose'd
               library's frames still symbolize
  depth        recursion deeper than --depth: exactly --depth frames, the
               innermost ones; a shallow one reaches main
  badfp        a corrupted frame-pointer chain: no crash, same output, every
               event, stacks cut short (fp); no crash (dwarf)
  stripped     a stripped copy: --debug-dir (build id, debuglink), --sysroot,
               .symtab only, nothing (never a wrong name), a mismatching
               debug file (ignored)
  free_events  --stack-events: which events carry a stack; --stacks none
  size         100000 malloc/free pairs from 3 sites: few STACK records, and
               fp stacks add at most 1 byte per allocation to the trace
  unwinders    dwarf stacks from the runtime's own unwinder are libunwind's,
               event for event (HEAPTRACE_UNWIND=libunwind|own), on a program
               without frame pointers (alloca, qsort, recursion, threads,
               signal handlers, an alternate signal stack), sqlite3 and
               python3; the frames it leaves to libunwind (signal frames)
               are walked by libunwind

Prints one ok/FAIL line per assertion and exits 1 if any failed.
"""
import csv, os, re, shutil, subprocess, sys, tempfile

mode, HT, SRC, CHAINS, PLUGIN, DEEP, BADFP, SIZELOOP, UNWMIX = sys.argv[1:10]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(SRC)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pycheck  # noqa: E402
from pycheck import check, die  # noqa: E402,F401


# ---- sources: LINE markers ----

MARK = re.compile(r"/\* LINE: (\w+) \*/")
LINES = {}  # (basename, marker) -> line
for f in os.listdir(SRC):
    if f.endswith((".c", ".cpp")):
        with open(os.path.join(SRC, f)) as fh:
            for n, text in enumerate(fh, 1):
                for m in MARK.finditer(text):
                    LINES[(f, m.group(1))] = n
OUR_FILES = {f for f, _ in LINES}


# ---- running ----

def run_plain(args):
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        die(f"{args[0]} failed without heaptrace: exit {r.returncode}: {r.stderr}")
    return r


def record(trace, opts, args, expect_out=None):
    r = subprocess.run([HT, "record", "-q", "-o", trace] + opts + ["--"] + args,
                       capture_output=True, text=True, timeout=240)
    what = " ".join(opts) or "no options"
    check(r.returncode == 0, f"record {what} {os.path.basename(args[0])}: exit status 0 (got {r.returncode}"
          f"{', stderr: ' + r.stderr.strip()[-300:] if r.returncode else ''})")
    if expect_out is not None:
        check(r.stdout == expect_out,
              f"record {what} {os.path.basename(args[0])}: output unchanged ({r.stdout!r} vs {expect_out!r})")
    return r


def dump(trace, extra=(), fmt="csv"):
    r = subprocess.run([HT, "dump", trace, "--format", fmt] + list(extra), capture_output=True, text=True,
                       timeout=240)
    if r.returncode != 0:
        die(f"dump {trace} {' '.join(extra)} failed ({r.returncode}): {r.stderr}")
    if fmt != "csv":
        return r.stdout
    rows = list(csv.DictReader(r.stdout.splitlines()))
    if rows and "stack" not in rows[0]:
        die("dump --format csv has no stack column")
    return rows


def heap_rows(rows, kinds=("alloc", "free", "realloc")):
    return [r for r in rows if r["event"] in kinds]


def size_of(r):
    return int(r["size"] or r["new_size"] or 0)


# ---- frames ----

FR_LINE = re.compile(r"^(?P<fn>\S.*?) \((?P<file>.+):(?P<line>\d+)\)(?P<inl> \[inlined\])?$")
FR_MOD = re.compile(r"^(?P<fn>\S.*?) \((?P<mod>[^():]+)\)(?P<inl> \[inlined\])?$")
FR_RAW = re.compile(r"^(?P<mod>[^ ()]+)\+0x(?P<off>[0-9a-f]+)$")
FR_ADDR = re.compile(r"^0x[0-9a-f]+$")


class Frame:
    def __init__(self, text):
        self.text = text
        self.fn = self.file = self.mod = None
        self.line = 0
        self.inlined = False
        self.off = None
        m = FR_LINE.match(text)
        if m:
            self.fn, self.file, self.line, self.inlined = m["fn"], m["file"], int(m["line"]), bool(m["inl"])
            return
        m = FR_MOD.match(text)
        if m:
            self.fn, self.mod, self.inlined = m["fn"], m["mod"], bool(m["inl"])
            return
        m = FR_RAW.match(text)
        if m:
            self.mod, self.off = m["mod"], int(m["off"], 16)
            return
        self.raw = bool(FR_ADDR.match(text))
        if not self.raw:
            check(False, f"frame text {text!r} has none of the documented forms")

    def __repr__(self):
        return self.text


def frames(row):
    s = row["stack"]
    return [Frame(t) for t in s.split(";")] if s else []


PLUMB_FN = re.compile(r"^(malloc|calloc|realloc|reallocarray|free|memalign|posix_memalign|aligned_alloc|valloc|"
                      r"pvalloc|_Znw\w*|_Zna\w*|_Zdl\w*|_Zda\w*|operator (new|delete).*|\w*_traced)$")
PLUMB_MOD = ("libheaptrace", "libc.so", "libstdc++", "libgcc_s")


def plumbing(f):
    if f.fn and PLUMB_FN.match(f.fn):
        return True
    if f.mod and f.mod.startswith(PLUMB_MOD):
        return True
    if f.file and os.path.isabs(f.file) and f.file.startswith(os.path.join(REPO, "src") + os.sep):
        return True
    return False


def site_frames(row):
    """The frames after the allocator's at the top."""
    fr = frames(row)
    i = 0
    while i < len(fr) and plumbing(fr[i]):
        i += 1
    return fr[i:]


def same_file(got, base):
    if got is None:
        return False
    if os.path.isabs(got):
        return os.path.realpath(got) == os.path.realpath(os.path.join(SRC, base))
    return os.path.basename(got) == base


def frame_ok(f, fn, base, marker, inlined=False, lines=True):
    """f is function fn; with lines, at file base, line of marker."""
    if f.fn != fn or f.inlined != inlined:
        return False
    if not lines:
        return True
    return same_file(f.file, base) and f.line == LINES[(base, marker)]


def chain_match(row, chain, lines=True, max_tail=4):
    """chain: [(fn, file basename, marker, inlined)], innermost first,
    outermost last (main or a thread's function): the frames after the
    plumbing are exactly these, followed only by at most max_tail frames
    outside our code.  Returns (matches, what was expected)."""
    fr = site_frames(row)
    if not lines:  # without DWARF there are no inlined frames
        chain = [c for c in chain if not c[3]]
    want = " ; ".join(f"{fn}{' [inlined]' if inl else ''} @{b}:{LINES[(b, mk)]}" for fn, b, mk, inl in chain)
    good = len(fr) >= len(chain) and all(frame_ok(f, fn, b, mk, inl, lines)
                                         for f, (fn, b, mk, inl) in zip(fr, chain))
    tail = fr[len(chain):]
    ours = {c[0] for c in chain}
    tail_ok = len(tail) <= max_tail and not any(
        (t.fn in ours) or (t.file and os.path.basename(t.file) in OUR_FILES) for t in tail)
    return good and tail_ok, f"{want} (+ at most {max_tail} frames outside the program)"


def expect_chain(label, row, chain, lines=True, max_tail=4):
    good, want = chain_match(row, chain, lines, max_tail)
    return check(good, f"{label}: stack is {want}; got {row['stack']!r}")


def expect_chains(label, pairs, lines=True):
    """All (row, chain) pairs match; one line for them all."""
    bad = [(row, chain) for row, chain in pairs if not chain_match(row, chain, lines)[0]]
    if bad:
        return expect_chain(f"{label} ({len(bad)} of {len(pairs)} wrong, first)", bad[0][0], bad[0][1], lines)
    return check(len(pairs) > 0, f"{label}: all {len(pairs)} stacks are "
                 f"{chain_match(pairs[0][0], pairs[0][1], lines)[1] if pairs else '(none)'}")


# ---- the chains program ----

C, CXX, PL = "chains.c", "chains_cxx.cpp", "stk_plugin.c"
CHAIN = {
    10001: [("chain_c", C, "chain_c", False), ("chain_b", C, "chain_b", False), ("chain_a", C, "chain_a", False),
            ("main", C, "main_chain", False)],
    10002: [("inl_helper", C, "inl_helper", True), ("inl_caller", C, "inl_caller", False),
            ("main", C, "main_inl", False)],
    10003: [("plugin_inner", PL, "plugin_inner", False), ("plugin_alloc", PL, "plugin_alloc", False),
            ("main", C, "main_plugin", False)],
    10004: [("Marker* make<Marker>()", CXX, "make", False), ("cxx_caller()", CXX, "cxx_caller", False),
            ("cxx_entry", CXX, "cxx_entry", False), ("main", C, "main_cxx", False)],
    10005: [("realloc_site", C, "realloc_site", False), ("main", C, "main_realloc", False)],
}
FREE_CHAIN = [("free_site", C, "free_site", False), ("main", C, "main_free", False)]
DELETE_CHAIN = [("cxx_release", CXX, "cxx_release", False), ("free_site", C, "free_site_cxx", False),
                ("main", C, "main_free", False)]
ROUNDS = 3
CHAINS_ARGS = [CHAINS, PLUGIN, str(ROUNDS)]


def marker_events(rows):
    """{size: [alloc/realloc rows]} for the marker sizes, and the free rows
    of their blocks as [(size, api, row)]."""
    by, live, frees = {}, {}, []
    for r in heap_rows(rows):
        if r["event"] == "alloc" and int(r["size"]) in CHAIN:
            by.setdefault(int(r["size"]), []).append(r)
            live[r["address"]] = int(r["size"])
        elif r["event"] == "realloc" and int(r["new_size"]) in CHAIN:
            by.setdefault(int(r["new_size"]), []).append(r)
            live[r["new_address"]] = int(r["new_size"])
        elif r["event"] == "free" and r["address"] in live:
            frees.append((live.pop(r["address"]), r["api"], r))
    return by, frees


def check_chains(label, rows, lines=True, sizes=tuple(CHAIN)):
    by, _ = marker_events(rows)
    for size in sizes:
        evs = by.get(size, [])
        kind = "realloc" if size == 10005 else "alloc"
        if not check(len(evs) == ROUNDS and all(e["event"] == kind for e in evs),
                     f"{label}: {ROUNDS} {kind} events of size {size} (got {len(evs)})"):
            continue
        check(len({e["stack"] for e in evs}) == 1, f"{label}: the {ROUNDS} events of size {size} share one stack")
        expect_chain(f"{label}: size {size}", evs[0], CHAIN[size], lines)
        if lines:  # the runtime's own frames are taken out wherever they stand (C++ new: mid-stack)
            own = [f for f in evs[0]["stack"].split(";") if "/src/runtime/" in f or "libheaptrace.so" in f]
            check(not own, f"{label}: size {size}: no frame of the runtime in the stack (got {own})")


def test_chains():
    plain = run_plain(CHAINS_ARGS)
    check("after no" in plain.stdout, "stk_chains: the plugin is unmapped after dlclose (its frames must "
          "symbolize from the trace's module record and the file)")
    with tempfile.TemporaryDirectory() as d:
        for sm in ("fp", "dwarf"):
            trace = os.path.join(d, f"{sm}.htrace")
            record(trace, ["--stacks", sm], CHAINS_ARGS, plain.stdout)
            rows = dump(trace)
            check_chains(f"chains {sm}", rows)
            mods = [r["detail"] for r in rows if r["event"] == "module"]
            check(any(m.endswith("/libstk_plugin.so") for m in mods),
                  f"chains {sm}: a module record names the dlclose'd libstk_plugin.so ({len(mods)} modules)")
            check(any(os.path.realpath(m.split("path=", 1)[-1]) == os.path.realpath(CHAINS) for m in mods),
                  f"chains {sm}: a module record names the executable")
            # no stack frame of any event is a bare address in no module
            bare = [f.text for r in heap_rows(rows) for f in frames(r) if FR_ADDR.match(f.text)]
            check(not bare, f"chains {sm}: every frame falls in a described module (bare: {bare[:5]})")
            # --no-symbols: one module+offset entry per return address, with
            # the plugin's frames in libstk_plugin.so
            raw = dump(trace, ["--no-symbols"])
            by, _ = marker_events(raw)
            if by.get(10003):
                fr = frames(by[10003][0])
                i = next((k for k, f in enumerate(fr) if f.mod == "libstk_plugin.so"), None)
                check(i is not None and all(f.off is not None for f in fr) and fr[i + 1].mod == "libstk_plugin.so"
                      and os.path.basename(fr[i + 2].mod) == os.path.basename(CHAINS),
                      f"chains {sm} --no-symbols: size 10003 is libstk_plugin.so+0x.. x2 then "
                      f"{os.path.basename(CHAINS)}+0x..: {by[10003][0]['stack']!r}")
            # text format: the frames indented under the event, as in csv
            text = dump(trace, fmt="text").splitlines()
            by_csv, _ = marker_events(rows)
            want = by_csv[10001][0]["stack"].split(";") if by_csv.get(10001) else None
            got = None
            for k, line in enumerate(text):
                if re.search(r"\balloc\b.* size=10001\b", line):
                    got = []
                    for nxt in text[k + 1:]:
                        if not nxt.startswith("    "):
                            break
                        got.append(nxt[4:])
                    break
            check(want is not None and got == want,
                  f"chains {sm} --format text: the frames of size 10001 are indented under the event as in csv "
                  f"({got!r})")


# ---- depth ----

def test_depth():
    plain = run_plain([DEEP, "300"])
    rec_malloc = ("recurse", "deep.c", "recurse_malloc", False)
    rec_call = ("recurse", "deep.c", "recurse_call", False)
    with tempfile.TemporaryDirectory() as d:
        for sm in ("fp", "dwarf"):
            for depth in (16, None, 200):
                n = depth or 64
                label = f"depth {sm} --depth {depth or 'default (64)'}"
                trace = os.path.join(d, f"{sm}{n}.htrace")
                record(trace, ["--stacks", sm] + (["--depth", str(depth)] if depth else []), [DEEP, "300"],
                       plain.stdout)
                raw = [r for r in heap_rows(dump(trace, ["--no-symbols"]), ("alloc",)) if r["size"] == "20001"]
                if not check(len(raw) == 5, f"{label}: 5 allocations of 20001 bytes (got {len(raw)})"):
                    continue
                exe = os.path.basename(DEEP)
                counts = [len(frames(r)) for r in raw]
                check(counts == [n] * 5, f"{label}: exactly {n} frames with --no-symbols (got {counts})")
                shape = all(len(fr) == n and all(f.mod == exe and f.off is not None for f in fr)
                            and len({f.off for f in fr[1:]}) == 1 and fr[0].off != fr[1].off
                            for fr in map(frames, raw))
                check(shape, f"{label}: all {n} are {exe}+0x.., one call site then {n - 1} times the "
                      f"recursive call: {raw[0]['stack'][:200]!r}...")
                sym = [r for r in heap_rows(dump(trace), ("alloc",)) if r["size"] == "20001"]
                fr = frames(sym[0])
                check(len(fr) == n and frame_ok(fr[0], *rec_malloc) and all(frame_ok(f, *rec_call) for f in fr[1:]),
                      f"{label}: symbolized, recurse (deep.c:{LINES[('deep.c', 'recurse_malloc')]}) then "
                      f"{n - 1} x recurse (deep.c:{LINES[('deep.c', 'recurse_call')]}): "
                      f"{sym[0]['stack'][:200]!r}...")
        # shallower than the depth: the whole chain, down to main
        plain5 = run_plain([DEEP, "5"])
        for sm in ("fp", "dwarf"):
            trace = os.path.join(d, f"shallow-{sm}.htrace")
            record(trace, ["--stacks", sm, "--depth", "16"], [DEEP, "5"], plain5.stdout)
            sym = [r for r in heap_rows(dump(trace), ("alloc",)) if r["size"] == "20001"]
            if check(len(sym) == 5, f"depth {sm} shallow: 5 allocations of 20001 bytes"):
                expect_chain(f"depth {sm} recursion 5 deep, --depth 16", sym[0],
                             [rec_malloc] + [rec_call] * 5 + [("main", "deep.c", "main_recurse", False)])


# ---- corrupted frame pointers ----

def test_badfp():
    plain = run_plain([BADFP])
    m = re.match(r"badfp calls (\d+) ", plain.stdout)
    if not m:
        die(f"stk_badfp printed {plain.stdout!r}")
    corrupt = int(m.group(1)) - 2  # one clean allocation per thread
    with tempfile.TemporaryDirectory() as d:
        for sm in ("fp", "dwarf"):
            trace = os.path.join(d, f"{sm}.htrace")
            rec = record(trace, ["--stacks", sm], [BADFP], plain.stdout)
            if rec.returncode != 0:
                continue
            rows = dump(trace)
            live, freed = {}, 0
            for r in heap_rows(rows):
                if r["event"] == "alloc" and r["size"] in ("30001", "30002"):
                    live[r["address"]] = r
                elif r["event"] == "free" and r["address"] in live:
                    del live[r["address"]]
                    freed += 1
            al = [r for r in heap_rows(rows, ("alloc",)) if r["size"] == "30001"]
            clean = [r for r in heap_rows(rows, ("alloc",)) if r["size"] == "30002"]
            lost = sum(int(r["detail"]) for r in rows if r["event"] == "lost")
            check(len(al) == corrupt and len(clean) == 2 and freed == corrupt + 2 and not live and not lost,
                  f"badfp {sm}: all {corrupt} + 2 allocations and their frees recorded (got {len(al)} + "
                  f"{len(clean)}, {freed} frees, {lost} lost)")
            for r in clean:
                fr = site_frames(r)
                outer = ("main", "badfp.c", "main_run", False) if any(f.fn == "main" for f in fr) else \
                    ("thread_main", "badfp.c", "thread_main", False)
                expect_chain(f"badfp {sm}: intact chain ({outer[0]})", r,
                             [("clean_alloc", "badfp.c", "clean_alloc", False),
                              ("run_cases", "badfp.c", "run_cases_clean", False), outer])
            # the program makes the cases in this order: 6 on the main thread, 7 on the other
            for k, r in enumerate(al):
                fr = site_frames(r)
                head = len(fr) >= 1 and frame_ok(fr[0], "corrupt_alloc", "badfp.c", "corrupt_alloc") and \
                    (len(fr) < 2 or frame_ok(fr[1], "run_cases", "badfp.c", "run_cases"))
                if sm == "fp":
                    # the walk stops at the bad saved frame pointer: at most the
                    # return address that sits beside it (into run_cases)
                    check(head and len(fr) <= 2,
                          f"badfp fp: corrupted chain #{k} cut short to corrupt_alloc "
                          f"(badfp.c:{LINES[('badfp.c', 'corrupt_alloc')]}) [; run_cases "
                          f"(badfp.c:{LINES[('badfp.c', 'run_cases')]})]: {r['stack']!r}")
                elif not head:
                    # libunwind follows the frame pointer the CFI says, so
                    # only what precedes the corruption is asserted
                    check(False, f"badfp dwarf: corrupted chain #{k} starts with corrupt_alloc; run_cases: "
                          f"{r['stack']!r}")
            if sm == "dwarf":
                check(all(site_frames(r) and frame_ok(site_frames(r)[0], "corrupt_alloc", "badfp.c", "corrupt_alloc")
                          for r in al), f"badfp dwarf: the {len(al)} corrupted chains start with corrupt_alloc")


# ---- stripped executable ----

def elf_symbols(path):
    """[(start, end, name)] of the FUNC symbols of an ELF file (C++ names
    demangled, as heaptrace prints them)."""
    out = subprocess.run(["nm", "-S", "-C", "--defined-only", path], capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        p = line.split(None, 3)
        if len(p) == 4 and p[2] in "TtWw":
            syms.append((int(p[0], 16), int(p[0], 16) + int(p[1], 16), p[3]))
    return syms


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def check_no_wrong_names(label, trace, exe_base, real_syms, debug_dir=None):
    """Frames of the stripped module: module+offset, or a name whose symbol
    covers that offset; never another function's name."""
    extra = ["--debug-dir", debug_dir] if debug_dir else []
    sym, raw = dump(trace, extra), dump(trace, ["--no-symbols"])
    checked = named = 0
    wrong = []
    for s, r in zip(heap_rows(sym), heap_rows(raw)):
        # one raw entry per return address; symbolized, its inlined frames
        # come first: compare the real (last) frame of each group
        fs, fr, cur = [], frames(r), []
        for f in frames(s):
            cur.append(f)
            if not f.inlined:
                fs.append(cur[-1])
                cur = []
        if len(fs) != len(fr) or cur:
            wrong.append(f"{len(fs)} frames vs {len(fr)} raw: {s['stack']!r} / {r['stack']!r}")
            continue
        for a, b in zip(fs, fr):
            if b.mod != exe_base:
                continue
            checked += 1
            if a.fn is None:
                if a.text != b.text:
                    wrong.append(f"{a.text} for {b.text}")
                continue
            named += 1
            if a.file is not None or not any(lo <= b.off < hi and n == a.fn for lo, hi, n in real_syms):
                wrong.append(f"{a.text} for {b.text}")
    check(checked > 0 and not wrong, f"{label}: {checked} frames of the stripped {exe_base} are module+offset or "
          f"the right function ({named} named); wrong: {wrong[:5]}")
    return sym


def test_stripped():
    plain = run_plain(CHAINS_ARGS)
    real_syms = elf_symbols(CHAINS)
    bid = build_id(CHAINS)
    if not bid:
        die(f"{CHAINS} has no build id")
    exe = os.path.basename(CHAINS)
    with tempfile.TemporaryDirectory() as d:
        dbg = os.path.join(d, "dbg")
        os.makedirs(dbg)
        subprocess.run(["objcopy", "--only-keep-debug", CHAINS, os.path.join(dbg, exe + ".debug")], check=True)

        def variant(name, strip_opts, debuglink=None):
            b = os.path.join(d, name)
            os.makedirs(b)
            p = os.path.join(b, exe)
            subprocess.run(["objcopy"] + strip_opts + [CHAINS, p], check=True)
            if debuglink:
                subprocess.run(["objcopy", "--add-gnu-debuglink=" + debuglink, p], check=True)
            trace = os.path.join(d, name + ".htrace")
            record(trace, ["--stacks", "fp"], [p, PLUGIN, str(ROUNDS)], plain.stdout)
            return p, trace

        # A: no symbols at all, its debug file under DIR/.build-id/
        pa, ta = variant("all", ["--strip-all"])
        check(not any(n == "chain_b" for *_, n in elf_symbols(pa)), "the --strip-all copy has no chain_b symbol")
        bdir = os.path.join(d, "by-build-id")
        os.makedirs(os.path.join(bdir, ".build-id", bid[:2]))
        shutil.copy(os.path.join(dbg, exe + ".debug"), os.path.join(bdir, ".build-id", bid[:2], bid[2:] + ".debug"))
        check_chains("stripped, --debug-dir with .build-id", dump(ta, ["--debug-dir", bdir]))
        sym = check_no_wrong_names("stripped, no debug dir", ta, exe, real_syms)
        by, _ = marker_events(sym)
        if by.get(10001):
            fr = site_frames(by[10001][0])
            check(len(fr) >= 4 and fr[1].fn is None and fr[1].mod == exe and fr[0].fn == "chain_c"
                  and fr[2].fn == "chain_a",
                  f"stripped, no debug dir: static chain_b is {exe}+0x.., the exported chain_c and chain_a are "
                  f"named from .dynsym: {by[10001][0]['stack']!r}")
            check(any(f.fn == "plugin_inner" and same_file(f.file, PL) for f in frames(by[10003][0])),
                  "stripped, no debug dir: the unstripped plugin still has its names and lines")

        # B: no symbols, .gnu_debuglink to the debug file, found in DIR
        pb, tb = variant("linked", ["--strip-all"], os.path.join(dbg, exe + ".debug"))
        check_chains("stripped, --debug-dir with .gnu_debuglink", dump(tb, ["--debug-dir", dbg]))

        # C: .symtab kept, no DWARF: every name right (static ones too), no lines
        pc, tc = variant("symtab", ["--strip-debug"])
        sym = check_no_wrong_names("--strip-debug (symtab only)", tc, exe, real_syms)
        check_chains("--strip-debug (symtab only), names", sym, lines=False, sizes=(10001, 10002, 10005))

        # D: a debug file of another program where the debuglink points:
        # its build id differs, so it must not be used
        other = os.path.join(d, "other")
        os.makedirs(other)
        subprocess.run(["objcopy", "--only-keep-debug", DEEP, os.path.join(other, exe + ".debug")], check=True)
        check_no_wrong_names("stripped, --debug-dir holding a mismatching debug file", tb, exe, real_syms, other)

        # E: --sysroot holding the unstripped executable at the path the
        # stripped one had
        root = os.path.join(d, "sysroot")
        os.makedirs(root + os.path.dirname(pa))
        shutil.copy(CHAINS, root + pa)
        check_chains("stripped, --sysroot with the unstripped copy", dump(ta, ["--sysroot", root]),
                     sizes=(10001, 10002, 10005))


# ---- which events carry stacks ----

def test_free_events():
    plain = run_plain(CHAINS_ARGS)
    with tempfile.TemporaryDirectory() as d:
        def run(label, opts):
            trace = os.path.join(d, label.replace(" ", "_").replace(",", "_") + ".htrace")
            record(trace, opts, CHAINS_ARGS, plain.stdout)
            rows = dump(trace)
            by, frees = marker_events(rows)
            check(sum(len(v) for v in by.values()) == 5 * ROUNDS and len(frees) == 5 * ROUNDS,
                  f"{label}: {5 * ROUNDS} marker allocations and their frees recorded")
            return rows, by, frees

        for sm, opts in (("fp", ["--stack-events", "alloc,free,realloc"]), ("dwarf", ["--stack-events", "all"])):
            label = f"free_events {sm} {opts[1]}"
            rows, by, frees = run(label, ["--stacks", sm] + opts)
            expect_chains(f"{label}: the delete of the C++ blocks", [(r, DELETE_CHAIN) for z, _, r in frees
                                                                       if z == 10004])
            expect_chains(f"{label}: the free of the other blocks", [(r, FREE_CHAIN) for z, _, r in frees
                                                                   if z != 10004])
            check(all(frames(r) for v in by.values() for r in v), f"{label}: allocations and reallocs have stacks")
            check(api_ok(frees), f"{label}: the C++ blocks are freed by delete, the others by free")

        rows, by, frees = run("free_events default", ["--stacks", "fp"])
        allfree = heap_rows(rows, ("free",))
        check(allfree and all(r["stack"] == "" for r in allfree), f"free_events default: no free has a stack "
              f"({sum(1 for r in allfree if r['stack'])} of {len(allfree)} do)")
        check(all(frames(r) for v in by.values() for r in v), "free_events default: every marker alloc and "
              "realloc has a stack")

        rows, by, frees = run("free_events free only", ["--stacks", "fp", "--stack-events", "free"])
        check(all(r["stack"] == "" for r in heap_rows(rows, ("alloc", "realloc"))),
              "free_events --stack-events free: no alloc or realloc has a stack")
        check(all(frames(r) for _, _, r in frees), "free_events --stack-events free: the marker frees have stacks")

        rows, by, frees = run("free_events realloc only", ["--stacks", "dwarf", "--stack-events", "realloc"])
        check(all(r["stack"] == "" for r in heap_rows(rows, ("alloc", "free"))) and by.get(10005)
              and all(frames(r) for r in by[10005]),
              "free_events --stack-events realloc: only the reallocs have stacks")

        for label, opts in (("--stacks none", ["--stacks", "none", "--stack-events", "all"]), ("no --stacks", [])):
            rows, by, frees = run(f"free_events {label}", opts)
            with_stack = [r for r in rows if r["stack"]]
            meta = [r for r in rows if r["event"] in ("stack", "module")]
            check(not with_stack and not meta, f"free_events {label}: no stack field, no stack or module record "
                  f"({len(with_stack)} rows with a stack, {len(meta)} stack/module records)")


def api_ok(frees):
    return all((api == "delete") == (size == 10004) for size, api, _ in frees)


# ---- trace size ----

def test_size():
    n = 100000
    plain = run_plain([SIZELOOP, str(n)])
    with tempfile.TemporaryDirectory() as d:
        # the compressed size of the same run varies up to 2x with the
        # timestamps on a loaded machine: the smallest of 5 runs, the
        # configurations interleaved
        runs = {"none": [], "fp": [], "dwarf": []}
        for k in range(5):
            for sm in runs:
                trace = os.path.join(d, f"{sm}{k}.htrace")
                rec = record(trace, ["--stacks", sm], [SIZELOOP, str(n)], plain.stdout) if k == 0 else \
                    subprocess.run([HT, "record", "-q", "-o", trace, "--stacks", sm, "--", SIZELOOP, str(n)],
                                   capture_output=True, text=True, timeout=240)
                if rec.returncode == 0:
                    runs[sm].append(os.path.getsize(trace))
        check(all(len(v) == 5 for v in runs.values()), "size: all 15 recordings exited 0")
        sizes = {sm: min(v) if v else 0 for sm, v in runs.items()}
        for sm in runs:
            print(f"info: size {sm}: trace sizes {runs[sm]} bytes")
            trace = os.path.join(d, f"{sm}0.htrace")
            if sm == "none":
                continue
            rows = dump(trace)
            stacks = [r for r in rows if r["event"] == "stack"]
            check(len(stacks) < 20, f"size {sm}: {len(stacks)} stack records (< 20) for {n} allocations")
            al = [r for r in heap_rows(rows, ("alloc",)) if r["size"] in ("40001", "40002", "40003")]
            check(len(al) == n and all(r["stack"] for r in al), f"size {sm}: {n} allocations, all with a stack "
                  f"(got {len(al)}, {sum(1 for r in al if r['stack'])} with one)")
            for k in (1, 2, 3):
                site = [r for r in al if r["size"] == f"4000{k}"]
                if site:
                    check(len({r["stack"] for r in site}) == 1, f"size {sm}: site{k}'s allocations share one stack")
                    expect_chain(f"size {sm}: site{k}", site[0], [(f"site{k}", "sizeloop.c", f"site{k}", False),
                                                                  ("main", "sizeloop.c", f"main_site{k}", False)])
        # fp: stacks stored once, ids on the events (the stack records are
        # counted above); what the ids add is bounded per allocation, not as
        # a ratio: the trace without stacks is mostly timestamps, whose size
        # follows the machine's load (fp's slower allocations spread them
        # more).  dwarf's spread them further, so only fp's size is bounded.
        check(sizes["fp"] - sizes["none"] <= n,
              f"size fp: trace {sizes['fp']} bytes, at most 1 byte per allocation more than {sizes['none']} "
              f"bytes without stacks ({(sizes['fp'] - sizes['none']) / n:.2f}; smallest of 5 runs each)")
        print(f"info: size dwarf: {sizes['dwarf'] / max(sizes['none'], 1):.2f}x the trace without stacks")


# ---- the runtime's own unwinder against libunwind ----

def record_env(trace, args, unwind, stdin=None):
    env = dict(os.environ)
    env.pop("HEAPTRACE_UNWIND", None)
    if unwind:
        env["HEAPTRACE_UNWIND"] = unwind
    r = subprocess.run([HT, "record", "-q", "--stacks", "dwarf", "-o", trace, "--"] + args, env=env,
                       input=stdin, capture_output=True, text=True, timeout=240)
    check(r.returncode == 0, f"unwinders: record {os.path.basename(args[0])} HEAPTRACE_UNWIND={unwind or ''}: "
          f"exit 0 (got {r.returncode}{', ' + r.stderr.strip()[-300:] if r.returncode else ''})")
    return r.stdout


def stacked(trace):
    """(event, size, stack) of every allocation and realloc, in order."""
    return [(r["event"], r["size"] or r["new_size"], r["stack"]) for r in heap_rows(dump(trace), ("alloc", "realloc"))]


def same_stacks(label, a, b):
    if len(a) != len(b):
        return check(False, f"{label}: same number of events ({len(a)} vs {len(b)})")
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return check(not diff, f"{label}: all {len(a)} events have the same stack"
                 + (f"; first of {len(diff)} differing: #{diff[0]} {a[diff[0]]!r} vs {b[diff[0]]!r}" if diff else ""))


def sql_script(rows):
    out = ["CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);", "CREATE INDEX tk ON t(k);", "BEGIN;"]
    x = 12345
    for i in range(rows):
        x = (x * 1103515245 + 12345) % (1 << 31)
        out.append(f"INSERT INTO t(k, v) VALUES({x % 1000}, '{'v' * (x % 40)}{i}');")
    out += ["COMMIT;", "SELECT k, count(*), max(length(v)) FROM t GROUP BY k ORDER BY 2 DESC LIMIT 3;"]
    return "\n".join(out) + "\n"


PY_SCRIPT = ("import json\nd = {}\nfor i in range(3000):\n    d[str(i)] = [i, str(i) * 3, {'k': i}]\n"
             "s = json.dumps(d)\nprint(len(json.loads(s)), len(s))\n")


def test_unwinders():
    with tempfile.TemporaryDirectory() as d:
        # a program without frame pointers, through every kind of frame
        t = {u: os.path.join(d, f"mix-{u or 'default'}.htrace") for u in ("", "libunwind", "own")}
        for u, trace in t.items():
            record_env(trace, [UNWMIX], u)
        ev = {u: stacked(trace) for u, trace in t.items()}
        same_stacks("unwinders unwmix: own (default) vs libunwind", ev[""], ev["libunwind"])
        sizes = {e[1] for e in ev[""]}
        check(all(str(s) in sizes for s in list(range(30000, 30009)) + [30011, 30014] if s != 30003),
              "unwinders unwmix: every marker size recorded")
        for k, (e, size, stk) in enumerate(ev["libunwind"]):
            if size in ("30005", "30006"):
                continue
            if ev["own"][k][2] != stk:
                check(False, f"unwinders unwmix: own only, event #{k} ({e} {size}) has libunwind's stack: "
                      f"{ev['own'][k][2]!r} vs {stk!r}")
                break
        else:
            check(True, "unwinders unwmix: own only (HEAPTRACE_UNWIND=own): every event outside the signal "
                  "handlers has libunwind's stack")
        for size, fn in (("30005", "on_usr1"), ("30006", "on_usr2")):
            mine = [e[2] for e in ev["own"] if e[1] == size]
            full = [e[2] for e in ev[""] if e[1] == size]
            check(len(mine) == 3 and not any(mine), f"unwinders unwmix: own only, the {fn} handler's 3 allocations "
                  f"have no stack (a signal frame is libunwind's): {mine!r}")
            check(len(full) == 3 and all(fn in s and "main" in s for s in full),
                  f"unwinders unwmix: by default, libunwind walks {fn}'s stack through the signal frame to main: "
                  f"{full[:1]!r}")
        twice = [e[2] for e in ev["own"] if e[1] == "30008"]
        check(len(twice) == 6 and all(twice[i] != twice[i + 1] for i in range(0, 6, 2))
              and all("main" in s for s in twice),
              f"unwinders unwmix: own only, the same frames from two call sites of main: two stacks: {twice[:2]!r}")
        dyn = [e[2] for e in ev["own"] if e[1] == "30001"]
        check(len(dyn) == 3 and all(re.search(r"leaf .*;dyn .*;main ", s) for s in dyn),
              f"unwinders unwmix: own only, through the alloca frame: leaf, dyn, main: {dyn[:1]!r}")

        # per-thread unwinder state goes with its thread: 1000 threads, one
        # after the other (each one's state is about 20 KiB)
        for u in ("", "libunwind"):
            out = record_env(os.path.join(d, f"threads-{u or 'default'}.htrace"), [UNWMIX, "threads", "1000"], u)
            m = re.search(r"vm_growth_kb=(-?\d+)", out)
            check(m is not None and int(m.group(1)) < 4096,
                  f"unwinders unwmix: 1000 threads come and go, the address space grows < 4 MiB "
                  f"(HEAPTRACE_UNWIND={u or 'auto'}: {m.group(1) if m else out!r} KiB)")

        # real programs built without frame pointers (Debian's)
        progs = [("sqlite3", ["sqlite3", "-batch", ":memory:"], sql_script(3000)),
                 ("python3", ["/usr/bin/python3", "-c", PY_SCRIPT], None)]  # Debian's, not a wrapper
        for name, args, stdin in progs:
            if not shutil.which(args[0]):
                check(False, f"unwinders: {args[0]} is installed (scripts/install-deps.sh)")
                continue
            outs, evs = {}, {}
            for u in ("", "libunwind", "own"):
                trace = os.path.join(d, f"{name}-{u or 'default'}.htrace")
                old = os.environ.get("PYTHONHASHSEED")
                os.environ["PYTHONHASHSEED"] = "0"
                outs[u] = record_env(trace, args, u, stdin)
                if old is None:
                    del os.environ["PYTHONHASHSEED"]
                else:
                    os.environ["PYTHONHASHSEED"] = old
                evs[u] = stacked(trace)
            check(outs[""] == outs["libunwind"] == outs["own"] and outs[""], f"unwinders {name}: same output")
            n = sum(1 for e in evs[""] if e[2])
            check(n > 1000, f"unwinders {name}: {n} events with a stack (> 1000)")
            same_stacks(f"unwinders {name}: own (default) vs libunwind", evs[""], evs["libunwind"])
            same_stacks(f"unwinders {name}: own only vs libunwind", evs["own"], evs["libunwind"])


TESTS = {"unwinders": test_unwinders, "chains": test_chains, "depth": test_depth, "badfp": test_badfp, "stripped": test_stripped,
         "free_events": test_free_events, "size": test_size}
if mode not in TESTS:
    die(f"unknown mode {mode}")
TESTS[mode]()
sys.exit(1 if pycheck.failures else 0)
