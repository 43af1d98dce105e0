/*
 * shm.h - layout of a session's shared-memory region and the lock-free
 * operations on it.
 *
 * The collector creates the region (a memfd), initialises it and hands it to
 * the traced process.  Layout, all offsets from the region start:
 *
 *   [ht_shm_hdr, 4 KiB][sub-buffer 0][sub-buffer 1]...[sub-buffer N-1]
 *
 * Each sub-buffer is [ht_subbuf, 64 bytes][data: subbuf_size - 64 bytes].
 *
 * Ownership protocol (the only transitions allowed):
 *   FREE   -> ACTIVE  producer thread, after popping it from the free pool
 *   ACTIVE -> FULL    the owning producer, when it no longer fits a record
 *                     (or at thread exit); `committed` is final before that
 *   FULL   -> FREE    the consumer, after reading it, by pushing it back
 * While ACTIVE, the owner appends records and publishes each one with a
 * release store of `committed`; the consumer may read [0, committed) at any
 * time.  The free pool is a Treiber stack of sub-buffer indices whose head
 * carries a 32-bit tag against ABA; links live in ht_subbuf.next_free.
 *
 * Neither side trusts the other: every index and length read from the
 * region is bounds-checked by the reader before use.
 */
#ifndef HT_SHM_H
#define HT_SHM_H

#include <stdint.h>
#include <stddef.h>

#include "atomic.h"

#define HT_SHM_MAGIC 0x31304d4853544854ULL /* "HTSHM01" + NUL */
#define HT_SHM_VERSION 2
#define HT_SHM_HDR_SIZE 4096u
#define HT_SUBBUF_HDR_SIZE 64u
#define HT_SUBBUF_MIN 4096u
#define HT_SUBBUF_MAX (64u << 20)
#define HT_SUBBUF_COUNT_MAX 65536u
#define HT_FREE_NONE 0xffffffffu

enum ht_mode { HT_MODE_BLOCK = 0, HT_MODE_DROP = 1 };
enum ht_clock { HT_CLOCK_TSC = 0, HT_CLOCK_MONOTONIC = 1 };
enum ht_subbuf_state { HT_SB_FREE = 0, HT_SB_ACTIVE = 1, HT_SB_FULL = 2 };
enum ht_shm_state { HT_SHM_RUNNING = 1, HT_SHM_STOPPED = 2 };

typedef struct ht_shm_hdr {
    /* written once by the collector before the region is handed over */
    uint64_t magic;
    uint32_t version, hdr_size;
    uint64_t total_size;
    uint32_t subbuf_size;  /* data bytes per sub-buffer */
    uint32_t subbuf_count;
    uint32_t mode;         /* enum ht_mode */
    uint32_t clock;        /* enum ht_clock */
    uint32_t pid;          /* the process this region belongs to */
    uint32_t _pad0;
    char _line0[HT_CACHELINE - 40];

    /* free pool head: index (low 32) | ABA tag (high 32) */
    _Atomic uint64_t free_head;
    char _line1[HT_CACHELINE - 8];

    /* consumer <-> producer signalling */
    _Atomic uint32_t state;         /* enum ht_shm_state, set by the collector */
    _Atomic uint32_t free_seq;      /* futex word: bumped on every push */
    _Atomic uint32_t waiters;       /* producers sleeping on free_seq */
    _Atomic uint32_t consumer_idle; /* consumer asleep until kicked: write the eventfd on
                                       releasing a buffer (while it only naps, do not) */
    _Atomic uint64_t heartbeat_ns;  /* collector's CLOCK_MONOTONIC at each drain */
    _Atomic uint64_t lost_unreported; /* drops not yet written as LOST records */
    _Atomic uint64_t thread_serial;   /* next thread serial (runtime side) */
    _Atomic uint64_t starved;         /* block-mode waits abandoned (pool held idle) */
    char _line2[HT_CACHELINE - 48];
    /* written by the collector for `heaptrace status`; display only */
    _Atomic uint64_t st_events, st_lost, st_bytes, st_subbufs;
    char trace_path[256];
    /* session options for the runtime, set before the region is handed over */
    uint32_t stack_mode;   /* enum ht_stack_mode */
    uint32_t stack_depth;  /* frames, 1..HT_STACK_DEPTH_MAX */
    uint32_t stack_events; /* HT_STACK_ON_* */
    uint32_t _pad1;
} ht_shm_hdr;

