/*
 * collector.c - see collector.h.
 *
 * Per traced process image (one control connection) the collector owns one
 * shared region.  A drain round:
 *   1. Snapshot the non-free sub-buffers, sort them by (thread serial, seq)
 *      and, thread by thread and strictly in seq order, note what each one
 *      has committed as a segment of that thread's stream (no copy: the
 *      records stay in shared memory).  An ACTIVE buffer ends the thread's
 *      turn; one caught with a record in flight (odd `committed`) marks the
 *      thread as possibly about to publish a record not older than its last.
 *   2. Merge the threads by timestamp straight out of their segments,
 *      emitting records older than now minus 50 us and never passing an
 *      in-flight thread's last timestamp, nor the last record noted of a
 *      thread whose later buffers wait for the next round (at most
 *      SEGS_MAX are noted per round), and encode them.  A FULL buffer
 *      read to its end goes back to the free pool; what a FULL buffer still
 *      holds past the merge point is copied aside (the "spill") so the
 *      buffer can go back at once.
 * Everything read from the region is validated where it is read, into
 * local copies: a record whose length does not fit, a committed size past
 * the buffer end, an index out of range are counted as damage and skipped,
 * never followed.
 */
#include "collector.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/atomic.h"
#include "../common/clock.h"
#include "../common/events.h"
#include "../common/proto.h"
#include "../common/shm.h"
#include "../format/codec_enc.h"

#define CHUNK_TARGET (512u * 1024u)

/* Committed bytes [pos, end) of sub-buffer idx, part of one thread's stream. */
typedef struct seg {
    uint32_t idx, full; /* full: the producer is done with it */
    uint64_t seq, pos, end;
} seg;

#define SEGS_MAX 32

/* A thread's records copied aside from FULL buffers (the spill) beyond
 * which its next FULL buffers are kept unread instead (merge_proc). */
#define SPILL_SOFT (256u * 1024u)

typedef struct stage {
    uint64_t serial;
    uint64_t last_round;     /* drain round that last found data of this thread */
    uint64_t last_ts;        /* raw ts of the newest record emitted */
    uint64_t inflight_at;    /* committed value seen odd (event in flight), or 0 */
    uint64_t inflight_since; /* CLOCK_MONOTONIC when first seen so */
    uint64_t next_seq;       /* the thread's sub-buffer to read next */
    int seq_known;
    int more;                /* this round noted SEGS_MAX buffers and left
                                the rest: the merge stops at the last one */
    uint32_t tid;
    char name[16];
    int name_sent;
    /* the stream: spill first, then the segments in order */
    ht_buf spill;
    size_t spill_pos;
    seg segs[SEGS_MAX];
    uint32_t nsegs;
    /* the next record, once looked at */
    int peeked;
    const uint8_t *next;
    uint32_t next_bytes;
    uint64_t next_ts;
} stage;

typedef struct proc {
    int conn, efd, memfd; /* memfd: until handed to the process */
    uint32_t pid;
    ht_shm_hdr *shm;
    const uint8_t *data0; /* sub-buffer 0's data: sub-buffer i's is data0 + i * sbsize */
    size_t size;
    uint32_t count, sbsize;
    stage *stages;
    size_t nstages;
    int closed;
    int ended;          /* the runtime said END: it writes no more (detach, stop) */
    int exit_reported;  /* the runtime said EXIT: exit_status is its wait status */
    int exit_status;
    int pushed; /* buffers went back to the pool this round */
    ht_encoder enc;
    uint64_t last_flush;
    uint64_t round;
    uint64_t last_ns; /* timestamp of the newest record merged */
    /* call stacks: the runtime's 64-bit hash -> the trace's id (1, 2, ...) */
    uint64_t *stk_keys;
    uint32_t *stk_ids;
    size_t stk_cap, stk_n;
    /* next_seq of recently forgotten threads, should they come back */
    struct { uint64_t serial, next_seq; } grave[256];
    uint32_t ngrave;
    struct proc *next;
} proc;

struct ht_collector {
    ht_collect_opts o;
    int lfd;
    char sock_path[108];
    char *out_path;
    ht_writer w;
    int writing;
    ht_clock_conv conv;
    uint64_t conv_updated; /* CLOCK_MONOTONIC of the last rate update */
    uint32_t clock;
    proc *procs;
    proc *spare; /* a region made ready before the process asks for it */
    ht_collect_stats st;
    ht_encoder session_enc;
    pid_t root;
    int begun; /* session_begin ran */
};

static void set_err(char *err, size_t len, const char *what, const char *path, int e)
{
    snprintf(err, len, "%s %s: %s", what, path, strerror(e));
}

/* The collector (its session encoder's address caches make it ~130 KiB)
 * comes from fresh zero pages that are touched as they are used: calloc
 * cleared it all, a page fault each (about 20 us apiece on the bench VM,
 * 0.6 ms of record's start-up). */
