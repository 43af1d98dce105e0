/*
 * rt.h - internal state of libheaptrace.so and its recording fast path.
 *
 * Invariants:
 *  - ht__on is 0 while no session records this process, else the session's
 *    generation.  It is the only thing the idle path reads.
 *  - A thread records into the sub-buffer it owns (tls.sb) between tls.cur
 *    and tls.end.  tls.gen != ht__on means the window is stale (new session,
 *    first event of the thread, after fork): the slow path re-validates.
 *  - tls.in_emit is set while a record is being written; an event arriving
 *    then (a signal handler that allocates) is counted as lost, never written
 *    into the half-built record.
 *  - tls.nest > 0 while the runtime itself calls something that may allocate
 *    (dlsym, pthread_setspecific): those calls are not the program's events.
 *  - tls.pending_api != 0 while a C++ wrapper runs the real operator: the
 *    first malloc-family call made inside is that operator's block and is
 *    recorded once, with the operator's api and size; any other call inside
 *    (the bad_alloc exception object, a new_handler's frees) is its own event.
 */
#ifndef HT_RT_H
#define HT_RT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../common/atomic.h"
#include "../common/clock.h"
#include "../common/events.h"
#include "../common/proto.h"
#include "../common/shm.h"

#pragma GCC visibility push(hidden) /* internal: direct, GOT-free access */

typedef struct ht_tls {
    char *cur, *end, *data; /* write window in the owned sub-buffer */
    ht_subbuf *sb;          /* owned sub-buffer, or NULL */
    uint32_t gen;           /* session generation of the window */
    uint32_t nest;          /* runtime-internal call in progress */
    uint32_t pending_api;   /* C++ operator whose inner call is not seen yet */
    uint64_t pending_size;  /* its size argument */
    uint32_t in_emit;       /* writing a record */
    uint32_t tid;
    uint64_t lost;          /* dropped, not yet reported in the stream (changed
                             * by atomic read-modify-writes only: session.c) */
    uint64_t serial, seq;   /* thread serial in the region, sub-buffers taken */
    uint32_t exited;        /* thread-exit destructor ran (and has not been re-armed) */
    uint32_t exit_runs;     /* times it ran */
    uint32_t reg;           /* slot in the thread registry + 1, or 0 (control.c) */
    uint32_t starved, starve_seq; /* a block-mode wait gave up; the pool's free_seq then */
    /* call stacks (stacks.c); kept across sessions and fork: the resets in
     * session.c (ht__reserve_slow, atfork_child) copy each one back */
    uintptr_t stk_lo, stk_hi; /* the thread's stack, for frame-pointer walks */
    uint64_t *stk_cache;      /* hashes of stacks this thread has described */
    void *unw_memo;           /* the own unwinder's last complete walk (stacks.c) */
    uint32_t stk_gen;         /* session the cache belongs to */
} ht_tls;

extern __thread ht_tls ht__tls __attribute__((tls_model("initial-exec")));

/* The session generation: ht__session_on, exported (the public header
 * declares it const volatile), is an alias of this hidden variable. */
extern uint32_t ht__on;

/* Session state shared by all threads; written before ht__on is released. */
typedef struct ht_session {
    ht_shm_hdr *shm;
    size_t shm_size;
    uint32_t subbuf_size, subbuf_count, mode, clock;
    int sock_fd, event_fd;
    int glibc;          /* the real malloc is glibc's: chunk header readable */
    uint32_t stack_mode, stack_depth, stack_events; /* --stacks (ht_stack_mode), --depth, HT_STACK_ON_* */
    uint32_t slow_events; /* HT_STACK_ON_* kinds that take the general path: stacks, or no TSC */
} ht_session;
extern ht_session ht__sess;

/* Real allocator entry points (resolved with dlsym(RTLD_NEXT)). */
typedef struct ht_real {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    void *(*memalign)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
} ht_real;
extern ht_real ht__real;

void ht__init(void);         /* resolve symbols, join a session */
void ht__session_join(void); /* connect to $HEAPTRACE_SESSION if set */

/* Allocations made while dlsym runs during start-up come from this static
 * buffer; they are never freed and never recorded. */
#define HT_BOOT_SIZE (64u * 1024u)
extern char ht__boot_buf[HT_BOOT_SIZE];
static inline int ht__boot_owns(const void *p)
{
    return (uintptr_t)p - (uintptr_t)ht__boot_buf < HT_BOOT_SIZE;
}
void *ht__boot_alloc(size_t n, size_t align);
size_t ht__boot_size(const void *p);

