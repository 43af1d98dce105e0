#!/usr/bin/env python3
"""security.py HT_CLI HT_RUNTIME TARGET SECURE

Who may attach, and where the runtime opens no endpoint.

Any user:
  - trace files written by `record` and `attach` are mode 0600, even with
    umask 000;
  - with HEAPTRACE_RUNTIME_DIR group/world accessible (0755, 0750) the
    preloaded target opens no endpoint (no PID.sock appears) and
    `heaptrace attach` / `status` fail with exit 1; the target works on
    unaffected (checksum == untraced).  Control: with a 0700 directory the
    endpoint appears.  HEAPTRACE_CONTROL=0 (README): no endpoint either.
As root (CI), with a throwaway system user heaptrace-test-attach (useradd,
removed with userdel at the end):
  - a target running as that user: root attaches (exit 0, events recorded);
  - a target running as root: the user's `heaptrace attach` fails with
    exit 1 and one line containing "permission denied" - both when the
    user cannot reach root's runtime directory, and when it can (ambient
    CAP_DAC_OVERRIDE: only the SO_PEERCRED check stands in the way); with
    that capability the user's `status` and `detach` are refused as well (a
    root session the user tries to detach goes on), and the user's `ps`
    does not list root's process; the target is unaffected;
  - AT_SECURE: a setuid copy (owned by the user, u+s) and a setgid copy
    (g+s, the user's group) of ht_attach_secure (linked with
    libheaptrace.so), run by root: no PID.sock appears in the runtime
    directories a careless runtime would use, `heaptrace attach` fails, and
    `heaptrace record` of the setuid copy records no heap event (and does
    not hang).  Control: the same setuid file run by its owner (no
    AT_SECURE) opens its endpoint.
Without root, the root-only parts are listed as skipped.
"""
import os
import socket
import pwd
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attach_util import Ctx, tally, file_mode  # noqa: E402


def one_line(r, pid):
    lines = r.err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("heaptrace: attach %d:" % pid)


def stop_and_check(x, t, label):
    """SIGUSR1 to a `work 0` target; its output must equal the untraced one."""
    c = x.c
    os.kill(t.pid, signal.SIGUSR1)
    rc = x.wait_proc(t, 60)
    out = x.read(t.out_path).strip()
    c.eq(rc, 0, "%s: the target's exit status (stderr %r)" % (label, x.read(t.err_path)[-300:]))
    w = out.split()
    if c.check(len(w) == 6 and w[5] == "0", "%s: target output %r" % (label, out)):
        e = x.run([x.target, "expect", w[1]], timeout=60)
        c.eq(out, e.out.strip(), "%s: the target's checksum vs untraced" % label)


def wait_progress(x, path, n, timeout=10):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if int(x.read(path).split()[0]) >= n:
                return True
        except (IndexError, ValueError):
            pass
        time.sleep(0.01)
    return False


def first_line(x, p, seconds=5):
    """What the started program printed first (it says its ids), or ""."""
    for _ in range(int(seconds * 100)):
        line = x.read(p.out_path)
        if line:
            return line
        time.sleep(0.01)
    return ""


def socks_of(pid, dirs):
    """The endpoints <pid>.sock in dirs that something listens on.  A socket
    file nobody listens on is a stale one, left by an earlier process of the
    same pid that was killed or exec'd (shared directories such as
    /tmp/heaptrace-0 collect them across runs); it says nothing about this
    process."""
    live = []
    for d in dirs:
        path = os.path.join(d, "%d.sock" % pid)
        if not os.path.exists(path):
            continue
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(path)
            live.append(path)
        except ConnectionRefusedError:
            pass
        except OSError as e:
            live.append("%s (%s)" % (path, e.strerror))
        finally:
            s.close()
    return live