static ht_collector *collector_alloc(void)
{
    void *m = mmap(NULL, sizeof(ht_collector), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static void collector_release(ht_collector *c)
{
    munmap(c, sizeof *c);
}

int ht_collector_create(ht_collector **out, const ht_collect_opts *o, const char *sock_path,
                        const char *out_path, char *err, size_t errlen)
{
    ht_collector *c = collector_alloc();
    if (!c) return -ENOMEM;
    c->o = *o;
    c->lfd = -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!sock_path) {
        /* attach: no listening socket */
    } else if (strlen(sock_path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket path too long: %s", sock_path);
        collector_release(c);
        return -ENAMETOOLONG;
    }
    if (sock_path) {
        strcpy(sa.sun_path, sock_path);
        strcpy(c->sock_path, sock_path);
        c->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        unlink(sock_path);
    }
    if (sock_path &&
        (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(c->lfd, 64) < 0)) {
        int e = errno;
        set_err(err, errlen, "cannot listen on", sock_path, e);
        if (c->lfd >= 0) close(c->lfd);
        collector_release(c);
        return -e;
    }
    c->out_path = strdup(out_path);
    c->clock = ht_clock_pick();
    /* the file is created now so that a bad path fails before the program runs */
    ht_file_header h;
    ht_file_header_init(&h);
    h.clock = c->clock;
    h.collector_pid = (uint32_t)getpid();
    int rc = ht_writer_open(&c->w, out_path, &h, o->zstd_level);
    if (rc < 0) {
        set_err(err, errlen, "cannot create", out_path, -rc);
        goto fail;
    }
    if ((rc = ht_enc_reset(&c->session_enc, HT_STREAM_SESSION)) < 0) {
        set_err(err, errlen, "cannot set up the encoder for", out_path, -rc);
        ht_enc_free(&c->session_enc);
        ht_writer_close(&c->w);
        unlink(out_path);
        goto fail;
    }
    c->writing = 1;
    *out = c;
    return 0;
fail:
    if (c->lfd >= 0) close(c->lfd);
    if (sock_path) unlink(sock_path);
    free(c->out_path);
    collector_release(c);
    return rc;
}

int ht_collector_rename(ht_collector *c, const char *path)
{
    char *np = strdup(path);
    if (!np) return -ENOMEM;
    if (rename(c->out_path, path) < 0) {
        int e = errno;
        free(np);
        return -e;
    }
    free(c->out_path);
    c->out_path = np;
    return 0;
}

/* ---- writing ---- */

static void write_failed(ht_collector *c, int rc)
{
    if (!c->st.write_error) {
        c->st.write_error = -rc;
        fprintf(stderr, "heaptrace: writing %s: %s; the trace stops here, the program runs on\n",
                c->out_path, strerror(-rc));
    }
    c->writing = 0;
    /* never make the program wait for a trace that cannot be written */
    for (proc *p = c->procs; p; p = p->next)
        if (p->shm) ht_atomic_store_release(&p->shm->state, HT_SHM_STOPPED);
}

static void flush_enc(ht_collector *c, ht_encoder *e)
{
    if (e->records == 0) return;
    if (c->writing) {
        int rc = ht_writer_chunk(&c->w, e);
        if (rc < 0) write_failed(c, rc);
    }
    ht_enc_reset(e, e->stream);
}

static void put_event(ht_collector *c, ht_encoder *e, const ht_event *ev)
{
    if (ht_enc_event(e, ev) < 0) {
        write_failed(c, -ENOMEM);
        return;
    }
    c->st.records++;
    if (ev->kind <= HT_EV_REALLOC) c->st.events++;
    if (e->records >= HT_CHUNK_RECORDS_MAX || ht_enc_size(e) >= CHUNK_TARGET) flush_enc(c, e);
}

static uint64_t now_ts(ht_collector *c)
{
    return ht_clock_conv_ns(&c->conv, ht_clock_read(c->clock));
}

/* ---- processes ---- */

static void proc_free(proc *p)
{
    for (size_t i = 0; i < p->nstages; i++) ht_buf_free(&p->stages[i].spill);
    free(p->stages);
    if (p->shm) munmap(p->shm, p->size);
    if (p->conn >= 0) close(p->conn);
    if (p->efd >= 0) close(p->efd);
    if (p->memfd >= 0) close(p->memfd);
    ht_enc_free(&p->enc);
    free(p->stk_keys);
    free(p->stk_ids);
    free(p);
}

/* The id of stack `hash` in process p: 0 unknown; with `add`, a new one is
 * made (*added set).  Open addressing, linear probing, at most half full. */
static uint32_t stack_id(proc *p, uint64_t hash, int add, int *added)
{
    if (add && (p->stk_n + 1) * 2 > p->stk_cap) {
        size_t cap = p->stk_cap ? p->stk_cap * 2 : 1024;
        uint64_t *k = calloc(cap, sizeof *k);
        uint32_t *v = calloc(cap, sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return 0;
        }
        for (size_t i = 0; i < p->stk_cap; i++) {
            if (!p->stk_keys[i]) continue;
            size_t j = (p->stk_keys[i] * 0x9e3779b97f4a7c15ull) & (cap - 1);
            while (k[j]) j = (j + 1) & (cap - 1);
            k[j] = p->stk_keys[i];
            v[j] = p->stk_ids[i];
        }
        free(p->stk_keys);
        free(p->stk_ids);
        p->stk_keys = k;
        p->stk_ids = v;
        p->stk_cap = cap;
    }
    if (!p->stk_cap || !hash) return 0;
    size_t j = (hash * 0x9e3779b97f4a7c15ull) & (p->stk_cap - 1);
    while (p->stk_keys[j]) {
        if (p->stk_keys[j] == hash) return p->stk_ids[j];
        j = (j + 1) & (p->stk_cap - 1);
    }
    if (!add) return 0;
    p->stk_keys[j] = hash;
    p->stk_ids[j] = (uint32_t)++p->stk_n;
    *added = 1;
    return p->stk_ids[j];
}

/* The stack hash a heap record carries after its fixed part, if any. */
static inline uint32_t rec_stack(proc *p, const uint8_t *r, unsigned words, size_t fixed)
{
    if (HT_LIKELY((size_t)words * 8 < fixed + 8)) return 0;
    uint64_t h;
    memcpy(&h, r + fixed, 8);
    return stack_id(p, h, 0, NULL);
}

size_t ht_proc_cmdline(uint32_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/cmdline", pid);
    if (cap) buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || cap < 2) {
        if (fd >= 0) close(fd);
        return 0;
    }
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) return 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == 0) buf[i] = ' ';
    while (n > 0 && buf[n - 1] == ' ') n--;
    buf[n] = 0;
    return (size_t)n;
}

static int send_session(int fd, uint32_t status, uint32_t flags, uint64_t size, int memfd, int efd)
{
    ht_msg_session m = {sizeof m, HT_PROTO_MAGIC, HT_PROTO_VERSION, HT_MSG_SESSION, status, flags, size};
    struct iovec iov = {&m, sizeof m};
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (memfd >= 0) {
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
        int fds[2] = {memfd, efd};
        memcpy(CMSG_DATA(cm), fds, sizeof fds);
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof m ? 0 : -errno;
}

/* A process record with its region (memfd mapped and initialised, eventfd),
 * not yet bound to a process; NULL if the system refused. */
static proc *proc_new(ht_collector *c)
{
    proc *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->conn = p->efd = p->memfd = -1;
    p->count = c->o.subbuf_count;
    p->sbsize = c->o.subbuf_size;
    p->size = ht_shm_size(p->sbsize, p->count);
    p->memfd = memfd_create("heaptrace-session", MFD_CLOEXEC);
    if (p->memfd < 0 || ftruncate(p->memfd, (off_t)p->size) < 0) goto fail;
    p->shm = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, p->memfd, 0);
    if (p->shm == MAP_FAILED) {
        p->shm = NULL;
        goto fail;
    }
    ht_shm_init(p->shm, p->sbsize, p->count, c->o.mode, c->clock, 0);
    p->data0 = (const uint8_t *)ht_shm_data(p->shm, p->sbsize, p->count, 0);
    p->shm->stack_mode = c->o.stack_mode;
    p->shm->stack_depth = c->o.stack_depth ? c->o.stack_depth : 64;
    p->shm->stack_events = c->o.stack_events ? c->o.stack_events : HT_STACK_ON_ALLOC | HT_STACK_ON_REALLOC;
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) goto fail;
    if (ht_enc_reset(&p->enc, 0) < 0) goto fail; /* its set-up: admit's reset cannot fail */
    return p;
fail:
    proc_free(p);
    return NULL;
}

/* A process said HELLO on fd (pid: the kernel's word, not the peer's):
 * give it a region, or tell it it is not traced.  Takes fd. */
static void session_begin(ht_collector *c);

