/*
 * test_ring.c - the shared-memory ring protocol (common/shm.h) under real
 * concurrency, in one process.
 *
 * Producer threads follow the runtime's protocol exactly: pop a free
 * sub-buffer (ht_shm_pop), set serial/seq/tid, release-store ACTIVE,
 * append fixed ALLOC records publishing each with a release store of
 * `committed`, release-store FULL when the next record does not fit (and at
 * thread exit); when the pool is empty they wait (block mode) or count the
 * record as dropped (drop mode).  One consumer scans the region the way the
 * collector's drain_proc does: snapshot the ACTIVE/FULL sub-buffers, sort
 * them by (serial, seq), consume newly committed bytes, return FULL ones
 * with ht_shm_push, and stop a thread's group at its ACTIVE buffer.
 *
 * Each record carries (thread, n): the consumer checks every record arrives
 * exactly once, in per-thread order, that each thread's sub-buffers arrive
 * with consecutive seq numbers, that a popped sub-buffer is never owned by
 * anybody else and is FREE with nothing committed, and at the end that every
 * sub-buffer is back in the pool exactly once.  Drop mode: received +
 * dropped == produced, per thread and record by record (the consumer starts
 * only after the first drop, so drops certainly happen).  Small sub-buffers
 * (4 KiB x 8, and down to one record per sub-buffer) force many swaps.
 *
 * The snapshot race: drain_proc's snapshot is not atomic, so a thread can
 * take a buffer the scan has already passed, fill it and take one the scan
 * has not reached yet; the snapshot then holds seq n+1 without seq n and the
 * records of n+1 are read first.  drain_proc therefore has a "sequence
 * guard" (a thread whose oldest buffer found is not the next expected, or
 * whose buffers have a hole, is left for the next round), and so does the
 * drain here.  test_snapshot_race_guarded drives that interleaving
 * deterministically; test_snapshot_race_unguarded shows that without the
 * guard the records would come out of order (the swap storm hits it on
 * almost every run).
 *
 * Labels unit;tsan: run under TSan too, where it checks the memory orders.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "common/events.h"
#include "common/shm.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define MAX_THREADS 16
#define TID_BASE 0x10000u
#define REC_WORDS (sizeof(ht_rec_alloc) / 8)
#define TS_MIX 0x5bd1e9955bd1e995ull

typedef struct producer {
    pthread_t th;
    struct ring *ring;
    unsigned id;
    uint64_t dropped;   /* records dropped (drop mode) */
    uint8_t *drop_map;  /* bit n: record n was dropped */
    uint64_t buffers;   /* sub-buffers taken */
    /* the runtime's per-thread state (ht_tls) */
    uint32_t tid;
    uint64_t serial, seq;
    ht_subbuf *sb;
    uint32_t sb_idx;
    char *data, *cur, *end;
} producer;

typedef struct ring {
    ht_shm_hdr *h;
    size_t size;
    uint32_t count, sbsize, mode;
    unsigned nthreads;
    uint64_t per_thread;
    uint32_t rec_limit;      /* records per sub-buffer, to force swaps (0: fill it) */
    _Atomic uint32_t *owner; /* per sub-buffer: producer id + 1 while owned */
    _Atomic unsigned done;   /* producers finished */
    _Atomic int dropped_any; /* drop mode: the consumer starts after the first drop */
    _Atomic int abort;
    _Atomic int failed;
    char failure[256];
    producer prod[MAX_THREADS];
    /* consumer state */
    uint64_t *consumed;                 /* bytes of each sub-buffer already read */
    uint64_t next_rec[MAX_THREADS];     /* lowest record number still possible */
    uint64_t received[MAX_THREADS];
    uint64_t next_seq[MAX_THREADS];     /* seq of the thread's next sub-buffer */
    uint64_t serial_of[MAX_THREADS];    /* serial the thread got, +1 (0: none yet) */
    uint8_t *recv_map[MAX_THREADS];     /* bit n: record n received */
    uint64_t pushes, rounds;
    /* drain variant: 0 = exactly collector.c's drain_proc; 1 = also stop a
     * thread's group when its oldest buffer found is not the next in its
     * sequence (the older one was taken after the snapshot passed it) */
    int seq_guard;
    uint64_t guard_waits; /* rounds a group was deferred by the guard */
    /* deterministic tests: called after the snapshot has looked at index i */
    void (*scan_hook)(struct ring *r, uint32_t i);
} ring;

