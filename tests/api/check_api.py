#!/usr/bin/env python3
"""API conformance check of the heaptrace runtime.

usage: check_api.py HEAPTRACE API_CALLS     record api_calls and compare
       check_api.py --no-runtime API_CALLS  api_calls runs fine without the runtime

api_calls (api_calls.cpp) makes a known sequence of calls through every API
the runtime interposes or exports and writes, after its "end" marker, the
events it expects: a meta line, then one JSON object per event with a
"window" key ("main", "thread N").  This script

  1. runs api_calls without heaptrace (exit status, stdout, and the
     heaptrace.h calls being no-ops: no runtime symbols, ht_enabled() 0,
     heap handles 0);
  2. runs `heaptrace record -q -o T -- api_calls EXPECTED` and checks that
     the exit status, stdout and stderr are those of step 1;
  3. reads `heaptrace dump T --format jsonl` and checks:
     - the main thread's events strictly between its markers "begin" and
       "end", and each thread's between "thread-begin N" and "thread-end N"
       (selected by tid), equal the expected lists exactly, in order, on
       event, heap, api, address, size, new_address, new_size, old_address,
       old_size, source, detail.  Only "thread" records (the per-buffer
       thread header the runtime writes, not an API event) are skipped;
     - no event has the forked child's pid, no event has a size only the
       child allocates, and the child's marker is absent;
     - no events were lost.

Prints a diff of expected and recorded events on mismatch; exits 1 on any
failure.  Python standard library only.
"""
import difflib
import json
import os
import subprocess
import sys
import tempfile

EXIT_OK = 42  # api_calls' exit status on success
KEYS = ["event", "heap", "api", "address", "size", "new_address", "new_size",
        "old_address", "old_size", "source", "detail"]
TIMEOUT = 60

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def clean_env():
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "HEAPTRACE_SESSION"):
        env.pop(k, None)
    return env


def run(cmd, what):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=clean_env(), timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        print("FAIL: %s timed out after %ds: %s" % (what, TIMEOUT, " ".join(cmd)), file=sys.stderr)
        sys.exit(1)


def read_expected(path):
    """-> (meta, {window: [event, ...]})"""
    with open(path) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    if not lines or lines[0].get("meta") != 1:
        raise ValueError("%s: no meta line" % path)
    windows = {}
    for ev in lines[1:]:
        w = ev.pop("window")
        windows.setdefault(w, []).append(ev)
    return lines[0], windows


def canon(ev):
    """An event projected on the compared keys, as one stable line."""
    return json.dumps({k: ev[k] for k in KEYS if k in ev})


def plain_run(api_calls, tmp):
    """Runs api_calls without the runtime; checks the no-op API.  -> result"""
    exp = os.path.join(tmp, "expected-plain.jsonl")
    r = run([api_calls, exp], "api_calls without heaptrace")
    if r.returncode != EXIT_OK:
        fail("api_calls without heaptrace exited %d, not %d; stderr:\n%s"
             % (r.returncode, EXIT_OK, r.stderr.decode(errors="replace")))
        return r
    meta, windows = read_expected(exp)
    if meta["runtime_loaded"] != 0:
        fail("without heaptrace the runtime symbols resolved (runtime_loaded=%r)" % meta["runtime_loaded"])
    if meta["enabled"] != 0:
        fail("without heaptrace ht_enabled() returned %r" % meta["enabled"])
    if meta["heaps"] != [0, 0]:
        fail("without heaptrace ht_heap_create returned %r, not HT_HEAP_NONE (0)" % meta["heaps"])
    if meta["child_status"] != 0:
        fail("the forked child exited with %r" % meta["child_status"])
    if "main" not in windows or len(windows) != 4:
        fail("expected windows: %r" % sorted(windows))
    out = r.stdout.decode(errors="replace")
    if "api_calls: done\n" not in out:
        fail("unexpected stdout without heaptrace:\n" + out)
    return r


def window(events, pid, tid, begin, end, name):
    """Events of (pid, tid) strictly between the markers begin and end."""
    mine = [e for e in events if e.get("pid") == pid and e.get("tid") == tid]
    starts = [i for i, e in enumerate(mine) if e["event"] == "marker" and e.get("detail") == begin]
    ends = [i for i, e in enumerate(mine) if e["event"] == "marker" and e.get("detail") == end]
    if len(starts) != 1 or len(ends) != 1 or starts[0] > ends[0]:
        fail("%s: markers %r/%r of tid %d found at %r/%r (need exactly one each, in order)"
             % (name, begin, end, tid, starts, ends))
        return None
    return [e for e in mine[starts[0] + 1:ends[0]] if e["event"] != "thread"]


def is_ref(v):
    return isinstance(v, str) and v.startswith("$")