static int admit(ht_collector *c, int fd, uint32_t pid, const ht_msg_hello *hello)
{
    if (!c->writing || (!c->o.follow_forks && (pid_t)pid != c->root)) {
        send_session(fd, HT_PROTO_NOT_TRACED, 0, 0, -1, -1);
        close(fd);
        return -EPERM;
    }
    proc *p = c->spare ? c->spare : proc_new(c);
    c->spare = NULL;
    if (!p) {
        close(fd);
        return -ENOMEM;
    }
    p->conn = fd;
    p->pid = pid;
    p->shm->pid = pid;
    ht_atomic_store_relaxed(&p->shm->heartbeat_ns, ht_mono_ns());
    snprintf(p->shm->trace_path, sizeof p->shm->trace_path, "%s", c->out_path);
    uint64_t start_ts = now_ts(c); /* before the process can record anything */
    char cmd[4096]; /* and its command line while it waits for us (it may exit fast) */
    size_t clen = ht_proc_cmdline(pid, cmd, sizeof cmd);
    int rc = send_session(fd, HT_PROTO_OK, c->o.follow_forks ? HT_SESS_FOLLOW_FORKS : 0, p->size,
                          p->memfd, p->efd);
    if (rc < 0) {
        proc_free(p);
        return rc;
    }
    close(p->memfd);
    p->memfd = -1;
    ht_enc_reset(&p->enc, pid);
    p->last_flush = ht_mono_ns();
    p->next = c->procs;
    c->procs = p;
    c->st.processes++;
    ht_event ev = {.kind = HT_EV_PROCESS, .pid = pid, .tid = pid, .ts = start_ts, .nargs = 1};
    ev.arg[0] = hello->ppid;
    ev.text = cmd;
    ev.text_len = (uint32_t)clen;
    put_event(c, &p->enc, &ev);
    return 0;
}

static void accept_one(ht_collector *c)
{
    if (c->lfd < 0) return;
    int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return;
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
        (cr.uid != getuid() && cr.uid != 0)) {
        close(fd);
        return;
    }
    struct pollfd pf = {fd, POLLIN, 0};
    ht_msg_hello hello;
    ssize_t n = -1;
    if (poll(&pf, 1, 1000) == 1) n = recv(fd, &hello, sizeof hello, 0);
    if (!ht_msg_ok(&hello, n, sizeof hello, HT_MSG_HELLO)) {
        close(fd);
        return;
    }
    admit(c, fd, (uint32_t)cr.pid, &hello);
}

int ht_collector_attach(ht_collector *c, pid_t pid, const char *sock_path, char *err, size_t errlen)
{
    c->root = pid;
    session_begin(c); /* the process records as soon as it has the region */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock_path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket path too long: %s", sock_path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, sock_path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s", e == ENOENT || e == ECONNREFUSED
                                        ? "no heaptrace runtime listening in that process (is libheaptrace.so preloaded?)"
                                        : strerror(e));
        close(fd);
        return -e;
    }
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.pid != pid) {
        snprintf(err, errlen, "the endpoint %s belongs to another process", sock_path);
        close(fd);
        return -EPROTO;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ht_msg_ctl req = {0};
    ht_msg_init(&req, sizeof req, HT_MSG_REQUEST);
    req.op = HT_OP_ATTACH;
    union { ht_msg_hello hello; ht_msg_ctl ctl; ht_msg_status st; } m;
    memset(&m, 0, sizeof m);
    ssize_t n = -1;
    if (send(fd, &req, sizeof req, MSG_NOSIGNAL) == (ssize_t)sizeof req) n = recv(fd, &m, sizeof m, 0);
    if (ht_msg_ok(&m, n, sizeof m.ctl, HT_MSG_REPLY)) {
        int e = m.ctl.status == HT_PROTO_DENIED ? EACCES : m.ctl.status == HT_PROTO_BUSY ? EBUSY : EPROTO;
        snprintf(err, errlen, "%s", e == EACCES ? "permission denied (the process belongs to another user)"
                                    : e == EBUSY ? "already being traced"
                                                 : "the process refused the session");
        close(fd);
        return -e;
    }
    if (!ht_msg_ok(&m, n, sizeof m.hello, HT_MSG_HELLO)) {
        snprintf(err, errlen, "%s", n < 0 ? "no answer from the process (stopped?)" : "unexpected answer from the process");
        close(fd);
        return -EPROTO;
    }
    tv.tv_sec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc = admit(c, fd, (uint32_t)pid, &m.hello);
    if (rc < 0) snprintf(err, errlen, "cannot start the session: %s", strerror(-rc));
    return rc;
}

/* ---- draining ---- */

typedef struct cand {
    uint64_t serial, seq;
    uint32_t idx;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->serial != y->serial) return x->serial < y->serial ? -1 : 1;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return 0;
}

static stage *stage_for(proc *p, uint64_t serial, uint32_t tid)
{
    for (size_t i = 0; i < p->nstages; i++)
        if (p->stages[i].serial == serial) return &p->stages[i];
    stage *n = realloc(p->stages, (p->nstages + 1) * sizeof *n);
    if (!n) return NULL;
    p->stages = n;
    stage *s = &n[p->nstages++];
    memset(s, 0, sizeof *s);
    s->serial = serial;
    s->tid = tid;
    s->last_round = p->round;
    /* a thread's first sub-buffer has seq 0; one forgotten while quiet
     * resumes where it was, unless the grave has been overwritten since */
    s->seq_known = p->ngrave <= 256;
    for (uint32_t i = 0; i < p->ngrave && i < 256; i++)
        if (p->grave[i].serial == serial) {
            s->next_seq = p->grave[i].next_seq;
            s->seq_known = 1;
        }
    return s;
}

/* min_words() of the heap event kinds, for the merge's fast path */
static const uint8_t heap_words[4] = {0, sizeof(ht_rec_alloc) / 8, sizeof(ht_rec_free) / 8,
                                      sizeof(ht_rec_realloc) / 8};
_Static_assert(HT_EV_ALLOC == 1 && HT_EV_FREE == 2 && HT_EV_REALLOC == 3, "heap_words[] is indexed by kind");

static size_t min_words(unsigned kind)
{
    switch (kind) {
    case HT_EV_ALLOC: return sizeof(ht_rec_alloc) / 8;
    case HT_EV_FREE: return sizeof(ht_rec_free) / 8;
    case HT_EV_REALLOC: return sizeof(ht_rec_realloc) / 8;
    case HT_EV_LOST: return sizeof(ht_rec_lost) / 8;
    case HT_EV_THREAD: return sizeof(ht_rec_thread) / 8;
    case HT_EV_STACK: return sizeof(ht_rec_stack) / 8;
    case HT_EV_MODULE: return sizeof(ht_rec_module) / 8;
    case HT_EV_HEAP_CREATE:
    case HT_EV_MARKER:
    case HT_EV_HEAP_DESTROY: return sizeof(ht_rec_text) / 8;
    default: return 2;
    }
}

static HT_NOINLINE void emit_meta(ht_collector *c, proc *p, stage *s, const uint8_t *r, ht_rec_hdr h,
                                  uint64_t ts);