typedef struct ht_subbuf {
    _Atomic uint64_t committed; /* bytes of data published (release) */
    _Atomic uint32_t state;     /* enum ht_subbuf_state */
    _Atomic uint32_t next_free; /* free-pool link */
    uint64_t serial;            /* owning thread's serial (unique per region) */
    uint64_t seq;               /* n-th sub-buffer of that thread */
    uint32_t tid;
    uint32_t _pad;
    char _rest[HT_SUBBUF_HDR_SIZE - 40];
} ht_subbuf;

_Static_assert(sizeof(ht_shm_hdr) <= HT_SHM_HDR_SIZE, "shm header too large");
_Static_assert(sizeof(ht_subbuf) == HT_SUBBUF_HDR_SIZE, "sub-buffer header size");

/* Layout (version 2): the header (HT_SHM_HDR_SIZE bytes), the table of
 * sub-buffer headers (HT_SUBBUF_HDR_SIZE each, rounded up to a page), then
 * the sub-buffers' data, subbuf_size bytes each.  The headers stand
 * together so that setting up and scanning the pool touches a page or two,
 * not a page per sub-buffer: a first touch of a page is a fault, about
 * 20 us on the bench VM.  Sizes and counts passed here are the caller's
 * trusted copies, never re-read from shared memory (the other side can
 * rewrite it at any time). */
static inline size_t ht_shm_table_size(uint32_t count)
{
    return ((size_t)count * HT_SUBBUF_HDR_SIZE + 4095) & ~(size_t)4095;
}

/* Header of sub-buffer idx. */
static inline ht_subbuf *ht_shm_subbuf(ht_shm_hdr *h, uint32_t idx)
{
    return (ht_subbuf *)((char *)h + HT_SHM_HDR_SIZE + (size_t)idx * HT_SUBBUF_HDR_SIZE);
}

/* Data of sub-buffer idx: sbsize bytes. */
static inline char *ht_shm_data(ht_shm_hdr *h, uint32_t sbsize, uint32_t count, uint32_t idx)
{
    return (char *)h + HT_SHM_HDR_SIZE + ht_shm_table_size(count) + (size_t)idx * sbsize;
}

static inline size_t ht_shm_size(uint32_t subbuf_size, uint32_t subbuf_count)
{
    return HT_SHM_HDR_SIZE + ht_shm_table_size(subbuf_count) + (size_t)subbuf_size * subbuf_count;
}

/* Pop a free sub-buffer; returns its index or HT_FREE_NONE.  `count` is a
 * trusted copy (the caller's own, not re-read from shm). */
static inline uint32_t ht_shm_pop(ht_shm_hdr *h, uint32_t count)
{
    /* acquire: pairs with the release in ht_shm_push so the popped
     * sub-buffer's next_free link and contents are visible. */
    uint64_t head = ht_atomic_load_acquire(&h->free_head);
    for (;;) {
        uint32_t idx = (uint32_t)head;
        if (idx >= count) return HT_FREE_NONE;
        uint32_t next = ht_atomic_load_relaxed(&ht_shm_subbuf(h, idx)->next_free);
        uint64_t nhead = (head & 0xffffffff00000000ULL) + (1ULL << 32) + next;
        if (ht_atomic_cas_acq_rel(&h->free_head, &head, nhead)) return idx;
    }
}

/* Push sub-buffer `idx` onto the free pool (consumer side).  Returns 0, or
 * -1 if the head kept changing under us far longer than any honest
 * producer can make it (a hostile process must not livelock the consumer). */
static inline int ht_shm_push(ht_shm_hdr *h, uint32_t idx)
{
    ht_subbuf *sb = ht_shm_subbuf(h, idx);
    ht_atomic_store_relaxed(&sb->state, HT_SB_FREE);
    ht_atomic_store_relaxed(&sb->committed, 0);
    uint64_t head = ht_atomic_load_relaxed(&h->free_head);
    for (int tries = 0;; tries++) {
        if (tries == 1 << 20) return -1;
        ht_atomic_store_relaxed(&sb->next_free, (uint32_t)head);
        uint64_t nhead = (head & 0xffffffff00000000ULL) + (1ULL << 32) + idx;
        /* release: publishes next_free and the reset state to the popper */
        if (ht_atomic_cas_acq_rel(&h->free_head, &head, nhead)) break;
    }
    ht_atomic_add_acq_rel(&h->free_seq, 1);
    return 0;
}

/* Initialise a region of ht_shm_size() bytes (collector side). */
void ht_shm_init(ht_shm_hdr *h, uint32_t subbuf_size, uint32_t subbuf_count, uint32_t mode,
                 uint32_t clock, uint32_t pid);

/* Check a region received from elsewhere; 0 or -EINVAL. */
int ht_shm_check(const ht_shm_hdr *h, size_t mapped_size);

#endif
