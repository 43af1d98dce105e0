/*
 * test_codec.c - the chunk payload encoding (codec.c, FORMAT.md section 3):
 * round trips of random event streams through the format 2 (column)
 * encoder, the decoder of both formats (2: columns, 1: rows) on hand-made
 * payloads, and the decoder's behaviour on bad input.
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
 * produce the same payload; the payload must be the column table then the
 * columns (checked against the encoder's columns), and no record may grow a
 * fixed column by more than the widest record does.
 *
 * Encoder state: references only within a chunk (a block allocated in one
 * chunk and freed in the next is never a reference), the caches cleared
 * when the history serials near wrapping, the 8191-entry window, realloc
 * sizes sent as differences only from sizes the cache kept whole (below
 * UINT32_MAX), and the chunk's capacity: exactly HT_CHUNK_RECORDS_MAX of the
 * widest records fit, in every column, and the next record is refused
 * (-ENOBUFS) without changing anything.
 *
 * Bad input: hand-made row payloads (format 1) check the decoder's limits
 * (reference range, invalid kinds, metadata tag bits), and every prefix of
 * one decodes to exactly the records that lie wholly inside it, then
 * -EBADMSG (or 0 at a record boundary).  Hand-made column payloads
 * (format 2) check the column table (lengths that run past the payload or do
 * not add up to it are refused by ht_dec_init), that every column must be
 * used up when the records end, and the realloc size rule (a REALLOC whose
 * old address is a reference sends new_size as a difference from the
 * referenced block's size, modulo 2^64; format 1 sends it as is).  Every
 * strict prefix and one-byte extension of an encoded payload is refused, and
 * a column cut short or extended under a table that fits yields only the
 * right records, then -EBADMSG.  Random garbage (as rows, as columns with
 * and without a fitting table) and mutated payloads (bytes, column table,
 * column boundaries) never crash (ASan/UBSan builds check that too) and
 * every event they yield is well-formed.  Buffers are copied into
 * exactly-sized allocations so ASan sees any over-read (the encoder's fixed
 * columns live in one mmap, which ASan does not watch: the capacity test
 * checks their bounds itself).
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

/* ---- payloads and their columns ---- */

/* The most one record adds to each fixed column: a REALLOC with every field
 * at its widest varint (FORMAT.md 3.2).  HDR, which grows, has no bound. */
static const size_t col_widest[HT_NCOLS] = {
    [HT_COL_TAG] = 1,    [HT_COL_TID] = 5,   [HT_COL_TS] = 10,   [HT_COL_HDR] = 0,
    [HT_COL_FREED] = 10, [HT_COL_ALLOC] = 10, [HT_COL_SIZE] = 20, [HT_COL_STACK] = 5,
};

static size_t enc_col_len(const ht_encoder *e, int i) { return (size_t)(e->col[i] - e->col0[i]); }

/* An exactly-sized copy of len bytes (never NULL, even for 0). */
static uint8_t *copy_of(const void *buf, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len) memcpy(p, buf, len);
    return p;
}

/* The encoder's chunk payload (ht_enc_payload), in an exactly-sized copy. */
static uint8_t *enc_payload(const ht_encoder *e, size_t *len)
{
    ht_buf b;
    memset(&b, 0, sizeof b);
    assert_int_equal(ht_enc_payload(e, &b), 0);
    uint8_t *p = copy_of(b.data, b.len);
    *len = b.len;
    ht_buf_free(&b);
    return p;
}

/* The test's own reading of a format 2 payload: its columns, and the size
 * of its column table; 0 if the table does not describe the payload. */
static size_t split_cols(const uint8_t *buf, size_t len, const uint8_t *col[HT_NCOLS], size_t n[HT_NCOLS])
{
    size_t at = 0;
    uint64_t total = 0;
    for (int i = 0; i < HT_NCOLS; i++) {
        uint64_t v = 0;
        for (unsigned shift = 0;; shift += 7) {
            if (at >= len || shift > 63) return 0;
            uint8_t b = buf[at++];
            v |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80)) break;
        }
        if (v > len) return 0;
        n[i] = (size_t)v;
        total += v;
    }
    if (total != len - at) return 0;
    size_t table = at;
    for (int i = 0; i < HT_NCOLS; i++) {
        col[i] = buf + at;
        at += n[i];
    }
    return table;
}

/* A format 2 payload of these columns (their table first), exactly sized. */
static uint8_t *join_cols(const uint8_t *col[HT_NCOLS], const size_t n[HT_NCOLS], size_t *len)
{
    size_t total = HT_NCOLS * 10;
    for (int i = 0; i < HT_NCOLS; i++) total += n[i];
    uint8_t *tmp = malloc(total), *p = tmp;
    assert_non_null(tmp);
    for (int i = 0; i < HT_NCOLS; i++) {
        uint64_t v = n[i];
        while (v >= 0x80) {
            *p++ = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        *p++ = (uint8_t)v;
    }
    for (int i = 0; i < HT_NCOLS; i++) {
        if (n[i]) memcpy(p, col[i], n[i]);
        p += n[i];
    }
    *len = (size_t)(p - tmp);
    uint8_t *out = copy_of(tmp, *len);
    free(tmp);
    return out;
}

/* Decodes buf (an exactly-sized allocation) as format `major` and checks
 * that every event it yields is the next of want[0..n).  Returns the
 * result that stopped it (0 or -EBADMSG); *got: the events yielded,
 * *rc_init: ht_dec_init's result. */
static int decode_against(unsigned major, uint32_t id, uint64_t ts0, const uint8_t *buf, size_t len,
                          const ht_event *want, size_t n, size_t *got, int *rc_init)
{
    ht_decoder *d = malloc(sizeof *d);
    assert_non_null(d);
    *rc_init = ht_dec_init(d, major, id, ts0, buf, len);
    ht_event out;
    size_t k = 0;
    int rc;
    while ((rc = ht_dec_next(d, &out)) == 1) {
        assert_true(k < n);
        check_event(&want[k], &out, id);
        k++;
    }
    if (rc == 0) assert_int_equal(ht_dec_next(d, &out), 0); /* an end stays an end */
    free(d);
    *got = k;
    return rc;
}

/* ---- a recorded stream: events (with their texts copied) and their payload ---- */

typedef struct stream {
    ht_event *ev;
    char **texts;
    size_t n;
    uint8_t *payload; /* exactly-sized copy */
    size_t len;
    uint64_t ts_first, ts_last;
    uint32_t id;
    size_t nref; /* heap events whose tag has a back-reference bit */
} stream;

static void stream_free(stream *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->texts[i]);
    free(s->texts);
    free(s->ev);
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
 * through ht_enc_ev_*, which must give the same payload). */
static void encode_stream(ht_encoder *e, ht_encoder *direct, gen *g, size_t n, uint32_t id,
                          stream *s)
{
    memset(s, 0, sizeof *s);
    s->ev = calloc(n ? n : 1, sizeof *s->ev);
    s->texts = calloc(n ? n : 1, sizeof *s->texts);
    assert_true(s->ev && s->texts);
    s->id = id;
    assert_int_equal(ht_enc_reset(e, id), 0);
    if (direct) assert_int_equal(ht_enc_reset(direct, id), 0);
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
        size_t before[HT_NCOLS];
        for (int c = 0; c < HT_NCOLS; c++) before[c] = enc_col_len(e, c);
        assert_int_equal(ht_enc_event(e, ev), 0);
        if (direct) assert_int_equal(enc_direct(direct, ev), 0);
        assert_int_equal(e->records, i + 1);
        /* one tag a record; no fixed column grows by more than the widest
         * record makes it (what the encoder's capacity is sized for) */
        for (int c = 0; c < HT_NCOLS; c++) {
            size_t grew = enc_col_len(e, c) - before[c];
            if (c == HT_COL_TAG) assert_int_equal(grew, 1);
            else if (c != HT_COL_HDR) assert_true(grew <= col_widest[c]);
        }
        if (i == 0 || ev->ts > max_ts) max_ts = ev->ts;
    }
    s->n = n;
    assert_int_equal(e->records, n);
    assert_int_equal(e->stream, id);
    if (n) {
        assert_int_equal(e->ts_first, s->ev[0].ts);
        assert_int_equal(e->ts_last, max_ts);
    }
    /* the tag column: a record's kind, and the references */
    for (size_t i = 0; i < n; i++) {
        uint8_t tag = e->col0[HT_COL_TAG][i];
        assert_int_equal(tag & HT_TAG_KIND, s->ev[i].kind <= HT_EV_REALLOC ? s->ev[i].kind : HT_TAG_META);
        if ((tag & HT_TAG_KIND) != HT_TAG_META && (tag & (HT_TAG_REF1 | HT_TAG_REF2))) s->nref++;
    }
    s->ts_first = e->ts_first;
    s->ts_last = e->ts_last;
    s->payload = enc_payload(e, &s->len);
    /* the payload: the columns' lengths in HT_COL_* order, then the columns */
    const uint8_t *col[HT_NCOLS];
    size_t cn[HT_NCOLS];
    assert_true(split_cols(s->payload, s->len, col, cn) >= HT_NCOLS);
    for (int c = 0; c < HT_NCOLS; c++) {
        assert_int_equal(cn[c], enc_col_len(e, c));
        if (cn[c]) assert_memory_equal(col[c], e->col0[c], cn[c]);
    }
    assert_true(ht_enc_size(e) >= s->len); /* the writer's limit is checked on it */
    if (direct) {
        assert_int_equal(direct->records, e->records);
        assert_int_equal(direct->ts_first, e->ts_first);
        assert_int_equal(direct->ts_last, e->ts_last);
        size_t dlen;
        uint8_t *dp = enc_payload(direct, &dlen);
        assert_int_equal(dlen, s->len);
        assert_memory_equal(dp, s->payload, dlen);
        free(dp);
    }
}