static HT_ALWAYS_INLINE void emit_record(ht_collector *c, proc *p, stage *s, const uint8_t *r)
{
    ht_rec_hdr h;
    memcpy(&h, r, sizeof h);
    /* records come in raw-timestamp order; the raw-to-ns slope is refined
     * as the session goes, so a record older than the last refinement could
     * convert a few ns before one converted earlier: keep the order */
    uint64_t ts = ht_clock_conv_ns(&c->conv, h.ts);
    if (ts < p->last_ns) ts = p->last_ns;
    p->last_ns = ts;
    int rc;
    /* heap events: straight from the shared record into the encoder */
    switch (h.kind) {
    case HT_EV_ALLOC: {
        ht_rec_alloc a;
        memcpy(&a, r, sizeof a);
        if (HT_UNLIKELY(h.api >= HT_API_COUNT || h.source > 7)) goto damaged;
        rc = hte_alloc(&p->enc, s->tid, ts, h.api, h.source, h.heap, a.addr, a.size,
                             rec_stack(p, r, h.words, sizeof a));
        goto heap_event;
    }
    case HT_EV_FREE: {
        ht_rec_free a;
        memcpy(&a, r, sizeof a);
        if (HT_UNLIKELY(h.api >= HT_API_COUNT || h.source > 7)) goto damaged;
        rc = hte_free(&p->enc, s->tid, ts, h.api, h.source, h.heap, a.addr,
                            rec_stack(p, r, h.words, sizeof a));
        goto heap_event;
    }
    case HT_EV_REALLOC: {
        ht_rec_realloc a;
        memcpy(&a, r, sizeof a);
        if (HT_UNLIKELY(h.api >= HT_API_COUNT || h.source > 7)) goto damaged;
        rc = hte_realloc(&p->enc, s->tid, ts, h.api, h.source, h.heap, a.new_addr, a.new_size,
                               a.old_addr, a.old_size, rec_stack(p, r, h.words, sizeof a));
        goto heap_event;
    }
    default:
        emit_meta(c, p, s, r, h, ts);
        return;
    }
heap_event:
    if (HT_UNLIKELY(rc < 0)) {
        write_failed(c, rc);
        return;
    }
    c->st.records++;
    c->st.events++;
    /* the size is summed over the columns: every 256 records is enough */
    if (p->enc.records >= HT_CHUNK_RECORDS_MAX ||
        ((p->enc.records & 255) == 0 && ht_enc_size(&p->enc) >= CHUNK_TARGET))
        flush_enc(c, &p->enc);
    return;
damaged:
    c->st.damaged++;
}

/* A metadata record (or a damaged one): rare, kept out of the hot path. */
static HT_NOINLINE void emit_meta(ht_collector *c, proc *p, stage *s, const uint8_t *r, ht_rec_hdr h,
                                  uint64_t ts)
{
    ht_event ev = {.kind = h.kind, .pid = p->pid, .tid = s->tid, .api = h.api,
                   .source = h.source, .heap = h.heap, .ts = ts};
    switch (h.kind) {
    case HT_EV_LOST: {
        ht_rec_lost a;
        memcpy(&a, r, sizeof a);
        ev.nargs = 1;
        ev.arg[0] = a.count;
        ev.heap = 0;
        c->st.lost += a.count;
        break;
    }
    case HT_EV_THREAD: {
        ht_rec_thread a;
        memcpy(&a, r, sizeof a);
        a.name[15] = 0;
        s->tid = a.tid;
        if (s->name_sent && strcmp(s->name, a.name) == 0) return;
        memcpy(s->name, a.name, sizeof s->name);
        s->name_sent = 1;
        ev.tid = a.tid;
        ev.heap = 0;
        ev.nargs = 1;
        ev.arg[0] = a.tid;
        ev.text = s->name;
        ev.text_len = (uint32_t)strlen(s->name);
        break;
    }
    case HT_EV_HEAP_CREATE:
    case HT_EV_HEAP_DESTROY:
    case HT_EV_MARKER: {
        const ht_rec_text *t = (const ht_rec_text *)r;
        size_t room = (size_t)h.words * 8 - sizeof(ht_rec_text);
        uint32_t len;
        memcpy(&len, &t->len, sizeof len);
        if (len > room) len = (uint32_t)room;
        ev.text = (const char *)r + sizeof(ht_rec_text);
        ev.text_len = len;
        if (h.kind == HT_EV_HEAP_CREATE) {
            ev.nargs = 1;
            memcpy(&ev.arg[0], &t->flags, 4);
            ev.arg[0] &= 0xffffffffu;
        }
        if (h.kind == HT_EV_MARKER) ev.heap = 0;
        break;
    }
    case HT_EV_STACK: {
        ht_rec_stack a;
        memcpy(&a, r, sizeof a);
        size_t room = ((size_t)h.words * 8 - sizeof a) / 8;
        if (a.n == 0 || a.n > room || a.n > HT_STACK_DEPTH_MAX || a.hash == 0) goto damaged;
        int added = 0;
        uint32_t id = stack_id(p, a.hash, 1, &added);
        if (!added) return; /* another thread described it already */
        ev.heap = 0;
        ev.api = ev.source = 0;
        ev.nargs = 1;
        ev.arg[0] = id;
        ev.text = (const char *)r + sizeof a; /* n 8-byte little-endian addresses */
        ev.text_len = a.n * 8;
        break;
    }
    case HT_EV_MODULE: {
        ht_rec_module a;
        memcpy(&a, r, sizeof a);
        size_t room = (size_t)h.words * 8 - sizeof a;
        if (a.build_id_len > 64 || a.path_len > room || a.build_id_len + (size_t)a.path_len > room ||
            a.end < a.start)
            goto damaged;
        /* text: build id length (1 byte), build id, path */
        uint8_t text[1 + 64 + 2048];
        text[0] = (uint8_t)a.build_id_len;
        memcpy(text + 1, r + sizeof a, a.build_id_len + (size_t)a.path_len);
        ev.heap = 0;
        ev.api = ev.source = 0;
        ev.nargs = 4;
        ev.arg[0] = a.start;
        ev.arg[1] = a.end;
        ev.arg[2] = a.offset;
        ev.arg[3] = a.bias;
        ev.text = (const char *)text;
        ev.text_len = 1 + a.build_id_len + a.path_len;
        put_event(c, &p->enc, &ev);
        return;
    }
    default:
        return; /* unknown record from a newer runtime: skipped by length */
    }
    put_event(c, &p->enc, &ev);
    return;
damaged:
    c->st.damaged++;
}

static inline const uint8_t *sb_data(const proc *p, uint32_t idx)
{
    return p->data0 + (size_t)idx * p->sbsize;
}

static void release_buffer(ht_collector *c, proc *p, uint32_t idx)
{
    if (ht_shm_push(p->shm, idx) < 0) c->st.damaged++;
    c->st.subbufs++;
    p->pushed = 1;
}

