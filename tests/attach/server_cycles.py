#!/usr/bin/env python3
"""server_cycles.py HT_CLI HT_RUNTIME TARGET SECURE

memcached (Debian package memcached), started with the runtime preloaded on
a free port of 127.0.0.1 with 4 worker threads, serves a load client for the
whole test: 4 connections, each in its own thread, set / get / delete of
random values of 1..20000 bytes over its own 400 keys (memcache text
protocol), checking every answer.  Meanwhile heaptrace attaches and detaches
>= 300 times (HT_SERVER_CYCLES overrides): --duration 0.01, background +
detach, background + SIGINT.  Asserts:
  - every attach / detach exits 0; every 50th trace is complete, with only
    memcached's pid in it;
  - memcached answers correctly throughout: every get after a set returns
    exactly the value set, deletes delete, no connection error;
  - memcached is alive at the end; its fd count and thread count after the
    cycles are not above what they were after 20 warm-up cycles (idle);
  - a longer session (0.5 s) at the end records heap events of memcached.
Skipped (exit 0, SKIP line) only if memcached is not installed.
"""
import os
import random
import shutil
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attach_util import Ctx, check_no_growth, warmup_baseline, tally, settled_stats  # noqa: E402

CYCLES = int(os.environ.get("HT_SERVER_CYCLES", "300"))
WARMUP = 20
CONNS = 4
KEYS = 400


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Client(threading.Thread):
    def __init__(self, port, n, stop):
        super().__init__(daemon=True)
        self.port, self.n, self.stop = port, n, stop
        self.ops = 0
        self.errors = []
        self.rng = random.Random(1000 + n)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("connection closed by memcached")
            self.buf += d
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i], self.buf[i + 2:]
        return ln

    def exact(self, n):
        while len(self.buf) < n + 2:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("connection closed by memcached")
            self.buf += d
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def get(self, key):
        self.sock.sendall(b"get " + key + b"\r\n")
        ln = self.line()
        if ln == b"END":
            return None
        w = ln.split()
        if len(w) != 4 or w[0] != b"VALUE" or w[1] != key:
            raise ValueError("get %r: unexpected %r" % (key, ln[:80]))
        data = self.exact(int(w[3]))
        end = self.line()
        if end != b"END":
            raise ValueError("get %r: no END but %r" % (key, end[:80]))
        return data

    def run(self):
        try:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            model = {}
            while not self.stop.is_set():
                key = b"k%d-%d" % (self.n, self.rng.randrange(KEYS))
                op = self.rng.random()
                if op < 0.45:
                    size = self.rng.randint(1, 20000)
                    val = (b"%d:" % self.ops + bytes(self.rng.getrandbits(8) | 0x20 for _ in range(16)) *
                           (size // 16 + 1))[:size]
                    self.sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(val), val))
                    ln = self.line()
                    if ln != b"STORED":
                        raise ValueError("set %r: %r" % (key, ln[:80]))
                    model[key] = val
                    got = self.get(key)
                    if got != val:
                        raise ValueError("get %r right after set: %s" %
                                         (key, "missing" if got is None else "%d bytes differ" % len(got)))
                elif op < 0.55:
                    self.sock.sendall(b"delete " + key + b"\r\n")
                    ln = self.line()
                    want = b"DELETED" if key in model else b"NOT_FOUND"
                    if ln != want:
                        raise ValueError("delete %r: %r, want %r" % (key, ln, want))
                    model.pop(key, None)
                elif op < 0.56:
                    self.sock.sendall(b"stats\r\n")
                    while self.line() != b"END":
                        pass
                else:
                    got = self.get(key)
                    if got != model.get(key):
                        raise ValueError("get %r: %s, want %s" % (key, "missing" if got is None else
                                                                  "%d bytes" % len(got),
                                                                  "missing" if key not in model else
                                                                  "%d bytes" % len(model[key])))
                self.ops += 1
            self.sock.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append("connection %d after %d ops: %r" % (self.n, self.ops, e))