static void ring_fail(ring *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ring_fail(ring *r, const char *fmt, ...)
{
    if (atomic_exchange(&r->failed, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->failure, sizeof r->failure, fmt, ap);
        va_end(ap);
    }
    atomic_store(&r->abort, 1);
}

static int bit_get(const uint8_t *m, uint64_t n) { return m[n / 8] >> (n % 8) & 1; }
static void bit_set(uint8_t *m, uint64_t n) { m[n / 8] |= (uint8_t)(1u << (n % 8)); }

/* ---- producer: the runtime's protocol ---- */

static void prod_init(producer *p, ring *r, unsigned id)
{
    p->ring = r;
    p->id = id;
    p->tid = TID_BASE + id;
    p->serial = ht_atomic_add_relaxed(&r->h->thread_serial, 1);
}

/* Hand the owned sub-buffer over (full, or at thread exit). */
static void prod_release(producer *p)
{
    if (!p->sb) return;
    atomic_store(&p->ring->owner[p->sb_idx], 0); /* ownership ends with FULL: forget it first */
    /* release: the records and final `committed` happen-before the
     * consumer's acquire of FULL */
    ht_atomic_store_release(&p->sb->state, HT_SB_FULL);
    p->sb = NULL;
    p->data = p->cur = p->end = NULL;
}

/* Take a sub-buffer; 0: none (drop mode, or the test is aborting). */
static int prod_acquire(producer *p)
{
    ring *r = p->ring;
    const uint32_t count = r->count; /* our trusted copy, as the runtime keeps */
    uint32_t idx = ht_shm_pop(r->h, count);
    if (idx == HT_FREE_NONE) {
        if (r->mode == HT_MODE_DROP) return 0;
        while ((idx = ht_shm_pop(r->h, count)) == HT_FREE_NONE) {
            if (atomic_load_explicit(&r->abort, memory_order_relaxed)) return 0;
            sched_yield();
        }
    }
    if (idx >= count) {
        ring_fail(r, "thread %u: pop returned index %u of %u", p->id, idx, count);
        return 0;
    }
    uint32_t prev = atomic_exchange(&r->owner[idx], p->id + 1);
    if (prev != 0) {
        ring_fail(r, "thread %u popped sub-buffer %u, still owned by thread %u", p->id, idx, prev - 1);
        return 0;
    }
    ht_subbuf *sb = ht_shm_subbuf(r->h, idx);
    if (ht_atomic_load_relaxed(&sb->state) != HT_SB_FREE || ht_atomic_load_relaxed(&sb->committed) != 0) {
        ring_fail(r, "thread %u popped sub-buffer %u in state %u committed %llu", p->id, idx,
                  (unsigned)ht_atomic_load_relaxed(&sb->state),
                  (unsigned long long)ht_atomic_load_relaxed(&sb->committed));
        return 0;
    }
    sb->serial = p->serial;
    sb->seq = p->seq++;
    sb->tid = p->tid;
    ht_atomic_store_relaxed(&sb->committed, 0);
    /* release: serial/seq/tid happen-before the consumer's acquire of ACTIVE */
    ht_atomic_store_release(&sb->state, HT_SB_ACTIVE);
    p->buffers++;
    p->sb = sb;
    p->sb_idx = idx;
    p->data = p->cur = ht_shm_data(r->h, r->sbsize, r->count, idx);
    p->end = p->data + r->sbsize;
    if (r->rec_limit && (size_t)(p->end - p->data) > r->rec_limit * sizeof(ht_rec_alloc))
        p->end = p->data + r->rec_limit * sizeof(ht_rec_alloc);
    return 1;
}

/* Record number n of this thread: reserve (swapping sub-buffers when the
 * record does not fit), write, commit. */
static void prod_put(producer *p, uint64_t n)
{
    if ((size_t)(p->end - p->cur) < sizeof(ht_rec_alloc)) {
        prod_release(p);
        if (!prod_acquire(p)) {
            p->dropped++;
            bit_set(p->drop_map, n);
            atomic_store_explicit(&p->ring->dropped_any, 1, memory_order_relaxed);
            return;
        }
    }
    ht_rec_alloc *a = (ht_rec_alloc *)p->cur;
    a->h.kind = HT_EV_ALLOC;
    a->h.api = HT_API_MALLOC;
    a->h.source = 3;
    a->h.words = REC_WORDS;
    a->h.heap = p->id;
    a->h.ts = n ^ TS_MIX;
    a->addr = p->tid;
    a->size = n;
    p->cur += sizeof *a;
    /* release: the record's bytes happen-before the consumer's acquire load
     * of `committed` */
    ht_atomic_store_release(&p->sb->committed, (uint64_t)(p->cur - p->data));
}

static void *producer_main(void *arg)
{
    producer *p = arg;
    ring *r = p->ring;
    for (uint64_t n = 0; n < r->per_thread; n++) {
        if (atomic_load_explicit(&r->abort, memory_order_relaxed)) break;
        prod_put(p, n);
    }
    prod_release(p); /* thread exit */
    /* release: everything above happens-before the consumer's last drain */
    atomic_fetch_add_explicit(&r->done, 1, memory_order_release);
    return NULL;
}

/* ---- consumer: the collector's drain ---- */

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

/* Checks the records of data[from, to) of a sub-buffer owned by serial/tid. */
static int check_records(ring *r, uint64_t serial, uint32_t tid, const uint8_t *data, uint64_t from,
                         uint64_t to)
{
    unsigned t = tid - TID_BASE;
    if (tid < TID_BASE || t >= r->nthreads) {
        ring_fail(r, "sub-buffer with unknown tid %#x", tid);
        return -1;
    }
    if (r->serial_of[t] == 0) r->serial_of[t] = serial + 1;
    if (r->serial_of[t] != serial + 1) {
        ring_fail(r, "thread %u seen with serials %llu and %llu", t,
                  (unsigned long long)r->serial_of[t] - 1, (unsigned long long)serial);
        return -1;
    }
    if ((to - from) % sizeof(ht_rec_alloc) != 0) {
        ring_fail(r, "thread %u: committed range [%llu,%llu) is not whole records", t,
                  (unsigned long long)from, (unsigned long long)to);
        return -1;
    }
    for (uint64_t off = from; off < to; off += sizeof(ht_rec_alloc)) {
        ht_rec_alloc a;
        memcpy(&a, data + off, sizeof a);
        if (a.h.kind != HT_EV_ALLOC || a.h.words != REC_WORDS || a.h.api != HT_API_MALLOC ||
            a.h.source != 3 || a.h.heap != t || a.addr != tid || a.h.ts != (a.size ^ TS_MIX)) {
            ring_fail(r, "thread %u: garbled record at offset %llu (kind %u words %u addr %#llx n %llu)",
                      t, (unsigned long long)off, a.h.kind, a.h.words, (unsigned long long)a.addr,
                      (unsigned long long)a.size);
            return -1;
        }
        uint64_t n = a.size;
        if (n >= r->per_thread || n < r->next_rec[t] ||
            (r->mode == HT_MODE_BLOCK && n != r->next_rec[t])) {
            ring_fail(r, "thread %u: record %llu arrived, expected %s%llu", t, (unsigned long long)n,
                      r->mode == HT_MODE_BLOCK ? "" : ">= ", (unsigned long long)r->next_rec[t]);
            return -1;
        }
        if (bit_get(r->recv_map[t], n)) {
            ring_fail(r, "thread %u: record %llu arrived twice", t, (unsigned long long)n);
            return -1;
        }
        bit_set(r->recv_map[t], n);
        r->next_rec[t] = n + 1;
        r->received[t]++;
    }
    return 0;
}

/* One drain round; returns whether anything was consumed or returned. */
static int drain(ring *r, cand *cv)
{
    ht_shm_hdr *h = r->h;
    const uint64_t data_cap = r->sbsize;
    int busy = 0;
    size_t n = 0;
    r->rounds++;
    for (uint32_t i = 0; i < r->count; i++) {
        ht_subbuf *sb = ht_shm_subbuf(h, i);
        /* acquire: pairs with the producer's release of ACTIVE/FULL */
        uint32_t stt = ht_atomic_load_acquire(&sb->state);
        if (stt == HT_SB_ACTIVE || stt == HT_SB_FULL) cv[n++] = (cand){sb->serial, sb->seq, i};
        else if (stt != HT_SB_FREE) {
            ring_fail(r, "sub-buffer %u in state %u", i, stt);
            return 0;
        }
        if (r->scan_hook) r->scan_hook(r, i);
    }
    qsort(cv, n, sizeof *cv, cand_cmp);
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && cv[k].serial == cv[k - 1].serial && cv[k - 1].idx == UINT32_MAX) {
            cv[k].idx = UINT32_MAX; /* an earlier buffer of this thread is still ACTIVE */
            continue;
        }
        uint32_t idx = cv[k].idx;
        ht_subbuf *sb = ht_shm_subbuf(h, idx);
        uint32_t stt = ht_atomic_load_acquire(&sb->state);
        /* acquire: pairs with the release store of committed */
        uint64_t com = ht_atomic_load_acquire(&sb->committed);
        if (com > data_cap) {
            ring_fail(r, "sub-buffer %u: committed %llu > capacity", idx, (unsigned long long)com);
            return 0;
        }
        uint32_t tid = sb->tid;
        unsigned t = tid - TID_BASE;
        if (tid < TID_BASE || t >= r->nthreads) {
            ring_fail(r, "sub-buffer %u: unknown tid %#x", idx, tid);
            return 0;
        }
        if (r->seq_guard && cv[k].seq != r->next_seq[t]) {
            /* its predecessor was taken after the snapshot passed its index:
             * leave this thread for the next round */
            r->guard_waits++;
            cv[k].idx = UINT32_MAX;
            continue;
        }
        /* the oldest unreturned buffer of a thread is the next in its sequence */
        if (cv[k].seq != r->next_seq[t]) {
            ring_fail(r, "thread %u: its sub-buffer seq %llu is read before seq %llu, which the "
                      "snapshot missed (its records would come out of order)", t,
                      (unsigned long long)cv[k].seq, (unsigned long long)r->next_seq[t]);
            return 0;
        }
        uint64_t from = r->consumed[idx];
        if (com < from) {
            ring_fail(r, "sub-buffer %u: committed went back from %llu to %llu", idx,
                      (unsigned long long)from, (unsigned long long)com);
            return 0;
        }
        if (com > from) {
            if (check_records(r, cv[k].serial, tid, (const uint8_t *)ht_shm_data(h, r->sbsize, r->count, idx), from,
                              com) < 0)
                return 0;
            r->consumed[idx] = com;
            busy = 1;
        }
        if (stt == HT_SB_FULL) {
            r->consumed[idx] = 0;
            r->next_seq[t]++;
            if (ht_shm_push(h, idx) < 0) {
                ring_fail(r, "ht_shm_push(%u) gave up", idx);
                return 0;
            }
            r->pushes++;
            busy = 1;
        } else {
            cv[k].idx = UINT32_MAX; /* later buffers of this serial wait */
        }
    }
    return busy;
}

