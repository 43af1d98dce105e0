/*
 * test_codec.c - the chunk payload encoding (codec.c, FORMAT.md section 3):
 * round trips of random event streams and the decoder's behaviour on bad
 * input.
 *
 * Round trip: random streams of every kind (heap events with random api,
 * source, heap and addresses including 0 and UINT64_MAX, huge sizes;
 * metadata kinds >= 64 with 0..6 (and too many) args and texts of random
 * length including 0 and binary bytes), many thread ids including ones that
 * collide in the 64-entry per-thread table, timestamps that sometimes go
 * backwards or jump by more than 2^63.  Addresses are reused the way an
 * allocator reuses them (free of a recent allocation, allocation of a
 * recently freed block, in-place realloc, and far back beyond the 8192-entry
 * window), so the back-reference paths are exercised.  Every field must come
 * back equal, through ht_enc_event and through ht_enc_ev_*, which must
 * produce the same bytes.
 *
 * Bad input: hand-made payloads check the decoder's limits (reference
 * range, invalid kinds, metadata tag bits); every prefix of a valid payload
 * decodes to exactly the records that lie wholly inside it, then -EBADMSG
 * (or 0 at a record boundary); random garbage and mutated payloads never
 * crash (ASan/UBSan builds check that too) and every event they yield is
 * well-formed.  Buffers are copied into exactly-sized allocations so ASan
 * sees any over-read.
 *
 * New metadata kinds (FORMAT.md section 7): add them to metas[] below.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "format/format.h"
#include "test_util.h"

/* ---- random events ---- */

typedef struct gen {
    test_rng rng;
    uint32_t tids[24];
    uint64_t ts;
    char textbuf[1 << 16]; /* texts of generated events point in here */
    size_t textpos;
    /* every allocated / freed address so far, for reuse near and far */
    uint64_t *allocs, *frees;
    size_t nallocs, nfrees, cap_allocs, cap_frees;
} gen;

static void gen_init(gen *g, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    g->rng.s = seed;
    /* tids that share table entries (x, x + 64, x + 128, ...) and edge values */
    static const uint32_t fixed[] = {0, 1, 5, 69, 133, 64 * 1000 + 5, UINT32_MAX, UINT32_MAX - 64,
                                     63, 127, 4194304};
    size_t n = sizeof fixed / sizeof fixed[0];
    memcpy(g->tids, fixed, sizeof fixed);
    for (size_t i = n; i < 24; i++) g->tids[i] = (uint32_t)rng_next(&g->rng);
    g->ts = rng_next(&g->rng) >> 20;
}

static void gen_free(gen *g)
{
    free(g->allocs);
    free(g->frees);
}

static void remember(uint64_t **v, size_t *n, size_t *cap, uint64_t a)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = realloc(*v, *cap * sizeof **v);
        assert_non_null(*v);
    }
    (*v)[(*n)++] = a;
}

/* An address from history `v`: mostly recent, sometimes from far back. */
static uint64_t pick_from(test_rng *r, const uint64_t *v, size_t n)
{
    if (rng_one_in(r, 4)) return v[rng_below(r, n)];
    size_t back = 1 + (size_t)(rng_one_in(r, 2) ? rng_below(r, 4) : rng_below(r, 100));
    return v[n - (back > n ? n : back)];
}

static uint64_t fresh_addr(test_rng *r)
{
    return rng_one_in(r, 3) ? rng_u64_edgy(r) : 0x7f0000000000ull + rng_below(r, 1u << 24) * 16;
}

static uint64_t gen_ts(gen *g)
{
    test_rng *r = &g->rng;
    switch (rng_below(r, 20)) {
    case 0: g->ts -= rng_below(r, 1000000); break;       /* backwards a little */
    case 1: g->ts = rng_next(r); break;                  /* anywhere: > 2^63 jumps */
    case 2: g->ts = rng_one_in(r, 2) ? 0 : UINT64_MAX; break;
    case 3: break;                                       /* same time */
    default: g->ts += rng_below(r, 5000); break;
    }
    return g->ts;
}

static const char *gen_text(gen *g, uint32_t *len)
{
    test_rng *r = &g->rng;
    uint32_t n;
    switch (rng_below(r, 6)) {
    case 0: n = 0; break;
    case 1: n = (uint32_t)rng_below(r, 4096); break;
    default: n = (uint32_t)rng_below(r, 80); break;
    }
    if (g->textpos + n > sizeof g->textbuf) g->textpos = 0;
    char *t = g->textbuf + g->textpos;
    for (uint32_t i = 0; i < n; i++) t[i] = (char)rng_next(r); /* binary, NULs included */
    g->textpos += n;
    *len = n;
    return t;
}

/* Metadata kinds: all of FORMAT.md's table, and unknown ones. */
static const uint32_t metas[] = {HT_EV_HEAP_CREATE, HT_EV_HEAP_DESTROY, HT_EV_MARKER,
                                 HT_EV_LOST, HT_EV_THREAD, HT_EV_PROCESS, HT_EV_PROCESS_END,
                                 HT_EV_SESSION_START, HT_EV_SESSION_END, 73, 200, 0xffff};

