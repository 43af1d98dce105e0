/*
 * codec.c - the compact encoding of a chunk payload (FORMAT.md §3).
 *
 * Each record: a tag byte, then fields as LEB128 varints.
 *   tag bits 0-1: kind (1 ALLOC, 2 FREE, 3 REALLOC, 0 metadata)
 *   tag bit 2  : an api|source byte follows (else: the thread's previous
 *                one for this kind)
 *   tag bit 3  : heap differs from the thread's previous heap
 *   tag bit 4  : the (new) address is a back-reference
 *   tag bit 5  : REALLOC's old address is a back-reference
 *   tag bit 6  : thread differs from the previous record's
 *   tag bit 7  : heap events: a stack id (varint >= 1) ends the record
 * then [tid] ts-delta(hte_zigzag), and for heap events [api|source<<5], [heap],
 * addresses, sizes.  An address is either a hte_zigzag delta from the same
 * thread's previous allocated (freed) address, or a back-reference d >= 1:
 * a freed address is usually one allocated in this chunk ("the address of
 * the allocation d allocations ago"), and an allocated address is usually
 * one freed shortly before ("the address of the free d frees ago").  The
 * encoder finds references through 2-way set-associative caches (a miss
 * only costs compression); the decoder keeps the last HT_CODEC_HIST
 * addresses of each side, and the allocations' sizes: a realloc of a block
 * referred to sends its new size as a difference from the block's size.
 * All state is reset at every chunk.
 *
 * Format 2 (written here) puts each kind of field in its own column
 * (HT_COL_*): the payload is the columns' lengths, then the columns.  The
 * decoder also reads format 1, where a record's fields follow each other:
 * it reads every field through a per-column cursor, and in format 1 all
 * the cursors are one.
 */
#include <errno.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include "codec_enc.h"

#define TAG_KIND HT_TAG_KIND
#define TAG_META HT_TAG_META
#define TAG_APISRC HT_TAG_APISRC
#define TAG_HEAP HT_TAG_HEAP
#define TAG_REF1 HT_TAG_REF1
#define TAG_REF2 HT_TAG_REF2
#define TAG_THREAD HT_TAG_THREAD
#define TAG_STACK HT_TAG_STACK

int ht_buf_reserve(ht_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra) cap *= 2;
    uint8_t *n = realloc(b->data, cap);
    if (!n) return -ENOMEM;
    b->data = n;
    b->cap = cap;
    return 0;
}

void ht_buf_free(ht_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static inline int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* Every entry starts as a fresh thread's (FORMAT.md 3.1: no api|source,
 * heap 1), so a thread whose tid is the empty mark UINT32_MAX starts so too. */
static void ctx_reset(ht_codec_ctx *tab)
{
    memset(tab, 0, sizeof(ht_codec_ctx) * HT_CODEC_CTX);
    for (int i = 0; i < HT_CODEC_CTX; i++) {
        tab[i].tid = UINT32_MAX;
        memset(tab[i].apisrc, 0xff, sizeof tab[i].apisrc);
        tab[i].heap = 1;
    }
}

/* ---------------------------------------------------------------- encoder */

/* Room a record can take in each fixed column (HDR grows instead). */
static const size_t col_room[HT_NCOLS] = {
    [HT_COL_TAG] = 1, [HT_COL_TID] = 5, [HT_COL_TS] = 10, [HT_COL_HDR] = 0,
    [HT_COL_FREED] = 10, [HT_COL_ALLOC] = 10, [HT_COL_SIZE] = 20, [HT_COL_STACK] = 5,
};

/* The fixed columns: one mapping, each column page-aligned, with room for
 * HT_CHUNK_RECORDS_MAX records.  Untouched pages cost nothing, so what a
 * chunk keeps resident is what its columns really hold. */
static size_t col_bytes(int i) { return (col_room[i] * HT_CHUNK_RECORDS_MAX + 4095) & ~(size_t)4095; }

static int enc_setup(ht_encoder *e)
{
    size_t len = 0;
    for (int i = 0; i < HT_NCOLS; i++) len += col_bytes(i);
    if (ht_buf_reserve(&e->hdr, 4096) < 0) return -ENOMEM;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return -ENOMEM;
    e->map = m;
    e->map_len = len;
    uint8_t *p = m;
    for (int i = 0; i < HT_NCOLS; i++) {
        if (i == HT_COL_HDR) continue; /* col_bytes 0: the HDR column is e->hdr */
        e->col0[i] = p;
        p += col_bytes(i);
    }
    return 0;
}