static void *consumer_main(void *arg)
{
    ring *r = arg;
    cand *cv = malloc(r->count * sizeof *cv);
    if (!cv) {
        ring_fail(r, "out of memory");
        return NULL;
    }
    if (r->mode == HT_MODE_DROP) {
        /* let the pool run dry first, so that drops certainly happen */
        while (!atomic_load_explicit(&r->dropped_any, memory_order_relaxed) &&
               atomic_load_explicit(&r->done, memory_order_acquire) < r->nthreads &&
               !atomic_load_explicit(&r->abort, memory_order_relaxed))
            sched_yield();
    }
    for (;;) {
        if (atomic_load_explicit(&r->abort, memory_order_relaxed)) break;
        /* acquire: pairs with the producers' release of `done` */
        int all_done = atomic_load_explicit(&r->done, memory_order_acquire) == r->nthreads;
        int busy = drain(r, cv);
        if (!busy) {
            if (all_done) break; /* a full round after the last producer: nothing left */
            sched_yield();
        }
    }
    free(cv);
    return NULL;
}

/* ---- harness ---- */

typedef struct ring_cfg {
    uint32_t sbsize, count, mode;
    unsigned nthreads;
    uint64_t per_thread;
    uint32_t rec_limit; /* records per sub-buffer (0: as many as fit) */
    int seq_guard;
} ring_cfg;

