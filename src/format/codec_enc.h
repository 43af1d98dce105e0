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


static inline ht_addr_slot *hte_slot(ht_addr_slot *cache, uint64_t addr)
{
    return &cache[((addr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - 12)];
}
_Static_assert(HT_CODEC_CACHE == 1 << 12, "hte_slot() assumes a 4096-entry cache");

/* Back-reference distance for `addr` in `cache` (whose side has made
 * `n` entries so far), or 0 if none is usable. */
static inline uint64_t hte_find_ref(const ht_encoder *e, ht_addr_slot *cache, uint32_t n, uint64_t addr)
{
    ht_addr_slot *s = hte_slot(cache, addr);
    if (s->gen != e->gen || s->addr != addr) return 0;
    uint32_t d = n - s->serial;
    return d >= 1 && d < HT_CODEC_HIST ? d : 0;
}

static inline void hte_note(const ht_encoder *e, ht_addr_slot *cache, uint32_t serial, uint64_t addr)
{
    ht_addr_slot *s = hte_slot(cache, addr);
    s->addr = addr;
    s->serial = serial;
    s->gen = e->gen;
}

/* Start a record: reserve room, write tid if it changed and the ts delta.
 * Returns the tag position; *pp is where the body goes. */
static inline uint8_t *hte_rec_begin(ht_encoder *e, uint32_t tid, uint64_t ts, size_t room,
                                 uint8_t **pp, uint8_t *tag)
{
    if (__builtin_expect(e->out.cap - e->out.len < room, 0) && ht_buf_reserve(&e->out, room) < 0) return NULL;
    if (e->records == 0) e->ts_first = e->prev_ts = ts;
    uint8_t *tagp = e->out.data + e->out.len;
    uint8_t *p = tagp + 1;
    *tag = 0;
    if (tid != e->prev_tid || e->records == 0) {
        *tag |= HT_TAG_THREAD;
        p = hte_varint(p, tid);
        e->prev_tid = tid;
    }
    p = hte_varint(p, hte_zigzag((int64_t)(ts - e->prev_ts)));
    e->prev_ts = ts;
    if (ts > e->ts_last || e->records == 0) e->ts_last = ts;
    *pp = p;
    return tagp;
}

static inline void hte_rec_end(ht_encoder *e, uint8_t *tagp, uint8_t tag, uint8_t *p)
{
    *tagp = tag;
    e->out.len = (size_t)(p - e->out.data);
    e->records++;
}

static inline uint8_t *hte_heap_api(ht_codec_ctx *c, uint8_t *p, uint8_t *tag, unsigned kind,
                                    unsigned api, unsigned src, uint64_t heap)
{
    uint8_t as = (uint8_t)((api & 31) | (src & 7) << 5);
    if (as != c->apisrc[kind] || as == 0xff) { /* 0xff also means "none yet" */
        *tag |= HT_TAG_APISRC;
        *p++ = as;
        c->apisrc[kind] = as;
    }
    if (heap != c->heap) {
        *tag |= HT_TAG_HEAP;
        p = hte_varint(p, heap);
        c->heap = heap;
    }
    return p;
}

/* An address as a back-reference into the other side's history (`refs`,
 * with `nrefs` entries so far) or as a delta from *prev; then it joins its
 * own side's history (`own`, entry number (*nown)++). */
static inline uint8_t *hte_addr(ht_encoder *e, uint8_t *p, uint8_t *tag, uint8_t refbit, uint64_t addr,
                                ht_addr_slot *refs, uint32_t nrefs, ht_addr_slot *own, uint32_t *nown,
                                uint64_t *prev)
{
    uint64_t d = hte_find_ref(e, refs, nrefs, addr);
    if (d) {
        *tag |= refbit;
        p = hte_varint(p, d);
    } else {
        p = hte_varint(p, hte_zigzag((int64_t)(addr - *prev)));
    }
    *prev = addr;
    hte_note(e, own, (*nown)++, addr);
    return p;
}

/* The address of a block being freed: a reference into the allocations. */
static inline uint8_t *hte_free_addr(ht_encoder *e, ht_codec_ctx *c, uint8_t *p, uint8_t *tag,
                                     uint8_t refbit, uint64_t addr)
{
    return hte_addr(e, p, tag, refbit, addr, e->acache, e->nalloc, e->fcache, &e->nfree, &c->free_addr);
}

/* The address of a block handed out: a reference into the frees. */
static inline uint8_t *hte_alloc_addr(ht_encoder *e, ht_codec_ctx *c, uint8_t *p, uint8_t *tag,
                                      uint8_t refbit, uint64_t addr)
{
    return hte_addr(e, p, tag, refbit, addr, e->fcache, e->nfree, e->acache, &e->nalloc, &c->alloc_addr);
}

/* widest heap record: tag 1 + tid 5 + ts 10 + api 1 + heap 10 + 4 x 10 + stack 5 */
#define HTE_CORE_ROOM 80

static inline uint8_t *hte_stack(uint8_t *p, uint8_t *tag, uint32_t stack)
{
    if (stack) {
        *tag |= HT_TAG_STACK;
        p = hte_varint(p, stack);
    }
    return p;
}

/* A heap event's start: the tag's kind, thread and timestamp, then the
 * api|source byte and the heap if they changed for this thread.  Returns
 * the tag's position (NULL: out of memory); *pp is where the body goes. */
static inline __attribute__((always_inline)) uint8_t *hte_heap_begin(ht_encoder *e, unsigned kind, uint32_t tid,
                                                                     uint64_t ts, unsigned api, unsigned src,
                                                                     uint64_t heap, uint8_t **pp, uint8_t *tag,
                                                                     ht_codec_ctx **cp)
{
    uint8_t *tagp = hte_rec_begin(e, tid, ts, HTE_CORE_ROOM, pp, tag);
    if (!tagp) return NULL;
    *cp = hte_ctx_for(e->ctx, tid);
    *tag |= (uint8_t)kind;
    *pp = hte_heap_api(*cp, *pp, tag, kind, api, src, heap);
    return tagp;
}

/* ... and its end: the stack id, if any. */
static inline __attribute__((always_inline)) int hte_heap_end(ht_encoder *e, uint8_t *tagp, uint8_t tag, uint8_t *p,
                                                              uint32_t stack)
{
    p = hte_stack(p, &tag, stack);
    hte_rec_end(e, tagp, tag, p);
    return 0;
}

static inline __attribute__((always_inline)) int hte_alloc(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api,
                                                           unsigned src, uint64_t heap, uint64_t addr,
                                                           uint64_t size, uint32_t stack)
{
    uint8_t *p, tag;
    ht_codec_ctx *c;
    uint8_t *tagp = hte_heap_begin(e, HT_EV_ALLOC, tid, ts, api, src, heap, &p, &tag, &c);
    if (!tagp) return -ENOMEM;
    p = hte_alloc_addr(e, c, p, &tag, HT_TAG_REF1, addr);
    p = hte_varint(p, size);
    return hte_heap_end(e, tagp, tag, p, stack);
}

static inline __attribute__((always_inline)) int hte_free(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api,
                                                          unsigned src, uint64_t heap, uint64_t addr, uint32_t stack)
{
    uint8_t *p, tag;
    ht_codec_ctx *c;
    uint8_t *tagp = hte_heap_begin(e, HT_EV_FREE, tid, ts, api, src, heap, &p, &tag, &c);
    if (!tagp) return -ENOMEM;
    p = hte_free_addr(e, c, p, &tag, HT_TAG_REF1, addr);
    return hte_heap_end(e, tagp, tag, p, stack);
}

static inline __attribute__((always_inline)) int hte_realloc(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api,
                                                             unsigned src, uint64_t heap, uint64_t new_addr,
                                                             uint64_t new_size, uint64_t old_addr, uint64_t old_size,
                                                             uint32_t stack)
{
    uint8_t *p, tag;
    ht_codec_ctx *c;
    uint8_t *tagp = hte_heap_begin(e, HT_EV_REALLOC, tid, ts, api, src, heap, &p, &tag, &c);
    if (!tagp) return -ENOMEM;
    /* the old block goes first, so an in-place realloc refers to it */
    p = hte_free_addr(e, c, p, &tag, HT_TAG_REF2, old_addr);
    p = hte_varint(p, old_size);
    p = hte_alloc_addr(e, c, p, &tag, HT_TAG_REF1, new_addr);
    p = hte_varint(p, new_size);
    return hte_heap_end(e, tagp, tag, p, stack);
}

#endif
