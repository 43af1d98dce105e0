#!/usr/bin/env python3
"""check_rt.py HEAPTRACE RT_CASES PLUGIN MODE

Records `rt_cases MODE` and checks that the program ran unchanged and that
the trace accounts for every heap call it made in the 13000..13999-byte range
(a realloc moves a block along, it is not counted):
recorded + lost == calls (block mode: lost must be 0, except for events a
signal handler made while its thread was writing a record, which the runtime
counts as lost by design), each freed block was allocated, the records of
each process are in time order, and both images of an exec'd process are in
the trace under one pid."""
import csv, os, subprocess, sys, tempfile

ht, prog, plugin, mode = sys.argv[1:5]
args = [prog, mode] + ([plugin] if mode == "dlopen" else [])


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check_once(plain, record_opts):
    with tempfile.TemporaryDirectory() as d:
        trace = os.path.join(d, "t.htrace")
        rec = subprocess.run([ht, "record", "-q", "-o", trace] + record_opts + ["--"] + args,
                             capture_output=True, text=True, timeout=300)
        if rec.returncode != 0:
            fail(f"{mode}: exit {rec.returncode} under heaptrace: {rec.stderr}")
        calls = int(rec.stdout.split()[1])
        if rec.stdout.split()[0] != "calls" or (mode != "signals" and rec.stdout != plain.stdout):
            fail(f"{mode}: stdout changed: {rec.stdout!r} vs {plain.stdout!r}")
        dump = subprocess.run([ht, "dump", trace, "--format", "csv"], capture_output=True, text=True)
        if dump.returncode != 0:
            fail(f"{mode}: dump failed: {dump.stderr}")

    live, recorded, lost, pids, processes = {}, 0, 0, set(), 0
    last_ts, inversions = {}, 0
    for row in csv.DictReader(dump.stdout.splitlines()):
        ev = row["event"]
        ts = int(row["ts_ns"])
        if ts < last_ts.get(row["pid"], 0):
            inversions += 1
        last_ts[row["pid"]] = max(ts, last_ts.get(row["pid"], 0))
        if ev == "lost":
            lost += int(row["detail"])
        elif ev == "process":
            processes += 1
            pids.add(row["pid"])
        elif ev == "alloc" and row["size"] and 13000 <= int(row["size"]) < 14000:
            recorded += 1
            live[(row["pid"], row["address"])] = True
        elif ev == "realloc" and (row["pid"], row["old_address"]) in live:
            del live[(row["pid"], row["old_address"])]  # not counted: the block moves on
            live[(row["pid"], row["new_address"])] = True
        elif ev == "free" and (row["pid"], row["address"]) in live:
            del live[(row["pid"], row["address"])]
            recorded += 1

    if inversions:
        fail(f"{mode}: {inversions} records out of time order")
    if recorded + lost != calls:
        fail(f"{mode}: recorded {recorded} + lost {lost} != {calls} calls")
    if mode != "signals" and lost:
        fail(f"{mode}: {lost} events lost in block mode")
    if live:
        fail(f"{mode}: {len(live)} blocks of the test never freed in the trace")
    if mode == "exec" and (processes != 2 or len(pids) != 1):
        fail(f"exec: expected 2 process images of one pid, got {processes} images of {len(pids)} pids")
    print(f"ok: {mode}: {calls} calls, {recorded} recorded, {lost} lost")


plain = subprocess.run(args, capture_output=True, text=True)
if plain.returncode != 0:
    fail(f"{mode}: program failed without heaptrace: {plain.stderr}")
if mode == "burst":
    # 4 KiB x 64 buffers: dozens of full buffers of one thread are waiting
    # for the collector when the process exits; it is a race, so 5 times
    for _ in range(5):
        check_once(plain, ["-b", "4K", "-n", "64"])
elif mode == "backlog":
    check_once(plain, ["-b", "4K", "-n", "128"])
elif mode == "interleave":
    for _ in range(3):  # the final drain races the last rounds
        check_once(plain, ["-b", "16K", "-n", "512"])
elif mode == "errno":
    # small buffers: many sub-buffer switches; and the stack walkers' paths
    for opts in (["-b", "4K", "-n", "16"], ["--stacks", "fp"], ["--stacks", "dwarf", "--stack-events", "all"]):
        check_once(plain, opts)
else:
    check_once(plain, [])