/* Slow path: returns a window of `need` bytes or NULL (event dropped and
 * counted).  Handles stale windows, full sub-buffers, drop/block modes. */
char *ht__reserve_slow(ht_tls *t, uint32_t gen, size_t need);
void ht__lost_nested(ht_tls *t);
void ht__thread_exit(void *arg);
int ht__fd_hide(int fd);     /* move to a high, close-on-exec number */
void ht__fd_close(int fd);   /* really close one of ours */

/* Control endpoint and session lifecycle (control.c). */
extern int ht__ctl_fd;             /* listening socket of the endpoint, or -1 */
void ht__control_start(void);      /* from the constructor */
void ht__control_after_fork(void); /* in a forked child */
int ht__register_thread(ht_tls *t); /* 0: registry full */
void ht__unregister_thread(ht_tls *t);
/* Installs a session from a SESSION message and its fds on connection fd
 * (record: at start-up; attach: from the listener).  0 or -1. */
int ht__session_install(int fd, const struct ht_msg_session *msg, int fds[2]);
int ht__recv_session(int fd, struct ht_msg_session *msg, int fds[2]);
extern uint32_t ht__session_flags; /* HT_SESS_* of the current session */

/* Call stacks (stacks.c). */
void ht__stacks_setup(uint32_t mode);       /* at session install */
void ht__stacks_thread_exit(ht_tls *t);

/* ---- the fast path ---- */

/* Entering the record window.  The session can end at any moment: the
 * listener sets ht__on to 0, runs membarrier() (a full barrier on every
 * thread of the process) and then waits for every registered thread's
 * in_emit to read 0 before it unmaps the region.  The store of in_emit and
 * the load of ht__on here need only a compiler barrier between them; the
 * membarrier on the other side orders them (asymmetric Dekker).  So either
 * the listener sees in_emit set, or this thread sees the session over. */
static inline int ht__enter(ht_tls *t, uint32_t gen)
{
    if (HT_UNLIKELY(t->in_emit)) {
        ht__lost_nested(t);
        return 0;
    }
    __atomic_store_n(&t->in_emit, 1, __ATOMIC_RELAXED);
    __asm__ __volatile__("" ::: "memory");
    if (HT_UNLIKELY(ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on) != gen)) {
        __atomic_store_n(&t->in_emit, 0, __ATOMIC_RELAXED);
        return 0;
    }
    return 1;
}

static inline void ht__leave(ht_tls *t)
{
    __asm__ __volatile__("" ::: "memory");
    __atomic_store_n(&t->in_emit, 0, __ATOMIC_RELAXED);
}

static inline uint64_t ht__now(void)
{
    return ht_clock_read(ht__sess.clock);
}

/* The collector reads each line of a sub-buffer soon after it is written,
 * so when this thread takes that sub-buffer again the line is still in the
 * collector's core: the first store to it would wait for the line to be
 * taken back.  Asking for it, for writing, a few records ahead hides that
 * wait (workload A on the bench VM: 38 -> 18 ns per call of program CPU;
 * a plain read prefetch does not help).  PREFETCHW is not in every x86-64
 * CPU: ht__prefetchw says whether this one has it (bootstrap.c). */
#define HT_PREFETCH_AHEAD 512
extern int ht__prefetchw;