static void decode_all(const stream *s)
{
    ht_decoder d;
    assert_int_equal(ht_dec_init(&d, 2, s->id, s->ts_first, s->payload, s->len), 0);
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
    /* an encoder that was freed sets itself up again at its next reset */
    ht_enc_free(&e[0]);
    ht_enc_free(&e[1]);
    stream s;
    encode_stream(&e[0], &e[1], g, 3000, 7, &s);
    decode_all(&s);
    stream_free(&s);
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
    assert_int_equal(ht_enc_reset(&e, 42), 0);
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
    size_t len;
    uint8_t *pl = enc_payload(&e, &len);
    ht_decoder d;
    assert_int_equal(ht_dec_init(&d, 2, 42, e.ts_first, pl, len), 0);
    ht_event out;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(ht_dec_next(&d, &out), 1);
        check_event(&in[i], &out, 42);
    }
    assert_int_equal(ht_dec_next(&d, &out), 0);
    free(pl);
    free(in);
    ht_enc_free(&e);
}

static void test_edge_values(void **state)
{
    (void)state;
    ht_encoder e;
    memset(&e, 0, sizeof e);
    assert_int_equal(ht_enc_reset(&e, 0), 0);
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
    size_t len;
    uint8_t *pl = enc_payload(&e, &len);
    ht_decoder d;
    assert_int_equal(ht_dec_init(&d, 2, 0, e.ts_first, pl, len), 0);
    ht_event out;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ht_dec_next(&d, &out), 1);
        check_event(&in[i], &out, 0);
    }
    assert_int_equal(ht_dec_next(&d, &out), 0);
    free(pl);
    ht_enc_free(&e);
}

/* Kinds the format cannot carry are refused... */
static void test_encoder_rejects_bad_kinds(void **state)
{
    (void)state;
    ht_encoder e;
    memset(&e, 0, sizeof e);
    assert_int_equal(ht_enc_reset(&e, 1), 0);
    static const uint32_t bad[] = {0, 4, 62, 63, 0x10000, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ht_event ev = {.kind = bad[i], .tid = 3, .ts = 10};
        assert_int_equal(ht_enc_event(&e, &ev), -EINVAL);
        assert_int_equal(e.records, 0);
        for (int c = 0; c < HT_NCOLS; c++) assert_int_equal(enc_col_len(&e, c), 0);
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
    assert_int_equal(ht_enc_reset(&e, 1), 0);
    ht_event a = {.kind = HT_EV_ALLOC, .tid = 5, .ts = 100, .heap = 1, .addr = 0x1000, .size = 8};
    ht_event bad = {.kind = 4, .tid = 6, .ts = 5000, .heap = 9};
    ht_event b = {.kind = HT_EV_FREE, .tid = 6, .ts = 200, .heap = 1, .addr = 0x1000};
    ht_event c = {.kind = HT_EV_ALLOC, .tid = 69, .ts = 300, .heap = 1, .addr = 0x2000, .size = 16};
    ht_event bad2 = {.kind = 0x10000, .tid = 69 + 64, .ts = 1};
    ht_event d2 = {.kind = HT_EV_ALLOC, .tid = 69, .ts = 400, .heap = 1, .addr = 0x2010, .size = 16};
    uint8_t *pos[HT_NCOLS];
    assert_int_equal(ht_enc_event(&e, &a), 0);
    memcpy(pos, e.col, sizeof pos);
    assert_int_equal(ht_enc_event(&e, &bad), -EINVAL);
    assert_memory_equal(pos, e.col, sizeof pos); /* no column moved */
    assert_int_equal(ht_enc_event(&e, &b), 0);
    assert_int_equal(ht_enc_event(&e, &c), 0);
    memcpy(pos, e.col, sizeof pos);
    assert_int_equal(ht_enc_event(&e, &bad2), -EINVAL);
    assert_memory_equal(pos, e.col, sizeof pos);
    assert_int_equal(ht_enc_event(&e, &d2), 0);
    assert_int_equal(e.records, 4);
    assert_int_equal(e.ts_last, 400);
    const ht_event *want[] = {&a, &b, &c, &d2};
    size_t len;
    uint8_t *pl = enc_payload(&e, &len);
    ht_decoder d;
    assert_int_equal(ht_dec_init(&d, 2, 1, e.ts_first, pl, len), 0);
    ht_event out[5];
    int rc[5];
    for (size_t i = 0; i < 5; i++) rc[i] = ht_dec_next(&d, &out[i]); /* no texts: copies are safe */
    ht_enc_free(&e);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(rc[i], 1);
        check_event(want[i], &out[i], 1);
    }
    assert_int_equal(rc[4], 0);
    free(pl);
}

/* Encodes want[0..n) as the chunk e was just reset for, checks every
 * record's back-reference bits (REF1 | REF2) against ref[i] (0: none
 * allowed; 1: expected, counted), and that the chunk decodes to want[].
 * Returns how many of the records with ref[i] = 1 have a reference. */
static size_t enc_chunk_check(ht_encoder *e, const ht_event *want, size_t n, const signed char *ref)
{
    for (size_t i = 0; i < n; i++) assert_int_equal(ht_enc_event(e, &want[i]), 0);
    assert_int_equal(e->records, n);
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        int has = (e->col0[HT_COL_TAG][i] & (HT_TAG_REF1 | HT_TAG_REF2)) != 0;
        if (ref[i] == 0 && has) fail_msg("record %zu (kind %u, addr %#llx) is a back-reference", i,
                                         (unsigned)want[i].kind, (unsigned long long)want[i].addr);
        if (ref[i] == 1) hits += (size_t)has;
    }
    size_t len, got;
    int rc_init;
    uint8_t *pl = enc_payload(e, &len);
    int rc = decode_against(2, e->stream, e->ts_first, pl, len, want, n, &got, &rc_init);
    assert_int_equal(rc_init, 0);
    assert_int_equal(rc, 0);
    assert_int_equal(got, n);
    free(pl);
    return hits;
}

static ht_event heap_ev(uint32_t kind, uint64_t addr, uint64_t size)
{
    ht_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.tid = 1;
    ev.ts = 20;
    ev.api = kind == HT_EV_FREE ? 10 : 1;
    ev.source = 3;
    ev.heap = 1;
    ev.addr = addr;
    ev.size = kind == HT_EV_FREE ? 0 : size;
    return ev;
}

/* The realloc size rule in the encoder: a REALLOC refers to its old block
 * (REF2) only if the cache kept that block's size whole (below UINT32_MAX),
 * since its new size is then sent as a difference from it; a block of
 * UINT32_MAX bytes or more is sent as a delta address and an absolute
 * size.  Every combination of old and new sizes round-trips, whether the
 * block came from an ALLOC or an earlier REALLOC.  A FREE needs no size:
 * it refers to any block.  A small step costs one byte. */