/* Sub-buffer idx (the thread's seq-th) is a FULL segment the stage holds. */
static int noted_full(const stage *s, uint32_t idx, uint64_t seq)
{
    for (uint32_t j = 0; j < s->nsegs; j++)
        if (s->segs[j].idx == idx && s->segs[j].seq == seq && s->segs[j].full) return 1;
    return 0;
}

static int drain_proc(ht_collector *c, proc *p, int final)
{
    ht_shm_hdr *h = p->shm;
    const uint64_t data_cap = p->sbsize;
    int busy = 0;
    ht_atomic_store_relaxed(&h->heartbeat_ns, ht_mono_ns());
    cand *cv = malloc(p->count * sizeof *cv);
    if (!cv) return 0;
    size_t n = 0;
    for (size_t i = 0; i < p->nstages; i++) p->stages[i].more = 0;
    for (uint32_t i = 0; i < p->count; i++) {
        ht_subbuf *sb = ht_shm_subbuf(h, i);
        /* acquire: pairs with the producer's release of ACTIVE/FULL, making
         * serial/seq (and for FULL the final committed) visible */
        uint32_t stt = ht_atomic_load_acquire(&sb->state);
        if (stt == HT_SB_ACTIVE || stt == HT_SB_FULL) cv[n++] = (cand){sb->serial, sb->seq, i};
    }
    qsort(cv, n, sizeof *cv, cand_cmp);
    /* Thread by thread, in seq order, from the sub-buffer we read last.  The
     * snapshot is not atomic: a thread can fill and leave a buffer behind the
     * scan and take one ahead of it, so a group may start past the expected
     * seq or have a hole; then the thread waits for the next round. */
    stage *s = NULL;
    int blocked = 0, first = 0;
    uint64_t prev_seq = 0;
    for (size_t k = 0; k < n; k++) {
        ht_subbuf *sb = ht_shm_subbuf(h, cv[k].idx);
        if (k == 0 || cv[k].serial != cv[k - 1].serial) {
            s = stage_for(p, cv[k].serial, sb->tid);
            blocked = !s;
            first = 1;
        }
        if (blocked || noted_full(s, cv[k].idx, cv[k].seq)) continue; /* kept by merge_proc: known */
        if (!final && (first ? s->seq_known && cv[k].seq != s->next_seq : cv[k].seq != prev_seq + 1)) {
            blocked = 1;
            continue;
        }
        first = 0;
        prev_seq = cv[k].seq;
        uint32_t stt = ht_atomic_load_acquire(&sb->state);
        /* acquire: pairs with the release store of committed (ht__commit) */
        uint64_t com = ht_atomic_load_acquire(&sb->committed);
        uint64_t inflight = com & 1; /* ht__begin: an event is being written */
        com &= ~(uint64_t)1;
        if (com > data_cap) {
            c->st.damaged++;
            com = data_cap;
        }
        int full = stt == HT_SB_FULL || final;
        seg *last = s->nsegs ? &s->segs[s->nsegs - 1] : NULL;
        if (last && last->idx == cv[k].idx && last->seq == cv[k].seq && !last->full) {
            if (com > last->end) {
                last->end = com;
                busy = 1;
            }
            last->full = (uint32_t)full;
        } else if (s->nsegs < SEGS_MAX) {
            s->segs[s->nsegs++] = (seg){cv[k].idx, (uint32_t)full, cv[k].seq, 0, com};
            busy = 1;
        } else {
            /* a burst of buffers: the rest next round; until then their
             * records, older than `until` perhaps, hold the merge back */
            blocked = 1;
            s->more = 1;
            continue;
        }
        s->peeked = 0;
        s->last_round = p->round;
        s->seq_known = 1;
        if (full) {
            s->next_seq = cv[k].seq + 1;
            s->inflight_at = 0;
        } else {
            s->next_seq = cv[k].seq;
            if (!inflight) {
                s->inflight_at = 0;
            } else if (s->inflight_at != (com | 1)) {
                s->inflight_at = com | 1;
                s->inflight_since = ht_mono_ns();
            }
            blocked = 1; /* later buffers of this thread wait until this one is full */
        }
    }
    free(cv);
    p->round++;
    return busy;
}

/* The thread's next record: its bytes (validated framing), its raw ts.
 * Returns 0 if the thread has nothing more to read for now.  FULL segments
 * read to their end go back to the pool here. */
static int stage_peek_slow(ht_collector *c, proc *p, stage *s);

static inline int stage_peek(ht_collector *c, proc *p, stage *s)
{
    if (s->peeked) return 1;
    /* the common case: the next heap event inside the current segment */
    if (HT_LIKELY(s->spill_pos >= s->spill.len && s->nsegs)) {
        seg *g = &s->segs[0];
        uint64_t avail = g->end - g->pos;
        if (HT_LIKELY(g->pos < g->end && avail >= sizeof(ht_rec_alloc))) {
            const uint8_t *r = sb_data(p, g->idx) + g->pos;
            ht_rec_hdr h;
            memcpy(&h, r, sizeof h);
            uint64_t bytes = (uint64_t)h.words * 8;
            if (HT_LIKELY(h.kind >= HT_EV_ALLOC && h.kind <= HT_EV_REALLOC && h.words >= heap_words[h.kind] &&
                          bytes <= avail)) {
                __builtin_prefetch(r + 512);
                s->next = r;
                s->next_bytes = (uint32_t)bytes;
                s->next_ts = h.ts;
                s->peeked = 1;
                return 1;
            }
        }
    }
    return stage_peek_slow(c, p, s);
}

static HT_NOINLINE int stage_peek_slow(ht_collector *c, proc *p, stage *s)
{
    for (;;) {
        const uint8_t *r;
        uint64_t avail;
        if (s->spill_pos < s->spill.len) {
            r = s->spill.data + s->spill_pos;
            avail = s->spill.len - s->spill_pos;
        } else if (s->nsegs) {
            seg *g = &s->segs[0];
            if (g->pos >= g->end) {
                if (!g->full) return 0;
                release_buffer(c, p, g->idx);
                memmove(&s->segs[0], &s->segs[1], (--s->nsegs) * sizeof *s->segs);
                continue;
            }
            r = sb_data(p, g->idx) + g->pos;
            avail = g->end - g->pos;
            /* the producer wrote these lines on another core: ask for the
             * ones a few records ahead now (a hint; never faults) */
            __builtin_prefetch(r + 512);
        } else {
            return 0;
        }
        ht_rec_hdr h;
        if (avail >= sizeof h) {
            memcpy(&h, r, sizeof h);
            uint64_t bytes = (uint64_t)h.words * 8;
            if (h.words >= min_words(h.kind) && bytes <= avail) {
                s->next = r;
                s->next_bytes = (uint32_t)bytes;
                s->next_ts = h.ts;
                s->peeked = 1;
                return 1;
            }
        }
        /* the rest of this piece cannot be framed */
        c->st.damaged++;
        if (s->spill_pos < s->spill.len) s->spill_pos = s->spill.len;
        else s->segs[0].pos = s->segs[0].end;
    }
}

