/*
 * session.c - joining a recording session, and the process events that
 * concern it: fork, thread exit, process exit.
 *
 * record: $HEAPTRACE_SESSION names the collector's socket.  At start-up the
 * runtime connects, says HELLO, and gets the region (memfd) and the
 * collector's eventfd back.  The connection stays open (close-on-exec) so
 * the collector sees the process image end.  Only raw syscalls are used here:
 * this runs inside the first malloc of the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/proto.h"
#include "rt.h"

uint32_t ht__on = 0;
extern uint32_t ht__session_on_export __asm__("ht__session_on")
    __attribute__((alias("ht__on"), visibility("default")));
ht_session ht__sess = {.sock_fd = -1, .event_fd = -1, .clock = HT_CLOCK_MONOTONIC};
__thread ht_tls ht__tls __attribute__((tls_model("initial-exec")));

static uint32_t generation;
static pthread_key_t exit_key;
static int exit_key_ok;

static void forget_session(void)
{
    ht_atomic_store_release((_Atomic uint32_t *)&ht__on, 0);
    if (ht__sess.shm) munmap(ht__sess.shm, ht__sess.shm_size);
    int s = ht__sess.sock_fd, e = ht__sess.event_fd;
    ht__sess.sock_fd = ht__sess.event_fd = -1;
    ht__fd_close(s);
    ht__fd_close(e);
    ht__sess.shm = NULL;
}

static void join_record_session(const char *path);

/* In a forked child: never touch the parent's buffers.  The child is
 * attachable on its own pid; under record --follow-forks it joins the
 * session with a region of its own, before fork() returns. */
static void atfork_child(void)
{
    int e = errno;
    int follow = ht__sess.shm && (ht__session_flags & HT_SESS_FOLLOW_FORKS);
    forget_session();
    ht_tls keep = ht__tls; /* the same thread, on the same stack */
    memset(&ht__tls, 0, sizeof ht__tls);
    ht__tls.stk_lo = keep.stk_lo;
    ht__tls.stk_hi = keep.stk_hi;
    ht__tls.stk_cache = keep.stk_cache;
    ht__tls.unw_memo = keep.unw_memo;
    ht__control_after_fork();
    if (follow) {
        const char *path = getenv(HT_ENV_SESSION);
        if (path && *path) join_record_session(path);
    }
    errno = e;
}

int ht__recv_session(int fd, ht_msg_session *msg, int fds[2])
{
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov = {msg, sizeof *msg};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n;
    do n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < (ssize_t)sizeof *msg) return -1;
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *in = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < k; i++) {
            if (got < 2) fds[got++] = in[i];
            else close(in[i]);
        }
    }
    if (msg->magic != HT_PROTO_MAGIC || msg->type != HT_MSG_SESSION) return -1;
    return got;
}

static void join_record_session(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(path);
    if (plen >= sizeof sa.sun_path) goto fail;
    memcpy(sa.sun_path, path, plen + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) goto fail; /* collector gone */
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ht_msg_hello hello = {sizeof hello, HT_PROTO_MAGIC, HT_PROTO_VERSION, HT_MSG_HELLO,
                          (uint32_t)getpid(), (uint32_t)getppid(), 1};
    if (send(fd, &hello, sizeof hello, MSG_NOSIGNAL) != (ssize_t)sizeof hello) goto fail;
    ht_msg_session msg;
    int fds[2] = {-1, -1};
    int got = ht__recv_session(fd, &msg, fds);
    if (got < 0 || msg.status != HT_PROTO_OK || got != 2) {
        if (got >= 0 && msg.status != HT_PROTO_OK) { /* not traced: stay idle */ }
        else ht_log("session handshake failed; running untraced");
        if (fds[0] >= 0) close(fds[0]);
        if (fds[1] >= 0) close(fds[1]);
        goto fail;
    }
    if (ht__session_install(fd, &msg, fds) == 0) return;
fail:
    close(fd);
}

uint32_t ht__session_flags;

/* Maps and checks the region, then switches recording on.  Takes the fds
 * (closes them on failure, except `fd`, the caller's). */