static void gen_event(gen *g, ht_event *ev)
{
    test_rng *r = &g->rng;
    memset(ev, 0, sizeof *ev);
    ev->tid = rng_one_in(r, 8) ? (uint32_t)rng_next(r) : g->tids[rng_below(r, 24)];
    ev->ts = gen_ts(g);
    unsigned pick = (unsigned)rng_below(r, 100);
    if (pick < 80) {
        ev->kind = pick < 40 ? HT_EV_ALLOC : pick < 70 ? HT_EV_FREE : HT_EV_REALLOC;
        ev->api = (uint8_t)rng_below(r, 32);
        ev->source = (uint8_t)rng_below(r, 8);
        switch (rng_below(r, 4)) {
        case 0: ev->heap = 1; break;
        case 1: ev->heap = rng_u64_edgy(r); break;
        default: ev->heap = 1 + rng_below(r, 3); break;
        }
        int reuse = !rng_one_in(r, 4);
        switch (ev->kind) {
        case HT_EV_ALLOC: /* often a block freed shortly before */
            ev->addr = reuse && g->nfrees ? pick_from(r, g->frees, g->nfrees) : fresh_addr(r);
            ev->size = rng_one_in(r, 4) ? rng_u64_edgy(r) : rng_below(r, 1 << 16);
            remember(&g->allocs, &g->nallocs, &g->cap_allocs, ev->addr);
            break;
        case HT_EV_FREE: /* usually a block allocated earlier */
            ev->addr = reuse && g->nallocs ? pick_from(r, g->allocs, g->nallocs) : fresh_addr(r);
            remember(&g->frees, &g->nfrees, &g->cap_frees, ev->addr);
            break;
        default:
            ev->old_addr = reuse && g->nallocs ? pick_from(r, g->allocs, g->nallocs) : fresh_addr(r);
            ev->old_size = rng_u64_edgy(r);
            remember(&g->frees, &g->nfrees, &g->cap_frees, ev->old_addr);
            switch (rng_below(r, 4)) {
            case 0: ev->addr = ev->old_addr; break; /* in place */
            case 1: ev->addr = 0; break;            /* failed */
            case 2: ev->addr = pick_from(r, g->frees, g->nfrees); break;
            default: ev->addr = fresh_addr(r); break;
            }
            ev->size = rng_u64_edgy(r);
            remember(&g->allocs, &g->nallocs, &g->cap_allocs, ev->addr);
            break;
        }
        /* a call stack id: none, small, or any 32-bit value */
        switch (rng_below(r, 4)) {
        case 0: ev->stack = 0; break;
        case 1: ev->stack = (uint32_t)rng_next(r) | 1u; break;
        default: ev->stack = 1 + (uint32_t)rng_below(r, 300); break;
        }
        return;
    }
    ev->kind = metas[rng_below(r, sizeof metas / sizeof metas[0])];
    ev->heap = rng_one_in(r, 2) ? 0 : rng_u64_edgy(r);
    ev->nargs = (uint16_t)(rng_one_in(r, 10) ? rng_below(r, 100) : rng_below(r, HT_EVENT_ARGS + 1));
    for (unsigned i = 0; i < HT_EVENT_ARGS; i++) ev->arg[i] = rng_u64_edgy(r);
    if (ev->kind == HT_EV_THREAD) { /* as the collector writes it: arg[0] is the tid */
        if (ev->nargs == 0) ev->nargs = 1;
        ev->arg[0] = ev->tid;
    }
    if (rng_one_in(r, 10)) {
        ev->text = NULL; /* no text: the length must be ignored */
        ev->text_len = (uint32_t)rng_below(r, 100);
    } else {
        ev->text = gen_text(g, &ev->text_len);
    }
    /* fields metadata does not carry must not matter */
    ev->api = (uint8_t)rng_next(r);
    ev->addr = rng_next(r);
}

/* What the decoder must give back for `in`. */
static void check_event(const ht_event *in, const ht_event *out, uint32_t stream)
{
    assert_int_equal(out->kind, in->kind);
    assert_int_equal(out->pid, stream);
    assert_int_equal(out->tid, in->tid);
    assert_int_equal(out->ts, in->ts);
    if (in->kind <= HT_EV_REALLOC) {
        assert_int_equal(out->api, in->api);
        assert_int_equal(out->source, in->source);
        assert_int_equal(out->heap, in->heap);
        assert_int_equal(out->addr, in->addr);
        assert_int_equal(out->size, in->kind == HT_EV_FREE ? 0 : in->size);
        assert_int_equal(out->old_addr, in->kind == HT_EV_REALLOC ? in->old_addr : 0);
        assert_int_equal(out->old_size, in->kind == HT_EV_REALLOC ? in->old_size : 0);
        assert_int_equal(out->stack, in->stack);
        assert_int_equal(out->nargs, 0);
        assert_int_equal(out->text_len, 0);
        return;
    }
    assert_int_equal(out->heap, in->heap);
    assert_int_equal(out->stack, 0);
    unsigned n = in->nargs > HT_EVENT_ARGS ? HT_EVENT_ARGS : in->nargs;
    assert_int_equal(out->nargs, n);
    for (unsigned i = 0; i < HT_EVENT_ARGS; i++)
        assert_int_equal(out->arg[i], i < n ? in->arg[i] : 0);
    uint32_t tlen = in->text ? in->text_len : 0;
    assert_int_equal(out->text_len, tlen);
    if (tlen) {
        assert_non_null(out->text);
        assert_memory_equal(out->text, in->text, tlen);
    }
}

/* ---- a recorded stream: events (with their texts copied) and record ends ---- */

typedef struct stream {
    ht_event *ev;
    char **texts;
    size_t *end; /* payload offset just after record i */
    size_t n;
    uint8_t *payload; /* exactly-sized copy */
    size_t len;
    uint64_t ts_first, ts_last;
    uint32_t id;
    size_t nref; /* records whose tag has a back-reference bit */
} stream;

static void stream_free(stream *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->texts[i]);
    free(s->texts);
    free(s->ev);
    free(s->end);
    free(s->payload);
    memset(s, 0, sizeof *s);
}

/* Encode through the collector's direct entry points. */
static int enc_direct(ht_encoder *e, const ht_event *ev)
{
    switch (ev->kind) {
    case HT_EV_ALLOC:
        return ht_enc_ev_alloc(e, ev->tid, ev->ts, ev->api, ev->source, ev->heap, ev->addr, ev->size, ev->stack);
    case HT_EV_FREE:
        return ht_enc_ev_free(e, ev->tid, ev->ts, ev->api, ev->source, ev->heap, ev->addr, ev->stack);
    case HT_EV_REALLOC:
        return ht_enc_ev_realloc(e, ev->tid, ev->ts, ev->api, ev->source, ev->heap, ev->addr,
                                 ev->size, ev->old_addr, ev->old_size, ev->stack);
    default: return ht_enc_event(e, ev);
    }
}