static void test_encoder_realloc_sizes(void **state)
{
    (void)state;
    static const uint64_t sizes[] = {0, 1, 1000, UINT32_MAX - 2, UINT32_MAX - 1, UINT32_MAX,
                                     (uint64_t)UINT32_MAX + 1, (uint64_t)UINT32_MAX + 5, 1ull << 40,
                                     (uint64_t)INT64_MAX + 1, UINT64_MAX - 1, UINT64_MAX};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    ht_encoder *e = calloc(1, sizeof *e);
    assert_non_null(e);
    const uint64_t x = 0x7f0000001000ull, y = 0x7f0000802000ull;
    for (size_t i = 0; i < NS; i++)
        for (size_t j = 0; j < NS; j++) {
            uint64_t s = sizes[i], t = sizes[j], u = sizes[(i + j + 5) % NS];
            ht_event want[5] = {heap_ev(HT_EV_ALLOC, x, s), heap_ev(HT_EV_REALLOC, y, t),
                                heap_ev(HT_EV_REALLOC, y, u), heap_ev(HT_EV_FREE, y, 0),
                                heap_ev(HT_EV_ALLOC, x, 5)};
            want[1].old_addr = x; /* moves */
            want[1].old_size = s;
            want[2].old_addr = y; /* in place */
            want[2].old_size = t;
            static const signed char ref[5] = {0, -1, -1, 1, 1};
            assert_int_equal(ht_enc_reset(e, 1), 0);
            assert_int_equal(enc_chunk_check(e, want, 5, ref), 2);
            const uint8_t *tag = e->col0[HT_COL_TAG];
            assert_int_equal((tag[1] & HT_TAG_REF2) != 0, s < UINT32_MAX);
            assert_int_equal((tag[2] & HT_TAG_REF2) != 0, t < UINT32_MAX);
            assert_true(tag[2] & HT_TAG_REF1); /* in place: the block just released */
            assert_true(tag[3] & HT_TAG_REF1); /* whatever its size */
        }
    /* a buffer growing by a small step: its new size takes one byte */
    assert_int_equal(ht_enc_reset(e, 1), 0);
    assert_int_equal(ht_enc_ev_alloc(e, 1, 0, 1, 3, 1, x, 4096, 0), 0);
    size_t before = enc_col_len(e, HT_COL_SIZE);
    assert_int_equal(ht_enc_ev_realloc(e, 1, 0, 3, 3, 1, x, 4096 + 16, x, 4096, 0), 0);
    assert_true(e->col0[HT_COL_TAG][1] & HT_TAG_REF2);
    assert_int_equal(enc_col_len(e, HT_COL_SIZE) - before, 2 + 1); /* old_size 4096, then zigzag(16) */
    ht_enc_free(e);
    free(e);
}

/* No reference crosses chunks: history serials run on from chunk to chunk
 * (the caches are not cleared), but a block allocated (freed) in one chunk
 * is sent as a delta when freed (allocated, reallocated) in the next, while
 * blocks of the new chunk are referred to as usual. */
static void test_encoder_chunks_independent(void **state)
{
    (void)state;
    enum { NX = 100, NY = 200 };
    ht_encoder *e = calloc(1, sizeof *e);
    ht_event *want = calloc(4 * NX + 2 * NY + 8, sizeof *want);
    signed char *ref = calloc(4 * NX + 2 * NY + 8, 1);
    assert_true(e && want && ref);
    const uint64_t r = 0x5550000;
    /* chunk 1: the X blocks and R allocated, the Z blocks freed */
    assert_int_equal(ht_enc_reset(e, 1), 0);
    size_t n = 0;
    for (int i = 0; i < NX; i++) {
        want[n++] = heap_ev(HT_EV_ALLOC, 0x100000 + 0x1230 * (uint64_t)i, 8);
        want[n++] = heap_ev(HT_EV_FREE, 0x300000 + 0x4440 * (uint64_t)i, 0);
    }
    want[n++] = heap_ev(HT_EV_ALLOC, r, 100);
    enc_chunk_check(e, want, n, ref);
    uint32_t nalloc = e->nalloc, nfree = e->nfree;
    assert_int_equal(nalloc, 1 + NX + 1);
    assert_int_equal(nfree, 1 + NX);
    /* chunk 2: the X blocks freed, the Z blocks allocated, R reallocated
     * (none is a reference); then new blocks, which are */
    assert_int_equal(ht_enc_reset(e, 1), 0);
    assert_int_equal(e->abase, nalloc); /* the serials ran on */
    assert_int_equal(e->fbase, nfree);
    n = 0;
    size_t should = 0;
    for (int i = 0; i < NX; i++) {
        want[n++] = heap_ev(HT_EV_FREE, 0x100000 + 0x1230 * (uint64_t)i, 0);
        want[n++] = heap_ev(HT_EV_ALLOC, 0x300000 + 0x4440 * (uint64_t)i, 16);
    }
    want[n] = heap_ev(HT_EV_REALLOC, r + 0x10000, 77); /* new_size must come back as is */
    want[n].old_addr = r;
    want[n++].old_size = 100;
    for (int i = 0; i < NY; i++) want[n++] = heap_ev(HT_EV_ALLOC, 0x900000 + 0x4560 * (uint64_t)i, 8);
    for (int i = 0; i < NY; i++) {
        ref[n] = 1;
        want[n++] = heap_ev(HT_EV_FREE, 0x900000 + 0x4560 * (uint64_t)i, 0);
        should++;
    }
    want[n++] = heap_ev(HT_EV_ALLOC, 0xa00000, 100);
    ref[n] = 1;
    want[n] = heap_ev(HT_EV_REALLOC, 0xa00000, 130); /* in place: REF1 | REF2 */
    want[n].old_addr = 0xa00000;
    want[n++].old_size = 100;
    should++;
    size_t hits = enc_chunk_check(e, want, n, ref);
    assert_true(hits >= should * 9 / 10); /* (a cache miss only costs compression) */
    assert_true(e->col0[HT_COL_TAG][n - 1] & HT_TAG_REF2);
    free(ref);
    free(want);
    ht_enc_free(e);
    free(e);
}

/* The history serials run on across chunks, so the caches are cleared
 * when they near wrapping (nalloc or nfree above 0x7fffffff at a reset),
 * and serials restart at 1.  Were they not cleared, the entries of blocks
 * allocated (freed) in an old chunk would match the restarted serials of
 * the new chunk's allocations (frees) and become wrong references.  At
 * exactly 0x7fffffff nothing is cleared, the serials go on past 2^31, and
 * the next reset clears. */
static void test_encoder_serial_wrap(void **state)
{
    (void)state;
    enum { NX = 100, NY = 200, N = 2 * NX + 3 * NY };
    ht_encoder *e = calloc(1, sizeof *e);
    ht_event *want = calloc(N, sizeof *want);
    signed char *ref = calloc(N, 1);
    assert_true(e && want && ref);
    for (int variant = 0; variant < 3; variant++) {
        assert_int_equal(ht_enc_reset(e, 1), 0);
        /* chunk A: the X blocks allocated, the Z blocks freed */
        size_t n = 0;
        memset(ref, 0, N);
        for (int i = 0; i < NX; i++) {
            want[n++] = heap_ev(HT_EV_ALLOC, 0x100000 + 0x1230 * (uint64_t)i, 8);
            want[n++] = heap_ev(HT_EV_FREE, 0x300000 + 0x4440 * (uint64_t)i, 0);
        }
        enc_chunk_check(e, want, n, ref);
        /* as after 2^31 more allocations (frees); 0x7fffffff does not clear yet */
        if (variant == 0) e->nalloc = 0x80000000u;
        if (variant == 1) e->nfree = 0x80000000u;
        if (variant == 2) e->nalloc = e->nfree = 0x7fffffffu;
        assert_int_equal(ht_enc_reset(e, 1), 0);
        uint32_t base = variant == 2 ? 0x7fffffffu : 1;
        assert_int_equal(e->nalloc, base);
        assert_int_equal(e->nfree, base);
        assert_int_equal(e->abase, base);
        assert_int_equal(e->fbase, base);
        if (variant < 2)
            for (int s = 0; s < HT_CODEC_SETS; s++)
                for (int w = 0; w < 2; w++) {
                    assert_int_equal(e->acache[s][w].serial, 0);
                    assert_int_equal(e->fcache[s][w].serial, 0);
                }
        /* chunk B: the Y blocks allocated and the W blocks freed (their
         * serials are those the X and Z entries had), then the X blocks
         * freed and the Z blocks allocated: not references; then the Y
         * blocks freed: references */
        n = 0;
        memset(ref, 0, N);
        for (int i = 0; i < NY; i++) {
            want[n++] = heap_ev(HT_EV_ALLOC, 0x900000 + 0x4560 * (uint64_t)i, 8);
            want[n++] = heap_ev(HT_EV_FREE, 0xb00000 + 0x2220 * (uint64_t)i, 0);
        }
        for (int i = 0; i < NX; i++) {
            want[n++] = heap_ev(HT_EV_FREE, 0x100000 + 0x1230 * (uint64_t)i, 0);
            want[n++] = heap_ev(HT_EV_ALLOC, 0x300000 + 0x4440 * (uint64_t)i, 16);
        }
        for (int i = 0; i < NY; i++) {
            ref[n] = 1;
            want[n++] = heap_ev(HT_EV_FREE, 0x900000 + 0x4560 * (uint64_t)i, 0);
        }
        assert_true(enc_chunk_check(e, want, n, ref) >= NY * 9 / 10);
        if (variant == 2) {
            assert_true(e->nalloc > 0x80000000u); /* past 2^31 within the chunk */
            /* chunk C: the reset clears; the Y blocks of chunk B are not references */
            assert_int_equal(ht_enc_reset(e, 1), 0);
            assert_int_equal(e->nalloc, 1);
            assert_int_equal(e->abase, 1);
            n = 0;
            memset(ref, 0, N);
            for (int i = 0; i < NY; i++) {
                want[n++] = heap_ev(HT_EV_ALLOC, 0xd00000 + 0x1110 * (uint64_t)i, 8);
                want[n++] = heap_ev(HT_EV_FREE, 0x900000 + 0x4560 * (uint64_t)i, 0);
            }
            enc_chunk_check(e, want, n, ref);
        }
    }
    free(ref);
    free(want);
    ht_enc_free(e);
    free(e);
}