int ht__session_install(int fd, const ht_msg_session *msg, int fds[2])
{
    size_t size = (size_t)msg->shm_size;
    /* no MAP_POPULATE: populating 4 MiB cost ~3 ms of start-up, and the
     * pool is LIFO, so a thread keeps reusing the few buffers it touched */
    void *p = size >= HT_SHM_HDR_SIZE && size <= ((size_t)1 << 40)
                  ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0)
                  : MAP_FAILED;
    close(fds[0]);
    if (p == MAP_FAILED || ht_shm_check((ht_shm_hdr *)p, size) != 0 ||
        ((ht_shm_hdr *)p)->pid != (uint32_t)getpid()) {
        ht_log("invalid session region; running untraced");
        if (p != MAP_FAILED) munmap(p, size);
        close(fds[1]);
        return -1;
    }
    ht_shm_hdr *h = p;
    ht__sess.shm = h;
    ht__sess.shm_size = size;
    ht__sess.subbuf_size = h->subbuf_size;
    ht__sess.subbuf_count = h->subbuf_count;
    ht__sess.mode = h->mode;
    ht__sess.clock = h->clock;
    ht__sess.sock_fd = ht__fd_hide(fd);
    ht__sess.event_fd = ht__fd_hide(fds[1]);
    ht__session_flags = msg->flags;
    ht__sess.stack_mode = h->stack_mode <= HT_STACKS_DWARF ? h->stack_mode : HT_STACKS_NONE;
    ht__sess.stack_depth = h->stack_depth >= 1 && h->stack_depth <= HT_STACK_DEPTH_MAX ? h->stack_depth : 64;
    ht__sess.stack_events = ht__sess.stack_mode ? h->stack_events & 7u : 0;
    /* the fast path (rt.h) reads the TSC inline and walks no stack */
    ht__sess.slow_events = ht__sess.stack_events | (ht__sess.clock == HT_CLOCK_TSC ? 0u : 7u);
    if (ht__sess.stack_mode) ht__stacks_setup(ht__sess.stack_mode);
    uint32_t g = ++generation;
    if (g == 0) g = ++generation; /* 0 means idle */
    /* release: the session fields above happen-before any thread that sees
     * ht__on != 0 and then reads them (acquire in ht__reserve_slow). */
    ht_atomic_store_release((_Atomic uint32_t *)&ht__on, g);
    return 0;
}

void ht__session_join(void)
{
    static int hooks;
    if (!hooks) {
        hooks = 1;
        pthread_atfork(NULL, NULL, atfork_child);
        exit_key_ok = pthread_key_create(&exit_key, ht__thread_exit) == 0;
    }
    if (getauxval(AT_SECURE)) return; /* never trace setuid/setgid programs */
    const char *path = getenv(HT_ENV_SESSION);
    if (path && *path) join_record_session(path);
}


/* ---- sub-buffer management (the slow path) ---- */

/* Wake the collector if it sleeps until kicked (`force`: we wait for a free
 * buffer, wake it even if it only naps).  While the program streams, the
 * collector naps on a short timer instead and asks for no kicks: a wake-up
 * sent to another CPU costs the sender tens of microseconds on a VM. */
static void kick_consumer(int force)
{
    ht_shm_hdr *h = ht__sess.shm;
    if ((force || ht_atomic_load_acquire(&h->consumer_idle)) && ht__sess.event_fd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(ht__sess.event_fd, &one, sizeof one);
        (void)w;
    }
}

static void release_current(ht_tls *t)
{
    /* release: `committed` (already final) and all records happen-before the
     * consumer's acquire of state == FULL; after this the buffer is not ours. */
    ht_atomic_store_release(&t->sb->state, HT_SB_FULL);
    t->sb = NULL;
    t->cur = t->end = t->data = NULL;
    kick_consumer(0);
}

/* t->lost is also counted up by this thread's signal handlers, which can
 * run between any two instructions of ours: it is only ever changed by one
 * read-modify-write instruction (an atomic add here, an exchange in
 * take_lost), so that no count of theirs falls between a read and a write.
 * lost_unreported goes up after t->lost and down after the exchange: it
 * never misses a count that is in neither t->lost nor a LOST record. */
static void count_lost(ht_tls *t, uint64_t n)
{
    __atomic_fetch_add(&t->lost, n, __ATOMIC_RELAXED);
    if (ht__sess.shm) ht_atomic_add_relaxed(&ht__sess.shm->lost_unreported, n);
}

/* Writes this thread's lost count into a LOST record at r (room for it is
 * the caller's), if it is not 0; returns the end of what was written. */
static char *take_lost(ht_tls *t, ht_shm_hdr *h, char *r, uint64_t ts)
{
    uint64_t n = __atomic_exchange_n(&t->lost, 0, __ATOMIC_RELAXED);
    if (!n) return r;
    ht_rec_lost *l = (ht_rec_lost *)r;
    ht__hdr(&l->h, HT_EV_LOST, 0, 0, sizeof *l, 0, ts);
    l->count = n;
    ht_atomic_add_relaxed(&h->lost_unreported, (uint64_t)0 - n);
    return r + sizeof *l;
}