def bind_refs(expected, actual):
    """Expected values "$name" stand for an address the program could not see
    (libstdc++'s exception objects inside nothrow new).  Each binds to the
    nonzero address of the recorded event that matches its first use on
    every other field (searched where the two lists are aligned by their
    exactly-equal events); every other use must then be that same address.
    -> expected with the refs replaced (unbound ones stay "$name")."""
    bound = {}
    exp_c = [canon(e) for e in expected]
    act_c = [canon(e) for e in actual]
    sm = difflib.SequenceMatcher(None, exp_c, act_c, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag != "replace":
            continue
        j = j1
        for i in range(i1, i2):
            e = expected[i]
            refs = {k: v for k, v in e.items() if is_ref(v) and v not in bound}
            if not refs:
                continue
            for jj in range(j, j2):
                a = {k: v for k, v in actual[jj].items() if k in KEYS}
                if set(a) != set(e) or any(a[k] != v for k, v in e.items() if not is_ref(v)):
                    continue
                if all(isinstance(a[k], str) and a[k].startswith("0x") and int(a[k], 16) != 0
                       for k in refs):
                    bound.update({v: a[k] for k, v in refs.items()})
                    j = jj + 1
                    break
    return [{k: bound.get(v, v) if is_ref(v) else v for k, v in e.items()} for e in expected]


def compare(name, expected, actual):
    expected = bind_refs(expected, actual)
    exp_lines = [canon(e) for e in expected]
    act_lines = [canon(e) for e in actual]
    if exp_lines == act_lines:
        print("ok: %s: %d events" % (name, len(exp_lines)))
        return
    fail("%s: recorded events differ from the expected ones (%d expected, %d recorded)"
         % (name, len(exp_lines), len(act_lines)))
    diff = difflib.unified_diff(exp_lines, act_lines, "expected (%s)" % name, "recorded (%s)" % name,
                                lineterm="", n=2)
    print("\n".join(diff), file=sys.stderr)


def traced_run(heaptrace, api_calls, tmp, plain):
    trace = os.path.join(tmp, "api.htrace")
    exp = os.path.join(tmp, "expected.jsonl")
    r = run([heaptrace, "record", "-q", "-o", trace, "--", api_calls, exp], "heaptrace record")
    if r.returncode != plain.returncode:
        fail("exit status under heaptrace record is %d, without it %d; stderr:\n%s"
             % (r.returncode, plain.returncode, r.stderr.decode(errors="replace")))
    if r.stdout != plain.stdout:
        fail("stdout under heaptrace record differs from stdout without it:\n"
             + "\n".join(difflib.unified_diff(plain.stdout.decode(errors="replace").splitlines(),
                                              r.stdout.decode(errors="replace").splitlines(),
                                              "without heaptrace", "with heaptrace", lineterm="")))
    if r.stderr != plain.stderr:
        fail("stderr under heaptrace record -q differs from stderr without it:\n--- without\n%s--- with\n%s"
             % (plain.stderr.decode(errors="replace"), r.stderr.decode(errors="replace")))
    if r.returncode != EXIT_OK or not os.path.exists(exp):
        return
    meta, windows = read_expected(exp)

    d = run([heaptrace, "dump", trace, "--format", "jsonl"], "heaptrace dump")
    if d.returncode != 0:
        fail("heaptrace dump exited %d: %s" % (d.returncode, d.stderr.decode(errors="replace")))
    events = [json.loads(l) for l in d.stdout.decode().splitlines() if l.strip()]

    if meta["runtime_loaded"] != 1 or meta["enabled"] != 1:
        fail("under heaptrace record: runtime_loaded=%r enabled=%r (both should be 1)"
             % (meta["runtime_loaded"], meta["enabled"]))
    if meta["heaps"] != [2, 3]:
        fail("custom heap handles are %r, expected [2, 3] (2, 3, ... in creation order)" % meta["heaps"])
    if meta["child_status"] != 0:
        fail("the forked child exited with %r" % meta["child_status"])

    # the forked child is not traced
    pid, child = meta["pid"], meta["child_pid"]
    with_child_pid = [e for e in events if e.get("pid") == child]
    if with_child_pid:
        fail("%d events have the forked child's pid %d, e.g. %s" % (len(with_child_pid), child, with_child_pid[0]))
    strangers = [e for e in events if e.get("pid") not in (pid, 0) or
                 (e.get("pid") == 0 and not e["event"].startswith("session_"))]
    if strangers:
        fail("events of a process other than %d: e.g. %s" % (pid, strangers[0]))
    child_sizes = set(meta["child_sizes"])
    leaked = [e for e in events if e.get("size") in child_sizes or e.get("new_size") in child_sizes or
              (e["event"] == "marker" and e.get("detail") == "child")]
    if leaked:
        fail("events of the forked child's calls appear in the trace, e.g. %s" % leaked[0])

    # nothing lost
    lost = [e for e in events if e["event"] == "lost"]
    if lost:
        fail("lost events: %s" % lost)
    ends = [e for e in events if e["event"] == "session_end"]
    if len(ends) != 1 or " lost=0 " not in ends[0].get("detail", "") + " ":
        fail("session end does not report lost=0: %s" % ends)

    # the windows
    got = window(events, pid, meta["main_tid"], "begin", "end", "main thread")
    if got is not None:
        compare("main thread", windows.get("main", []), got)
    for t in meta["threads"]:
        name = "thread %d" % t["n"]
        got = window(events, pid, t["tid"], t["begin"], t["end"], name)
        if got is not None:
            compare(name, windows.get(name, []), got)


def main(argv):
    no_runtime = len(argv) == 3 and argv[1] == "--no-runtime"
    if not no_runtime and len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    heaptrace, api_calls = (None, argv[2]) if no_runtime else (argv[1], argv[2])
    with tempfile.TemporaryDirectory(prefix="ht-api-") as tmp:
        plain = plain_run(api_calls, tmp)
        if not no_runtime and plain.returncode == EXIT_OK:
            traced_run(heaptrace, api_calls, tmp, plain)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