/* Generate n events, encode them with e (and, if given, with `direct`
 * through ht_enc_ev_*, which must give the same bytes). */
static void encode_stream(ht_encoder *e, ht_encoder *direct, gen *g, size_t n, uint32_t id,
                          stream *s)
{
    memset(s, 0, sizeof *s);
    s->ev = calloc(n, sizeof *s->ev);
    s->texts = calloc(n, sizeof *s->texts);
    s->end = calloc(n, sizeof *s->end);
    assert_true(s->ev && s->texts && s->end);
    s->id = id;
    ht_enc_reset(e, id);
    if (direct) ht_enc_reset(direct, id);
    uint64_t max_ts = 0;
    for (size_t i = 0; i < n; i++) {
        ht_event *ev = &s->ev[i];
        gen_event(g, ev);
        if (ev->text) {
            s->texts[i] = malloc(ev->text_len + 1);
            assert_non_null(s->texts[i]);
            memcpy(s->texts[i], ev->text, ev->text_len);
            ev->text = s->texts[i];
        }
        size_t start = e->out.len;
        assert_int_equal(ht_enc_event(e, ev), 0);
        if (direct) assert_int_equal(enc_direct(direct, ev), 0);
        s->end[i] = e->out.len;
        assert_true(s->end[i] > start);
        if (ev->kind <= HT_EV_REALLOC && (e->out.data[start] & 0x60)) s->nref++;
        if (i == 0 || ev->ts > max_ts) max_ts = ev->ts;
    }
    s->n = n;
    assert_int_equal(e->records, n);
    assert_int_equal(e->stream, id);
    if (n) {
        assert_int_equal(e->ts_first, s->ev[0].ts);
        assert_int_equal(e->ts_last, max_ts);
    }
    if (direct) {
        assert_int_equal(direct->records, e->records);
        assert_int_equal(direct->ts_first, e->ts_first);
        assert_int_equal(direct->ts_last, e->ts_last);
        assert_int_equal(direct->out.len, e->out.len);
        assert_memory_equal(direct->out.data, e->out.data, e->out.len);
    }
    s->ts_first = e->ts_first;
    s->ts_last = e->ts_last;
    s->len = e->out.len;
    s->payload = malloc(s->len ? s->len : 1);
    assert_non_null(s->payload);
    memcpy(s->payload, e->out.data, s->len);
}

static void decode_all(const stream *s)
{
    ht_decoder d;
    ht_dec_init(&d, s->id, s->ts_first, s->payload, s->len);
    ht_event out;
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(ht_dec_next(&d, &out), 1);
        check_event(&s->ev[i], &out, s->id);
    }
    assert_int_equal(ht_dec_next(&d, &out), 0);
    assert_int_equal(ht_dec_next(&d, &out), 0);
}

/* ---- tests ---- */

static void test_roundtrip_random(void **state)
{
    (void)state;
    gen *g = malloc(sizeof *g);
    assert_non_null(g);
    gen_init(g, test_seed("roundtrip_random"));
    ht_encoder *e = calloc(2, sizeof *e); /* two: ht_enc_event and ht_enc_ev_* */
    assert_non_null(e);
    size_t refs = 0, events = 0;
    /* many streams through one encoder: reset must forget all chunk state,
     * while the generator keeps reusing addresses of earlier streams */
    for (int round = 0; round < 60; round++) {
        size_t n = round == 0 ? 1 : (size_t)rng_below(&g->rng, round < 50 ? 2000 : 40000);
        stream s;
        encode_stream(&e[0], &e[1], g, n, (uint32_t)rng_next(&g->rng), &s);
        decode_all(&s);
        refs += s.nref;
        events += s.n;
        stream_free(&s);
    }
    print_message("# %zu events, %zu with back-references\n", events, refs);
    assert_true(refs > events / 10); /* the reference paths were exercised */
    ht_enc_free(&e[0]);
    ht_enc_free(&e[1]);
    free(e);
    gen_free(g);
    free(g);
}

/* Deliberately hard cases for the per-thread table: threads that share
 * an entry alternate record by record, each with its own heap and
 * address history. */
static void test_roundtrip_colliding_threads(void **state)
{
    (void)state;
    test_rng rng = {test_seed("colliding_threads")};
    ht_encoder e;
    memset(&e, 0, sizeof e);
    ht_enc_reset(&e, 42);
    enum { N = 20000 };
    ht_event *in = calloc(N, sizeof *in);
    assert_non_null(in);
    for (size_t i = 0; i < N; i++) {
        ht_event *ev = &in[i];
        unsigned t = (unsigned)rng_below(&rng, 6);
        ev->tid = 7 + 64 * t; /* all in table entry 7 */
        if (t == 5) ev->tid = UINT32_MAX; /* the table's "empty" tid */
        ev->kind = 1 + (uint32_t)rng_below(&rng, 3);
        ev->ts = i * 10;
        ev->heap = t == 0 ? 1 : 100 + t;
        ev->api = (uint8_t)(1 + t);
        ev->source = (uint8_t)(t & 7);
        ev->addr = 0x10000 * (t + 1) + 16 * rng_below(&rng, 64);
        if (ev->kind != HT_EV_FREE) ev->size = rng_below(&rng, 100);
        if (ev->kind == HT_EV_REALLOC) {
            ev->old_addr = 0x10000 * (t + 1) + 16 * rng_below(&rng, 64);
            ev->old_size = rng_below(&rng, 100);
        }
        assert_int_equal(ht_enc_event(&e, ev), 0);
    }
    ht_decoder d;
    ht_dec_init(&d, 42, e.ts_first, e.out.data, e.out.len);
    ht_event out;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(ht_dec_next(&d, &out), 1);
        check_event(&in[i], &out, 42);
    }
    assert_int_equal(ht_dec_next(&d, &out), 0);
    free(in);
    ht_enc_free(&e);
}