static ring *ring_new(const ring_cfg *c)
{
    ring *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_true(c->nthreads <= MAX_THREADS);
    r->size = ht_shm_size(c->sbsize, c->count);
    void *m = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    r->h = m;
    ht_shm_init(r->h, c->sbsize, c->count, c->mode, HT_CLOCK_MONOTONIC, 1234);
    assert_int_equal(ht_shm_check(r->h, r->size), 0);
    r->count = c->count;
    r->sbsize = c->sbsize;
    r->mode = c->mode;
    r->nthreads = c->nthreads;
    r->per_thread = c->per_thread;
    r->rec_limit = c->rec_limit;
    r->seq_guard = c->seq_guard;
    r->owner = calloc(c->count, sizeof *r->owner);
    r->consumed = calloc(c->count, sizeof *r->consumed);
    assert_true(r->owner && r->consumed);
    for (unsigned t = 0; t < c->nthreads; t++) {
        r->recv_map[t] = calloc(c->per_thread / 8 + 1, 1);
        r->prod[t].drop_map = calloc(c->per_thread / 8 + 1, 1);
        assert_true(r->recv_map[t] && r->prod[t].drop_map);
        prod_init(&r->prod[t], r, t);
    }
    return r;
}

static void ring_free(ring *r)
{
    for (unsigned t = 0; t < r->nthreads; t++) {
        free(r->recv_map[t]);
        free(r->prod[t].drop_map);
    }
    free(r->owner);
    free(r->consumed);
    munmap(r->h, r->size);
    free(r);
}

