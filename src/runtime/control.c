/*
 * control.c - the control endpoint and the end of sessions.
 *
 * Every process with the runtime loaded (not setuid/setgid) runs one
 * listener thread, all signals blocked, serving <control dir>/<pid>.sock
 * (ctl.h).  Peers must be of our uid or root (SO_PEERCRED).  Requests:
 *   QUERY   the session's state and the collector's figures (STATUS)
 *   ATTACH  start a session: we say HELLO, the collector sends SESSION with
 *           the region; that connection is the session's from then on
 *   DETACH  end the session
 * The listener also watches the session connection: STOP from the
 * collector, or the connection closing (collector gone, even SIGKILLed),
 * ends the session, and so does the collector's heartbeat stopping
 * (a thread waiting for a buffer gives up and sets ht__on to 0).
 *
 * Ending a session while threads may be writing into the region: ht__on
 * goes to 0, membarrier() makes every thread's earlier in_emit store visible
 * (rt.h, ht__enter), then every thread in the registry is waited for until
 * it is outside the record window.  Only then is the region unmapped.  A
 * registered thread's TLS is read with process_vm_readv, which fails
 * instead of faulting should the thread be gone.  If that wait does not
 * finish (a thread stopped mid-record) or membarrier is unavailable, the
 * region is replaced by anonymous memory at the same address instead: a late
 * writer then writes into memory nobody reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../common/ctl.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "rt.h"

/* ---- thread registry ---- */

#define REG_MAX 4096
static ht_tls *_Atomic registry[REG_MAX];
static _Atomic uint32_t reg_hint;

int ht__register_thread(ht_tls *t)
{
    uint32_t h = ht_atomic_load_relaxed(&reg_hint);
    for (uint32_t k = 0; k < REG_MAX; k++) {
        uint32_t i = (h + k) % REG_MAX;
        ht_tls *expect = NULL;
        if (ht_atomic_load_relaxed(&registry[i]) == NULL &&
            atomic_compare_exchange_strong(&registry[i], &expect, t)) {
            t->reg = i + 1;
            ht_atomic_store_relaxed(&reg_hint, i + 1);
            return 1;
        }
    }
    return 0;
}

void ht__unregister_thread(ht_tls *t)
{
    if (t->reg && t->reg <= REG_MAX) ht_atomic_store_release(&registry[t->reg - 1], NULL);
    t->reg = 0;
}

/* ---- state of the endpoint ---- */

int ht__ctl_fd = -1; /* listening socket of the endpoint */
static pid_t owner;               /* the pid the endpoint is named after */
static char sock_path[108];
static int membarrier_ok;
static uint32_t collector_pid;

static int reader_ok = 1; /* process_vm_readv works here */

/* in_emit of a registered thread: 1, 0, or -1 if it cannot be read */
static int read_in_emit(ht_tls *t)
{
    uint32_t v = 0;
    if (reader_ok) {
        struct iovec local = {&v, sizeof v}, remote = {&t->in_emit, sizeof v};
        ssize_t n = syscall(SYS_process_vm_readv, getpid(), &local, 1UL, &remote, 1UL, 0UL);
        if (n == (ssize_t)sizeof v) return v != 0;
        if (errno == EFAULT) return -1;
        reader_ok = 0; /* ENOSYS, EPERM (seccomp): read it directly */
    }
    return __atomic_load_n(&t->in_emit, __ATOMIC_RELAXED) != 0;
}

/* 1 when no thread is inside the record window of the ended session. */
static int quiesce(void)
{
    if (!membarrier_ok) return 0;
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) return 0;
    struct timespec nap = {0, 200000};
    for (int i = 0; i < REG_MAX; i++) {
        ht_tls *t = ht_atomic_load_acquire(&registry[i]);
        if (!t) continue;
        for (int tries = 0;; tries++) {
            int r = read_in_emit(t);
            if (r <= 0) break;
            if (ht_atomic_load_acquire(&registry[i]) != t) break; /* it exited meanwhile */
            if (tries > 10000) return 0;                           /* ~2 s: give up */
            nanosleep(&nap, NULL);
        }
    }
    return 1;
}