int ht_enc_reset(ht_encoder *e, uint32_t stream)
{
    if (!e->map && enc_setup(e) < 0) return -ENOMEM;
    for (int i = 0; i < HT_NCOLS; i++) e->col[i] = e->col0[i];
    e->hdr.len = 0;
    e->col0[HT_COL_HDR] = e->col[HT_COL_HDR] = e->hdr.data;
    e->stream = stream;
    e->records = 0;
    e->ts_first = e->ts_last = e->prev_ts = 0;
    e->prev_tid = 0;
    if (e->abase == 0) {
        /* a new encoder: its caches are zero (it was zeroed), and they are
         * left untouched until used: 256 KiB cleared again here cost 64
         * page faults, over a millisecond of start-up on the bench VM */
        e->nalloc = e->nfree = 1;
    } else if (e->nalloc > 0x7fffffffu || e->nfree > 0x7fffffffu) {
        /* serials near wrapping: really clear the caches; serials restart
         * at 1, so an empty slot (serial 0) never matches */
        memset(e->acache, 0, sizeof e->acache);
        memset(e->fcache, 0, sizeof e->fcache);
        e->nalloc = e->nfree = 1;
    }
    e->abase = e->nalloc;
    e->fbase = e->nfree;
    ctx_reset(e->ctx);
    return 0;
}

void ht_enc_free(ht_encoder *e)
{
    ht_buf_free(&e->hdr);
    if (e->map) munmap(e->map, e->map_len);
    e->map = NULL;
    memset(e->col, 0, sizeof e->col);
    memset(e->col0, 0, sizeof e->col0);
    /* the caches and serials stay: used again, the encoder goes on from
     * them (its old entries are older than the next chunk's base) */
}

static size_t col_len(const ht_encoder *e, int i) { return (size_t)(e->col[i] - e->col0[i]); }

size_t ht_enc_size(const ht_encoder *e)
{
    size_t n = HT_NCOLS * 4; /* the column table, about */
    for (int i = 0; i < HT_NCOLS; i++) n += col_len(e, i);
    return n;
}

size_t ht_enc_table(const ht_encoder *e, uint8_t *buf)
{
    uint8_t *p = buf;
    for (int i = 0; i < HT_NCOLS; i++) p = hte_varint(p, col_len(e, i));
    return (size_t)(p - buf);
}

int ht_enc_payload(const ht_encoder *e, ht_buf *out)
{
    size_t total = 0;
    for (int i = 0; i < HT_NCOLS; i++) total += col_len(e, i);
    out->len = 0;
    if (ht_buf_reserve(out, total + HT_ENC_TABLE_MAX) < 0) return -ENOMEM;
    uint8_t *p = out->data + ht_enc_table(e, out->data);
    for (int i = 0; i < HT_NCOLS; i++) {
        size_t n = col_len(e, i);
        if (n) memcpy(p, e->col0[i], n);
        p += n;
    }
    out->len = (size_t)(p - out->data);
    return 0;
}

int ht_enc_ev_alloc(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api, unsigned src,
                    uint64_t heap, uint64_t addr, uint64_t size, uint32_t stack)
{
    return hte_alloc(e, tid, ts, api, src, heap, addr, size, stack);
}

int ht_enc_ev_free(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api, unsigned src,
                   uint64_t heap, uint64_t addr, uint32_t stack)
{
    return hte_free(e, tid, ts, api, src, heap, addr, stack);
}

int ht_enc_ev_realloc(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api, unsigned src,
                      uint64_t heap, uint64_t new_addr, uint64_t new_size, uint64_t old_addr,
                      uint64_t old_size, uint32_t stack)
{
    return hte_realloc(e, tid, ts, api, src, heap, new_addr, new_size, old_addr, old_size, stack);
}

int ht_enc_event(ht_encoder *e, const ht_event *ev)
{
    switch (ev->kind) {
    case HT_EV_ALLOC:
        return ht_enc_ev_alloc(e, ev->tid, ev->ts, ev->api, ev->source, ev->heap, ev->addr, ev->size, ev->stack);
    case HT_EV_FREE:
        return ht_enc_ev_free(e, ev->tid, ev->ts, ev->api, ev->source, ev->heap, ev->addr, ev->stack);
    case HT_EV_REALLOC:
        return ht_enc_ev_realloc(e, ev->tid, ev->ts, ev->api, ev->source, ev->heap, ev->addr, ev->size,
                                 ev->old_addr, ev->old_size, ev->stack);
    default: break;
    }
    if (ev->kind < 64 || ev->kind > 0xffff) return -EINVAL;
    size_t tlen = ev->text ? ev->text_len : 0;
    uint8_t *tagp = hte_rec_begin(e, ev->tid, ev->ts, 32 + 10 * (3 + HT_EVENT_ARGS) + tlen);
    if (!tagp) return hte_begin_failed(e);
    *tagp |= TAG_META;
    uint8_t *p = hte_varint(e->col[HT_COL_HDR], ev->kind);
    uint8_t body[16 + 10 * (1 + HT_EVENT_ARGS)];
    uint8_t *b = hte_varint(body, ev->heap);
    unsigned n = ev->nargs > HT_EVENT_ARGS ? HT_EVENT_ARGS : ev->nargs;
    b = hte_varint(b, n);
    for (unsigned i = 0; i < n; i++) b = hte_varint(b, ev->arg[i]);
    size_t blen = (size_t)(b - body);
    p = hte_varint(p, blen + tlen);
    memcpy(p, body, blen);
    p += blen;
    if (tlen) memcpy(p, ev->text, tlen);
    p += tlen;
    e->col[HT_COL_HDR] = p;
    e->records++;
    return 0;
}