/* After the run: every record arrived or was dropped, exactly one of the
 * two; every sub-buffer came back once, in order; the pool is complete.
 * Returns NULL or what is wrong (in buf). */
static const char *ring_verify(ring *r, char *buf, size_t len)
{
    if (atomic_load(&r->failed)) return r->failure;
    uint64_t buffers = 0, dropped = 0;
    for (unsigned t = 0; t < r->nthreads; t++) {
        producer *p = &r->prod[t];
        buffers += p->buffers;
        dropped += p->dropped;
        if (r->mode == HT_MODE_BLOCK && p->dropped) {
            snprintf(buf, len, "thread %u dropped %llu records in block mode", t,
                     (unsigned long long)p->dropped);
            return buf;
        }
        if (r->received[t] + p->dropped != r->per_thread) {
            snprintf(buf, len, "thread %u: %llu received + %llu dropped != %llu produced", t,
                     (unsigned long long)r->received[t], (unsigned long long)p->dropped,
                     (unsigned long long)r->per_thread);
            return buf;
        }
        for (uint64_t n = 0; n < r->per_thread; n++)
            if (bit_get(r->recv_map[t], n) == bit_get(p->drop_map, n)) {
                snprintf(buf, len, "thread %u record %llu: %s", t, (unsigned long long)n,
                         bit_get(p->drop_map, n) ? "dropped and received" : "lost");
                return buf;
            }
        if (r->next_seq[t] != p->buffers) {
            snprintf(buf, len, "thread %u took %llu sub-buffers, %llu came back", t,
                     (unsigned long long)p->buffers, (unsigned long long)r->next_seq[t]);
            return buf;
        }
    }
    if (r->pushes != buffers) {
        snprintf(buf, len, "%llu sub-buffers taken, %llu pushed back", (unsigned long long)buffers,
                 (unsigned long long)r->pushes);
        return buf;
    }
    if (r->mode == HT_MODE_DROP && dropped == 0) {
        snprintf(buf, len, "drop mode without a single drop: the test did not test");
        return buf;
    }
    /* all sub-buffers FREE and in the pool exactly once */
    for (uint32_t i = 0; i < r->count; i++) {
        uint32_t st = ht_atomic_load_relaxed(&ht_shm_subbuf(r->h, i)->state);
        if (st != HT_SB_FREE) {
            snprintf(buf, len, "sub-buffer %u left in state %u", i, st);
            return buf;
        }
    }
    uint8_t seen[HT_SUBBUF_COUNT_MAX / 8] = {0};
    for (uint32_t k = 0; k < r->count; k++) {
        uint32_t idx = ht_shm_pop(r->h, r->count);
        if (idx == HT_FREE_NONE || idx >= r->count) {
            snprintf(buf, len, "only %u of %u sub-buffers are in the free pool", k, r->count);
            return buf;
        }
        if (bit_get(seen, idx)) {
            snprintf(buf, len, "sub-buffer %u is in the free pool twice", idx);
            return buf;
        }
        bit_set(seen, idx);
        if (ht_atomic_load_relaxed(&ht_shm_subbuf(r->h, idx)->committed) != 0) {
            snprintf(buf, len, "free sub-buffer %u has committed bytes", idx);
            return buf;
        }
    }
    if (ht_shm_pop(r->h, r->count) != HT_FREE_NONE) {
        snprintf(buf, len, "the free pool has more than %u entries", r->count);
        return buf;
    }
    return NULL;
}

