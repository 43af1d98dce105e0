#!/usr/bin/env python3
"""bench/attach_latency.py - how fast `heaptrace attach` and `detach` act.

    bench/attach_latency.py [--build-dir DIR] [--cycles N] [--out FILE]

Starts bench/workloads/steady.c (2 threads, a malloc/free pair every ~10 us
each) with libheaptrace.so preloaded, then measures, N times each:

  attach -> first event   from launching `heaptrace attach` to the wall-clock
                          time of the first heap event in its trace (the
                          trace header's CLOCK_REALTIME origin + the event's
                          ts): process start-up of heaptrace, connect,
                          handshake, the region mapped in the target
  attach command, total   launching `heaptrace attach -d 0.05 -q` to its exit
                          (0.05 s of that is the duration)
  detach                  launching `heaptrace detach PID` to its exit: the
                          target has stopped writing (every thread out of
                          its record window) and unmapped the region
  detach -> trace done    launching `detach` to the exit of the `attach`
                          that was recording (its trace complete)

Prints a Markdown table (median, p10, p90 in ms) with the machine, and
writes it to bench/attach-latency.md (or --out).  Public tools only.
"""
import argparse, csv, os, platform, statistics, struct, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


def first_event_real_ns(ht, trace):
    with open(trace, "rb") as f:
        hdr = f.read(256)
    start_real = struct.unpack_from("<Q", hdr, 32)[0]
    out = subprocess.run([ht, "dump", trace, "--format", "csv"], capture_output=True, text=True, check=True)
    for row in csv.DictReader(out.stdout.splitlines()):
        if row["event"] in ("alloc", "free", "realloc"):
            return start_real + int(row["ts_ns"])
    return None


def wait_state(ht, env, pid, want, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        r = subprocess.run([ht, "status", str(pid)], capture_output=True, text=True, env=env)
        if ("state            " + want) in r.stdout:
            return True
        time.sleep(0.002)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"))
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--out", default=os.path.join(HERE, "attach-latency.md"))
    a = ap.parse_args()
    ht = os.path.join(a.build_dir, "heaptrace")
    rt = os.path.join(a.build_dir, "libheaptrace.so")
    if not (os.access(ht, os.X_OK) and os.path.exists(rt)):
        sys.exit("attach_latency: build heaptrace first (bench/run does, into build-bench)")
    work = tempfile.mkdtemp(prefix="htattach.")
    exe = os.path.join(work, "steady")
    subprocess.run(["cc", "-O2", "-pthread", "-o", exe, os.path.join(HERE, "workloads", "steady.c")], check=True)
    rundir = os.path.join(work, "run")
    os.mkdir(rundir, 0o700)
    env = dict(os.environ, HEAPTRACE_RUNTIME_DIR=rundir)
    target = subprocess.Popen([exe, "2"], env=dict(env, LD_PRELOAD=rt))
    res = {"attach -> first event": [], "attach command, total (-d 0.05)": [], "detach": [],
           "detach -> trace done": []}
    try:
        sock = os.path.join(rundir, "%d.sock" % target.pid)
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        for i in range(a.cycles):
            trace = os.path.join(work, "a%d.htrace" % i)
            t0 = time.time_ns()
            subprocess.run([ht, "attach", "-q", "-d", "0.05", "-o", trace, str(target.pid)], env=env, check=True)
            t1 = time.time_ns()
            fe = first_event_real_ns(ht, trace)
            res["attach -> first event"].append((fe - t0) / 1e6)
            res["attach command, total (-d 0.05)"].append((t1 - t0) / 1e6)
            os.unlink(trace)
            rec = subprocess.Popen([ht, "attach", "-q", "-o", trace, str(target.pid)], env=env)
            if not wait_state(ht, env, target.pid, "tracing"):
                sys.exit("attach_latency: the session did not start")
            time.sleep(0.02)
            t0 = time.time_ns()
            subprocess.run([ht, "detach", str(target.pid)], env=env, check=True)
            t1 = time.time_ns()
            rec.wait(timeout=30)
            t2 = time.time_ns()
            res["detach"].append((t1 - t0) / 1e6)
            res["detach -> trace done"].append((t2 - t0) / 1e6)
            os.unlink(trace)
    finally:
        target.kill()
        target.wait()
        subprocess.run(["rm", "-rf", work])
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = ["# attach / detach latency", "",
             "Produced by `bench/attach_latency.py --cycles %d` on %s." % (a.cycles, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
             "Machine: %s, %d CPUs, Linux %s.  Target: bench/workloads/steady.c, 2 threads, "
             "libheaptrace.so preloaded." % (cpu, os.cpu_count(), platform.release()), "",
             "| figure | median ms | p10 ms | p90 ms |", "|---|---:|---:|---:|"]
    for k, v in res.items():
        lines.append("| %s | %.2f | %.2f | %.2f |" % (k, statistics.median(v), pct(v, 0.1), pct(v, 0.9)))
    md = "\n".join(lines) + "\n"
    sys.stdout.write(md)
    with open(a.out, "w") as f:
        f.write(md)


if __name__ == "__main__":
    main()