/* ---------------------------------------------------------------- decoder */

static inline int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (__builtin_expect(p < end && *p < 0x80, 1)) { /* most values fit one byte */
        *v = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t r = 0;
    if (__builtin_expect(end - p >= 10, 1)) { /* no bounds check per byte */
        for (unsigned shift = 0; shift < 70; shift += 7) {
            uint8_t b = *p++;
            r |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
            if (!(b & 0x80)) {
                *v = r;
                *pp = p;
                return 0;
            }
        }
        return -EBADMSG;
    }
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= end) return -EBADMSG;
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            *pp = p;
            return 0;
        }
    }
    return -EBADMSG;
}

int ht_dec_init(ht_decoder *d, unsigned major, uint32_t stream, uint64_t ts_first, const void *data, size_t len)
{
    const uint8_t *p = data, *end = p + len;
    d->stream = stream;
    d->prev_ts = ts_first;
    d->prev_tid = 0;
    d->hist.nalloc = d->hist.nfree = 0;
    ctx_reset(d->ctx);
    d->columns = major >= 2;
    for (int i = 0; i < HT_NCOLS; i++) {
        d->cur[i].p = d->cur[i].end = end;
        d->col[i] = &d->cur[d->columns ? i : 0];
    }
    if (!d->columns) {
        d->cur[0].p = p;
        return 0;
    }
    if (len == 0) return 0; /* an empty payload holds no record, in either format */
    /* the column table: every column's length, then the columns, which
     * must fill the payload exactly */
    uint64_t n[HT_NCOLS], total = 0;
    for (int i = 0; i < HT_NCOLS; i++) {
        if (get_varint(&p, end, &n[i]) < 0 || n[i] > (uint64_t)(end - p)) return -EBADMSG;
        total += n[i];
    }
    if (total != (uint64_t)(end - p)) return -EBADMSG;
    for (int i = 0; i < HT_NCOLS; i++) {
        d->cur[i].p = p;
        d->cur[i].end = p += n[i];
    }
    return 0;
}

#define GET(c_, var)                                                                    \
    do {                                                                                \
        if (get_varint(&d->col[c_]->p, d->col[c_]->end, &(var)) < 0) return -EBADMSG; \
    } while (0)

/* Read an address from column `col`: a back-reference into `ring` (n
 * entries so far) if is_ref, else a delta from *prev.  *idx gets the ring
 * index of a reference. */
static inline int get_addr(ht_decoder *d, int col, int is_ref, const uint64_t *ring, uint32_t n,
                           uint64_t *prev, uint64_t *out, uint32_t *idx)
{
    uint64_t v;
    GET(col, v);
    if (is_ref) {
        if (v == 0 || v >= HT_CODEC_HIST || v > n) return -EBADMSG;
        *idx = (n - (uint32_t)v) & (HT_CODEC_HIST - 1);
        *out = ring[*idx];
    } else {
        *out = *prev + (uint64_t)unzigzag(v);
    }
    *prev = *out;
    return 0;
}

static inline void push_alloc(ht_codec_hist *h, uint64_t a, uint64_t size)
{
    uint32_t i = h->nalloc++ & (HT_CODEC_HIST - 1);
    h->alloc[i] = a;
    h->asize[i] = size;
}
static inline void push_free(ht_codec_hist *h, uint64_t a) { h->freed[h->nfree++ & (HT_CODEC_HIST - 1)] = a; }

/* The end of the records: format 2's columns must all be used up. */
static int dec_end(const ht_decoder *d)
{
    for (int i = 0; i < HT_NCOLS; i++)
        if (d->col[i]->p != d->col[i]->end) return -EBADMSG;
    return 0;
}