static void send_ctl(int fd, uint32_t type, uint32_t op, uint32_t status)
{
    ht_msg_ctl m;
    ht_msg_init(&m, sizeof m, type);
    m.op = op;
    m.status = status;
    ssize_t w = send(fd, &m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
}

/* Ends the current session (listener thread only). */
static void end_session(uint32_t reason)
{
    ht_shm_hdr *h = ht__sess.shm;
    if (!h) return;
    ht_atomic_store_release((_Atomic uint32_t *)&ht__on, 0);
    /* threads sleeping for a free buffer look at ht__on when woken */
    ht_atomic_add_acq_rel(&h->free_seq, 1);
    syscall(SYS_futex, &h->free_seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    if (quiesce()) {
        munmap(h, ht__sess.shm_size);
    } else if (mmap(h, ht__sess.shm_size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
        /* cannot swap it out: keep the shared mapping rather than fault */
    }
    ht__sess.shm = NULL;
    int s = ht__sess.sock_fd, e = ht__sess.event_fd;
    ht__sess.sock_fd = ht__sess.event_fd = -1;
    if (s >= 0) send_ctl(s, HT_MSG_END, reason, HT_PROTO_OK);
    ht__fd_close(s);
    ht__fd_close(e);
    collector_pid = 0;
}

/* ---- requests ---- */

static void fill_status(ht_msg_status *st)
{
    memset(st, 0, sizeof *st);
    ht_msg_init(st, sizeof *st, HT_MSG_STATUS);
    st->pid = (uint32_t)getpid();
    ht_shm_hdr *h = ht__sess.shm;
    if (!h || !ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on)) return;
    st->tracing = 1;
    st->collector_pid = collector_pid;
    st->events = ht_atomic_load_relaxed(&h->st_events);
    st->lost = ht_atomic_load_relaxed(&h->st_lost) + ht_atomic_load_relaxed(&h->lost_unreported);
    st->bytes = ht_atomic_load_relaxed(&h->st_bytes);
    st->subbufs_written = ht_atomic_load_relaxed(&h->st_subbufs);
    st->subbufs_total = ht__sess.subbuf_count;
    for (uint32_t i = 0; i < ht__sess.subbuf_count; i++)
        if (ht_atomic_load_relaxed(&ht_shm_subbuf(h, i)->state) != HT_SB_FREE) st->subbufs_in_use++;
    /* the collector's text: copy, bounded, terminated */
    for (size_t i = 0; i + 1 < sizeof st->trace && i < sizeof h->trace_path && h->trace_path[i]; i++)
        st->trace[i] = h->trace_path[i];
}

static void attach(int fd, uint32_t peer)
{
    if (ht__sess.shm) {
        send_ctl(fd, HT_MSG_REPLY, HT_OP_ATTACH, HT_PROTO_BUSY);
        close(fd);
        return;
    }
    ht_msg_hello hello;
    memset(&hello, 0, sizeof hello);
    ht_msg_init(&hello, sizeof hello, HT_MSG_HELLO);
    hello.pid = (uint32_t)getpid();
    hello.ppid = (uint32_t)getppid();
    hello.runtime_version = 1;
    ht_msg_session msg;
    int fds[2] = {-1, -1};
    int got = -1;
    if (send(fd, &hello, sizeof hello, MSG_NOSIGNAL) == (ssize_t)sizeof hello)
        got = ht__recv_session(fd, &msg, fds);
    if (got != 2 || msg.status != HT_PROTO_OK) {
        if (fds[0] >= 0) close(fds[0]);
        if (fds[1] >= 0) close(fds[1]);
        close(fd);
        return;
    }
    if (ht__session_install(fd, &msg, fds) < 0) {
        close(fd);
        return;
    }
    collector_pid = peer;
}

static void serve(int fd)
{
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
        close(fd);
        return;
    }
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ht_msg_ctl req;
    ssize_t n = recv(fd, &req, sizeof req, 0);
    if (cr.uid != geteuid() && cr.uid != 0) {
        /* after reading the request: closing on unread data would reset
         * the connection before the client could read why */
        send_ctl(fd, HT_MSG_REPLY, 0, HT_PROTO_DENIED);
        close(fd);
        return;
    }
    if (!ht_msg_ok(&req, n, sizeof req, HT_MSG_REQUEST)) {
        send_ctl(fd, HT_MSG_REPLY, 0, HT_PROTO_BAD);
        close(fd);
        return;
    }
    switch (req.op) {
    case HT_OP_QUERY: {
        ht_msg_status st;
        fill_status(&st);
        ssize_t w = send(fd, &st, sizeof st, MSG_NOSIGNAL);
        (void)w;
        break;
    }
    case HT_OP_DETACH:
        if (ht__sess.shm) {
            end_session(HT_END_DETACHED);
            send_ctl(fd, HT_MSG_REPLY, req.op, HT_PROTO_OK);
        } else {
            send_ctl(fd, HT_MSG_REPLY, req.op, HT_PROTO_NOT_TRACING);
        }
        break;
    case HT_OP_ATTACH: attach(fd, (uint32_t)cr.pid); return;
    default: send_ctl(fd, HT_MSG_REPLY, req.op, HT_PROTO_BAD); break;
    }
    close(fd);
}

/* A message (or the end) on the session connection. */
static void session_input(void)
{
    ht_msg_ctl m;
    ssize_t n = recv(ht__sess.sock_fd, &m, sizeof m, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        end_session(HT_END_COLLECTOR_GONE);
        return;
    }
    if (ht_msg_ok(&m, n, sizeof m, HT_MSG_REQUEST) && m.op == HT_OP_STOP) end_session(HT_END_STOPPED);
}

static void *listener(void *arg)
{
    (void)arg;
    ht__tls.nest = 1; /* nothing this thread does is the program's event */
    for (;;) {
        struct pollfd pf[2] = {{ht__ctl_fd, POLLIN, 0}, {-1, POLLIN, 0}};
        int active = ht__sess.shm != NULL;
        if (active) pf[1].fd = ht__sess.sock_fd;
        int r = poll(pf, 2, active ? 250 : -1);
        if (r < 0 && errno != EINTR) {
            struct timespec nap = {0, 10000000};
            nanosleep(&nap, NULL);
            continue;
        }
        if (active && ht__sess.shm && !ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on)) {
            end_session(HT_END_COLLECTOR_GONE); /* a writer saw the heartbeat stop */
            continue;
        }
        if (r <= 0) continue;
        if (active && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) session_input();
        if (pf[0].revents & POLLIN) {
            int fd = accept4(ht__ctl_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) serve(fd);
        }
    }
    return NULL;
}