static void stage_advance(stage *s)
{
    if (s->spill_pos < s->spill.len) s->spill_pos += s->next_bytes;
    else s->segs[0].pos += s->next_bytes;
    s->peeked = 0;
}

/* The next record's address-cache lines, while this one is encoded: read
 * from the segment's committed bytes only (`avail` of them at q), its
 * addresses whatever its kind (a metadata record's words prefetch
 * nothing useful, and harm nothing). */
_Static_assert(offsetof(ht_rec_free, addr) == offsetof(ht_rec_alloc, addr) &&
                   offsetof(ht_rec_free, addr) == offsetof(ht_rec_realloc, new_addr),
               "prefetch_record() reads every heap event's (new) address at one offset");
static HT_ALWAYS_INLINE void prefetch_record(proc *p, const uint8_t *q, uint64_t avail)
{
    uint64_t a;
    if (avail < sizeof(ht_rec_free)) return;
    memcpy(&a, q + offsetof(ht_rec_free, addr), sizeof a);
    hte_prefetch(&p->enc, a);
    if (avail < sizeof(ht_rec_realloc) || q[0] != HT_EV_REALLOC) return;
    memcpy(&a, q + offsetof(ht_rec_realloc, old_addr), sizeof a);
    hte_prefetch(&p->enc, a);
}

/* Emit the staged records older than `until`, in timestamp order; a thread
 * with a record in flight holds back everything not older than its last
 * one (its pending record is at least that late), unless it has been stuck
 * so for a second (stopped, or killed mid-record). */