void ht__lost_nested(ht_tls *t)
{
    if (t->gen == ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on)) count_lost(t, 1);
}

static int futex_wait(_Atomic uint32_t *addr, uint32_t val, long ns)
{
    struct timespec ts = {0, ns};
    return (int)syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

/* Block mode: wait for the consumer to free a sub-buffer.  Gives up (and the
 * event is counted as lost) if the collector stops answering or the pool
 * stays exhausted by other threads' buffers for too long. */
static uint32_t wait_for_buffer(ht_shm_hdr *h, uint32_t count, uint32_t gen)
{
    uint64_t start = ht_mono_ns();
    uint32_t last_seq = ht_atomic_load_acquire(&h->free_seq);
    uint64_t last_progress = start;
    for (;;) {
        uint32_t idx = ht_shm_pop(h, count);
        if (idx != HT_FREE_NONE) return idx;
        if (ht_atomic_load_relaxed(&h->state) != HT_SHM_RUNNING) return HT_FREE_NONE;
        if (ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on) != gen) return HT_FREE_NONE; /* ended */
        kick_consumer(1);
        uint32_t seq = ht_atomic_load_acquire(&h->free_seq);
        ht_atomic_add_acq_rel(&h->waiters, 1);
        idx = ht_shm_pop(h, count);
        if (idx == HT_FREE_NONE) futex_wait(&h->free_seq, seq, 20 * 1000 * 1000);
        ht_atomic_add_acq_rel(&h->waiters, (uint32_t)-1);
        if (idx != HT_FREE_NONE) return idx;
        uint64_t now = ht_mono_ns();
        uint32_t s = ht_atomic_load_acquire(&h->free_seq);
        if (s != last_seq) last_seq = s, last_progress = now;
        uint64_t hb = ht_atomic_load_relaxed(&h->heartbeat_ns);
        if (hb && now > hb && now - hb > 3000000000ull) {
            /* the listener ends the session (it polls ht__on) */
            ht_log("collector stopped answering; tracing disabled");
            ht_atomic_store_release((_Atomic uint32_t *)&ht__on, 0); /* idle from now on */
            return HT_FREE_NONE;
        }
        if (now - last_progress > 2000000000ull) {
            /* every buffer is held by threads that do not fill them */
            ht_atomic_add_relaxed(&h->starved, 1);
            return HT_FREE_NONE;
        }
        if (now - start > 5000000000ull) {
            /* buffers go round (free_seq moves) yet none comes to us for 5 s:
             * the pool is damaged (a program scribbling over it); never hang */
            ht_log("no free buffer for 5 s although the collector runs; tracing disabled");
            ht_atomic_store_release((_Atomic uint32_t *)&ht__on, 0);
            return HT_FREE_NONE;
        }
    }
}

static char *put_thread_record(ht_tls *t, char *r, uint64_t ts)
{
    ht_rec_thread *th = (ht_rec_thread *)r;
    ht__hdr(&th->h, HT_EV_THREAD, 0, 0, sizeof *th, 0, ts);
    th->tid = t->tid;
    th->_pad = 0;
    memset(th->name, 0, sizeof th->name);
    prctl(PR_GET_NAME, th->name); /* comm of this thread */
    th->name[15] = 0;
    return r + sizeof *th;
}

static int acquire_buffer(ht_tls *t)
{
    ht_shm_hdr *h = ht__sess.shm;
    uint32_t count = ht__sess.subbuf_count;
    uint32_t idx = ht_shm_pop(h, count);
    if (idx == HT_FREE_NONE) {
        if (ht__sess.mode == HT_MODE_DROP) return 0;
        /* after a starved wait, no more waiting until the pool moves: a
         * thread must not spend 2 s on every event */
        if (t->starved && ht_atomic_load_acquire(&h->free_seq) == t->starve_seq) return 0;
        t->starved = 0;
        idx = wait_for_buffer(h, count, t->gen);
        if (idx == HT_FREE_NONE) {
            t->starved = 1;
            t->starve_seq = ht_atomic_load_acquire(&h->free_seq);
            return 0;
        }
    }
    ht_subbuf *sb = ht_shm_subbuf(h, idx);
    sb->serial = t->serial;
    sb->seq = t->seq++;
    sb->tid = t->tid;
    ht_atomic_store_relaxed(&sb->committed, 0);
    /* release: serial/seq/tid happen-before the consumer's acquire of ACTIVE */
    ht_atomic_store_release(&sb->state, HT_SB_ACTIVE);
    t->sb = sb;
    t->data = ht_shm_data(h, ht__sess.subbuf_size, ht__sess.subbuf_count, idx);
    t->end = t->data + ht__sess.subbuf_size;
    uint64_t ts = ht__now(); /* after any wait: not older than the event that follows */
    char *r = put_thread_record(t, t->data, ts);
    r = take_lost(t, h, r, ts);
    ht__commit(t, r);
    return 1;
}