static inline void ht__prefetch_for_write(const char *p)
{
#if defined(__x86_64__) || defined(__i386__)
    if (HT_LIKELY(ht__prefetchw)) __asm__ __volatile__("prefetchw %0" ::"m"(*p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

static inline char *ht__reserve(ht_tls *t, uint32_t gen, size_t need)
{
    char *r = t->cur;
    if (HT_UNLIKELY(t->gen != gen || (size_t)(t->end - r) < need)) return ht__reserve_slow(t, gen, need);
    ht__prefetch_for_write(r + HT_PREFETCH_AHEAD); /* as on the fast path */
    return r;
}

/* A record is written in three steps.  begin: `committed` goes odd, saying
 * "an event of this thread is in flight, its timestamp is not older than the
 * thread's last one" (the collector then holds back newer events of other
 * threads, so a thread preempted mid-record cannot come out of order).
 * Then the timestamp is read and the record filled; commit publishes it. */
static inline void ht__mark_inflight(ht_tls *t, char *r)
{
    ht_atomic_store_relaxed(&t->sb->committed, (uint64_t)(r - t->data) | 1);
}

static inline uint64_t ht__begin(ht_tls *t, char *r)
{
    ht__mark_inflight(t, r);
    return ht__now();
}

static inline void ht__commit(ht_tls *t, char *rec_end)
{
    t->cur = rec_end;
    /* release: the record's bytes happen-before the consumer's acquire
     * load of `committed` in the collector's drain. */
    ht_atomic_store_release(&t->sb->committed, (uint64_t)(rec_end - t->data));
}

static inline void ht__hdr(ht_rec_hdr *h, unsigned kind, unsigned api, unsigned src,
                           size_t bytes, uint64_t heap, uint64_t ts)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* the first 8 bytes in one store: kind, api, source, words, heap */
    uint64_t w = (uint64_t)(uint8_t)kind | (uint64_t)(uint8_t)api << 8 | (uint64_t)(uint8_t)src << 16 |
                 (uint64_t)(uint8_t)(bytes / 8) << 24 | (uint64_t)(uint32_t)heap << 32;
    memcpy(h, &w, 8);
#else
    h->kind = (uint8_t)kind;
    h->api = (uint8_t)api;
    h->source = (uint8_t)src;
    h->words = (uint8_t)(bytes / 8);
    h->heap = (uint32_t)heap;
#endif
    h->ts = ts;
}

/* The general path of a heap event (stacks.c): a stack to walk, a window
 * to (re)open, a nested event to count.  Out of line, so that the fast path
 * below stays a leaf that needs no registers saved. */
void ht__emit_alloc_general(ht_tls *t, uint32_t gen, unsigned api, unsigned src, uint64_t heap,
                            const void *p, uint64_t size);
void ht__emit_free_general(ht_tls *t, uint32_t gen, unsigned api, unsigned src, uint64_t heap,
                           const void *p);
void ht__emit_realloc_general(ht_tls *t, uint32_t gen, unsigned api, unsigned src, uint64_t heap,
                              const void *np, uint64_t nsize, const void *op, uint64_t osize);
/* The same for the C library's calls (heap 1, old size unknown), returning
 * the block, with few enough arguments to pass in registers: the interposer
 * ends with `return` of it, a jump, so the general path runs in place of
 * the interposer's frame and a dwarf walk steps over one frame fewer.
 * `apisrc` is api | source << 8. */
void *ht__emit_libc_alloc_general(uint32_t gen, unsigned apisrc, void *p, uint64_t size);
void *ht__emit_libc_realloc_general(uint32_t gen, unsigned apisrc, void *np, uint64_t nsize, const void *op);

/* The fast path: no record of this thread in flight, no stack wanted for
 * this kind of event, the clock is the TSC, the window is this session's
 * and has `sz` bytes.  Then it enters the record window (ht__enter), marks
 * the record in flight (ht__begin), stores where it goes in *rp, its
 * timestamp in *tsp and returns 1; else 0, and the caller takes the general path
 * (which also handles a session that ended meanwhile).  No calls: the
 * functions inlining it need no registers saved. */
static inline int ht__fast_open(ht_tls *t, uint32_t gen, unsigned kind_flag, size_t sz, char **rp,
                                uint64_t *tsp)
{
    if (HT_UNLIKELY((t->in_emit | (ht__sess.slow_events & kind_flag)) != 0)) return 0;
    __atomic_store_n(&t->in_emit, 1, __ATOMIC_RELAXED);
    __asm__ __volatile__("" ::: "memory");
    /* the window is read only now: a signal handler's event between the
     * test above and the store ran to its end and moved it */
    char *r = t->cur;
    if (HT_UNLIKELY(ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on) != gen || t->gen != gen ||
                    (size_t)(t->end - r) < sz)) {
        ht__leave(t);
        return 0;
    }
    ht__prefetch_for_write(r + HT_PREFETCH_AHEAD); /* a hint: never faults */
    ht__mark_inflight(t, r); /* ht__begin, with the TSC read below */
    *rp = r;
    *tsp = ht_rdtsc();
    return 1;
}

/* The timestamp is read inside, after any wait for a buffer: for an
 * allocation after the real call returned, for a free before it runs.
 * The *_fast parts write the record and return 1, or return 0 for the
 * general path. */
static HT_ALWAYS_INLINE int ht__alloc_fast(ht_tls *t, uint32_t gen, unsigned api, unsigned src, uint64_t heap,
                                           const void *p, uint64_t size)
{
    char *r;
    uint64_t ts;
    if (HT_UNLIKELY(!ht__fast_open(t, gen, HT_STACK_ON_ALLOC, sizeof(ht_rec_alloc), &r, &ts))) return 0;
    ht_rec_alloc *a = (ht_rec_alloc *)r;
    ht__hdr(&a->h, HT_EV_ALLOC, api, src, sizeof *a, heap, ts);
    a->addr = (uintptr_t)p;
    a->size = size;
    ht__commit(t, r + sizeof *a);
    ht__leave(t);
    return 1;
}

static HT_ALWAYS_INLINE void ht__emit_alloc(ht_tls *t, uint32_t gen, unsigned api, unsigned src,
                                  uint64_t heap, const void *p, uint64_t size)
{
    if (HT_UNLIKELY(!ht__alloc_fast(t, gen, api, src, heap, p, size)))
        ht__emit_alloc_general(t, gen, api, src, heap, p, size);
}

/* A C library allocation's event; returns p (see ht__emit_libc_alloc_general). */
static HT_ALWAYS_INLINE void *ht__emit_libc_alloc(ht_tls *t, uint32_t gen, unsigned api, unsigned src, void *p,
                                                  uint64_t size)
{
    if (HT_LIKELY(ht__alloc_fast(t, gen, api, src, 1, p, size))) return p;
    return ht__emit_libc_alloc_general(gen, api | src << 8, p, size);
}

static HT_ALWAYS_INLINE void ht__emit_free(ht_tls *t, uint32_t gen, unsigned api, unsigned src,
                                 uint64_t heap, const void *p)
{
    char *r;
    uint64_t ts;
    if (HT_UNLIKELY(!ht__fast_open(t, gen, HT_STACK_ON_FREE, sizeof(ht_rec_free), &r, &ts))) {
        ht__emit_free_general(t, gen, api, src, heap, p);
        return;
    }
    ht_rec_free *a = (ht_rec_free *)r;
    ht__hdr(&a->h, HT_EV_FREE, api, src, sizeof *a, heap, ts);
    a->addr = (uintptr_t)p;
    ht__commit(t, r + sizeof *a);
    ht__leave(t);
}

static HT_ALWAYS_INLINE int ht__realloc_fast(ht_tls *t, uint32_t gen, unsigned api, unsigned src, uint64_t heap,
                                             const void *np, uint64_t nsize, const void *op, uint64_t osize)
{
    char *r;
    uint64_t ts;
    if (HT_UNLIKELY(!ht__fast_open(t, gen, HT_STACK_ON_REALLOC, sizeof(ht_rec_realloc), &r, &ts))) return 0;
    ht_rec_realloc *a = (ht_rec_realloc *)r;
    ht__hdr(&a->h, HT_EV_REALLOC, api, src, sizeof *a, heap, ts);
    a->new_addr = (uintptr_t)np;
    a->new_size = nsize;
    a->old_addr = (uintptr_t)op;
    a->old_size = osize;
    ht__commit(t, r + sizeof *a);
    ht__leave(t);
    return 1;
}

static HT_ALWAYS_INLINE void ht__emit_realloc(ht_tls *t, uint32_t gen, unsigned api, unsigned src,
                                    uint64_t heap, const void *np, uint64_t nsize,
                                    const void *op, uint64_t osize)
{
    if (HT_UNLIKELY(!ht__realloc_fast(t, gen, api, src, heap, np, nsize, op, osize)))
        ht__emit_realloc_general(t, gen, api, src, heap, np, nsize, op, osize);
}

/* A C library realloc's event; returns np. */
static HT_ALWAYS_INLINE void *ht__emit_libc_realloc(ht_tls *t, uint32_t gen, unsigned api, unsigned src,
                                                    void *np, uint64_t nsize, const void *op)
{
    if (HT_LIKELY(ht__realloc_fast(t, gen, api, src, 1, np, nsize, op, 0))) return np;
    return ht__emit_libc_realloc_general(gen, api | src << 8, np, nsize, op);
}

/* Variable-length metadata record (heap create/destroy, marker). */
void ht__emit_text(unsigned kind, uint64_t heap, uint32_t flags, const char *text, size_t max);

/* Source of a block the real (glibc) allocator returned or is given back:
 * SLOWPATH when its chunk was mmap'ed (IS_MMAPPED bit in the size word). */
static inline unsigned ht__libc_source(const void *p)
{
    if (p == NULL || !ht__sess.glibc) return 3; /* MAINPATH */
    if ((uintptr_t)p & 15) return 5;           /* INVALID: glibc rejects it */
    return (((const size_t *)p)[-1] & 2) ? 4 /* SLOWPATH */ : 3 /* MAINPATH */;
}

#pragma GCC visibility pop
#endif