static void test_edge_values(void **state)
{
    (void)state;
    ht_encoder e;
    memset(&e, 0, sizeof e);
    ht_enc_reset(&e, 0);
    static const uint64_t vals[] = {0, 1, 127, 128, 16383, 16384, INT64_MAX, (uint64_t)INT64_MAX + 1,
                                    UINT64_MAX - 1, UINT64_MAX};
    enum { NV = sizeof vals / sizeof vals[0] };
    ht_event in[NV * NV * 3];
    size_t n = 0;
    for (size_t i = 0; i < NV; i++)
        for (size_t j = 0; j < NV; j++)
            for (uint32_t k = HT_EV_ALLOC; k <= HT_EV_REALLOC; k++) {
                ht_event *ev = &in[n++];
                memset(ev, 0, sizeof *ev);
                ev->kind = k;
                ev->tid = (uint32_t)vals[(i + j) % NV];
                ev->ts = vals[j];
                ev->heap = vals[(i * 3 + j) % NV];
                ev->addr = vals[i];
                ev->size = k == HT_EV_FREE ? 0 : vals[j];
                ev->old_addr = k == HT_EV_REALLOC ? vals[NV - 1 - i] : 0;
                ev->old_size = k == HT_EV_REALLOC ? vals[NV - 1 - j] : 0;
                ev->api = 31;
                ev->source = 7;
                assert_int_equal(ht_enc_event(&e, ev), 0);
            }
    ht_decoder d;
    ht_dec_init(&d, 0, e.ts_first, e.out.data, e.out.len);
    ht_event out;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ht_dec_next(&d, &out), 1);
        check_event(&in[i], &out, 0);
    }
    assert_int_equal(ht_dec_next(&d, &out), 0);
    ht_enc_free(&e);
}

/* Kinds the format cannot carry are refused... */
static void test_encoder_rejects_bad_kinds(void **state)
{
    (void)state;
    ht_encoder e;
    memset(&e, 0, sizeof e);
    ht_enc_reset(&e, 1);
    static const uint32_t bad[] = {0, 4, 62, 63, 0x10000, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ht_event ev = {.kind = bad[i], .tid = 3, .ts = 10};
        assert_int_equal(ht_enc_event(&e, &ev), -EINVAL);
        assert_int_equal(e.records, 0);
        assert_int_equal(e.out.len, 0);
    }
    ht_enc_free(&e);
}

/* ...and a refused event must leave the encoder as it was: the events
 * accepted before and after it decode unchanged. */
static void test_encoder_state_after_reject(void **state)
{
    (void)state;
    ht_encoder e;
    memset(&e, 0, sizeof e);
    ht_enc_reset(&e, 1);
    ht_event a = {.kind = HT_EV_ALLOC, .tid = 5, .ts = 100, .heap = 1, .addr = 0x1000, .size = 8};
    ht_event bad = {.kind = 4, .tid = 6, .ts = 5000, .heap = 9};
    ht_event b = {.kind = HT_EV_FREE, .tid = 6, .ts = 200, .heap = 1, .addr = 0x1000};
    ht_event c = {.kind = HT_EV_ALLOC, .tid = 69, .ts = 300, .heap = 1, .addr = 0x2000, .size = 16};
    ht_event bad2 = {.kind = 0x10000, .tid = 69 + 64, .ts = 1};
    ht_event d2 = {.kind = HT_EV_ALLOC, .tid = 69, .ts = 400, .heap = 1, .addr = 0x2010, .size = 16};
    assert_int_equal(ht_enc_event(&e, &a), 0);
    assert_int_equal(ht_enc_event(&e, &bad), -EINVAL);
    assert_int_equal(ht_enc_event(&e, &b), 0);
    assert_int_equal(ht_enc_event(&e, &c), 0);
    assert_int_equal(ht_enc_event(&e, &bad2), -EINVAL);
    assert_int_equal(ht_enc_event(&e, &d2), 0);
    assert_int_equal(e.records, 4);
    assert_int_equal(e.ts_last, 400);
    const ht_event *want[] = {&a, &b, &c, &d2};
    ht_decoder d;
    ht_dec_init(&d, 1, e.ts_first, e.out.data, e.out.len);
    ht_event out[5];
    int rc[5];
    for (size_t i = 0; i < 5; i++) rc[i] = ht_dec_next(&d, &out[i]); /* no texts: copies are safe */
    ht_enc_free(&e);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(rc[i], 1);
        check_event(want[i], &out[i], 1);
    }
    assert_int_equal(rc[4], 0);
}

/* ---- hand-made payloads (FORMAT.md 3.2, 3.3) ---- */

typedef struct pbuf {
    uint8_t b[200000];
    size_t n;
} pbuf;

