/*
 * codec.c - the compact encoding of a chunk payload (FORMAT.md, "Payload").
 *
 * Each record: a tag byte, then fields as LEB128 varints.
 *   tag bits 0-5: kind (1..62 core events; 63 = metadata escape)
 *   tag bit 6  : heap differs from the thread's previous heap (core kinds)
 *   tag bit 7  : thread differs from the previous record's
 * then [tid] ts-delta(zigzag) and, for core kinds, api|source<<5, [heap],
 * and addresses as zigzag deltas from the same thread's previous
 * allocation / free address.  Metadata: kind, length, then within the
 * length: heap, nargs, args..., text.  Per-thread state lives in a 64-entry
 * table indexed by tid % 64; a tag mismatch resets the entry, identically in
 * encoder and decoder.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

#define TAG_META 63u
#define TAG_HEAP 0x40u
#define TAG_THREAD 0x80u

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

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

static ht_codec_ctx *ctx_for(ht_codec_ctx *tab, uint32_t tid)
{
    ht_codec_ctx *c = &tab[tid % HT_CODEC_CTX];
    if (c->tid != tid) {
        memset(c, 0, sizeof *c);
        c->tid = tid;
        c->heap = 1;
    }
    return c;
}

void ht_enc_reset(ht_encoder *e, uint32_t stream)
{
    e->out.len = 0;
    e->stream = stream;
    e->records = 0;
    e->ts_first = e->ts_last = e->prev_ts = 0;
    e->prev_tid = 0;
    memset(e->ctx, 0, sizeof e->ctx);
    for (int i = 0; i < HT_CODEC_CTX; i++) e->ctx[i].tid = UINT32_MAX;
}

void ht_enc_free(ht_encoder *e) { ht_buf_free(&e->out); }

int ht_enc_event(ht_encoder *e, const ht_event *ev)
{
    size_t tlen = ev->text ? ev->text_len : 0;
    if (ht_buf_reserve(&e->out, 16 + 10 * (8 + HT_EVENT_ARGS) + tlen) < 0) return -ENOMEM;
    if (e->records == 0) e->ts_first = e->prev_ts = ev->ts;
    uint8_t *p = e->out.data + e->out.len;
    uint8_t *tagp = p++;
    uint8_t tag = 0;
    if (ev->tid != e->prev_tid || e->records == 0) {
        tag |= TAG_THREAD;
        p = put_varint(p, ev->tid);
        e->prev_tid = ev->tid;
    }
    p = put_varint(p, zigzag((int64_t)(ev->ts - e->prev_ts)));
    e->prev_ts = ev->ts;
    ht_codec_ctx *c = ctx_for(e->ctx, ev->tid);
    switch (ev->kind) {
    case HT_EV_ALLOC:
    case HT_EV_FREE:
    case HT_EV_REALLOC:
        tag |= (uint8_t)ev->kind;
        *p++ = (uint8_t)((ev->api & 31) | (ev->source & 7) << 5);
        if (ev->heap != c->heap) {
            tag |= TAG_HEAP;
            p = put_varint(p, ev->heap);
            c->heap = ev->heap;
        }
        if (ev->kind == HT_EV_FREE) {
            p = put_varint(p, zigzag((int64_t)(ev->addr - c->free_addr)));
            c->free_addr = ev->addr;
        } else {
            p = put_varint(p, zigzag((int64_t)(ev->addr - c->alloc_addr)));
            c->alloc_addr = ev->addr;
            p = put_varint(p, ev->size);
            if (ev->kind == HT_EV_REALLOC) {
                p = put_varint(p, zigzag((int64_t)(ev->old_addr - c->free_addr)));
                c->free_addr = ev->old_addr;
                p = put_varint(p, ev->old_size);
            }
        }
        break;
    default: {
        if (ev->kind < 64 || ev->kind > 0xffff) return -EINVAL;
        tag |= TAG_META;
        p = put_varint(p, ev->kind);
        uint8_t body[16 + 10 * (1 + HT_EVENT_ARGS)];
        uint8_t *b = put_varint(body, ev->heap);
        unsigned n = ev->nargs > HT_EVENT_ARGS ? HT_EVENT_ARGS : ev->nargs;
        b = put_varint(b, n);
        for (unsigned i = 0; i < n; i++) b = put_varint(b, ev->arg[i]);
        size_t blen = (size_t)(b - body);
        p = put_varint(p, blen + tlen);
        memcpy(p, body, blen);
        p += blen;
        if (tlen) memcpy(p, ev->text, tlen);
        p += tlen;
        break;
    }
    }
    *tagp = tag;
    e->out.len = (size_t)(p - e->out.data);
    e->ts_last = ev->ts > e->ts_last ? ev->ts : e->ts_last;
    e->records++;
    return 0;
}

void ht_dec_init(ht_decoder *d, uint32_t stream, uint64_t ts_first, const void *data, size_t len)
{
    d->p = data;
    d->end = d->p + len;
    d->stream = stream;
    d->prev_ts = ts_first;
    d->prev_tid = 0;
    memset(d->ctx, 0, sizeof d->ctx);
    for (int i = 0; i < HT_CODEC_CTX; i++) d->ctx[i].tid = UINT32_MAX;
}

static inline int get_varint(ht_decoder *d, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (d->p >= d->end) return -EBADMSG;
        uint8_t b = *d->p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -EBADMSG;
}

#define GET(var)                                   \
    do {                                           \
        if (get_varint(d, &(var)) < 0) return -EBADMSG; \
    } while (0)

int ht_dec_next(ht_decoder *d, ht_event *ev)
{
    if (d->p >= d->end) return 0;
    uint8_t tag = *d->p++;
    uint64_t v;
    memset(ev, 0, sizeof *ev);
    ev->pid = d->stream;
    if (tag & TAG_THREAD) {
        GET(v);
        if (v > UINT32_MAX) return -EBADMSG;
        d->prev_tid = (uint32_t)v;
    }
    ev->tid = d->prev_tid;
    GET(v);
    d->prev_ts += (uint64_t)unzigzag(v);
    ev->ts = d->prev_ts;
    unsigned kind = tag & 63u;
    ht_codec_ctx *c = ctx_for(d->ctx, ev->tid);
    if (kind == HT_EV_ALLOC || kind == HT_EV_FREE || kind == HT_EV_REALLOC) {
        ev->kind = kind;
        if (d->p >= d->end) return -EBADMSG;
        uint8_t as = *d->p++;
        ev->api = as & 31;
        ev->source = as >> 5;
        if (tag & TAG_HEAP) GET(c->heap);
        ev->heap = c->heap;
        if (kind == HT_EV_FREE) {
            GET(v);
            c->free_addr += (uint64_t)unzigzag(v);
            ev->addr = c->free_addr;
        } else {
            GET(v);
            c->alloc_addr += (uint64_t)unzigzag(v);
            ev->addr = c->alloc_addr;
            GET(ev->size);
            if (kind == HT_EV_REALLOC) {
                GET(v);
                c->free_addr += (uint64_t)unzigzag(v);
                ev->old_addr = c->free_addr;
                GET(ev->old_size);
            }
        }
        return 1;
    }
    if (kind != TAG_META) return -EBADMSG; /* unknown core kind: needs a newer major */
    uint64_t k, len;
    GET(k);
    GET(len);
    if (len > (uint64_t)(d->end - d->p)) return -EBADMSG;
    const uint8_t *body_end = d->p + len;
    if (k < 64 || k > 0xffff) return -EBADMSG;
    ev->kind = (uint32_t)k;
    ht_decoder sub = *d;
    sub.end = body_end;
    uint64_t n;
    if (get_varint(&sub, &ev->heap) < 0 || get_varint(&sub, &n) < 0) return -EBADMSG;
    for (uint64_t i = 0; i < n; i++) {
        if (get_varint(&sub, &v) < 0) return -EBADMSG;
        if (i < HT_EVENT_ARGS) ev->arg[i] = v;
    }
    ev->nargs = (uint16_t)(n < HT_EVENT_ARGS ? n : HT_EVENT_ARGS);
    ev->text = (const char *)sub.p;
    ev->text_len = (uint32_t)(body_end - sub.p);
    d->p = body_end;
    if (ev->kind == HT_EV_THREAD && ev->nargs >= 1) ev->tid = (uint32_t)ev->arg[0];
    return 1;
}