static void run_ring(const ring_cfg *c)
{
    ring *r = ring_new(c);
    pthread_t consumer;
    assert_int_equal(pthread_create(&consumer, NULL, consumer_main, r), 0);
    for (unsigned t = 0; t < c->nthreads; t++)
        assert_int_equal(pthread_create(&r->prod[t].th, NULL, producer_main, &r->prod[t]), 0);
    for (unsigned t = 0; t < c->nthreads; t++) pthread_join(r->prod[t].th, NULL);
    pthread_join(consumer, NULL);
    uint64_t received = 0, dropped = 0, buffers = 0;
    for (unsigned t = 0; t < c->nthreads; t++) {
        received += r->received[t];
        dropped += r->prod[t].dropped;
        buffers += r->prod[t].buffers;
    }
    print_message("# %s, %u threads x %llu records, %ux%u B%s: %llu received, %llu dropped, "
                  "%llu sub-buffers, %llu drain rounds, %llu deferred by the seq guard\n",
                  c->mode == HT_MODE_BLOCK ? "block" : "drop", c->nthreads,
                  (unsigned long long)c->per_thread, c->count, c->sbsize,
                  c->rec_limit ? " (few records per sub-buffer)" : "", (unsigned long long)received,
                  (unsigned long long)dropped, (unsigned long long)buffers,
                  (unsigned long long)r->rounds, (unsigned long long)r->guard_waits);
    char buf[256];
    const char *err = ring_verify(r, buf, sizeof buf);
    char msg[256] = "";
    if (err) snprintf(msg, sizeof msg, "%s", err);
    ring_free(r);
    if (err) fail_msg("%s", msg);
}

/* Records per thread: fewer under TSan, which is ~10x slower. */
static uint64_t scaled(uint64_t n) { return UNDER_TSAN ? n / 4 : n; }

/* ---- tests ---- */