/* The process exits: tell the collector how (exit() or return from main;
 * a fatal signal leaves only the connection closing). */
static void on_exit_hook(int status, void *arg)
{
    (void)arg;
    int s = ht__sess.sock_fd;
    if (s >= 0 && getpid() == owner) send_ctl(s, HT_MSG_EXIT, 0, (uint32_t)(status & 0xff) << 8);
    if (ht__ctl_fd >= 0 && getpid() == owner) unlink(sock_path);
}

static void start_listener(void)
{
    char dir[108];
    /* a directory others could enter or that is not ours: no endpoint, and
     * nothing printed (the program's stderr is not ours); `heaptrace
     * attach` names the likely reasons */
    if (ht_ctl_dir(dir, sizeof dir, 1) < 0) return;
    owner = getpid();
    if (ht_ctl_sock_path(sock_path, sizeof sock_path, dir, (uint32_t)owner) < 0) return;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    unlink(sock_path); /* a stale one of an earlier image or a dead process of this pid */
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || listen(fd, 16) < 0) {
        close(fd);
        return;
    }
    ht__ctl_fd = ht__fd_hide(fd);
    sigset_t all, prev;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &prev);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 128 * 1024);
    pthread_t th;
    ht__tls.nest++;
    rc = pthread_create(&th, &at, listener, NULL);
    ht__tls.nest--;
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &prev, NULL);
    if (rc != 0) {
        ht__fd_close(ht__ctl_fd);
        ht__ctl_fd = -1;
        unlink(sock_path);
    }
}

void ht__control_start(void)
{
    static int started;
    if (started) return;
    started = 1;
    if (getauxval(AT_SECURE)) return; /* never for setuid/setgid programs */
    const char *off = getenv("HEAPTRACE_CONTROL");
    if (off && !strcmp(off, "0")) return;
    membarrier_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    ht__tls.nest++;
    on_exit(on_exit_hook, NULL);
    ht__tls.nest--;
    start_listener();
}

/* In a forked child (one thread; the parent's listener is not here): the
 * registry's other threads do not exist, the endpoint is our own pid's. */
void ht__control_after_fork(void)
{
    if (membarrier_ok) /* registration belongs to the address space */
        membarrier_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    for (int i = 0; i < REG_MAX; i++) ht_atomic_store_relaxed(&registry[i], NULL);
    collector_pid = 0;
    if (ht__ctl_fd < 0) return; /* the parent had none (setuid, disabled, failed) */
    ht__fd_close(ht__ctl_fd);
    ht__ctl_fd = -1;
    start_listener();
}

__attribute__((destructor)) static void control_fini(void)
{
    if (ht__ctl_fd >= 0 && getpid() == owner) unlink(sock_path);
}
