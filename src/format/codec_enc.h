/*
 * codec_enc.h - the encoder's per-record path (FORMAT.md §3; the encoding
 * is described at the top of codec.c), inline so that the collector's
 * drain loop runs it without a call per event.  Used by codec.c and
 * collector.c only.
 */
#ifndef HT_CODEC_ENC_H
#define HT_CODEC_ENC_H

#include <string.h>

#include "format.h"

static inline uint8_t *hte_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t hte_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

static inline ht_codec_ctx *hte_ctx_for(ht_codec_ctx *tab, uint32_t tid)
{
    ht_codec_ctx *c = &tab[tid % HT_CODEC_CTX];
    if (__builtin_expect(c->tid != tid, 0)) {
        memset(c, 0, sizeof *c);
        memset(c->apisrc, 0xff, sizeof c->apisrc);
        c->tid = tid;
        c->heap = 1;
    }
    return c;
}


/* The 2-way set of `addr` in an address cache. */
static inline ht_addr_slot *hte_set(ht_addr_slot (*cache)[2], uint64_t addr)
{
    return cache[((addr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - 12)];
}
_Static_assert(HT_CODEC_SETS == 1 << 12, "hte_set() assumes 4096 sets");

/* Back-reference distance for `addr` in `cache`, whose side has numbered
 * its history entries up to n - 1 (this chunk's from `base` on), or 0 if
 * none is usable; *size gets the entry's size field.  Empty slots have
 * serial 0 and bases start at 1, so they never match. */
static inline uint32_t hte_find_ref(ht_addr_slot (*cache)[2], uint32_t n, uint32_t base, uint64_t addr,
                                    uint32_t *size)
{
    ht_addr_slot *s = hte_set(cache, addr);
    if (s[0].addr != addr) {
        if (s[1].addr != addr) return 0;
        s++;
    }
    uint32_t d = n - s->serial, in_chunk = n - base;
    if (d == 0 || d > in_chunk || d >= HT_CODEC_HIST) return 0;
    *size = s->size;
    return d;
}

/* The newest entry of an address takes way 0; way 0's goes to way 1
 * (unless it is the same address: a stale entry is never kept). */
static inline void hte_note(ht_addr_slot (*cache)[2], uint32_t serial, uint64_t addr, uint32_t size)
{
    ht_addr_slot *s = hte_set(cache, addr);
    if (s[0].addr != addr) s[1] = s[0];
    s[0].addr = addr;
    s[0].serial = serial;
    s[0].size = size;
}

/* Ask for the cache lines a record with address `addr` will look up and
 * note (a hint; never faults).  The caches are 256 KiB of random sets,
 * evicted from L2 by zstd at every chunk: looked up cold, their loads were
 * the collector's largest stall (perf: 40 % of the merge's samples on C). */
static inline void hte_prefetch(ht_encoder *e, uint64_t addr)
{
    __builtin_prefetch(hte_set(e->acache, addr), 1);
    __builtin_prefetch(hte_set(e->fcache, addr), 1);
}

static inline uint32_t hte_size32(uint64_t size) { return size < UINT32_MAX ? (uint32_t)size : UINT32_MAX; }

/* Start a record: its tid if it changed and its ts delta.  NULL if the
 * chunk is full (HT_CHUNK_RECORDS_MAX) or the HDR column cannot get
 * `hdr_room` bytes of room. */
static inline uint8_t *hte_rec_begin(ht_encoder *e, uint32_t tid, uint64_t ts, size_t hdr_room)
{
    if (__builtin_expect(e->records >= HT_CHUNK_RECORDS_MAX || !e->map, 0)) return NULL;
    /* all that can fail comes before the first byte is written: a refused
     * record leaves the encoder as it was */
    size_t hdr_used = (size_t)(e->col[HT_COL_HDR] - e->hdr.data);
    if (__builtin_expect(e->hdr.cap - hdr_used < hdr_room, 0)) {
        e->hdr.len = hdr_used;
        if (ht_buf_reserve(&e->hdr, hdr_room) < 0) return NULL;
        e->col0[HT_COL_HDR] = e->hdr.data;
        e->col[HT_COL_HDR] = e->hdr.data + hdr_used;
    }
    if (e->records == 0) e->ts_first = e->prev_ts = ts;
    uint8_t *tagp = e->col[HT_COL_TAG]++;
    *tagp = 0;
    if (tid != e->prev_tid || e->records == 0) {
        *tagp = HT_TAG_THREAD;
        e->col[HT_COL_TID] = hte_varint(e->col[HT_COL_TID], tid);
        e->prev_tid = tid;
    }
    e->col[HT_COL_TS] = hte_varint(e->col[HT_COL_TS], hte_zigzag((int64_t)(ts - e->prev_ts)));
    e->prev_ts = ts;
    if (ts > e->ts_last || e->records == 0) e->ts_last = ts;
    return tagp;
}

/* Room a heap event may take in the HDR column: api|source byte + heap. */
#define HTE_HDR_ROOM 11

/* The api|source byte and the heap, if they changed for this thread (room
 * for them was made by hte_rec_begin). */
static inline void hte_heap_api(ht_encoder *e, ht_codec_ctx *c, uint8_t *tag, unsigned kind, unsigned api,
                                unsigned src, uint64_t heap)
{
    uint8_t as = (uint8_t)((api & 31) | (src & 7) << 5);
    int as_new = as != c->apisrc[kind] || as == 0xff; /* 0xff also means "none yet" */
    if (__builtin_expect(!as_new && heap == c->heap, 1)) return;
    uint8_t *p = e->col[HT_COL_HDR];
    if (as_new) {
        *tag |= HT_TAG_APISRC;
        *p++ = as;
        c->apisrc[kind] = as;
    }
    if (heap != c->heap) {
        *tag |= HT_TAG_HEAP;
        p = hte_varint(p, heap);
        c->heap = heap;
    }
    e->col[HT_COL_HDR] = p;
}

/* The address of a block being freed: a back-reference into the
 * allocations (with that allocation's size in *size), or a delta from the
 * thread's previous freed address.  With need_size, only an allocation
 * whose size the cache kept whole (below UINT32_MAX) is referred to. */
static inline void hte_free_addr(ht_encoder *e, ht_codec_ctx *c, uint8_t *tag, uint8_t refbit, uint64_t addr,
                                 int need_size, uint32_t *size)
{
    uint32_t d = hte_find_ref(e->acache, e->nalloc, e->abase, addr, size);
    if (d && !(need_size && *size == UINT32_MAX)) {
        *tag |= refbit;
        e->col[HT_COL_FREED] = hte_varint(e->col[HT_COL_FREED], d);
    } else {
        *size = UINT32_MAX;
        e->col[HT_COL_FREED] = hte_varint(e->col[HT_COL_FREED], hte_zigzag((int64_t)(addr - c->free_addr)));
    }
    c->free_addr = addr;
    hte_note(e->fcache, e->nfree++, addr, 0);
}

/* The address of a block handed out: a reference into the frees, or a
 * delta from the thread's previous allocated address. */
static inline void hte_alloc_addr(ht_encoder *e, ht_codec_ctx *c, uint8_t *tag, uint64_t addr, uint64_t size)
{
    uint32_t unused;
    uint32_t d = hte_find_ref(e->fcache, e->nfree, e->fbase, addr, &unused);
    if (d) {
        *tag |= HT_TAG_REF1;
        e->col[HT_COL_ALLOC] = hte_varint(e->col[HT_COL_ALLOC], d);
    } else {
        e->col[HT_COL_ALLOC] = hte_varint(e->col[HT_COL_ALLOC], hte_zigzag((int64_t)(addr - c->alloc_addr)));
    }
    c->alloc_addr = addr;
    hte_note(e->acache, e->nalloc++, addr, hte_size32(size));
}

/* A heap event's start: the tag's kind, thread and timestamp, then the
 * api|source byte and the heap if they changed for this thread.  Returns
 * the tag's position (NULL: chunk full or out of memory). */
static inline __attribute__((always_inline)) uint8_t *hte_heap_begin(ht_encoder *e, unsigned kind, uint32_t tid,
                                                                     uint64_t ts, unsigned api, unsigned src,
                                                                     uint64_t heap, ht_codec_ctx **cp)
{
    uint8_t *tagp = hte_rec_begin(e, tid, ts, HTE_HDR_ROOM);
    if (!tagp) return NULL;
    *cp = hte_ctx_for(e->ctx, tid);
    *tagp |= (uint8_t)kind;
    hte_heap_api(e, *cp, tagp, kind, api, src, heap);
    return tagp;
}

/* ... and its end: the stack id, if any. */
static inline __attribute__((always_inline)) int hte_heap_end(ht_encoder *e, uint8_t *tagp, uint32_t stack)
{
    if (stack) {
        *tagp |= HT_TAG_STACK;
        e->col[HT_COL_STACK] = hte_varint(e->col[HT_COL_STACK], stack);
    }
    e->records++;
    return 0;
}

/* A record that could not start: a full chunk or no memory. */
static inline int hte_begin_failed(const ht_encoder *e)
{
    return e->records >= HT_CHUNK_RECORDS_MAX ? -ENOBUFS : -ENOMEM;
}

static inline __attribute__((always_inline)) int hte_alloc(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api,
                                                           unsigned src, uint64_t heap, uint64_t addr,
                                                           uint64_t size, uint32_t stack)
{
    ht_codec_ctx *c;
    uint8_t *tagp = hte_heap_begin(e, HT_EV_ALLOC, tid, ts, api, src, heap, &c);
    if (!tagp) return hte_begin_failed(e);
    hte_alloc_addr(e, c, tagp, addr, size);
    e->col[HT_COL_SIZE] = hte_varint(e->col[HT_COL_SIZE], size);
    return hte_heap_end(e, tagp, stack);
}

static inline __attribute__((always_inline)) int hte_free(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api,
                                                          unsigned src, uint64_t heap, uint64_t addr, uint32_t stack)
{
    ht_codec_ctx *c;
    uint8_t *tagp = hte_heap_begin(e, HT_EV_FREE, tid, ts, api, src, heap, &c);
    if (!tagp) return hte_begin_failed(e);
    uint32_t unused;
    hte_free_addr(e, c, tagp, HT_TAG_REF1, addr, 0, &unused);
    return hte_heap_end(e, tagp, stack);
}

/* The old block goes first, so an in-place realloc refers to it.  When the
 * old address is a back-reference, the new size is sent as its difference
 * from that allocation's size (a growing buffer's step); the encoder only
 * refers to allocations whose size it kept whole. */
static inline __attribute__((always_inline)) int hte_realloc(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api,
                                                             unsigned src, uint64_t heap, uint64_t new_addr,
                                                             uint64_t new_size, uint64_t old_addr, uint64_t old_size,
                                                             uint32_t stack)
{
    ht_codec_ctx *c;
    uint8_t *tagp = hte_heap_begin(e, HT_EV_REALLOC, tid, ts, api, src, heap, &c);
    if (!tagp) return hte_begin_failed(e);
    uint32_t ref_size;
    hte_free_addr(e, c, tagp, HT_TAG_REF2, old_addr, 1, &ref_size);
    uint8_t *sz = hte_varint(e->col[HT_COL_SIZE], old_size);
    hte_alloc_addr(e, c, tagp, new_addr, new_size);
    if (*tagp & HT_TAG_REF2)
        sz = hte_varint(sz, hte_zigzag((int64_t)(new_size - ref_size)));
    else
        sz = hte_varint(sz, new_size);
    e->col[HT_COL_SIZE] = sz;
    return hte_heap_end(e, tagp, stack);
}

#endif