static void test_shm_init(void **state)
{
    (void)state;
    const uint32_t sbsize = 4096, count = 8;
    size_t size = ht_shm_size(sbsize, count);
    ht_shm_hdr *h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(h != MAP_FAILED);
    ht_shm_init(h, sbsize, count, HT_MODE_BLOCK, HT_CLOCK_MONOTONIC, 99);
    assert_int_equal(ht_shm_check(h, size), 0);
    assert_int_equal(ht_atomic_load_relaxed(&h->state), HT_SHM_RUNNING);
    assert_int_equal(ht_atomic_load_relaxed(&h->free_seq), 0);
    /* the pool hands out 0, 1, 2, ... first */
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(ht_shm_pop(h, count), i);
        assert_int_equal(ht_atomic_load_relaxed(&ht_shm_subbuf(h, i)->state), HT_SB_FREE);
    }
    assert_int_equal(ht_shm_pop(h, count), HT_FREE_NONE);
    /* LIFO, and push bumps the futex word */
    assert_int_equal(ht_shm_push(h, 5), 0);
    assert_int_equal(ht_shm_push(h, 2), 0);
    assert_int_equal(ht_atomic_load_relaxed(&h->free_seq), 2);
    assert_int_equal(ht_shm_pop(h, count), 2);
    assert_int_equal(ht_shm_pop(h, count), 5);
    assert_int_equal(ht_shm_pop(h, count), HT_FREE_NONE);
    /* ABA protection: popping and pushing back the same sub-buffer leaves
     * the same index on top, but never the same head word */
    for (uint32_t i = 0; i < count; i++) assert_int_equal(ht_shm_push(h, i), 0);
    for (int k = 0; k < 1000; k++) {
        uint64_t before = ht_atomic_load_relaxed(&h->free_head);
        uint32_t idx = ht_shm_pop(h, count);
        assert_int_equal(idx, (uint32_t)before);
        if (k % 2) { /* and with another pop/push in between */
            uint32_t other = ht_shm_pop(h, count);
            assert_int_equal(ht_shm_push(h, other), 0);
        }
        assert_int_equal(ht_shm_push(h, idx), 0);
        uint64_t after = ht_atomic_load_relaxed(&h->free_head);
        assert_int_equal((uint32_t)after, idx);
        assert_true(after != before);
    }
    for (uint32_t i = 0; i < count; i++) assert_true(ht_shm_pop(h, count) != HT_FREE_NONE);
    assert_int_equal(ht_shm_pop(h, count), HT_FREE_NONE);
    /* a pool head pointing outside the trusted count is refused, not followed */
    assert_int_equal(ht_shm_push(h, 7), 0);
    assert_int_equal(ht_shm_pop(h, 4), HT_FREE_NONE);
    /* the accessors use the caller's trusted sizes, never the header's: a
     * scribbled subbuf_size must change nothing (it crashed the collector) */
    ht_shm_init(h, sbsize, count, HT_MODE_BLOCK, HT_CLOCK_MONOTONIC, 99);
    h->subbuf_size = 0x7fffffc0;
    assert_int_equal(ht_shm_pop(h, count), 0);
    assert_int_equal(ht_shm_push(h, 0), 0);
    assert_int_equal(ht_shm_pop(h, count), 0);
    /* layout: the headers together after the region's, then the data */
    assert_ptr_equal(ht_shm_subbuf(h, 0), (char *)h + HT_SHM_HDR_SIZE);
    assert_ptr_equal(ht_shm_subbuf(h, count - 1) + 1, (char *)h + HT_SHM_HDR_SIZE + count * HT_SUBBUF_HDR_SIZE);
    assert_true((char *)(ht_shm_subbuf(h, count - 1) + 1) <= ht_shm_data(h, sbsize, count, 0));
    assert_int_equal((uintptr_t)ht_shm_data(h, sbsize, count, 0) % 4096, (uintptr_t)h % 4096);
    assert_ptr_equal(ht_shm_data(h, sbsize, count, count - 1), (char *)h + size - sbsize);
    /* the check refuses damaged headers */
    ht_shm_init(h, sbsize, count, HT_MODE_DROP, HT_CLOCK_TSC, 99);
    assert_int_equal(ht_shm_check(h, size), 0);
    assert_int_equal(ht_shm_check(h, size - 1), -EINVAL);
    assert_int_equal(ht_shm_check(h, 100), -EINVAL);
    h->subbuf_count = count + 1;
    assert_int_equal(ht_shm_check(h, size), -EINVAL);
    h->subbuf_count = count;
    h->subbuf_size = sbsize + 8;
    assert_int_equal(ht_shm_check(h, size), -EINVAL);
    h->subbuf_size = sbsize;
    h->mode = 7;
    assert_int_equal(ht_shm_check(h, size), -EINVAL);
    h->mode = HT_MODE_BLOCK;
    h->magic ^= 1;
    assert_int_equal(ht_shm_check(h, size), -EINVAL);
    munmap(h, size);
}

/* The multi-threaded tests run the drain with the sequence guard (see the
 * snapshot race tests below): without it they fail on the race, not on
 * what they are meant to check. */

static void test_block_mode(void **state)
{
    (void)state;
    ring_cfg c = {4096, 8, HT_MODE_BLOCK, 4, scaled(200000), 0, 1};
    run_ring(&c);
}

static void test_block_mode_8(void **state)
{
    (void)state;
    ring_cfg c = {4096, 8, HT_MODE_BLOCK, 8, scaled(100000), 0, 1};
    run_ring(&c);
}