/* ---- hand-made payloads (FORMAT.md 3.2, 3.3; rows: 3.4) ---- */

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

/* Row payloads (format 1): a record's fields follow its tag. */

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

/* Decodes a copy of buf as format `major` (stream 3, ts_first 100);
 * expects `ok` events (copied to out[] if given), then rc_end.  Returns
 * the last good event (text NULL: it pointed into the freed copy). */
static ht_event decode_buf(unsigned major, const uint8_t *buf, size_t len, int ok, int rc_end, ht_event *out)
{
    uint8_t *copy = copy_of(buf, len);
    ht_decoder *d = malloc(sizeof *d);
    assert_non_null(d);
    assert_int_equal(ht_dec_init(d, major, 3, 100, copy, len), 0);
    ht_event ev, last;
    memset(&last, 0, sizeof last);
    for (int i = 0; i < ok; i++) {
        assert_int_equal(ht_dec_next(d, &ev), 1);
        last = ev;
        last.text = NULL;
        if (out) out[i] = last;
    }
    assert_int_equal(ht_dec_next(d, &ev), rc_end);
    free(d);
    free(copy);
    return last;
}

/* Decodes the row payload p; expects `ok` events, then rc_end. */
static ht_event decode_expect(const pbuf *p, int ok, int rc_end) { return decode_buf(1, p->b, p->n, ok, rc_end, NULL); }

/* A row payload built record by record, with what each record decodes to
 * (stream 3, ts_first 100) and where it ends.  Threads 1 and 2; every heap
 * event sends its api|source byte. */
enum { ROWS_MAX = 64 };
typedef struct rows {
    pbuf p;
    ht_event want[ROWS_MAX];
    size_t end[ROWS_MAX], n;
    uint32_t tid;                         /* the previous record's */
    uint64_t ts;                          /* the previous record's (ts_first at the start) */
    uint64_t heap[3], aprev[3], fprev[3]; /* per thread: its heap, its delta bases */
    uint64_t A[ROWS_MAX], F[ROWS_MAX];    /* the address histories */
    size_t na, nf;
} rows;

static void rows_init(rows *r)
{
    memset(r, 0, sizeof *r);
    r->ts = 100;
    for (int t = 0; t < 3; t++) r->heap[t] = 1;
}

static ht_event *row_begin(rows *r, uint8_t tag, uint32_t tid, uint64_t ts)
{
    assert_true(r->n < ROWS_MAX);
    ht_event *w = &r->want[r->n];
    memset(w, 0, sizeof *w);
    if (tid != r->tid || r->n == 0) tag |= HT_TAG_THREAD;
    pb_byte(&r->p, tag);
    if (tag & HT_TAG_THREAD) pb_var(&r->p, tid);
    pb_var(&r->p, zz((int64_t)(ts - r->ts)));
    r->tid = tid;
    r->ts = ts;
    w->pid = 3;
    w->tid = tid;
    w->ts = ts;
    return w;
}

/* A heap event of thread tid (1 or 2).  Release side (FREE addr, REALLOC
 * old addr): a reference fv >= 1 into A, or with fv = 0 the address faddr
 * as a delta; alloc side likewise (av into F, or aaddr).  new_size as is. */
static void row_heap(rows *r, unsigned kind, uint32_t tid, uint64_t ts, uint64_t heap, uint64_t fv, uint64_t faddr,
                     uint64_t old_size, uint64_t av, uint64_t aaddr, uint64_t size, uint32_t stack)
{
    uint8_t tag = (uint8_t)(kind | HT_TAG_APISRC);
    if (heap != r->heap[tid]) tag |= HT_TAG_HEAP;
    if (fv) tag |= kind == HT_EV_FREE ? HT_TAG_REF1 : HT_TAG_REF2;
    if (av) tag |= HT_TAG_REF1;
    if (stack) tag |= HT_TAG_STACK;
    ht_event *w = row_begin(r, tag, tid, ts);
    unsigned api = (kind * 7 + tid) & 31, src = (kind + tid) & 7;
    pb_byte(&r->p, (uint8_t)(api | src << 5));
    if (tag & HT_TAG_HEAP) pb_var(&r->p, heap);
    r->heap[tid] = heap;
    w->kind = kind;
    w->api = (uint8_t)api;
    w->source = (uint8_t)src;
    w->heap = heap;
    w->stack = stack;
    if (kind != HT_EV_ALLOC) {
        assert_true(fv <= r->na);
        uint64_t a = fv ? r->A[r->na - fv] : faddr;
        pb_var(&r->p, fv ? fv : zz((int64_t)(a - r->fprev[tid])));
        r->fprev[tid] = a;
        r->F[r->nf++] = a;
        if (kind == HT_EV_FREE) {
            w->addr = a;
        } else {
            w->old_addr = a;
            w->old_size = old_size;
            pb_var(&r->p, old_size);
        }
    }
    if (kind != HT_EV_FREE) {
        assert_true(av <= r->nf);
        uint64_t a = av ? r->F[r->nf - av] : aaddr;
        pb_var(&r->p, av ? av : zz((int64_t)(a - r->aprev[tid])));
        r->aprev[tid] = a;
        r->A[r->na++] = a;
        w->addr = a;
        w->size = size;
        pb_var(&r->p, size);
    }
    if (stack) pb_var(&r->p, stack);
    r->end[r->n++] = r->p.n;
}

static size_t var_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A metadata record: kind, length, then heap, nargs, args, text. */
static void row_meta(rows *r, uint32_t tid, uint64_t ts, uint32_t kind, uint64_t heap, const uint64_t *args,
                     unsigned nargs, const char *text)
{
    ht_event *w = row_begin(r, HT_TAG_META, tid, ts);
    size_t tlen = strlen(text), len = var_len(heap) + var_len(nargs) + tlen;
    for (unsigned i = 0; i < nargs; i++) len += var_len(args[i]);
    pb_var(&r->p, kind);
    pb_var(&r->p, len);
    pb_var(&r->p, heap);
    pb_var(&r->p, nargs);
    for (unsigned i = 0; i < nargs; i++) pb_var(&r->p, args[i]);
    memcpy(r->p.b + r->p.n, text, tlen);
    r->p.n += tlen;
    w->kind = kind;
    w->heap = heap;
    w->nargs = (uint16_t)nargs;
    for (unsigned i = 0; i < nargs; i++) w->arg[i] = args[i];
    w->text = text;
    w->text_len = (uint32_t)tlen;
    r->end[r->n++] = r->p.n;
}

/* 42 records of every kind on two threads: allocations and frees by delta
 * and by reference, in-place reallocs (whose new size, in format 1, is
 * sent as is), heap changes, stacks, timestamps that go back, metadata
 * with and without args and text. */
static void build_rows(rows *r)
{
    static const uint64_t args[] = {0, 1, UINT64_MAX, 1ull << 40};
    rows_init(r);
    for (uint32_t i = 0; i < 42; i++) {
        uint32_t tid = 1 + (i / 3) % 2;
        uint64_t ts = 1000 + 10 * i - (i % 7 == 3 ? 25 : 0);
        uint64_t heap = i % 8 < 4 ? 1 : 0x5000 + i / 8;
        switch (i % 6) {
        case 0: /* a fresh block, by delta */
            row_heap(r, HT_EV_ALLOC, tid, ts, heap, 0, 0, 0, 0, 0x10000 * (uint64_t)tid + 0x40 * i,
                     i == 12 ? UINT64_MAX : 24 + i, 0);
            break;
        case 1: /* the block just allocated */
            row_heap(r, HT_EV_FREE, tid, ts, heap, 1, 0, 0, 0, 0, 0, 0);
            break;
        case 2: /* the block just freed, with a stack */
            row_heap(r, HT_EV_ALLOC, tid, ts, heap, 0, 0, 0, 1, 0, 48, 7 + i);
            break;
        case 3: /* in place: old = A[-1] (REF2), new = F[-1] (REF1) */
            row_heap(r, HT_EV_REALLOC, tid, ts, heap, 1, 0, 48, 1, 0, 1000 + i, 0);
            break;
        case 4:
            row_meta(r, tid, ts, i % 12 == 4 ? HT_EV_MARKER : 300, i, args, i % 5, i % 12 == 4 ? "" : "some text");
            break;
        default: /* a block from elsewhere, by delta, with the widest stack id */
            row_heap(r, HT_EV_FREE, tid, ts, heap, 0, 0x7f0000001000ull - 0x100 * i, 0, 0, 0, 0, UINT32_MAX - i);
            break;
        }
    }
}