def any_user_parts(x):
    c = x.c
    # ---- trace file modes, umask 000 ----
    trace = os.path.join(x.tmp, "rec-mode.htrace")
    r = x.ht("record", "-q", "-o", trace, "--", x.target, "work", "2", umask=0)
    c.eq(r.rc, 0, "record with umask 000: exit status (%s)" % r.short())
    c.eq(file_mode(trace), 0o600, "mode of the trace record wrote with umask 000")
    t = x.start_target(["work", "0"])
    if c.check(x.wait_endpoint(t.pid), "control: with a 0700 runtime directory target %d opens its endpoint" % t.pid):
        trace = os.path.join(x.tmp, "att-mode.htrace")
        r = x.ht("attach", t.pid, "-d", "0.1", "-q", "-o", trace, umask=0)
        c.eq(r.rc, 0, "attach with umask 000: exit status (%s)" % r.short())
        c.eq(file_mode(trace), 0o600, "mode of the trace attach wrote with umask 000")
    stop_and_check(x, t, "mode check target")

    # ---- runtime directory group/world accessible ----
    for mode in (0o755, 0o750):
        label = "runtime directory mode %04o" % mode
        d = os.path.join(x.tmp, "rt-%o" % mode)
        os.mkdir(d)
        os.chmod(d, mode)
        progress = os.path.join(x.tmp, "progress-%o" % mode)
        t = x.start_target(["work", "0", progress], rtdir=d)
        c.check(wait_progress(x, progress, 5), "%s: the target runs" % label)
        time.sleep(0.3)
        c.eq(os.listdir(d), [], "%s: nothing created in it (no %d.sock)" % (label, t.pid))
        r = x.ht("attach", t.pid, "-d", "0.1", "-o", os.path.join(x.tmp, "no.htrace"), rtdir=d, timeout=30)
        c.check(r.rc == 1 and one_line(r, t.pid),
                "%s: attach fails: exit 1, one line 'heaptrace: attach %d: ...' (%s)" % (label, t.pid, r.short()))
        rc, st, err = x.status(t.pid, rtdir=d)
        c.eq(rc, 1, "%s: status fails (stderr %r)" % (label, err.strip()))
        stop_and_check(x, t, label)


    # ---- HEAPTRACE_CONTROL=0: no endpoint (README) ----
    label = "HEAPTRACE_CONTROL=0"
    d = os.path.join(x.tmp, "rt-off")
    os.mkdir(d, 0o700)
    progress = os.path.join(x.tmp, "progress-off")
    t = x.start_target(["work", "0", progress], env=x.env(preload=True, rtdir=d, extra={"HEAPTRACE_CONTROL": "0"}))
    c.check(wait_progress(x, progress, 5), "%s: the target runs" % label)
    time.sleep(0.3)
    c.eq(os.listdir(d), [], "%s: nothing created in the private runtime directory" % label)
    r = x.ht("attach", t.pid, "-d", "0.1", "-o", os.path.join(x.tmp, "no.htrace"), rtdir=d, timeout=30)
    c.check(r.rc == 1 and one_line(r, t.pid), "%s: attach fails with one line (%s)" % (label, r.short()))
    stop_and_check(x, t, label)


def make_user(x):
    # one fixed name: a run that was killed leaves at most this one behind,
    # and the next run reuses it (and removes it at its end)
    name = "heaptrace-test-attach"
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        r = x.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name])
        if r.rc != 0:
            x.c.fatal("useradd %s failed: %s" % (name, r.short()))
        pw = pwd.getpwnam(name)
    x.cleanups.append(lambda: subprocess.run(["userdel", name], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL))
    print("  info  test user %s uid %d gid %d" % (name, pw.pw_uid, pw.pw_gid), flush=True)
    return name, (pw.pw_uid, pw.pw_gid)


def user_dir(x, name, owner, mode=0o700):
    d = os.path.join(x.tmp, name)
    os.mkdir(d)
    os.chown(d, owner[0], owner[1])
    os.chmod(d, mode)
    return d