char *ht__reserve_slow(ht_tls *t, uint32_t gen, size_t need)
{
    int e = errno;
    char *r = NULL;
    if (t->gen != gen) {
        /* acquire: pairs with the release of ht__on in the session join */
        if (ht_atomic_load_acquire((_Atomic uint32_t *)&ht__on) != gen || !ht__sess.shm) goto out;
        ht_tls keep = *t;
        memset(t, 0, sizeof *t);
        t->reg = keep.reg;
        t->nest = keep.nest; /* a runtime-internal call may be in progress (stacks.c) */
        t->exited = keep.exited;
        t->exit_runs = keep.exit_runs;
        t->stk_lo = keep.stk_lo;
        t->stk_hi = keep.stk_hi;
        t->stk_cache = keep.stk_cache;
        t->stk_gen = keep.stk_gen;
        t->unw_memo = keep.unw_memo;
        t->in_emit = 1;
        t->gen = gen;
        t->serial = ht_atomic_add_relaxed(&ht__sess.shm->thread_serial, 1);
        t->tid = (uint32_t)syscall(SYS_gettid);
        if (exit_key_ok && !keep.exited) {
            t->nest++; /* pthread_setspecific may allocate: not our event */
            pthread_setspecific(exit_key, (void *)1);
            t->nest--;
        }
    }
    if (t->exited) {
        /* allocating after our exit destructor ran: ask to run it again,
         * unless glibc will not run destructors any more (it goes round at
         * most PTHREAD_DESTRUCTOR_ITERATIONS times): a thread must never
         * stay in the registry past its end */
        if (!exit_key_ok || t->exit_runs >= 3) {
            count_lost(t, 1);
            goto out;
        }
        t->exited = 0;
        t->nest++;
        pthread_setspecific(exit_key, (void *)1);
        t->nest--;
    }
    if (!t->reg && !ht__register_thread(t)) { /* more threads than the registry holds */
        count_lost(t, 1);
        goto out;
    }
    if (t->sb) release_current(t);
    if (need + sizeof(ht_rec_thread) + sizeof(ht_rec_lost) > ht__sess.subbuf_size ||
        !acquire_buffer(t)) {
        /* an event that waited for a buffer while the session ended (detach)
         * comes after the session, not lost from it */
        if (ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on) == gen) count_lost(t, 1);
        goto out;
    }
    r = t->cur;
out:
    errno = e;
    return r;
}

void ht__thread_exit(void *arg)
{
    (void)arg;
    int e = errno;
    ht_tls *t = &ht__tls;
    uint32_t g = t->gen;
    if (t->sb && g && ht__enter(t, g)) {
        if ((size_t)(t->end - t->cur) >= sizeof(ht_rec_lost)) {
            char *r = take_lost(t, ht__sess.shm, t->cur, ht__now());
            if (r != t->cur) ht__commit(t, r);
        }
        release_current(t);
        ht__leave(t);
    }
    t->sb = NULL;
    t->cur = t->end = t->data = NULL;
    ht__unregister_thread(t);
    ht__stacks_thread_exit(t);
    t->exited = 1;
    t->exit_runs++;
    errno = e;
}

void ht__emit_text(unsigned kind, uint64_t heap, uint32_t flags, const char *text, size_t max)
{
    uint32_t g = ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on);
    if (g == 0) return;
    size_t len = 0;
    if (text)
        while (len < max && text[len]) len++;
    size_t bytes = (sizeof(ht_rec_text) + len + 1 + 7) & ~(size_t)7;
    ht_tls *t = &ht__tls;
    if (!ht__enter(t, g)) return;
    char *r = ht__reserve(t, g, bytes);
    if (r) {
        ht_rec_text *x = (ht_rec_text *)r;
        uint64_t ts = ht__begin(t, r);
        ht__hdr(&x->h, kind, HT_API_HEAP, 0, bytes, heap, ts);
        x->flags = flags;
        x->len = (uint32_t)len;
        memcpy(x->text, text ? text : "", len);
        memset(x->text + len, 0, bytes - sizeof(ht_rec_text) - len);
        ht__commit(t, r + bytes);
    }
    ht__leave(t);
}