/* Column payloads (format 2): a pbuf per column. */
typedef struct cols {
    pbuf c[HT_NCOLS];
} cols;

static void cols_clear(cols *c)
{
    for (int i = 0; i < HT_NCOLS; i++) c->c[i].n = 0;
}

/* Decodes c's payload (its table, then its columns) like decode_buf. */
static ht_event decode_cols(const cols *c, int ok, int rc_end, ht_event *out)
{
    const uint8_t *col[HT_NCOLS];
    size_t n[HT_NCOLS], len;
    for (int i = 0; i < HT_NCOLS; i++) {
        col[i] = c->c[i].b;
        n[i] = c->c[i].n;
    }
    uint8_t *p = join_cols(col, n, &len);
    ht_event last = decode_buf(2, p, len, ok, rc_end, out);
    free(p);
    return last;
}

/* ALLOC on thread 1 (tid sent only if `first`), address as a delta. */
static void cb_alloc(cols *c, int first, int64_t delta, uint64_t size)
{
    pb_byte(&c->c[HT_COL_TAG], (uint8_t)(HT_EV_ALLOC | HT_TAG_APISRC | (first ? HT_TAG_THREAD : 0)));
    if (first) pb_var(&c->c[HT_COL_TID], 1);
    pb_var(&c->c[HT_COL_TS], 0);
    pb_byte(&c->c[HT_COL_HDR], 1 | 3 << 5);
    pb_var(&c->c[HT_COL_ALLOC], zz(delta));
    pb_var(&c->c[HT_COL_SIZE], size);
}

/* REALLOC on thread 1: the old address a back-reference v (REF2), or with
 * v = 0 a delta; the new address a delta; the new size field as given. */
static void cb_realloc(cols *c, uint64_t v, int64_t old_delta, uint64_t old_size, int64_t new_delta,
                       uint64_t size_field)
{
    pb_byte(&c->c[HT_COL_TAG], (uint8_t)(HT_EV_REALLOC | HT_TAG_APISRC | (v ? HT_TAG_REF2 : 0)));
    pb_var(&c->c[HT_COL_TS], 0);
    pb_byte(&c->c[HT_COL_HDR], 3 | 3 << 5);
    pb_var(&c->c[HT_COL_FREED], v ? v : zz(old_delta));
    pb_var(&c->c[HT_COL_SIZE], old_size);
    pb_var(&c->c[HT_COL_ALLOC], zz(new_delta));
    pb_var(&c->c[HT_COL_SIZE], size_field);
}

/* Two records that use every column: an ALLOC (tid 1, heap 5, stack 9)
 * and a FREE of it by reference. */
static void cb_two_records(cols *c)
{
    cols_clear(c);
    pb_byte(&c->c[HT_COL_TAG], HT_EV_ALLOC | HT_TAG_APISRC | HT_TAG_THREAD | HT_TAG_HEAP | HT_TAG_STACK);
    pb_var(&c->c[HT_COL_TID], 1);
    pb_var(&c->c[HT_COL_TS], 2);
    pb_byte(&c->c[HT_COL_HDR], 1 | 3 << 5);
    pb_var(&c->c[HT_COL_HDR], 5);
    pb_var(&c->c[HT_COL_ALLOC], zz(0x1000));
    pb_var(&c->c[HT_COL_SIZE], 300);
    pb_var(&c->c[HT_COL_STACK], 9);
    pb_byte(&c->c[HT_COL_TAG], HT_EV_FREE | HT_TAG_APISRC | HT_TAG_REF1);
    pb_var(&c->c[HT_COL_TS], 4);
    pb_byte(&c->c[HT_COL_HDR], 10 | 3 << 5);
    pb_var(&c->c[HT_COL_FREED], 1);
}

static void check_two_records(const ht_event *ev)
{
    assert_int_equal(ev[0].kind, HT_EV_ALLOC);
    assert_int_equal(ev[0].tid, 1);
    assert_int_equal(ev[0].ts, 101);
    assert_int_equal(ev[0].api, 1);
    assert_int_equal(ev[0].source, 3);
    assert_int_equal(ev[0].heap, 5);
    assert_int_equal(ev[0].addr, 0x1000);
    assert_int_equal(ev[0].size, 300);
    assert_int_equal(ev[0].stack, 9);
    assert_int_equal(ev[1].kind, HT_EV_FREE);
    assert_int_equal(ev[1].tid, 1);
    assert_int_equal(ev[1].ts, 103);
    assert_int_equal(ev[1].api, 10);
    assert_int_equal(ev[1].heap, 5);
    assert_int_equal(ev[1].addr, 0x1000);
    assert_int_equal(ev[1].stack, 0);
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

/* A column table is a list of eight varints (FORMAT.md 3), here lens[0..nlens),
 * then body: ht_dec_init must refuse the payload, after which the decoder
 * yields nothing. */
static void expect_refused(const uint64_t *lens, int nlens, const uint8_t *body, size_t blen)
{
    pbuf *p = malloc(sizeof *p);
    assert_non_null(p);
    p->n = 0;
    for (int i = 0; i < nlens; i++) pb_var(p, lens[i]);
    memcpy(p->b + p->n, body, blen);
    p->n += blen;
    uint8_t *copy = copy_of(p->b, p->n);
    ht_decoder *d = malloc(sizeof *d);
    assert_non_null(d);
    assert_int_equal(ht_dec_init(d, 2, 3, 100, copy, p->n), -EBADMSG);
    ht_event ev;
    assert_int_equal(ht_dec_next(d, &ev), 0);
    assert_int_equal(ht_dec_next(d, &ev), 0);
    free(d);
    free(copy);
    free(p);
}

/* Format 2's column table must describe the payload exactly: a length
 * that runs past the payload, lengths that add up to more or less than
 * the bytes that follow, a table cut short, an endless or oversized
 * varint: ht_dec_init refuses the payload (-EBADMSG) and ht_dec_next then
 * yields nothing.  The same columns under their true table decode. */
static void test_decoder_column_table(void **state)
{
    (void)state;
    cols *c = malloc(sizeof *c);
    assert_non_null(c);
    cb_two_records(c);
    ht_event ev[2];
    decode_cols(c, 2, 0, ev);
    check_two_records(ev);
    uint8_t body[256];
    uint64_t n[HT_NCOLS], blen = 0;
    for (int i = 0; i < HT_NCOLS; i++) {
        n[i] = c->c[i].n;
        assert_true(n[i] > 0);
        memcpy(body + blen, c->c[i].b, n[i]);
        blen += n[i];
    }
    for (int i = 0; i < HT_NCOLS; i++) {
        /* over by one (for the last column: runs past the end), under by
         * one, past the end by far, the largest varints */
        const uint64_t bad[] = {n[i] + 1, n[i] - 1, n[i] + blen, blen + 1, 1ull << 62, UINT64_MAX};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            uint64_t m[HT_NCOLS];
            memcpy(m, n, sizeof m);
            m[i] = bad[k];
            expect_refused(m, HT_NCOLS, body, blen);
        }
    }
    /* the true table with a byte more or less behind it */
    body[blen] = 0;
    expect_refused(n, HT_NCOLS, body, blen + 1);
    expect_refused(n, HT_NCOLS, body, blen - 1);
    /* every length larger than the payload: a sum that would wrap */
    const uint64_t huge[HT_NCOLS] = {UINT64_MAX / 4, UINT64_MAX / 4, UINT64_MAX / 4, UINT64_MAX / 4,
                                     UINT64_MAX / 4, UINT64_MAX / 4, UINT64_MAX / 4, UINT64_MAX / 4};
    expect_refused(huge, HT_NCOLS, body, blen);
    /* a table cut short: 1 to 7 lengths, alone or with what follows */
    const uint64_t zeros[HT_NCOLS] = {0};
    for (int k = 1; k < HT_NCOLS; k++) {
        expect_refused(zeros, k, body, 0);
        expect_refused(n, k, body, 0);
    }
    /* an endless varint as a length; an 11-byte one */
    uint8_t cont[16];
    memset(cont, 0x80, sizeof cont);
    expect_refused(NULL, 0, cont, sizeof cont);
    cont[10] = 0;
    expect_refused(NULL, 0, cont, 11);
    /* eight empty columns hold no record */
    uint8_t empty[HT_NCOLS] = {0};
    decode_buf(2, empty, sizeof empty, 0, 0, NULL);
    free(c);
}