def root_parts(x):
    c = x.c
    os.chmod(x.tmp, 0o755)  # the test user works in here
    name, user = make_user(x)
    uid, gid = user
    bindir = user_dir(x, "bin", (0, 0), 0o755)
    for f in (x.htcli, x.runtime, x.target):
        shutil.copy2(f, bindir)
    ucli = os.path.join(bindir, os.path.basename(x.htcli))
    ulib = os.path.join(bindir, os.path.basename(x.runtime))
    utarget = os.path.join(bindir, os.path.basename(x.target))
    urt = user_dir(x, "rt-user", user)        # the user's private runtime directory
    uhome = user_dir(x, "home-user", user)    # where the user may write

    def uht(*args, rtdir, caps=None):
        return x.run([ucli] + [str(a) for a in args], env=x.env(rtdir=rtdir, extra={"HEAPTRACE_RUNTIME": ulib}),
                     user=user, caps=caps, cwd=uhome, timeout=60)

    # ---- root attaches to the user's process ----
    label = "root -> user's target"
    progress = os.path.join(uhome, "progress")
    t = x.start([utarget, "work", "0", progress], env=x.env(preload=ulib, rtdir=urt), user=user)
    if c.check(x.wait_endpoint(t.pid, rtdir=urt), "%s: the user's target %d opens its endpoint in %s" %
               (label, t.pid, urt)):
        c.eq(os.stat(x.sock_path(t.pid, urt)).st_uid, uid, "%s: the socket belongs to the user" % label)
        trace = os.path.join(x.tmp, "root-on-user.htrace")
        r = x.ht("attach", t.pid, "-d", "0.2", "-o", trace, rtdir=urt)
        c.eq(r.rc, 0, "%s: root's attach exit status (%s)" % (label, r.short()))
        tl = tally(x.htcli, trace)
        c.check(tl.finished and tl.heap_by_pid.get(t.pid, 0) > 0,
                "%s: the trace is complete with the target's events: %s" % (label, tl.describe()))
        c.eq(file_mode(trace), 0o600, "%s: trace file mode" % label)
        r = uht("attach", t.pid, "-d", "0.1", "-q", "-o", os.path.join(uhome, "own.htrace"), rtdir=urt)
        c.eq(r.rc, 0, "%s: the user attaches to its own process (%s)" % (label, r.short()))
    stop_and_check(x, t, label)

    # ---- the user tries root's process ----
    label = "user -> root's target"
    t = x.start_target(["work", "0"])
    pid = t.pid
    if not c.check(x.wait_endpoint(pid), "%s: root's target %d opens its endpoint" % (label, pid)):
        return
    utrace = os.path.join(uhome, "stolen.htrace")
    r = uht("attach", pid, "-d", "0.2", "-o", utrace, rtdir=x.rtdir)
    c.check(r.rc == 1 and one_line(r, pid) and "permission denied" in r.err.lower(),
            "%s (root's runtime directory out of reach): exit 1, one line 'heaptrace: attach %d: "
            "...permission denied' (%s)" % (label, pid, r.short()))
    r = uht("attach", pid, "-d", "0.2", "-o", utrace, rtdir=urt)
    c.check(r.rc == 1 and one_line(r, pid),
            "%s (with the user's own runtime directory): exit 1, one line 'heaptrace: attach %d: ...' (%s)" %
            (label, pid, r.short()))
    print("  info  %s, own runtime directory: %r" % (label, r.err.strip()), flush=True)

    # Root's socket, hard-linked into a runtime directory of the user's
    # (0700, the user's): the CLI finds it there.  Without a capability the
    # socket file's mode may already stop the user; with CAP_DAC_OVERRIDE
    # connect() succeeds and only the runtime's SO_PEERCRED check refuses.
    linkdir = user_dir(x, "rt-link", user)
    os.link(x.sock_path(pid), os.path.join(linkdir, "%d.sock" % pid))
    r = uht("attach", pid, "-d", "0.2", "-o", utrace, rtdir=linkdir)
    c.check(r.rc == 1 and one_line(r, pid) and "permission denied" in r.err.lower(),
            "%s (root's socket linked into the user's directory): exit 1, one line with 'permission denied' (%s)"
            % (label, r.short()))
    caps = "+dac_override"
    probe = x.run(["python3", "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); "
                   "s.connect(sys.argv[1]); print('connected')", os.path.join(linkdir, "%d.sock" % pid)],
                  user=user, caps=caps)
    if c.check(probe.rc == 0 and "connected" in probe.out,
               "with %s the user can connect to root's socket (so the next checks test SO_PEERCRED): %s" %
               (caps, probe.short())):
        lbl = label + " (CAP_DAC_OVERRIDE, socket linked into the user's directory)"
        r = uht("attach", pid, "-d", "0.2", "-o", utrace, rtdir=linkdir, caps=caps)
        c.check(r.rc == 1 and one_line(r, pid) and "permission denied" in r.err.lower(),
                "%s: attach fails: exit 1, one line with 'permission denied' (%s)" % (lbl, r.short()))
        r = uht("status", pid, rtdir=linkdir, caps=caps)
        c.check(r.rc == 1 and "state" not in r.out, "%s: status is refused: exit 1, no state (%s, out %r)" %
                (lbl, r.short(), r.out[:200]))
        # a root session the user tries to end
        trace = os.path.join(x.tmp, "root-session.htrace")
        p = x.attach_bg(pid, trace)
        if c.check(x.wait_attached(p, pid), "%s: root attaches in the background" % lbl):
            r = uht("detach", pid, rtdir=linkdir, caps=caps)
            c.eq(r.rc, 1, "%s: the user's detach of root's session fails (%s)" % (lbl, r.short()))
            time.sleep(0.2)
            rc, st, _ = x.status(pid)
            c.check(st.get("state") == "tracing" and st.get("collector") == str(p.pid) and p.poll() is None,
                    "%s: root's session goes on: %r" % (lbl, st))
            r = x.ht("detach", pid)
            c.eq(r.rc, 0, "%s: root's own detach (%s)" % (lbl, r.short()))
        c.eq(x.wait_proc(p, 30), 0, "%s: root's attach exit status" % lbl)
        tl = tally(x.htcli, trace)
        c.check(tl.finished and tl.heap_by_pid.get(pid, 0) > 0, "%s: root's trace is complete: %s" %
                (lbl, tl.describe()))
        r, rows = x.ps(rtdir=linkdir, user=user, caps=caps)
        c.check(all(w["pid"] != pid for w in rows), "%s: the user's ps does not list root's process: %r (%s)" %
                (lbl, rows, r.short()))
    r = uht("ps", rtdir=urt)
    c.check(str(pid) not in [l.split()[0] for l in r.out.splitlines()[1:] if l.split()],
            "%s: the user's ps (own runtime directory) does not list root's process: %r" % (label, r.out))
    c.check(not os.path.exists(utrace) or os.path.getsize(utrace) == 0,
            "%s: no trace of root's process was written for the user" % label)
    rc, st, _ = x.status(pid)
    c.check(rc == 0 and st.get("state") == "idle", "%s: root's target is idle afterwards: %r" % (label, st))
    r, rows = x.ps()
    c.check(any(w["pid"] == pid and w["state"] == "idle" for w in rows), "root's ps lists its target as idle")
    stop_and_check(x, t, label)

    # ---- AT_SECURE ----
    if not os.access(x.secure, os.X_OK):
        c.fatal("%s is missing" % x.secure)
    suid = os.path.join(bindir, "secure-suid")
    sgid = os.path.join(bindir, "secure-sgid")
    shutil.copy2(x.secure, suid)
    shutil.copy2(x.secure, sgid)
    os.chown(suid, uid, gid)
    os.chmod(suid, 0o4755)
    os.chown(sgid, 0, gid)
    os.chmod(sgid, 0o2755)
    lib_ok = x.run(["test", "-r", x.runtime], user=user)
    c.check(lib_ok.rc == 0, "the test user can read %s (the setuid copy loads it through its rpath)" % x.runtime)
    xdg = user_dir(x, "xdg", user)
    rt_root2 = user_dir(x, "rt-root2", (0, 0))
    # control: the setuid file run by its owner is not AT_SECURE and opens an endpoint
    p = x.start([suid, "3"], env=x.env(rtdir=urt), user=user)
    line = first_line(x, p)
    cpid = int(line.split()[1]) if line.startswith("pid ") else -1
    c.check(cpid == p.pid and "runtime loaded" in line and x.wait_endpoint(cpid, rtdir=urt),
            "control: %s run by its owner (no AT_SECURE) opens its endpoint: %r" % (os.path.basename(suid), line))
    x.kill(p)
    for path, euid_dir, what in ((suid, urt, "setuid"), (sgid, rt_root2, "setgid")):
        label = "AT_SECURE (%s copy run by root)" % what
        env = x.env(rtdir=euid_dir, extra={"XDG_RUNTIME_DIR": xdg})
        p = x.start([path, "2"], env=env)
        line = first_line(x, p)
        w = line.split()
        started = len(w) >= 12 and w[0] == "pid"
        c.check(started and (w[3] != w[5] if what == "setuid" else w[7] != w[9]) and "runtime loaded" in line,
                "%s: runs with real != effective id and the runtime loaded: %r (stderr %r)" %
                (label, line.strip(), x.read(p.err_path)[-200:]))
        time.sleep(0.5)  # a runtime that opened an endpoint would have done it by now
        dirs = [euid_dir, urt, x.rtdir, os.path.join(xdg, "heaptrace"), "/tmp/heaptrace-0", "/tmp/heaptrace-%d" % uid]
        found = socks_of(p.pid, dirs)
        c.eq(found, [], "%s: no %d.sock in %s" % (label, p.pid, ", ".join(dirs)))
        for d in (euid_dir, x.rtdir):
            r = x.ht("attach", p.pid, "-d", "0.1", "-o", os.path.join(x.tmp, "secure.htrace"), rtdir=d, timeout=30)
            c.check(r.rc == 1 and one_line(r, p.pid), "%s: attach (runtime directory %s) fails with one line: %s" %
                    (label, d, r.short()))
        c.eq(x.wait_proc(p, 30), 0, "%s: the program exits 0" % label)

    label = "record of the setuid copy (AT_SECURE)"
    trace = os.path.join(x.tmp, "suid-record.htrace")
    r = x.ht("record", "-q", "-o", trace, "--", suid, "1", timeout=90)
    c.check(r.rc is not None, "%s: heaptrace record ends (%s)" % (label, r.short()))
    print("  info  %s: %s; program said %r" % (label, r.short(), r.out.strip()), flush=True)
    if os.path.exists(trace):
        tl = tally(x.htcli, trace)
        c.eq(tl.heap(), 0, "%s: heap events in the trace (%s)" % (label, tl.describe()))
    else:
        c.check(True, "%s: no trace written" % label)


def body(x):
    any_user_parts(x)
    if x.is_root:
        root_parts(x)
    else:
        print("  SKIP  not root: the parts that need root were not run: another user's process (root attaches to "
              "it; it cannot attach to root's; SO_PEERCRED with CAP_DAC_OVERRIDE), setuid/setgid (AT_SECURE) "
              "programs", flush=True)


if __name__ == "__main__":
    Ctx("security").main(body)