int ht_dec_next(ht_decoder *d, ht_event *ev)
{
    ht_cursor *tc = d->col[HT_COL_TAG];
    if (tc->p >= tc->end) return dec_end(d);
    uint8_t tag = *tc->p++;
    uint64_t v;
    /* heap events (nearly all records) set every field they own and clear
     * the rest but arg[] (nargs 0 says it is unused): a whole memset was a
     * sixth of the decoder's time */
    ev->kind = 0;
    ev->api = ev->source = 0;
    ev->nargs = 0;
    ev->heap = ev->addr = ev->size = ev->old_addr = ev->old_size = 0;
    ev->stack = 0;
    ev->text = NULL;
    ev->text_len = 0;
    ev->pid = d->stream;
    if (tag & TAG_THREAD) {
        GET(HT_COL_TID, v);
        if (v > UINT32_MAX) return -EBADMSG;
        d->prev_tid = (uint32_t)v;
    }
    ev->tid = d->prev_tid;
    GET(HT_COL_TS, v);
    d->prev_ts += (uint64_t)unzigzag(v);
    ev->ts = d->prev_ts;
    unsigned kind = tag & TAG_KIND;
    if (kind >= HT_EV_ALLOC && kind <= HT_EV_REALLOC) {
        ht_codec_ctx *c = hte_ctx_for(d->ctx, ev->tid);
        ht_codec_hist *h = &d->hist;
        ht_cursor *hc = d->col[HT_COL_HDR];
        uint32_t idx = 0;
        ev->kind = kind;
        if (tag & TAG_APISRC) {
            if (hc->p >= hc->end) return -EBADMSG;
            c->apisrc[kind] = *hc->p++;
        } else if (c->apisrc[kind] == 0xff) {
            return -EBADMSG; /* "same as before" with no before */
        }
        uint8_t as = c->apisrc[kind];
        ev->api = as & 31;
        ev->source = as >> 5;
        if (tag & TAG_HEAP) GET(HT_COL_HDR, c->heap);
        ev->heap = c->heap;
        if (kind == HT_EV_ALLOC) {
            if (get_addr(d, HT_COL_ALLOC, tag & TAG_REF1, h->freed, h->nfree, &c->alloc_addr, &ev->addr, &idx) < 0)
                return -EBADMSG;
            GET(HT_COL_SIZE, ev->size);
            push_alloc(h, ev->addr, ev->size);
        } else if (kind == HT_EV_FREE) {
            if (get_addr(d, HT_COL_FREED, tag & TAG_REF1, h->alloc, h->nalloc, &c->free_addr, &ev->addr, &idx) < 0)
                return -EBADMSG;
            push_free(h, ev->addr);
        } else {
            if (get_addr(d, HT_COL_FREED, tag & TAG_REF2, h->alloc, h->nalloc, &c->free_addr, &ev->old_addr, &idx) <
                0)
                return -EBADMSG;
            uint64_t ref_size = h->asize[idx];
            push_free(h, ev->old_addr);
            GET(HT_COL_SIZE, ev->old_size);
            uint32_t unused;
            if (get_addr(d, HT_COL_ALLOC, tag & TAG_REF1, h->freed, h->nfree, &c->alloc_addr, &ev->addr, &unused) < 0)
                return -EBADMSG;
            GET(HT_COL_SIZE, ev->size);
            /* format 2: the new size of a block referred to is a difference */
            if (d->columns && (tag & TAG_REF2)) ev->size = ref_size + (uint64_t)unzigzag(ev->size);
            push_alloc(h, ev->addr, ev->size);
        }
        if (tag & TAG_STACK) {
            GET(HT_COL_STACK, v);
            if (v == 0 || v > UINT32_MAX) return -EBADMSG;
            ev->stack = (uint32_t)v;
        }
        return 1;
    }
    if (tag & (TAG_APISRC | TAG_HEAP | TAG_REF1 | TAG_REF2 | TAG_STACK)) return -EBADMSG;
    uint64_t k, len;
    ht_cursor *hc = d->col[HT_COL_HDR];
    GET(HT_COL_HDR, k);
    GET(HT_COL_HDR, len);
    if (len > (uint64_t)(hc->end - hc->p)) return -EBADMSG;
    const uint8_t *body = hc->p, *body_end = hc->p + len;
    if (k < 64 || k > 0xffff) return -EBADMSG;
    memset(ev->arg, 0, sizeof ev->arg);
    ev->kind = (uint32_t)k;
    uint64_t n;
    if (get_varint(&body, body_end, &ev->heap) < 0 || get_varint(&body, body_end, &n) < 0) return -EBADMSG;
    for (uint64_t i = 0; i < n; i++) {
        if (get_varint(&body, body_end, &v) < 0) return -EBADMSG;
        if (i < HT_EVENT_ARGS) ev->arg[i] = v;
    }
    ev->nargs = (uint16_t)(n < HT_EVENT_ARGS ? n : HT_EVENT_ARGS);
    ev->text = (const char *)body;
    ev->text_len = (uint32_t)(body_end - body);
    hc->p = body_end;
    return 1;
}