/* When the records end (the TAG column is used up), every other column
 * must be used up exactly: a byte left over in any of them makes the chunk
 * malformed (-EBADMSG, not the clean end 0), after the records, which
 * decode unchanged.  A tag byte more is a record whose fields are missing. */
static void test_decoder_column_leftovers(void **state)
{
    (void)state;
    cols *c = malloc(sizeof *c);
    assert_non_null(c);
    cb_two_records(c);
    static const uint8_t extra[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    for (int i = 0; i < HT_NCOLS; i++)
        for (size_t k = 0; k < sizeof extra; k++) {
            pb_byte(&c->c[i], extra[k]);
            ht_event ev[2];
            decode_cols(c, 2, -EBADMSG, ev);
            check_two_records(ev);
            c->c[i].n--;
        }
    free(c);
}

/* Format 2's realloc size rule: a REALLOC whose old address is a
 * back-reference (REF2) sends new_size as zigzag(new_size - s), s the size
 * of the allocation referred to (an ALLOC's size or an earlier REALLOC's
 * new size, wherever it is in the window), modulo 2^64 both ways.  Without
 * REF2 new_size is sent as is; in format 1 always.  References out of
 * range are malformed here as in FREE records. */
static void test_decoder_realloc_size_rule(void **state)
{
    (void)state;
    cols *c = malloc(sizeof *c);
    pbuf *p = malloc(sizeof *p);
    assert_true(c && p);
    ht_event ev;
    static const struct {
        uint64_t s;
        int64_t step;
        uint64_t want;
    } cases[] = {
        {100, 28, 128},
        {100, -60, 40}, /* a shrinking block */
        {100, 0, 100},
        {0, 5, 5},
        {UINT64_MAX - 1, 5, 3},      /* wraps past 2^64 */
        {2, -5, UINT64_MAX - 2},     /* wraps below 0 */
        {0, INT64_MIN, 1ull << 63},  /* the largest steps */
        {UINT64_MAX, INT64_MAX, (uint64_t)INT64_MAX - 1},
        {(uint64_t)UINT32_MAX + 5, -10, (uint64_t)UINT32_MAX - 5}, /* sizes the encoder does not refer to */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cols_clear(c);
        cb_alloc(c, 1, 0x1000, cases[i].s);
        cb_realloc(c, 1, 0, 7, 0x100, zz(cases[i].step));
        ev = decode_cols(c, 2, 0, NULL);
        assert_int_equal(ev.kind, HT_EV_REALLOC);
        assert_int_equal(ev.old_addr, 0x1000);
        assert_int_equal(ev.old_size, 7);
        assert_int_equal(ev.addr, 0x1100);
        assert_int_equal(ev.size, cases[i].want);
    }
    /* a chain: sizes come from the allocation referred to, not the last one */
    cols_clear(c);
    cb_alloc(c, 1, 0x1000, 10);          /* A: 0x1000 (10) */
    cb_realloc(c, 1, 0, 10, 0x100, zz(6));  /* 0x1000 -> 0x1100 (16) */
    cb_realloc(c, 1, 0, 16, 0x100, zz(16)); /* 0x1100 -> 0x1200 (32) */
    cb_realloc(c, 3, 0, 10, 0x100, zz(-3)); /* A[-3] = 0x1000 (10) -> 0x1300 (7) */
    /* no REF2: old address 0x9000 as a delta from 0x1000, new size as is */
    cb_realloc(c, 0, 0x8000, 0, 0x100, 50);   /* -> 0x1400 (50) */
    cb_realloc(c, 1, 0, 50, 0x100, zz(-50));  /* 0x1400 (50) -> 0x1500 (0) */
    ht_event out[6];
    decode_cols(c, 6, 0, out);
    static const uint64_t old_addr[6] = {0, 0x1000, 0x1100, 0x1000, 0x9000, 0x1400};
    static const uint64_t size[6] = {10, 16, 32, 7, 50, 0};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(out[i].addr, 0x1000 + 0x100 * (uint64_t)i);
        assert_int_equal(out[i].old_addr, old_addr[i]);
        assert_int_equal(out[i].size, size[i]);
    }
    /* the window: 8192 allocations of sizes 1000 + i; v = 8191 is the
     * second (size 1001), v = 8192 is out of range, as are 0 and |A| + 1 */
    cols_clear(c);
    for (int i = 0; i < HT_CODEC_HIST; i++) cb_alloc(c, i == 0, 16, 1000 + (uint64_t)i);
    size_t mark[HT_NCOLS];
    for (int i = 0; i < HT_NCOLS; i++) mark[i] = c->c[i].n;
    cb_realloc(c, HT_CODEC_HIST - 1, 0, 0, 0x100, zz(1));
    ev = decode_cols(c, HT_CODEC_HIST + 1, 0, NULL);
    assert_int_equal(ev.old_addr, 32);
    assert_int_equal(ev.size, 1002);
    static const uint64_t bad_v[] = {HT_CODEC_HIST, HT_CODEC_HIST + 1};
    for (size_t k = 0; k < 2; k++) {
        for (int i = 0; i < HT_NCOLS; i++) c->c[i].n = mark[i];
        cb_realloc(c, bad_v[k], 0, 0, 0x100, zz(1));
        decode_cols(c, HT_CODEC_HIST, -EBADMSG, NULL);
    }
    cols_clear(c);
    cb_alloc(c, 1, 0x1000, 10);
    cb_realloc(c, 2, 0, 0, 0x100, zz(1)); /* |A| + 1 */
    decode_cols(c, 1, -EBADMSG, NULL);
    cols_clear(c);
    cb_alloc(c, 1, 0x1000, 10);
    cb_realloc(c, 0, 0, 0, 0x100, zz(1));
    c->c[HT_COL_TAG].b[1] |= HT_TAG_REF2; /* v = 0 as a reference */
    c->c[HT_COL_FREED].b[0] = 0;
    decode_cols(c, 1, -EBADMSG, NULL);
    /* format 1: the same records as rows; new_size 56 = zigzag(28) is 56 */
    p->n = 0;
    pb_alloc(p, 1, 0x1000, 100);
    pb_byte(p, HT_EV_REALLOC | HT_TAG_APISRC | HT_TAG_REF2);
    pb_var(p, 0);
    pb_byte(p, 3 | 3 << 5);
    pb_var(p, 1);
    pb_var(p, 7);
    pb_var(p, zz(0x100));
    pb_var(p, zz(28));
    ev = decode_expect(p, 2, 0);
    assert_int_equal(ev.old_addr, 0x1000);
    assert_int_equal(ev.addr, 0x1100);
    assert_int_equal(ev.size, 56);
    free(p);
    free(c);
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
            assert_int_equal(ht_enc_reset(e, 1), 0);
            const uint64_t x = 0x1000;
            assert_int_equal(ht_enc_ev_alloc(e, 1, 0, 1, 3, 1, x, 8, 0), 0);
            for (uint32_t i = 1; i < dist; i++) assert_int_equal(ht_enc_ev_alloc(e, 1, 0, 1, 3, 1, y, 8, 0), 0);
            assert_int_equal(ht_enc_ev_free(e, 1, 0, 10, 3, 1, x, 0), 0); /* v = dist */
            int is_ref = (e->col0[HT_COL_TAG][e->records - 1] & HT_TAG_REF1) != 0;
            if (dist >= HT_CODEC_HIST) assert_false(is_ref);
            else saw_ref |= is_ref;
            size_t len;
            uint8_t *pl = enc_payload(e, &len);
            assert_int_equal(ht_dec_init(d, 2, 1, e->ts_first, pl, len), 0);
            ht_event ev;
            for (uint32_t i = 0; i < dist; i++) {
                assert_int_equal(ht_dec_next(d, &ev), 1);
                assert_int_equal(ev.addr, i == 0 ? x : y);
            }
            assert_int_equal(ht_dec_next(d, &ev), 1);
            assert_int_equal(ev.kind, HT_EV_FREE);
            assert_int_equal(ev.addr, x);
            assert_int_equal(ht_dec_next(d, &ev), 0);
            free(pl);
        }
        if (saw_ref) break;
    }
    assert_true(saw_ref); /* the boundary case itself was encoded as a reference */
    free(d);
    ht_enc_free(e);
    free(e);
}

/* An empty payload holds no record, in either format; a chunk with no
 * record is eight zero lengths, which decode to nothing. */