static void pb_byte(pbuf *p, uint8_t v) { p->b[p->n++] = v; }
static void pb_var(pbuf *p, uint64_t v)
{
    while (v >= 0x80) {
        p->b[p->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p->b[p->n++] = (uint8_t)v;
}
static uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

/* ALLOC on thread 1 (tid sent only if `first`), address as a delta. */
static void pb_alloc(pbuf *p, int first, int64_t delta, uint64_t size)
{
    pb_byte(p, (uint8_t)(HT_EV_ALLOC | HT_TAG_APISRC | (first ? HT_TAG_THREAD : 0)));
    if (first) pb_var(p, 1);
    pb_var(p, 0);                /* ts delta */
    pb_byte(p, 1 | 3 << 5);      /* malloc, MAINPATH */
    pb_var(p, zz(delta));
    pb_var(p, size);
}

/* FREE by back-reference v. */
static void pb_free_ref(pbuf *p, uint64_t v)
{
    pb_byte(p, HT_EV_FREE | HT_TAG_REF1 | HT_TAG_APISRC);
    pb_var(p, 0);
    pb_byte(p, 10 | 3 << 5);
    pb_var(p, v);
}

/* Decodes p; expects `ok` events, then rc_end.  Returns the last good event. */
static ht_event decode_expect(const pbuf *p, int ok, int rc_end)
{
    uint8_t *copy = malloc(p->n ? p->n : 1);
    assert_non_null(copy);
    memcpy(copy, p->b, p->n);
    ht_decoder *d = malloc(sizeof *d);
    assert_non_null(d);
    ht_dec_init(d, 3, 100, copy, p->n);
    ht_event ev, last;
    memset(&last, 0, sizeof last);
    for (int i = 0; i < ok; i++) {
        assert_int_equal(ht_dec_next(d, &ev), 1);
        last = ev;
    }
    assert_int_equal(ht_dec_next(d, &ev), rc_end);
    last.text = NULL; /* points into the freed copy */
    free(d);
    free(copy);
    return last;
}

static void test_decoder_references(void **state)
{
    (void)state;
    pbuf *p = malloc(sizeof *p);
    assert_non_null(p);
    ht_event ev;
    /* v = 1: the allocation just made */
    p->n = 0;
    pb_alloc(p, 1, 0x1000, 8);
    pb_alloc(p, 0, 0x10, 8); /* delta from the thread's previous: 0x1010 */
    pb_free_ref(p, 1);
    ev = decode_expect(p, 3, 0);
    assert_int_equal(ev.kind, HT_EV_FREE);
    assert_int_equal(ev.addr, 0x1010);
    assert_int_equal(ev.tid, 1);
    /* v = |A|: the first allocation; v = |A| + 1: out of range */
    pb_free_ref(p, 2);
    ev = decode_expect(p, 4, 0);
    assert_int_equal(ev.addr, 0x1000);
    pb_free_ref(p, 3);
    decode_expect(p, 4, -EBADMSG);
    /* v = 0 is never valid */
    p->n = 0;
    pb_alloc(p, 1, 0x1000, 8);
    pb_free_ref(p, 0);
    decode_expect(p, 1, -EBADMSG);
    /* a reference into an empty history */
    p->n = 0;
    pb_byte(p, HT_TAG_THREAD | HT_EV_FREE | HT_TAG_REF1 | HT_TAG_APISRC);
    pb_var(p, 1);
    pb_var(p, 0);
    pb_byte(p, 10);
    pb_var(p, 1);
    decode_expect(p, 0, -EBADMSG);
    p->n = 0;
    pb_byte(p, HT_TAG_THREAD | HT_EV_ALLOC | HT_TAG_REF1 | HT_TAG_APISRC); /* alloc side refers into F */
    pb_var(p, 1);
    pb_var(p, 0);
    pb_byte(p, 1);
    pb_var(p, 1);
    pb_var(p, 8);
    decode_expect(p, 0, -EBADMSG);
    /* in-place REALLOC: old = A[-1] (REF2), new = F[-1] = old (REF1) */
    p->n = 0;
    pb_alloc(p, 1, 0x5000, 8);
    pb_byte(p, HT_EV_REALLOC | HT_TAG_REF1 | HT_TAG_REF2 | HT_TAG_APISRC);
    pb_var(p, 0);
    pb_byte(p, 3 | 3 << 5);
    pb_var(p, 1);  /* old address: the allocation 1 ago */
    pb_var(p, 8);  /* old size */
    pb_var(p, 1);  /* new address: the release 1 ago, i.e. the old block */
    pb_var(p, 64); /* new size */
    ev = decode_expect(p, 2, 0);
    assert_int_equal(ev.kind, HT_EV_REALLOC);
    assert_int_equal(ev.old_addr, 0x5000);
    assert_int_equal(ev.addr, 0x5000);
    assert_int_equal(ev.old_size, 8);
    assert_int_equal(ev.size, 64);
    /* the window: 8192 allocations, then v = 8191 is the second, v = 8192 is out */
    p->n = 0;
    pb_alloc(p, 1, 16, 0);
    for (int i = 1; i < HT_CODEC_HIST; i++) pb_alloc(p, 0, 16, 0); /* 16, 32, ... */
    size_t mark = p->n;
    pb_free_ref(p, HT_CODEC_HIST - 1);
    ev = decode_expect(p, HT_CODEC_HIST + 1, 0);
    assert_int_equal(ev.addr, 32);
    p->n = mark;
    pb_free_ref(p, HT_CODEC_HIST);
    decode_expect(p, HT_CODEC_HIST, -EBADMSG);
    free(p);
}

static void test_decoder_tags(void **state)
{
    (void)state;
    pbuf *p = malloc(sizeof *p);
    assert_non_null(p);
    /* the stack bit: invalid on a metadata record; on a heap event the
     * stack id that follows must not be 0 (here every field is 0) */
    for (unsigned k = 0; k < 4; k++) {
        p->n = 0;
        pb_byte(p, (uint8_t)(HT_TAG_STACK | HT_TAG_THREAD | HT_TAG_APISRC | k));
        pb_var(p, 1);
        pb_var(p, 0);
        for (int i = 0; i < 8; i++) pb_byte(p, 0);
        decode_expect(p, 0, -EBADMSG);
    }
    /* a heap event that says "same api as before" with no before */
    p->n = 0;
    pb_byte(p, HT_TAG_THREAD | HT_EV_FREE);
    pb_var(p, 1);
    pb_var(p, 0);
    pb_var(p, 0);
    decode_expect(p, 0, -EBADMSG);
    /* a metadata record, then the same with each heap-event-only bit set */
    static const uint8_t meta_bad_bits[] = {0, HT_TAG_APISRC, HT_TAG_HEAP, HT_TAG_REF1, HT_TAG_REF2};
    for (unsigned bit = 0; bit < sizeof meta_bad_bits; bit++) {
        p->n = 0;
        pb_byte(p, (uint8_t)(HT_TAG_THREAD | HT_TAG_META | meta_bad_bits[bit]));
        pb_var(p, 7);
        pb_var(p, 0);
        pb_var(p, HT_EV_MARKER);
        pb_var(p, 2 + 3); /* heap, nargs, "abc" */
        pb_var(p, 0);
        pb_var(p, 0);
        pb_byte(p, 'a');
        pb_byte(p, 'b');
        pb_byte(p, 'c');
        if (bit == 0) {
            ht_event ev = decode_expect(p, 1, 0);
            assert_int_equal(ev.kind, HT_EV_MARKER);
            assert_int_equal(ev.tid, 7);
            assert_int_equal(ev.ts, 100);
            assert_int_equal(ev.text_len, 3);
        } else {
            decode_expect(p, 0, -EBADMSG);
        }
    }
    /* metadata kinds outside 64..65535, a length past the end */
    static const uint64_t bad_kinds[] = {0, 1, 63, 0x10000, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad_kinds / sizeof bad_kinds[0]; i++) {
        p->n = 0;
        pb_byte(p, HT_TAG_THREAD | HT_TAG_META);
        pb_var(p, 7);
        pb_var(p, 0);
        pb_var(p, bad_kinds[i]);
        pb_var(p, 2);
        pb_var(p, 0);
        pb_var(p, 0);
        decode_expect(p, 0, -EBADMSG);
    }
    p->n = 0;
    pb_byte(p, HT_TAG_THREAD | HT_TAG_META);
    pb_var(p, 7);
    pb_var(p, 0);
    pb_var(p, HT_EV_MARKER);
    pb_var(p, 3);
    pb_var(p, 0);
    pb_var(p, 0);
    decode_expect(p, 0, -EBADMSG);
    /* more args than an ht_event holds: the extra ones are skipped */
    p->n = 0;
    pb_byte(p, HT_TAG_THREAD | HT_TAG_META);
    pb_var(p, 7);
    pb_var(p, 0);
    pb_var(p, 300);
    pb_var(p, 2 + 9 + 1);
    pb_var(p, 0);
    pb_var(p, 9);
    for (int i = 0; i < 9; i++) pb_var(p, (uint64_t)i + 1);
    pb_byte(p, 'x');
    {
        ht_event ev = decode_expect(p, 1, 0);
        assert_int_equal(ev.kind, 300);
        assert_int_equal(ev.nargs, HT_EVENT_ARGS);
        for (int i = 0; i < HT_EVENT_ARGS; i++) assert_int_equal(ev.arg[i], i + 1);
        assert_int_equal(ev.text_len, 1);
    }
    /* a tid beyond 32 bits; a varint longer than 10 bytes */
    p->n = 0;
    pb_byte(p, HT_TAG_THREAD | HT_EV_FREE | HT_TAG_APISRC);
    pb_var(p, (uint64_t)UINT32_MAX + 1);
    pb_var(p, 0);
    pb_byte(p, 0);
    pb_var(p, 0);
    decode_expect(p, 0, -EBADMSG);
    p->n = 0;
    pb_byte(p, HT_TAG_THREAD | HT_EV_FREE | HT_TAG_APISRC);
    pb_var(p, 1);
    for (int i = 0; i < 11; i++) pb_byte(p, 0x80);
    pb_byte(p, 0);
    decode_expect(p, 0, -EBADMSG);
    free(p);
}

/* The encoder's address caches are tagged with a generation that changes
 * at every reset; when the generation wraps, the caches must really be
 * cleared, or a stale entry would become a wrong back-reference. */
static void test_encoder_generation_wrap(void **state)
{
    (void)state;
    ht_encoder *e = calloc(1, sizeof *e);
    assert_non_null(e);
    enum { NX = 100, NY = 200 };
    ht_enc_reset(e, 1);
    uint32_t first_gen = e->gen;
    for (int i = 0; i < NX; i++) /* chunk A: the X blocks */
        assert_int_equal(ht_enc_ev_alloc(e, 1, 10, 1, 3, 1, 0x100000 + 0x1230 * (uint64_t)i, 8, 0), 0);
    assert_int_equal(first_gen, 1);
    e->gen = UINT32_MAX; /* as after 2^32 - 2 more resets: the next one wraps to gen 1 again */
    ht_enc_reset(e, 1);
    assert_int_equal(e->gen, first_gen);
    /* chunk B: other blocks, then frees of the X blocks, not allocated here */
    ht_event *want = calloc(NY + NX, sizeof *want);
    assert_non_null(want);
    for (int i = 0; i < NY + NX; i++) {
        ht_event *ev = &want[i];
        ev->kind = i < NY ? HT_EV_ALLOC : HT_EV_FREE;
        ev->tid = 1;
        ev->ts = 20;
        ev->api = i < NY ? 1 : 10;
        ev->source = 3;
        ev->heap = 1;
        ev->addr = i < NY ? 0x900000 + 0x4560 * (uint64_t)i : 0x100000 + 0x1230 * (uint64_t)(i - NY);
        if (i < NY) ev->size = 8;
        assert_int_equal(ht_enc_event(e, ev), 0);
    }
    ht_decoder *d = malloc(sizeof *d);
    assert_non_null(d);
    ht_dec_init(d, 1, e->ts_first, e->out.data, e->out.len);
    ht_event out;
    for (int i = 0; i < NY + NX; i++) {
        assert_int_equal(ht_dec_next(d, &out), 1);
        check_event(&want[i], &out, 1);
    }
    assert_int_equal(ht_dec_next(d, &out), 0);
    free(d);
    free(want);
    ht_enc_free(e);
    free(e);
}

/* The encoder's references stay inside the decoder's window: a block
 * allocated 8191 allocations ago is referred to, one allocated 8192 ago is
 * not (FORMAT.md 3.2: 1 <= v <= 8191). */
static void test_encoder_window(void **state)
{
    (void)state;
    ht_encoder *e = calloc(1, sizeof *e);
    ht_decoder *d = malloc(sizeof *d);
    assert_true(e && d);
    int saw_ref = 0;
    for (uint64_t y = 0x2000; y < 0x2000 + 16 * 0x10; y += 0x10) { /* a Y whose cache slot differs from X's */
        for (uint32_t dist = HT_CODEC_HIST - 1; dist <= HT_CODEC_HIST + 1; dist++) {
            ht_enc_reset(e, 1);
            const uint64_t x = 0x1000;
            assert_int_equal(ht_enc_ev_alloc(e, 1, 0, 1, 3, 1, x, 8, 0), 0);
            for (uint32_t i = 1; i < dist; i++) assert_int_equal(ht_enc_ev_alloc(e, 1, 0, 1, 3, 1, y, 8, 0), 0);
            size_t at = e->out.len;
            assert_int_equal(ht_enc_ev_free(e, 1, 0, 10, 3, 1, x, 0), 0); /* v = dist */
            int is_ref = (e->out.data[at] & HT_TAG_REF1) != 0;
            if (dist >= HT_CODEC_HIST) assert_false(is_ref);
            else saw_ref |= is_ref;
            ht_dec_init(d, 1, e->ts_first, e->out.data, e->out.len);
            ht_event ev;
            for (uint32_t i = 0; i < dist; i++) {
                assert_int_equal(ht_dec_next(d, &ev), 1);
                assert_int_equal(ev.addr, i == 0 ? x : y);
            }
            assert_int_equal(ht_dec_next(d, &ev), 1);
            assert_int_equal(ev.kind, HT_EV_FREE);
            assert_int_equal(ev.addr, x);
            assert_int_equal(ht_dec_next(d, &ev), 0);
        }
        if (saw_ref) break;
    }
    assert_true(saw_ref); /* the boundary case itself was encoded as a reference */
    free(d);
    ht_enc_free(e);
    free(e);
}

/* Fill a fresh encoder with small FREE records up to exactly `target`
 * bytes (the first record is 5 bytes, the others 3 to 6: the api byte is
 * sent once). */
static void fill_to(ht_encoder *e, size_t target)
{
    uint64_t addr = 0x1000;
    assert_int_equal(ht_enc_ev_free(e, 1, 0, 10, 3, 1, addr, 0), 0); /* tag tid ts api addr */
    while (e->out.len < target) {
        size_t left = target - e->out.len;
        /* the address delta's varint makes the record 3..6 bytes */
        int64_t d = left >= 7 || left == 3 ? 0 : left == 4 ? 100 : left == 5 ? 10000 : 1 << 20;
        addr += (uint64_t)d;
        assert_int_equal(ht_enc_ev_free(e, 1, 0, 10, 3, 1, addr, 0), 0);
    }
    assert_int_equal(e->out.len, target);
}

/* The largest record the format has (a REALLOC with every field at its
 * widest varint: 67 bytes) must fit in what the encoder reserved, wherever
 * the buffer ends.  Fails (heap overflow) if the reserve is too small. */
static void test_encoder_widest_record(void **state)
{
    (void)state;
    for (size_t room = 40; room <= 100; room++) {
        ht_encoder *e = calloc(1, sizeof *e); /* fresh: its buffer starts at the same size */
        assert_non_null(e);
        ht_enc_reset(e, 1);
        assert_int_equal(ht_enc_ev_free(e, 1, 0, 10, 3, 1, 0, 0), 0); /* allocate the buffer */
        size_t cap = e->out.cap;
        ht_enc_reset(e, 1);
        fill_to(e, cap - room); /* (grows the buffer when room is small) */
        ht_event ev = {.kind = HT_EV_REALLOC, .tid = UINT32_MAX - 1, .api = 31, .source = 7,
                       .ts = (uint64_t)INT64_MIN, /* delta from 0: a 10-byte zigzag */
                       .heap = UINT64_MAX, .old_addr = 1ull << 63, .old_size = UINT64_MAX,
                       .addr = (1ull << 63) + 16, .size = UINT64_MAX};
        size_t before = e->out.len;
        assert_int_equal(ht_enc_event(e, &ev), 0);
        size_t rec = e->out.len - before, len = e->out.len, ecap = e->out.cap;
        if (len > ecap) {
            ht_enc_free(e);
            free(e);
            fail_msg("a %zu-byte record written at offset %zu of a %zu-byte buffer: %zu bytes "
                     "past its end", rec, before, ecap, len - ecap);
        }
        assert_int_equal(rec, 67); /* really the widest */
        ht_decoder *d = malloc(sizeof *d);
        assert_non_null(d);
        ht_dec_init(d, 1, e->ts_first, e->out.data, e->out.len);
        ht_event out;
        while (ht_dec_next(d, &out) == 1 && out.kind == HT_EV_FREE) {
        }
        check_event(&ev, &out, 1);
        assert_int_equal(ht_dec_next(d, &out), 0);
        free(d);
        ht_enc_free(e);
        free(e);
    }
}

static void test_empty_payload(void **state)
{
    (void)state;
    ht_decoder d;
    ht_event out;
    ht_dec_init(&d, 1, 0, "", 0);
    assert_int_equal(ht_dec_next(&d, &out), 0);
    assert_int_equal(ht_dec_next(&d, &out), 0);
}

/* Every prefix of a valid payload yields exactly the records wholly inside
 * it; a cut inside a record is -EBADMSG, a cut at a boundary is a clean 0. */
static void test_truncated_payloads(void **state)
{
    (void)state;
    gen *g = malloc(sizeof *g);
    assert_non_null(g);
    gen_init(g, test_seed("truncated_payloads") ^ 0x7e);
    ht_encoder e;
    memset(&e, 0, sizeof e);
    for (int round = 0; round < 6; round++) {
        stream s;
        encode_stream(&e, NULL, g, 150, 77, &s);
        for (size_t cut = 0; cut <= s.len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1);
            assert_non_null(p);
            memcpy(p, s.payload, cut);
            ht_decoder d;
            ht_dec_init(&d, 77, s.ts_first, p, cut);
            size_t whole = 0, boundary = (cut == 0);
            while (whole < s.n && s.end[whole] <= cut) {
                if (s.end[whole] == cut) boundary = 1;
                whole++;
            }
            ht_event out;
            for (size_t i = 0; i < whole; i++) {
                assert_int_equal(ht_dec_next(&d, &out), 1);
                check_event(&s.ev[i], &out, 77);
            }
            int rc = ht_dec_next(&d, &out);
            if (boundary) assert_int_equal(rc, 0);
            else assert_int_equal(rc, -EBADMSG);
            free(p);
        }
        stream_free(&s);
    }
    ht_enc_free(&e);
    gen_free(g);
    free(g);
}

/* Decode arbitrary bytes until the decoder stops; returns the events seen. */
static size_t decode_garbage(const uint8_t *buf, size_t len, uint64_t ts0)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, buf, len);
    ht_decoder d;
    ht_dec_init(&d, 9, ts0, p, len);
    ht_event out;
    size_t n = 0;
    int rc;
    while ((rc = ht_dec_next(&d, &out)) == 1) {
        n++;
        assert_true(n <= len); /* every record consumes input */
        assert_true((out.kind >= 1 && out.kind <= 3) || (out.kind >= 64 && out.kind <= 0xffff));
        assert_true(out.nargs <= HT_EVENT_ARGS);
        assert_int_equal(out.pid, 9);
        if (out.kind <= 3) {
            assert_true(out.source < 8);
            assert_true(out.api < 32);
            assert_int_equal(out.text_len, 0);
        } else {
            /* the text lies inside the buffer */
            const uint8_t *t = (const uint8_t *)out.text;
            assert_true(t >= p && t <= p + len);
            assert_true(out.text_len <= (size_t)(p + len - t));
        }
        if (out.text_len) {
            volatile uint8_t sum = 0; /* touch it: ASan checks the bytes */
            for (uint32_t i = 0; i < out.text_len; i++) sum ^= (uint8_t)out.text[i];
            (void)sum;
        }
    }
    assert_true(rc == 0 || rc == -EBADMSG);
    /* a stopped decoder stays stopped safely */
    if (rc == 0) assert_int_equal(ht_dec_next(&d, &out), 0);
    free(p);
    return n;
}

