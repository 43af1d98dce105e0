#!/usr/bin/env python3
"""real_programs.py HT_CLI CASE - record real Debian programs end to end.

CASE is one of:
  sqlite       sqlite3 runs an insert-heavy script (a table with two indexes,
               30,000 inserts in one transaction, an UPDATE, a DELETE, then a
               count and a GROUP BY) on a database file.
  python       python3 (PYTHONHASHSEED=0) builds dicts, lists, strings and a
               set, prints a digest and the set order, exits with status 37.
  git          git init, config, add, commit, add, commit, log, rev-parse and
               status in a temporary repository (fixed dates and identities,
               HOME in a temporary directory), each command recorded on its
               own; the commit hashes must come out the same.
  exit-status  sh -c 'exit 37' and sh -c 'kill -TERM $$', ten times each: the
               status passes through `heaptrace record` and the trace says how
               the process ended.

For each program: the same command is run without heaptrace and then under
`heaptrace record` (block mode, the default); stdout, stderr and the exit
status must be identical.  The trace must dump (csv; jsonl for the smaller
ones), lose nothing, replay cleanly (every free/realloc of an address the
session saw allocated, no address allocated twice while live), agree with
`heaptrace summary`, and hold a sane number of heap events.  The sqlite and
python recordings are repeated with tiny buffers (--buffer-size 4K
--buffers 2) in block mode, and python's with --stacks fp and dwarf: the writers then wait for the collector all the
time, and the per-API counts must be exactly those of the first recording
(both programs are deterministic).  How the process ended (the trace's
process_end record, summary's "process ended") is asserted by the
exit-status case only, so that a defect there fails one test.
"""
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from htreal import (Checker, base_env, check_trace, read_dump, read_summary, record, remove_tmp, run,  # noqa: E402
                    write_python_script, write_sqlite_script)

TINY = ["--buffer-size", "4K", "--buffers", "2"]


def compare_runs(c, label, plain, traced):
    rc0, out0, err0 = plain
    rc1, out1, err1 = traced
    c.eq(rc1, rc0, "%s: exit status under heaptrace == without" % label)
    c.check(out1 == out0, "%s: stdout under heaptrace identical to the run without (%d vs %d bytes)" %
            (label, len(out1), len(out0)))
    c.check(err1 == err0, "%s: stderr under heaptrace identical to the run without (got %r, want %r)" %
            (label, err1[-300:], err0[-300:]))


def case_sqlite(c, ht, tmp):
    sql = os.path.join(tmp, "insert.sql")
    write_sqlite_script(sql, 30000)
    env = base_env(tmp)
    db = os.path.join(tmp, "test.db")
    cmd = ["sqlite3", "-batch", db]

    def fresh():
        for s in ("", "-journal", "-wal"):
            if os.path.exists(db + s):
                os.unlink(db + s)

    fresh()
    plain = run(cmd, env=env, cwd=tmp, stdin_path=sql)
    if plain[0] != 0 or b"|" not in plain[1]:
        c.fatal("sqlite3 itself failed (status %d): %s" % (plain[0], plain[2][-500:]))
    print("  info  sqlite3 output: %r" % plain[1][:200])
    fresh()
    trace = os.path.join(tmp, "sqlite.htrace")
    compare_runs(c, "sqlite3", plain, record(ht, trace, cmd, env=env, cwd=tmp, stdin_path=sql))
    # 30,000 inserts with two indexes: sqlite3 makes well over 10 heap
    # calls per insert (measured: ~2.0M events for this script)
    d = check_trace(c, ht, trace, "sqlite3", min_heap_events=300000)
    c.eq(len(d.processes), 1, "sqlite3: one process in the trace")
    c.eq(len(d.tids), 1, "sqlite3: one thread in the trace")

    fresh()
    trace2 = os.path.join(tmp, "sqlite-tiny.htrace")
    compare_runs(c, "sqlite3 (4K x 2 buffers)", plain,
                 record(ht, trace2, cmd, opts=TINY, env=env, cwd=tmp, stdin_path=sql))
    d2 = check_trace(c, ht, trace2, "sqlite3 (4K x 2 buffers)", min_heap_events=300000)
    c.eq(d2.by_api, d.by_api, "sqlite3: per-API counts with 4K x 2 buffers == with the default buffers")
    c.eq(d2.bytes_by_api, d.bytes_by_api, "sqlite3: bytes requested per API with 4K x 2 == default buffers")