static void test_empty_payload(void **state)
{
    (void)state;
    ht_decoder d;
    ht_event out;
    for (unsigned major = 1; major <= 2; major++) {
        assert_int_equal(ht_dec_init(&d, major, 0, 0, "", 0), 0);
        assert_int_equal(ht_dec_next(&d, &out), 0);
        assert_int_equal(ht_dec_next(&d, &out), 0);
    }
    ht_encoder e;
    memset(&e, 0, sizeof e);
    assert_int_equal(ht_enc_reset(&e, 5), 0);
    size_t len;
    uint8_t *pl = enc_payload(&e, &len);
    assert_int_equal(len, HT_NCOLS);
    for (int i = 0; i < HT_NCOLS; i++) assert_int_equal(pl[i], 0);
    assert_true(ht_enc_size(&e) >= len);
    assert_int_equal(ht_dec_init(&d, 2, 5, 0, pl, len), 0);
    assert_int_equal(ht_dec_next(&d, &out), 0);
    free(pl);
    ht_enc_free(&e);
}

/* Format 2: the column table fixes the payload's size, so every strict
 * prefix of a valid payload but the empty one (which holds no record), and
 * the payload with any byte more, is refused by ht_dec_init, and the
 * decoder then yields nothing.  Under a table that fits, a column cut
 * short by k bytes yields only records that are right and then -EBADMSG
 * (never the clean end, since some record lost a field), and a column one
 * byte longer yields all the records, then -EBADMSG. */
static void test_truncated_payloads(void **state)
{
    (void)state;
    gen *g = malloc(sizeof *g);
    ht_decoder *d = malloc(sizeof *d);
    assert_true(g && d);
    gen_init(g, test_seed("truncated_payloads") ^ 0x7e);
    ht_encoder e;
    memset(&e, 0, sizeof e);
    size_t cuts = 0;
    for (int round = 0; round < 6; round++) {
        stream s;
        encode_stream(&e, NULL, g, 150, 77, &s);
        ht_event out;
        for (size_t cut = 0; cut < s.len; cut++) {
            uint8_t *p = copy_of(s.payload, cut);
            assert_int_equal(ht_dec_init(d, 2, 77, s.ts_first, p, cut), cut == 0 ? 0 : -EBADMSG);
            assert_int_equal(ht_dec_next(d, &out), 0);
            assert_int_equal(ht_dec_next(d, &out), 0);
            free(p);
        }
        uint8_t *longer = malloc(s.len + 1);
        assert_non_null(longer);
        memcpy(longer, s.payload, s.len);
        static const uint8_t more[] = {0x00, 0x01, 0x80, 0xff};
        for (size_t k = 0; k < sizeof more; k++) {
            longer[s.len] = more[k];
            assert_int_equal(ht_dec_init(d, 2, 77, s.ts_first, longer, s.len + 1), -EBADMSG);
            assert_int_equal(ht_dec_next(d, &out), 0);
        }
        free(longer);
        /* columns cut short or extended, under a table that fits */
        const uint8_t *col[HT_NCOLS];
        size_t n[HT_NCOLS], len, got;
        int rc_init, rc;
        assert_true(split_cols(s.payload, s.len, col, n) > 0);
        for (int c = 0; c < HT_NCOLS; c++) {
            size_t m[HT_NCOLS];
            memcpy(m, n, sizeof m);
            for (size_t k = 1; k <= n[c]; k++) {
                if (n[c] > 2048 && k > 64 && !rng_one_in(&g->rng, n[c] / 64)) continue; /* a sample of long ones */
                m[c] = n[c] - k;
                uint8_t *p = join_cols(col, m, &len);
                rc = decode_against(2, 77, s.ts_first, p, len, s.ev, s.n, &got, &rc_init);
                assert_int_equal(rc_init, 0);
                assert_int_equal(rc, -EBADMSG);
                assert_true(got < s.n);
                free(p);
                cuts++;
            }
            uint8_t *ext = malloc(n[c] + 1);
            assert_non_null(ext);
            if (n[c]) memcpy(ext, col[c], n[c]);
            const uint8_t *col2[HT_NCOLS];
            memcpy(col2, col, sizeof col2);
            col2[c] = ext;
            m[c] = n[c] + 1;
            for (size_t k = 0; k < sizeof more; k++) {
                ext[n[c]] = more[k];
                uint8_t *p = join_cols(col2, m, &len);
                rc = decode_against(2, 77, s.ts_first, p, len, s.ev, s.n, &got, &rc_init);
                assert_int_equal(rc_init, 0);
                assert_int_equal(rc, -EBADMSG);
                assert_int_equal(got, s.n);
                free(p);
            }
            free(ext);
        }
        stream_free(&s);
    }
    print_message("# %zu column cuts\n", cuts);
    ht_enc_free(&e);
    gen_free(g);
    free(g);
    free(d);
}

/* Format 1 (rows): every prefix of a valid payload yields exactly the
 * records wholly inside it; a cut inside a record is -EBADMSG, a cut at a
 * boundary is a clean 0.  A byte more is a record whose fields are
 * missing: -EBADMSG after all the records. */
static void test_truncated_rows(void **state)
{
    (void)state;
    rows *r = malloc(sizeof *r);
    assert_non_null(r);
    build_rows(r);
    size_t len = r->p.n, got;
    int rc_init, rc;
    for (size_t cut = 0; cut <= len; cut++) {
        uint8_t *p = copy_of(r->p.b, cut);
        size_t whole = 0;
        int boundary = cut == 0;
        while (whole < r->n && r->end[whole] <= cut) {
            if (r->end[whole] == cut) boundary = 1;
            whole++;
        }
        rc = decode_against(1, 3, 100, p, cut, r->want, r->n, &got, &rc_init);
        assert_int_equal(rc_init, 0);
        assert_int_equal(got, whole);
        assert_int_equal(rc, boundary ? 0 : -EBADMSG);
        free(p);
    }
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, r->p.b, len);
    for (unsigned b = 0; b < 256; b++) {
        longer[len] = (uint8_t)b;
        rc = decode_against(1, 3, 100, longer, len + 1, r->want, r->n, &got, &rc_init);
        assert_int_equal(got, r->n);
        assert_int_equal(rc, -EBADMSG);
    }
    free(longer);
    free(r);
}

/* Decode arbitrary bytes as format `major` until the decoder stops;
 * returns the events seen. */
static size_t decode_garbage(const uint8_t *buf, size_t len, uint64_t ts0, unsigned major)
{
    uint8_t *p = copy_of(buf, len);
    ht_decoder d;
    int rc = ht_dec_init(&d, major, 9, ts0, p, len);
    assert_true(rc == 0 || (major == 2 && rc == -EBADMSG));
    ht_event out;
    size_t n = 0;
    int refused = rc < 0;
    while ((rc = ht_dec_next(&d, &out)) == 1) {
        n++;
        assert_false(refused); /* a refused payload yields nothing */
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

/* The bytes of buf under a column table that fits them: seven random
 * boundaries (an exactly-sized allocation). */
static uint8_t *random_columns(test_rng *r, const uint8_t *buf, size_t len, size_t *out_len)
{
    size_t cut[HT_NCOLS + 1];
    cut[0] = 0;
    cut[HT_NCOLS] = len;
    for (int i = 1; i < HT_NCOLS; i++) {
        size_t v = (size_t)rng_below(r, len + 1), j = (size_t)i;
        while (j > 1 && cut[j - 1] > v) { /* insertion: cut[1..i] sorted */
            cut[j] = cut[j - 1];
            j--;
        }
        cut[j] = v;
    }
    const uint8_t *col[HT_NCOLS];
    size_t n[HT_NCOLS];
    for (int i = 0; i < HT_NCOLS; i++) {
        col[i] = buf + cut[i];
        n[i] = cut[i + 1] - cut[i];
    }
    return join_cols(col, n, out_len);
}

static void test_garbage(void **state)
{
    (void)state;
    test_rng rng = {test_seed("garbage") ^ 0x9a};
    uint8_t buf[4096];
    size_t rows_ev = 0, cols_ev = 0, table_ev = 0;
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
        uint64_t ts0 = rng_next(&rng);
        rows_ev += decode_garbage(buf, len, ts0, 1);
        cols_ev += decode_garbage(buf, len, ts0, 2); /* (its table hardly ever fits) */
        size_t tlen;
        uint8_t *t = random_columns(&rng, buf, len, &tlen);
        table_ev += decode_garbage(t, tlen, ts0, 2);
        free(t);
    }
    print_message("# garbage: %zu events decoded as rows, %zu as columns, %zu under a fitting table\n",
                  rows_ev, cols_ev, table_ev);
    assert_true(table_ev > 0); /* the column decoder itself was exercised */
}

/* Valid format 2 payloads with bytes flipped, inserted, removed (anywhere,
 * and in the column table), and with column boundaries moved under a
 * table that still fits: never crash, every event well-formed. */
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
        const uint8_t *col[HT_NCOLS];
        size_t n[HT_NCOLS];
        size_t table = split_cols(s.payload, s.len, col, n);
        assert_true(table > 0);
        m = realloc(m, s.len + 16);
        assert_non_null(m);
        for (int k = 0; k < 300; k++) {
            unsigned mode = (unsigned)rng_below(&g->rng, 4);
            if (mode == 3) { /* a boundary between two columns moves */
                size_t m2[HT_NCOLS], len;
                const uint8_t *c2[HT_NCOLS];
                memcpy(m2, n, sizeof m2);
                int i = (int)rng_below(&g->rng, HT_NCOLS - 1);
                size_t step = 1 + (size_t)rng_below(&g->rng, rng_one_in(&g->rng, 2) ? 3 : 64);
                if (rng_one_in(&g->rng, 2)) { /* column i grows into i + 1 */
                    if (step > m2[i + 1]) step = m2[i + 1];
                    m2[i] += step;
                    m2[i + 1] -= step;
                } else {
                    if (step > m2[i]) step = m2[i];
                    m2[i] -= step;
                    m2[i + 1] += step;
                }
                c2[0] = col[0];
                for (int j = 1; j < HT_NCOLS; j++) c2[j] = c2[j - 1] + m2[j - 1];
                uint8_t *p = join_cols(c2, m2, &len);
                decode_garbage(p, len, s.ts_first, 2);
                free(p);
                continue;
            }
            size_t len = s.len;
            memcpy(m, s.payload, len);
            int edits = 1 + (int)rng_below(&g->rng, 4);
            for (int x = 0; x < edits && len > 0; x++) {
                /* mode 2: in the column table only */
                size_t at = (size_t)rng_below(&g->rng, mode == 2 ? (table < len ? table : len) : len);
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
            decode_garbage(m, len, s.ts_first, 2);
        }
        stream_free(&s);
    }
    free(m);
    ht_enc_free(&e);
    gen_free(g);
    free(g);
}