/* More producers than sub-buffers: some always wait for a free one. */
static void test_block_mode_crowded(void **state)
{
    (void)state;
    ring_cfg c = {4096, 4, HT_MODE_BLOCK, 12, scaled(24000), 0, 1};
    run_ring(&c);
}

static void test_drop_mode(void **state)
{
    (void)state;
    ring_cfg c = {4096, 8, HT_MODE_DROP, 4, scaled(200000), 0, 1};
    run_ring(&c);
}

static void test_drop_mode_crowded(void **state)
{
    (void)state;
    ring_cfg c = {4096, 4, HT_MODE_DROP, 12, scaled(24000), 0, 1};
    run_ring(&c);
}

/* A swap every record or two, many threads on a small pool: the free
 * pool's pop races with other pops and with the consumer's pushes as often
 * as possible (this is where an ABA problem would show up). */
static void test_swap_storm(void **state)
{
    (void)state;
    ring_cfg a = {4096, 4, HT_MODE_BLOCK, 8, scaled(40000), 1, 1};
    ring_cfg b = {4096, 6, HT_MODE_BLOCK, 6, scaled(40000), 2, 1};
    ring_cfg c = {4096, 3, HT_MODE_DROP, 8, scaled(40000), 1, 1};
    ring_cfg d = {4096, 16, HT_MODE_BLOCK, 8, scaled(60000), 1, 1}; /* the pool is rarely empty */
    run_ring(&a);
    run_ring(&b);
    run_ring(&c);
    run_ring(&d);
}

/* ---- the snapshot race, deterministically ----
 *
 * drain_proc's snapshot reads the sub-buffer states one index after the
 * other.  A thread can take a low-index buffer after the scan has passed
 * it, fill it, mark it FULL and take a high-index buffer before the scan
 * gets there.  The snapshot then holds the thread's newer buffer (seq n+1)
 * and not the older one (seq n); sorting by (serial, seq) cannot restore
 * what is missing, and the newer buffer's records are consumed first.
 * Here one producer does exactly that, driven from the scan hook, on one
 * thread, so the interleaving is certain. */

static void race_hook(ring *r, uint32_t i)
{
    if (i != 0) return;
    r->scan_hook = NULL; /* once */
    producer *p = &r->prod[0];
    prod_put(p, 0); /* takes index 0 (scanned already: FREE), record 0 */
    prod_put(p, 1); /* index 0 FULL, takes index 1 (not scanned yet), record 1 */
}

/* Runs the race; returns 1 and the checker's complaint in msg if the
 * records came out wrong. */
static int snapshot_race(int seq_guard, char *msg, size_t len)
{
    ring_cfg c = {4096, 4, HT_MODE_BLOCK, 1, 2, 1, seq_guard};
    ring *r = ring_new(&c);
    cand cv[4];
    r->scan_hook = race_hook;
    drain(r, cv);            /* the round the race happens in */
    drain(r, cv);            /* the next one */
    prod_release(&r->prod[0]); /* thread exit */
    atomic_fetch_add(&r->done, 1);
    while (drain(r, cv) && !atomic_load(&r->failed)) {
    }
    char buf[256];
    const char *err = ring_verify(r, buf, sizeof buf);
    msg[0] = 0;
    if (err) snprintf(msg, len, "%s", err);
    ring_free(r);
    return err != NULL;
}

/* With the guard: the thread is deferred one round and read in order. */
static void test_snapshot_race_guarded(void **state)
{
    (void)state;
    char msg[256];
    if (snapshot_race(1, msg, sizeof msg)) fail_msg("%s", msg);
}

/* Without the guard the race really reorders: the checker must see it. */
static void test_snapshot_race_unguarded(void **state)
{
    (void)state;
    char msg[256];
    if (!snapshot_race(0, msg, sizeof msg))
        fail_msg("the unguarded drain read the race's records in order: the test no longer races");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shm_init),
        cmocka_unit_test(test_block_mode),
        cmocka_unit_test(test_block_mode_8),
        cmocka_unit_test(test_block_mode_crowded),
        cmocka_unit_test(test_drop_mode),
        cmocka_unit_test(test_drop_mode_crowded),
        cmocka_unit_test(test_swap_storm),
        cmocka_unit_test(test_snapshot_race_guarded),
        cmocka_unit_test(test_snapshot_race_unguarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