static void merge_proc(ht_collector *c, proc *p, uint64_t until, int final)
{
    uint64_t now = ht_mono_ns();
    for (;;) {
        stage *best = NULL;
        uint64_t best_ts = 0, next_ts = 0; /* next: the runner-up's */
        int best_virtual = 0, next_virtual = 0, have_next = 0;
        for (size_t i = 0; i < p->nstages; i++) {
            stage *s = &p->stages[i];
            uint64_t ts;
            int virt = 0;
            if (stage_peek(c, p, s)) {
                ts = s->next_ts;
            } else if (!final && s->more) {
                ts = s->last_ts; /* its unread buffers follow: wait for them */
                virt = 1;
            } else if (!final && s->inflight_at && now - s->inflight_since < 1000000000ull) {
                ts = s->last_ts;
                virt = 1;
            } else {
                continue;
            }
            if (!best || (int64_t)(ts - best_ts) < 0 || (ts == best_ts && best_virtual && !virt)) {
                if (best) next_ts = best_ts, next_virtual = best_virtual, have_next = 1;
                best = s;
                best_ts = ts;
                best_virtual = virt;
            } else if (!have_next || (int64_t)(ts - next_ts) < 0 || (ts == next_ts && next_virtual && !virt)) {
                next_ts = ts, next_virtual = virt, have_next = 1;
            }
        }
        if (!best || best_virtual || best_ts >= until) break;
        /* a run of the best thread's records, as long as each one is still
         * the oldest of all (older than the runner-up's; at a tie, the
         * full scan above decides) */
        if (best->spill_pos >= best->spill.len && best->nsegs) {
            /* the common case, read straight from the segment: its heap
             * events one after the other, framed and ordered as stage_peek
             * and the loop below would, without their bookkeeping per
             * record; anything else goes back to them */
            seg *g = &best->segs[0];
            const uint8_t *base = sb_data(p, g->idx), *r = best->next;
            uint64_t pos = g->pos, end = g->end, ts = best_ts;
            uint32_t bytes = best->next_bytes;
            best->peeked = 0;
            for (;;) {
                best->last_ts = ts;
                pos += bytes;
                g->pos = pos;
                prefetch_record(p, base + pos, end - pos);
                emit_record(c, p, best, r);
                if (end - pos < sizeof(ht_rec_alloc)) break;
                r = base + pos;
                ht_rec_hdr h;
                memcpy(&h, r, sizeof h);
                bytes = (uint32_t)h.words * 8;
                if (!(h.kind >= HT_EV_ALLOC && h.kind <= HT_EV_REALLOC && h.words >= heap_words[h.kind] &&
                      bytes <= end - pos))
                    break;
                ts = h.ts;
                if (!(ts < until && (!have_next || (int64_t)(ts - next_ts) < 0))) break;
                __builtin_prefetch(r + 512);
            }
            continue;
        }
        do {
            const uint8_t *r = best->next;
            best->last_ts = best_ts;
            stage_advance(best);
            emit_record(c, p, best, r);
            if (!stage_peek(c, p, best)) break;
            best_ts = best->next_ts;
        } while (best_ts < until && (!have_next || (int64_t)(best_ts - next_ts) < 0));
    }
    uint32_t held = 0; /* FULL buffers kept unread this round, all threads */
    for (size_t i = 0; i < p->nstages; i++) {
        stage *s = &p->stages[i];
        /* what FULL buffers still hold is copied aside, so they go back now;
         * but once a thread's copy would pass SPILL_SOFT, its remaining
         * buffers stay where they are, as long as the threads keep at most
         * half of the pool so (the others must find free buffers, or the
         * records that end the wait could never be written).  The wait is
         * mostly a thread preempted in the middle of a record: with a
         * quarter, the others' buffers were copied while it slept, and B's
         * spills peaked at 2-8 MiB; with half, at the 256 KiB they may keep */
        if (s->spill_pos == s->spill.len) s->spill_pos = s->spill.len = 0;
        uint32_t kept = 0, full_left = 0;
        int keep_rest = 0;
        for (uint32_t j = 0; j < s->nsegs; j++) full_left += s->segs[j].full;
        for (uint32_t j = 0; j < s->nsegs; j++) {
            seg *g = &s->segs[j];
            uint64_t left = g->end - g->pos;
            if (g->full && !keep_rest && left && s->spill.len - s->spill_pos + left > SPILL_SOFT &&
                held + full_left <= p->count / 2)
                keep_rest = 1; /* in order: all that follow stay too */
            if (!g->full || keep_rest) {
                s->segs[kept++] = *g;
                held += g->full;
                full_left -= g->full;
                continue;
            }
            full_left--;
            if (left && ht_buf_reserve(&s->spill, left) == 0) {
                memcpy(s->spill.data + s->spill.len, sb_data(p, g->idx) + g->pos, left);
                s->spill.len += left;
            } else if (left) {
                c->st.damaged++; /* out of memory: these records are lost */
            }
            release_buffer(c, p, g->idx);
        }
        if (kept != s->nsegs) s->peeked = 0;
        s->nsegs = kept;
        if (s->spill.len == 0 && s->nsegs == 0 && !s->inflight_at && p->round - s->last_round > 64) {
            /* a thread gone quiet (most likely exited): forget it */
            uint32_t g = p->ngrave++ % 256;
            p->grave[g].serial = s->serial;
            p->grave[g].next_seq = s->next_seq;
            ht_buf_free(&s->spill);
            p->stages[i--] = p->stages[--p->nstages];
        }
    }
    if (p->pushed && ht_atomic_load_acquire(&p->shm->waiters))
        syscall(SYS_futex, &p->shm->free_seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    p->pushed = 0;
}

/* The process image is gone: read everything.  A round notes at most
 * SEGS_MAX buffers of a thread, and the merge returns them to the pool, so
 * go round until a drain finds nothing new. */
static void drain_final(ht_collector *c, proc *p)
{
    for (uint32_t rounds = 0; rounds <= p->count; rounds++) {
        int busy = drain_proc(c, p, 1);
        merge_proc(c, p, UINT64_MAX, 1);
        if (!busy) break;
    }
}

/* Returns whether the round returned buffers to the pool. */
static int drain_all(ht_collector *c, int final)
{
    int busy = 0;
    /* records stamped within the last 50 us may belong to an event whose
     * in-flight mark we could not see yet: they wait for the next round */
    uint64_t slack = (uint64_t)(50000.0 / c->conv.rate);
    uint64_t now = ht_mono_ns();
    if (now - c->conv_updated >= 10000000) { /* re-measure the raw clock rate */
        ht_clock_conv_update(&c->conv);
        c->conv_updated = now;
    }
    uint64_t raw = ht_clock_read(c->clock);
    uint64_t until = final ? UINT64_MAX : raw > slack ? raw - slack : 0;
    for (proc *p = c->procs; p; p = p->next) {
        if (!p->shm) continue;
        int done = final || p->closed;
        if (done) {
            drain_final(c, p);
        } else {
            uint64_t released = c->st.subbufs;
            drain_proc(c, p, 0);
            merge_proc(c, p, until, 0);
            /* for `heaptrace status` */
            ht_atomic_store_relaxed(&p->shm->st_events, c->st.events);
            ht_atomic_store_relaxed(&p->shm->st_lost, c->st.lost);
            ht_atomic_store_relaxed(&p->shm->st_bytes, c->w.offset);
            ht_atomic_store_relaxed(&p->shm->st_subbufs, c->st.subbufs);
            /* buffers filled up since the last round: the program is
             * producing fast, come back at once; otherwise sleep until a
             * producer fills one (it kicks us) or the flush interval */
            busy |= c->st.subbufs != released;
        }
        if (done || now - p->last_flush >= (uint64_t)c->o.flush_ms * 1000000u) {
            flush_enc(c, &p->enc);
            p->last_flush = now;
        }
    }
    return busy;
}

/* A connection closed: that process image is gone (exit or exec).  Its
 * region is drained to the end and released.  The root process's encoder is
 * kept until the end even so: its PROCESS_END comes once waitpid reports the
 * exit, which can be after the connection closed. */
static void reap_closed(ht_collector *c, int final)
{
    proc **pp = &c->procs;
    while (*pp) {
        proc *p = *pp;
        if (!p->closed) {
            pp = &p->next;
            continue;
        }
        if (p->shm) {
            drain_final(c, p);
            uint64_t orphan = ht_atomic_load_relaxed(&p->shm->lost_unreported);
            if (orphan && orphan < (1ull << 48)) {
                ht_event ev = {.kind = HT_EV_LOST, .pid = p->pid, .ts = now_ts(c), .nargs = 1};
                ev.arg[0] = orphan;
                c->st.lost += orphan;
                put_event(c, &p->enc, &ev);
            }
            c->st.starved += ht_atomic_load_relaxed(&p->shm->starved);
            if (p->pid != (uint32_t)c->root && p->exit_reported) {
                /* a child (--follow-forks) that said how it exits; the root's
                 * end is written by ht_collector_run */
                ht_event ev = {.kind = HT_EV_PROCESS_END, .pid = p->pid, .tid = p->pid, .ts = now_ts(c), .nargs = 3};
                ev.arg[0] = (uint64_t)WEXITSTATUS(p->exit_status);
                put_event(c, &p->enc, &ev);
            }
            flush_enc(c, &p->enc);
            munmap(p->shm, p->size);
            p->shm = NULL;
            close(p->conn);
            close(p->efd);
            p->conn = p->efd = -1;
        }
        if (!final && p->pid == (uint32_t)c->root) {
            pp = &p->next;
            continue;
        }
        flush_enc(c, &p->enc);
        *pp = p->next;
        proc_free(p);
    }
}

/* ts 0 of the session: the clock calibration, the header, SESSION_START. */
static void session_begin(ht_collector *c)
{
    if (c->begun) return;
    c->begun = 1;
    ht_clock_conv_init(&c->conv, c->clock);
    c->conv_updated = c->conv.start_mono;
    ht_file_header h = c->w.hdr;
    h.start_mono_ns = c->conv.start_mono;
    h.start_real_ns = c->conv.start_real;
    h.start_raw = c->conv.start_raw;
    h.raw_per_sec = (uint64_t)(1e9 / c->conv.rate);
    if (c->writing) ht_writer_update_header(&c->w, &h);
    {
        ht_event ev = {.kind = HT_EV_SESSION_START, .ts = 0, .nargs = 4};
        ev.arg[0] = c->o.mode;
        ev.arg[1] = c->o.subbuf_size;
        ev.arg[2] = c->o.subbuf_count;
        ev.arg[3] = c->o.flush_ms;
        ev.text = c->o.command;
        ev.text_len = c->o.command ? (uint32_t)strlen(c->o.command) : 0;
        put_event(c, &c->session_enc, &ev);
    }
}

int ht_collector_run(ht_collector *c, pid_t root, int *status)
{
    c->root = root;
    session_begin(c);
    ht_file_header h = c->w.hdr; /* as session_begin set it */
    /* record: the program is starting (its exec and loading take longer than
     * this): have its region ready when it asks */
    int attached = c->lfd < 0;
    if (!attached) c->spare = proc_new(c);
    int pidfd = (int)syscall(SYS_pidfd_open, root, 0);
    int exited = 0;
    uint64_t t0 = ht_mono_ns(), stop_at = 0;
    struct pollfd *pf = NULL;
    proc **pfp = NULL;
    size_t pf_cap = 0;
    /* Rounds in a row that found no full buffer.  While the program streams
     * (fewer than NAPS quiet rounds) we nap NAP_MS between rounds and ask for
     * no kicks: each kick is a cross-CPU wake-up that costs the program's
     * thread tens of microseconds here (1000 kicks were a third of C's
     * recording overhead).  A producer that finds the pool empty kicks us
     * anyway.  Once quiet, we sleep until kicked or the flush interval. */
    enum { NAPS = 4, NAP_MS = 1 };
    unsigned quiet = NAPS;
    while (!exited) {
        int busy = drain_all(c, 0);
        reap_closed(c, 0);
        quiet = busy ? 0 : quiet < NAPS ? quiet + 1 : NAPS;
        int nap = !busy && quiet < NAPS;
        size_t np = 0;
        for (proc *p = c->procs; p; p = p->next) np += p->shm != NULL;
        if (!busy && !nap) {
            /* tell producers to kick us, then look once more before sleeping:
             * seq_cst on both sides orders our store against their FULL store */
            for (proc *p = c->procs; p; p = p->next)
                if (p->shm) atomic_store(&p->shm->consumer_idle, 1);
            atomic_thread_fence(memory_order_seq_cst);
            if ((busy = drain_all(c, 0)) != 0) quiet = 0;
        }
        if (2 + 2 * np > pf_cap) {
            pf_cap = 2 + 2 * np;
            pf = realloc(pf, pf_cap * sizeof *pf);
            pfp = realloc(pfp, pf_cap * sizeof *pfp);
            if (!pf || !pfp) {
                write_failed(c, -ENOMEM);
                break;
            }
        }
        if (attached && !stop_at &&
            ((c->o.stop && *c->o.stop) ||
             (c->o.duration_s > 0 && (double)(ht_mono_ns() - t0) >= c->o.duration_s * 1e9))) {
            /* ask the process to stop writing; it answers END and closes */
            ht_msg_ctl m = {0};
            ht_msg_init(&m, sizeof m, HT_MSG_REQUEST);
            m.op = HT_OP_STOP;
            for (proc *p = c->procs; p; p = p->next)
                if (p->conn >= 0 && send(p->conn, &m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) p->closed = 1;
            stop_at = ht_mono_ns();
        }
        if (stop_at && ht_mono_ns() - stop_at > 3000000000ull) /* no answer (stopped?): take what is there */
            for (proc *p = c->procs; p; p = p->next) p->closed = 1;
        size_t k = 0;
        pf[k++] = (struct pollfd){c->lfd, POLLIN, 0};
        if (pidfd >= 0) pf[k++] = (struct pollfd){pidfd, POLLIN, 0};
        size_t first_proc = k;
        for (proc *p = c->procs; p; p = p->next) {
            if (!p->shm) continue;
            pfp[k] = p;
            pf[k++] = (struct pollfd){p->conn, POLLIN, 0};
            pf[k++] = (struct pollfd){p->efd, POLLIN, 0};
        }
        int timeout = busy ? 0 : nap ? NAP_MS : (int)(c->o.flush_ms < 100 ? c->o.flush_ms : 100);
        if (attached && timeout > 20) timeout = 20; /* notice a stop request soon */
        int r = poll(pf, k, pidfd >= 0 ? timeout : (timeout > 10 ? 10 : timeout));
        if (!busy && !nap)
            for (proc *p = c->procs; p; p = p->next)
                if (p->shm) atomic_store(&p->shm->consumer_idle, 0);
        if (r > 0) {
            for (size_t j = first_proc; j < k; j += 2) {
                proc *p = pfp[j];
                if (pf[j].revents & (POLLIN | POLLHUP | POLLERR)) {
                    ht_msg_ctl m;
                    ssize_t got = recv(p->conn, &m, sizeof m, MSG_DONTWAIT);
                    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) p->closed = 1;
                    else if (ht_msg_ok(&m, got, sizeof m, HT_MSG_END)) p->ended = 1;
                    else if (ht_msg_ok(&m, got, sizeof m, HT_MSG_EXIT))
                        p->exit_reported = 1, p->exit_status = (int)m.status;
                }
                if (pf[j + 1].revents & POLLIN) {
                    uint64_t v;
                    ssize_t rd = read(p->efd, &v, sizeof v);
                    (void)rd;
                }
            }
            if (pf[0].revents & POLLIN) accept_one(c);
        }
        if (attached) {
            /* the session ends with the connection (detach, stop, exit) */
            int open = 0;
            for (proc *p = c->procs; p; p = p->next) open |= p->shm && !p->closed;
            if (!open) exited = 1;
        } else if (pidfd < 0 || (r > 0 && (pf[1].revents & POLLIN))) {
            /* the pidfd turns readable (and stays so) when the program exits */
            pid_t w = waitpid(root, status, WNOHANG);
            if (w == root) exited = 1;
            else if (w < 0 && errno == ECHILD) exited = 1, *status = 0;
        }
    }
    free(pf);
    free(pfp);
    if (pidfd >= 0) close(pidfd);
    /* the process is gone: everything it committed is in its regions */
    accept_one(c); /* a late hello must not be left hanging */
    for (proc *p = c->procs; p; p = p->next) p->closed = 1;
    reap_closed(c, 0); /* drains everything; keeps the root's encoders */
    uint64_t end_ts = now_ts(c);
    proc *last = NULL; /* the newest image of the root process: procs are prepended */
    for (proc *p = c->procs; p && !last; p = p->next)
        if (p->pid == (uint32_t)root) last = p;
    int how = 0; /* PROCESS_END arg 2: 0 exact, 2 ended without an exit report */
    if (attached) {
        *status = -2;
        if (!last || last->ended) *status = -1; /* detached: it runs on */
        else if (last->exit_reported) *status = last->exit_status;
        else how = 2;
    }
    if (last && *status != -1) {
        ht_event ev = {.kind = HT_EV_PROCESS_END, .pid = (uint32_t)root, .tid = (uint32_t)root,
                       .ts = end_ts, .nargs = 3};
        ev.arg[0] = *status >= 0 && WIFEXITED(*status) ? (uint64_t)WEXITSTATUS(*status) : 0;
        ev.arg[1] = *status >= 0 && WIFSIGNALED(*status) ? (uint64_t)WTERMSIG(*status) : 0;
        ev.arg[2] = (uint64_t)how;
        put_event(c, &last->enc, &ev);
    }
    reap_closed(c, 1);
    ht_event ev = {.kind = HT_EV_SESSION_END, .ts = end_ts, .nargs = 4};
    ev.arg[0] = c->st.events;
    ev.arg[1] = c->st.lost;
    ev.arg[2] = c->st.subbufs;
    ev.arg[3] = c->st.damaged;
    put_event(c, &c->session_enc, &ev);
    flush_enc(c, &c->session_enc);
    if (c->writing) {
        ht_clock_conv_update(&c->conv);
        h.raw_per_sec = (uint64_t)(1e9 / c->conv.rate);
        ht_writer_update_header(&c->w, &h);
    }
    c->st.bytes = c->w.offset;
    int rc = ht_writer_close(&c->w);
    if (rc < 0 && !c->st.write_error) write_failed(c, rc);
    return c->st.write_error ? -c->st.write_error : 0;
}

void ht_collector_stats(const ht_collector *c, ht_collect_stats *s)
{
    *s = c->st;
}

void ht_collector_destroy(ht_collector *c)
{
    if (!c) return;
    if (c->spare) proc_free(c->spare);
    while (c->procs) {
        proc *p = c->procs;
        c->procs = p->next;
        proc_free(p);
    }
    if (c->lfd >= 0) close(c->lfd);
    unlink(c->sock_path);
    if (c->w.fd > 0) ht_writer_close(&c->w);
    ht_enc_free(&c->session_enc);
    free(c->out_path);
    collector_release(c);
}