/* Record k of a chunk of the widest records: REALLOCs with every field at
 * its widest varint.  Two threads with 5-byte tids alternate, so every
 * record sends its tid; ts alternates between 0 and 2^63 (10-byte deltas
 * but for the first record); each thread's api and heap (10 bytes) change
 * at each of its records; its addresses jump by about 2^63 from its
 * previous ones (10-byte deltas) and are never reused (no references);
 * sizes and stack ids are at the top of their ranges. */
static ht_event widest_record(uint32_t k)
{
    uint32_t j = k / 2; /* the thread's own record number */
    uint64_t half = j % 2 ? 0 : 1ull << 63;
    ht_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = HT_EV_REALLOC;
    ev.tid = k % 2 ? UINT32_MAX : UINT32_MAX - 1;
    ev.ts = k % 2 ? 1ull << 63 : 0;
    ev.api = (uint8_t)(31 - j % 2);
    ev.source = 7;
    ev.heap = UINT64_MAX - j % 2;
    ev.old_addr = half + 16 * (uint64_t)k;
    ev.old_size = UINT64_MAX;
    ev.addr = half + 16 * (uint64_t)k + 8;
    ev.size = UINT64_MAX - k;
    ev.stack = UINT32_MAX - k;
    return ev;
}

/* The widest record (a REALLOC with every field at its widest varint: 72
 * bytes, 11 of them in HDR) round-trips, and the chunk's capacity holds:
 * exactly HT_CHUNK_RECORDS_MAX of them are accepted, filling each fixed
 * column to the byte and staying inside its part of the encoder's mapping
 * (which ASan does not watch: checked here); the next record, of any kind
 * and through any entry point, is refused with -ENOBUFS and changes
 * nothing (neither the encoder nor its payload); the whole chunk decodes;
 * and the encoder then starts a new chunk as usual. */
static void test_encoder_widest_record(void **state)
{
    (void)state;
    enum { MAX = HT_CHUNK_RECORDS_MAX };
    ht_encoder *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(ht_enc_reset(e, 1), 0);
    for (uint32_t k = 0; k < MAX; k++) {
        ht_event ev = widest_record(k);
        size_t before[HT_NCOLS], total = 0;
        for (int c = 0; c < HT_NCOLS; c++) before[c] = enc_col_len(e, c);
        assert_int_equal(k % 2 ? ht_enc_event(e, &ev) : enc_direct(e, &ev), 0);
        if (k == 1) {
            for (int c = 0; c < HT_NCOLS; c++) {
                size_t grew = enc_col_len(e, c) - before[c];
                assert_int_equal(grew, c == HT_COL_HDR ? 11 : col_widest[c]);
                total += grew;
            }
            assert_int_equal(total, 72); /* really the widest */
            assert_int_equal(e->col0[HT_COL_TAG][1], HT_EV_REALLOC | HT_TAG_APISRC | HT_TAG_HEAP |
                                                         HT_TAG_THREAD | HT_TAG_STACK); /* no reference */
        }
    }
    assert_int_equal(e->records, MAX);
    assert_int_equal(e->ts_first, 0);
    assert_int_equal(e->ts_last, 1ull << 63);
    const uint8_t *map = e->map, *map_end = map + e->map_len;
    for (int c = 0; c < HT_NCOLS; c++) {
        size_t want = (c == HT_COL_HDR ? 11 : col_widest[c]) * (size_t)MAX - (c == HT_COL_TS ? 9 : 0);
        assert_int_equal(enc_col_len(e, c), want);
        if (c == HT_COL_HDR) continue;
        /* inside the mapping, below the next column's start */
        const uint8_t *limit = map_end;
        for (int c2 = 0; c2 < HT_NCOLS; c2++)
            if (c2 != HT_COL_HDR && e->col0[c2] > e->col0[c] && e->col0[c2] < limit) limit = e->col0[c2];
        assert_true(e->col0[c] >= map && e->col[c] <= limit);
    }
    size_t len, len2;
    uint8_t *pl = enc_payload(e, &len);
    ht_encoder *snap = malloc(sizeof *snap);
    assert_non_null(snap);
    memcpy(snap, e, sizeof *e);
    static const char text[] = "one more";
    ht_event more[4] = {heap_ev(HT_EV_ALLOC, 0x1000, 8), heap_ev(HT_EV_FREE, 0x1000, 0), widest_record(MAX),
                        {.kind = HT_EV_MARKER, .tid = 3, .text = text, .text_len = sizeof text - 1}};
    for (int i = 0; i < 4; i++) {
        more[i].ts = UINT64_MAX; /* would move ts_last */
        assert_int_equal(ht_enc_event(e, &more[i]), -ENOBUFS);
        assert_true(memcmp(e, snap, sizeof *e) == 0);
        assert_int_equal(enc_direct(e, &more[i]), -ENOBUFS);
        assert_true(memcmp(e, snap, sizeof *e) == 0);
    }
    assert_int_equal(e->records, MAX);
    assert_int_equal(e->ts_last, 1ull << 63);
    uint8_t *pl2 = enc_payload(e, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(pl2, pl, len);
    free(pl2);
    free(snap);
    ht_decoder *d = malloc(sizeof *d);
    assert_non_null(d);
    assert_int_equal(ht_dec_init(d, 2, 1, e->ts_first, pl, len), 0);
    ht_event out;
    for (uint32_t k = 0; k < MAX; k++) {
        assert_int_equal(ht_dec_next(d, &out), 1);
        ht_event want = widest_record(k);
        check_event(&want, &out, 1);
    }
    assert_int_equal(ht_dec_next(d, &out), 0);
    free(pl);
    /* a new chunk */
    assert_int_equal(ht_enc_reset(e, 2), 0);
    ht_event ev = widest_record(0);
    assert_int_equal(ht_enc_event(e, &ev), 0);
    pl = enc_payload(e, &len);
    assert_int_equal(ht_dec_init(d, 2, 2, e->ts_first, pl, len), 0);
    assert_int_equal(ht_dec_next(d, &out), 1);
    check_event(&ev, &out, 2);
    assert_int_equal(ht_dec_next(d, &out), 0);
    free(pl);
    free(d);
    ht_enc_free(e);
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_roundtrip_colliding_threads),
        cmocka_unit_test(test_edge_values),
        cmocka_unit_test(test_encoder_rejects_bad_kinds),
        cmocka_unit_test(test_encoder_state_after_reject),
        cmocka_unit_test(test_encoder_realloc_sizes),
        cmocka_unit_test(test_encoder_chunks_independent),
        cmocka_unit_test(test_encoder_serial_wrap),
        cmocka_unit_test(test_decoder_references),
        cmocka_unit_test(test_decoder_tags),
        cmocka_unit_test(test_decoder_column_table),
        cmocka_unit_test(test_decoder_column_leftovers),
        cmocka_unit_test(test_decoder_realloc_size_rule),
        cmocka_unit_test(test_encoder_window),
        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_truncated_payloads),
        cmocka_unit_test(test_truncated_rows),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_mutated_payloads),
        /* last: the largest (a full chunk), and an overflow of the
         * encoder's columns would corrupt or abort what follows */
        cmocka_unit_test(test_encoder_widest_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