def case_python(c, ht, tmp):
    script = os.path.join(tmp, "work.py")
    write_python_script(script)
    env = base_env(tmp)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = ["python3", script]
    plain = run(cmd, env=env, cwd=tmp)
    if plain[0] != 37 or b"digest" not in plain[1]:
        c.fatal("python3 itself did not run the script (status %d): %s" % (plain[0], plain[2][-500:]))
    trace = os.path.join(tmp, "python.htrace")
    compare_runs(c, "python3", plain, record(ht, trace, cmd, env=env, cwd=tmp))
    c.eq(plain[0], 37, "python3: the script's own exit status (sanity)")
    # measured: ~24,000 heap events (most small objects come from pymalloc's
    # arenas, which are not malloc; big dicts, lists and strings are)
    d = check_trace(c, ht, trace, "python3", min_heap_events=10000, jsonl=True)
    c.eq(len(d.processes), 1, "python3: one process in the trace")

    trace2 = os.path.join(tmp, "python-tiny.htrace")
    compare_runs(c, "python3 (4K x 2 buffers)", plain, record(ht, trace2, cmd, opts=TINY, env=env, cwd=tmp))
    d2 = check_trace(c, ht, trace2, "python3 (4K x 2 buffers)", min_heap_events=10000)
    c.eq(d2.by_api, d.by_api, "python3: per-API counts with 4K x 2 buffers == with the default buffers")

    # call stacks through code built without frame pointers (Debian's
    # python3): fp walks end early but never fault (the main thread's stack
    # below the current frame is not even mapped), dwarf unwinds through it
    for mode in ("fp", "dwarf"):
        trace3 = os.path.join(tmp, "python-%s.htrace" % mode)
        compare_runs(c, "python3 (--stacks %s)" % mode, plain,
                     record(ht, trace3, cmd, opts=["--stacks", mode], env=env, cwd=tmp))
        d3 = check_trace(c, ht, trace3, "python3 (--stacks %s)" % mode, min_heap_events=10000)
        c.eq(d3.by_api, d.by_api, "python3: per-API counts with --stacks %s == without stacks" % mode)


# The git steps, each run as its own process (a `heaptrace record` session
# follows the one process it starts, not the children of a shell).  Files are
# written by the test between the steps.
GIT_STEPS = [
    ["git", "init", "-q", "-b", "main", "repo"],
    ["git", "-C", "repo", "config", "user.useConfigOnly", "true"],
    "write-files",
    ["git", "-C", "repo", "add", "."],
    ["git", "-C", "repo", "commit", "-q", "-m", "first commit: forty files"],
    "change-files",
    ["git", "-C", "repo", "add", "-A"],
    ["git", "-C", "repo", "commit", "-q", "-m", "second commit"],
    ["git", "-C", "repo", "log", "--stat", "--format=%H %an <%ae> %ad%n%s"],
    ["git", "-C", "repo", "rev-parse", "HEAD"],
    ["git", "-C", "repo", "status", "--porcelain", "--branch"],
]


def git_files(work, step):
    repo = os.path.join(work, "repo")
    if step == "write-files":
        for i in range(40):
            d = os.path.join(repo, "dir%d" % (i % 5))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "f%d.txt" % i), "w") as f:
                f.write("file %d\nline two of %d\n" % (i, i) * (1 + i % 7))
    else:
        with open(os.path.join(repo, "dir1", "f1.txt"), "a") as f:
            f.write("changed\n")
        os.unlink(os.path.join(repo, "dir2", "f2.txt"))