static void test_garbage(void **state)
{
    (void)state;
    test_rng rng = {test_seed("garbage") ^ 0x9a};
    uint8_t buf[4096];
    size_t events = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)rng_below(&rng, sizeof buf + 1);
        unsigned style = (unsigned)rng_below(&rng, 4);
        for (size_t j = 0; j < len; j++) {
            uint64_t x = rng_next(&rng);
            switch (style) {
            case 0: buf[j] = (uint8_t)x; break;
            case 1: buf[j] = (uint8_t)(x | 0x80); break;          /* endless varints */
            case 2: buf[j] = (uint8_t)(x % 4 == 0 ? HT_TAG_THREAD : x % 4 == 1 ? HT_TAG_META : x); break; /* meta tags */
            default: buf[j] = (uint8_t)(x & 0x7f); break;          /* small values, no thread bit */
            }
        }
        events += decode_garbage(buf, len, rng_next(&rng));
    }
    print_message("# garbage: %zu events decoded from random bytes\n", events);
}

/* Valid payloads with bytes flipped, inserted, removed: never crash. */
static void test_mutated_payloads(void **state)
{
    (void)state;
    gen *g = malloc(sizeof *g);
    assert_non_null(g);
    gen_init(g, test_seed("mutated_payloads") ^ 0x3c);
    ht_encoder e;
    memset(&e, 0, sizeof e);
    uint8_t *m = NULL;
    for (int round = 0; round < 40; round++) {
        stream s;
        encode_stream(&e, NULL, g, 300, 5, &s);
        m = realloc(m, s.len + 16);
        assert_non_null(m);
        for (int k = 0; k < 300; k++) {
            size_t len = s.len;
            memcpy(m, s.payload, len);
            int edits = 1 + (int)rng_below(&g->rng, 4);
            for (int x = 0; x < edits && len > 0; x++) {
                size_t at = (size_t)rng_below(&g->rng, len);
                switch (rng_below(&g->rng, 4)) {
                case 0: m[at] ^= (uint8_t)(1u << rng_below(&g->rng, 8)); break;
                case 1: m[at] = (uint8_t)rng_next(&g->rng); break;
                case 2: memmove(m + at, m + at + 1, len - at - 1); len--; break;
                default:
                    if (len < s.len + 16) {
                        memmove(m + at + 1, m + at, len - at);
                        m[at] = (uint8_t)rng_next(&g->rng);
                        len++;
                    }
                    break;
                }
            }
            decode_garbage(m, len, s.ts_first);
        }
        stream_free(&s);
    }
    free(m);
    ht_enc_free(&e);
    gen_free(g);
    free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_roundtrip_colliding_threads),
        cmocka_unit_test(test_edge_values),
        cmocka_unit_test(test_encoder_rejects_bad_kinds),
        cmocka_unit_test(test_encoder_state_after_reject),
        cmocka_unit_test(test_decoder_references),
        cmocka_unit_test(test_decoder_tags),
        cmocka_unit_test(test_encoder_generation_wrap),
        cmocka_unit_test(test_encoder_window),
        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_truncated_payloads),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_mutated_payloads),
        /* last: under ASan its overflow (while it exists) aborts the run */
        cmocka_unit_test(test_encoder_widest_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