def body(x):
    c = x.c
    mc = shutil.which("memcached") or ("/usr/bin/memcached" if os.path.exists("/usr/bin/memcached") else None)
    if not mc:
        print("  SKIP  memcached is not installed (scripts/install-deps.sh installs it)")
        return
    port = free_port()
    cmd = [mc, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "4", "-m", "128", "-c", "64"]
    if x.is_root:
        cmd += ["-u", "root"]
    srv = x.start(cmd, env=x.env(preload=True))
    pid = srv.pid
    if not c.check(x.wait_endpoint(pid), "memcached %d (runtime preloaded) opens its endpoint" % pid):
        c.fatal("no endpoint; memcached stderr %r" % x.read(srv.err_path)[-300:])
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    stop = threading.Event()
    clients = [Client(port, n, stop) for n in range(CONNS)]
    for cl in clients:
        cl.start()
    time.sleep(0.3)

    fails = []
    base = None
    checked = 0
    for i in range(CYCLES):
        if srv.poll() is not None:
            fails.append("cycle %d: memcached ended: status %s, stderr %r" % (i, srv.returncode,
                                                                             x.read(srv.err_path)[-300:]))
            break
        trace = os.path.join(x.tmp, "s%d.htrace" % i)
        k = i % 4
        if k in (0, 1):
            r = x.ht("attach", pid, "-d", "0.01", "-q", "-o", trace, timeout=30)
            if r.rc != 0:
                fails.append("cycle %d: attach -d 0.01: %s" % (i, r.short()))
        else:
            p = x.attach_bg(pid, trace)
            if not x.wait_attached(p, pid):
                fails.append("cycle %d: attach never said attached: %r" % (i, x.read(p.err_path)[-300:]))
            time.sleep(0.005)
            x.end_attach(p, pid, k == 2, fails, "cycle %d" % i, timeout=30)
        if i % 50 == 49:
            tl = tally(x.htcli, trace)
            checked += 1
            if not tl.finished or set(tl.heap_by_pid) - {pid}:
                fails.append("cycle %d: trace: %s, heap events by pid %r" % (i, tl.describe(), tl.heap_by_pid))
        if os.path.exists(trace):
            os.unlink(trace)
        if i + 1 == WARMUP:
            base = warmup_baseline(x, pid, WARMUP)
        if len(fails) > 20:
            break
    for f in fails[:10]:
        print("  ..    " + f)
    c.eq(len(fails), 0, "failed attach/detach cycles (exit status, traces) in %d cycles" % (i + 1))
    c.check(i + 1 == CYCLES, "all %d cycles ran" % CYCLES)

    trace = os.path.join(x.tmp, "long.htrace")
    r = x.ht("attach", pid, "-d", "0.5", "-o", trace, timeout=60)
    c.eq(r.rc, 0, "a 0.5 s session at the end: exit status (%s)" % r.short())
    tl = tally(x.htcli, trace)
    c.check(tl.finished and tl.heap_by_pid.get(pid, 0) > 0 and set(tl.heap_by_pid) == {pid},
            "the 0.5 s trace is complete with heap events of memcached only: %s, by pid %r" %
            (tl.describe(), tl.heap_by_pid))

    x.wait_state(pid, "idle", 10)
    end = settled_stats(pid)
    print("  info  after the cycles: %r" % (end,), flush=True)
    check_no_growth(c, "memcached", base, end)

    stop.set()
    for cl in clients:
        cl.join(timeout=30)
    ops = sum(cl.ops for cl in clients)
    errs = [e for cl in clients for e in cl.errors]
    c.eq(errs, [], "memcached's answers to the load client (%d operations on %d connections)" % (ops, CONNS))
    c.check(all(cl.ops > 100 for cl in clients), "every connection kept working: ops %r" %
            [cl.ops for cl in clients])
    c.check(srv.poll() is None, "memcached is alive at the end")
    os.kill(pid, signal.SIGTERM)
    rc = x.wait_proc(srv, 30)
    c.eq(rc, 0, "memcached exits 0 on SIGTERM (stderr %r)" % x.read(srv.err_path)[-300:])


if __name__ == "__main__":
    Ctx("server_cycles").main(body)