def case_git(c, ht, tmp):
    env = base_env(os.path.join(tmp, "home"))
    env.update({
        "GIT_AUTHOR_NAME": "Heap Tracer", "GIT_AUTHOR_EMAIL": "ht@example.org",
        "GIT_COMMITTER_NAME": "Heap Tracer", "GIT_COMMITTER_EMAIL": "ht@example.org",
        "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_PAGER": "cat", "PAGER": "cat",
    })
    work = os.path.join(tmp, "work")  # the same path for both passes: output may name it

    def fresh():
        for p in (work, env["HOME"]):
            shutil.rmtree(p, ignore_errors=True)
            os.makedirs(p)

    fresh()
    plain = []
    for step in GIT_STEPS:
        if isinstance(step, str):
            git_files(work, step)
            continue
        r = run(step, env=env, cwd=work)
        if r[0] != 0:
            c.fatal("`%s` failed without heaptrace (status %d): %s" % (" ".join(step), r[0], r[2][-500:]))
        plain.append(r)
    if b"second commit" not in plain[-3][1]:
        c.fatal("git log does not show the commits: %r" % plain[-3][1][:500])
    print("  info  git log/rev-parse output: %r" % (plain[-3][1][:160] + b"..." + plain[-2][1]))

    fresh()
    total = 0
    i = 0
    for n, step in enumerate(GIT_STEPS):
        if isinstance(step, str):
            git_files(work, step)
            continue
        label = "git %s" % step[3 if step[1] == "-C" else 1]
        trace = os.path.join(tmp, "git-%d.htrace" % n)
        compare_runs(c, label, plain[i], record(ht, trace, step, env=env, cwd=work))
        i += 1
        # even `git rev-parse` makes a few hundred heap calls (config parsing)
        d = check_trace(c, ht, trace, label, min_heap_events=100,
                        jsonl=(step[3:4] == ["commit"]))
        c.eq(len(d.processes), 1, "%s: one process in the trace" % label)
        total += d.heap_events()
    print("  info  git: %d heap events over %d recorded commands" % (total, i))


def case_exit_status(c, ht, tmp):
    env = base_env(tmp)
    for i in range(10):
        for script, status, ended in (("exit 37", 37, "exit status 37"),
                                      ("kill -TERM $$", 128 + 15, "killed by signal 15")):
            trace = os.path.join(tmp, "exit.htrace")
            rc, out, err = record(ht, trace, ["sh", "-c", script], env=env, cwd=tmp)
            c.eq(rc, status, "run %d: status of `heaptrace record -- sh -c '%s'`" % (i, script))
            drc, s, text = read_summary(ht, trace)
            c.eq(drc, 0, "run %d: summary of sh -c '%s'" % (i, script))
            c.eq(s.get("ended"), ended, "run %d: summary 'process ended' of sh -c '%s'" % (i, script))
            d = read_dump(ht, trace)
            c.check(len(d.process_end) == 1,
                    "run %d: the dump of sh -c '%s' has a process_end record (got %s)" %
                    (i, script, d.process_end))


CASES = {"sqlite": case_sqlite, "python": case_python, "git": case_git, "exit-status": case_exit_status}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print("usage: real_programs.py HT_CLI %s" % "|".join(CASES), file=sys.stderr)
        return 2
    ht = os.path.abspath(sys.argv[1])
    case = sys.argv[2]
    c = Checker("real_programs " + case)
    need = {"sqlite": "sqlite3", "python": "python3", "git": "git", "exit-status": "sh"}[case]
    if not shutil.which(need, path="/usr/local/bin:/usr/bin:/bin"):
        c.fatal("%s is not installed (Debian package %s): it is a test dependency" %
                (need, {"sqlite3": "sqlite3", "git": "git"}.get(need, need)))
    tmp = tempfile.mkdtemp(prefix="ht-real-%s-" % case)
    try:
        CASES[case](c, ht, tmp)
    finally:
        remove_tmp(c, tmp)
    c.finish()


if __name__ == "__main__":
    sys.exit(main())
