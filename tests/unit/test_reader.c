/*
 * test_reader.c - .htrace files written with the real writer and read back
 * with the reader, intact and damaged.
 *
 * Every event of a trace has a unique timestamp and the test knows which
 * chunk (file offset range) holds which events, so for any damage it can
 * say exactly what the reader must yield: all events of the intact chunks,
 * in file order, and not one event of a damaged chunk; ht_reader_problems()
 * must be non-NULL exactly when something detectable was lost.  Damage
 * tried: truncation at every offset, every single-bit flip, chunks
 * overwritten with garbage (also across two chunks and in a large chunk
 * whose successor is more than the resync window away), header damage,
 * newer versions, empty and foreign files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cmocka.h>

#include "common/shm.h"
#include "format/format.h"
#include "test_util.h"

static char tmpdir[256];

/* ---- building traces ---- */

#define MAX_CHUNKS 64

typedef struct chunk_info {
    uint64_t off, end; /* [off, end) in the file */
    uint32_t stream, records;
    size_t first; /* index of its first event in trace.ev */
    int zstd;
} chunk_info;

typedef struct trace {
    char path[PATH_MAX];
    chunk_info ch[MAX_CHUNKS];
    size_t nch;
    ht_event *ev;
    char **texts;
    size_t nev, cap;
    uint64_t size;
} trace;

static void trace_free(trace *t)
{
    for (size_t i = 0; i < t->nev; i++) free(t->texts[i]);
    free(t->texts);
    free(t->ev);
    memset(t, 0, sizeof *t);
}

static void tpath(char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", tmpdir, name);
}

/* One random event; `ts` is unique in the file, so it names the event.
 * `noisy` texts are random bytes (incompressible: the chunk is stored raw). */
static void make_event(test_rng *r, ht_event *ev, uint64_t ts, uint32_t stream, int noisy,
                       char **text_out)
{
    memset(ev, 0, sizeof *ev);
    ev->pid = stream;
    ev->ts = ts;
    ev->tid = stream + (uint32_t)rng_below(r, 4) * 64; /* colliding tids */
    *text_out = NULL;
    unsigned pick = (unsigned)rng_below(r, 10);
    if (pick < 7 && !noisy) {
        ev->kind = 1 + pick % 3;
        ev->api = (uint8_t)(1 + rng_below(r, HT_API_COUNT - 1));
        ev->source = (uint8_t)rng_below(r, 7);
        ev->heap = rng_one_in(r, 5) ? 2 + rng_below(r, 3) : 1;
        ev->addr = 0x55550000ull + 16 * rng_below(r, 4096);
        if (ev->kind != HT_EV_FREE) ev->size = rng_below(r, 1 << 12);
        if (ev->kind == HT_EV_REALLOC) {
            ev->old_addr = 0x55550000ull + 16 * rng_below(r, 4096);
            ev->old_size = rng_below(r, 1 << 12);
        }
        return;
    }
    ev->kind = noisy ? HT_EV_MARKER : (pick == 7 ? HT_EV_HEAP_CREATE : HT_EV_MARKER);
    ev->heap = ev->kind == HT_EV_HEAP_CREATE ? 2 + rng_below(r, 3) : 0;
    ev->nargs = ev->kind == HT_EV_HEAP_CREATE ? 1 : 0;
    ev->arg[0] = ev->nargs ? rng_below(r, 16) : 0;
    uint32_t n = noisy ? 200 + (uint32_t)rng_below(r, 400) : (uint32_t)rng_below(r, 24);
    char *t = malloc(n + 1);
    assert_non_null(t);
    for (uint32_t i = 0; i < n; i++) t[i] = noisy ? (char)rng_next(r) : (char)('a' + i % 7);
    ev->text = t;
    ev->text_len = n;
    *text_out = t;
}

/* Writes a trace whose chunk i has sizes[i] events; chunks alternate over a
 * few streams; chunks with noisy[i] set carry random bytes. */
static void build_trace(trace *t, const char *name, const size_t *sizes, const int *noisy,
                        size_t nchunks, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    assert_true(nchunks <= MAX_CHUNKS);
    tpath(t->path, name);
    test_rng rng = {seed};
    ht_file_header h;
    ht_file_header_init(&h);
    h.clock = HT_CLOCK_MONOTONIC;
    h.raw_per_sec = 1000000000ull;
    h.start_mono_ns = 12345;
    ht_writer w;
    assert_int_equal(ht_writer_open(&w, t->path, &h, 3), 0);
    ht_encoder e;
    memset(&e, 0, sizeof e);
    static const uint32_t streams[] = {HT_STREAM_SESSION, 4242, 4243, 77777};
    uint64_t ts = 1000;
    for (size_t c = 0; c < nchunks; c++) {
        uint32_t stream = streams[c % 4];
        ht_enc_reset(&e, stream);
        chunk_info *ci = &t->ch[c];
        ci->stream = stream;
        ci->records = (uint32_t)sizes[c];
        ci->first = t->nev;
        for (size_t i = 0; i < sizes[c]; i++) {
            if (t->nev == t->cap) {
                t->cap = t->cap ? t->cap * 2 : 256;
                t->ev = realloc(t->ev, t->cap * sizeof *t->ev);
                t->texts = realloc(t->texts, t->cap * sizeof *t->texts);
                assert_true(t->ev && t->texts);
            }
            ts += 1 + rng_below(&rng, 1000);
            make_event(&rng, &t->ev[t->nev], ts, stream, noisy && noisy[c], &t->texts[t->nev]);
            assert_int_equal(ht_enc_event(&e, &t->ev[t->nev]), 0);
            t->nev++;
        }
        ci->off = w.offset;
        assert_int_equal(ht_writer_chunk(&w, &e), 0);
        ci->end = w.offset;
        assert_true(ci->end > ci->off);
    }
    t->nch = nchunks;
    /* an empty encoder writes nothing */
    ht_enc_reset(&e, 1);
    uint64_t before = w.offset;
    assert_int_equal(ht_writer_chunk(&w, &e), 0);
    assert_int_equal(w.offset, before);
    t->size = w.offset;
    assert_int_equal(ht_writer_close(&w), 0);
    ht_enc_free(&e);
    struct stat st;
    assert_int_equal(stat(t->path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, t->size);
    /* learn which chunks the writer compressed */
    int fd = open(t->path, O_RDONLY);
    assert_true(fd >= 0);
    for (size_t c = 0; c < nchunks; c++) {
        ht_chunk_header ch;
        assert_int_equal(pread(fd, &ch, sizeof ch, (off_t)t->ch[c].off), (ssize_t)sizeof ch);
        assert_int_equal(ch.magic, HT_CHUNK_MAGIC);
        assert_int_equal(ch.records, sizes[c]);
        assert_int_equal(ch.stream, t->ch[c].stream);
        assert_int_equal(t->ch[c].off + ch.header_size + ch.stored_size, t->ch[c].end);
        t->ch[c].zstd = (ch.flags & HT_CHUNK_FLAG_ZSTD) != 0;
    }
    close(fd);
}

/* ---- reading and checking ---- */

static int same_event(const ht_event *a, const ht_event *b)
{
    if (a->kind != b->kind || a->pid != b->pid || a->tid != b->tid || a->ts != b->ts) return 0;
    if (a->kind <= HT_EV_REALLOC)
        return a->api == b->api && a->source == b->source && a->heap == b->heap &&
               a->addr == b->addr && a->size == b->size && a->old_addr == b->old_addr &&
               a->old_size == b->old_size;
    if (a->heap != b->heap || a->nargs != b->nargs || a->text_len != b->text_len) return 0;
    for (unsigned i = 0; i < a->nargs; i++)
        if (a->arg[i] != b->arg[i]) return 0;
    return a->text_len == 0 || memcmp(a->text, b->text, a->text_len) == 0;
}

/* Reads `path` and checks it yields exactly the events of the chunks in
 * `keep` (bit c = chunk c), in order, and that problems are reported iff
 * `want_problems`.  On mismatch fails with `what` in the message. */
static void expect_read(const trace *t, const char *path, uint64_t keep, int want_problems,
                        const char *what)
{
    ht_reader r;
    char err[256] = "";
    int rc = ht_reader_open(&r, path, err, sizeof err);
    if (rc != 0) fail_msg("%s: open failed (%d): %s", what, rc, err);
    size_t c = 0, i = 0; /* next expected: chunk c, event i within it */
    ht_event ev;
    size_t got = 0;
    for (;;) {
        rc = ht_reader_next(&r, &ev);
        if (rc != 1) break;
        while (c < t->nch && (!(keep >> c & 1) || i == t->ch[c].records)) c++, i = 0;
        if (c == t->nch) fail_msg("%s: unexpected event ts=%llu after all expected ones", what,
                                  (unsigned long long)ev.ts);
        const ht_event *want = &t->ev[t->ch[c].first + i];
        if (!same_event(want, &ev))
            fail_msg("%s: event %zu: got kind %u ts %llu, want chunk %zu event %zu (kind %u ts %llu)",
                     what, got, ev.kind, (unsigned long long)ev.ts, c, i, want->kind,
                     (unsigned long long)want->ts);
        i++;
        got++;
    }
    if (rc != 0) fail_msg("%s: ht_reader_next returned %d", what, rc);
    /* the reader stays at the end */
    if (ht_reader_next(&r, &ev) != 0) fail_msg("%s: reader did not stay at the end", what);
    while (c < t->nch && (!(keep >> c & 1) || i == t->ch[c].records)) c++, i = 0;
    if (c != t->nch)
        fail_msg("%s: only %zu events; missing chunk %zu event %zu (kept mask %#llx)", what, got, c,
                 i, (unsigned long long)keep);
    char pb[512];
    const char *p = ht_reader_problems(&r, pb, sizeof pb);
    if (want_problems && !p) fail_msg("%s: damage not reported", what);
    if (!want_problems && p) fail_msg("%s: problems reported for an intact file: %s", what, p);
    if (p && !*p) fail_msg("%s: empty problem message", what);
    ht_reader_close(&r);
}

static void expect_open_fails(const char *path, int want_rc, const char *what)
{
    ht_reader r;
    char err[256] = "";
    int rc = ht_reader_open(&r, path, err, sizeof err);
    if (rc == 0) {
        ht_reader_close(&r);
        fail_msg("%s: open succeeded, expected an error", what);
    }
    if (want_rc && rc != want_rc) fail_msg("%s: open returned %d, expected %d (%s)", what, rc, want_rc, err);
    if (!err[0]) fail_msg("%s: open failed (%d) without a message", what, rc);
}

static uint64_t all_chunks(const trace *t)
{
    return t->nch == 64 ? UINT64_MAX : ((uint64_t)1 << t->nch) - 1;
}

/* Chunks wholly inside [0, limit) of the file. */
static uint64_t chunks_before(const trace *t, uint64_t limit)
{
    uint64_t m = 0;
    for (size_t c = 0; c < t->nch; c++)
        if (t->ch[c].end <= limit) m |= (uint64_t)1 << c;
    return m;
}

/* Chunks not touching [from, to). */
static uint64_t chunks_outside(const trace *t, uint64_t from, uint64_t to)
{
    uint64_t m = 0;
    for (size_t c = 0; c < t->nch; c++)
        if (t->ch[c].end <= from || t->ch[c].off >= to) m |= (uint64_t)1 << c;
    return m;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    *len = (size_t)st.st_size;
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    assert_int_equal(pread(fd, b, *len, 0), (ssize_t)*len);
    close(fd);
    return b;
}

static void spill(const char *path, const void *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    close(fd);
}

static void reseal_header(uint8_t *file, size_t crc_len)
{
    ht_file_header *h = (ht_file_header *)file;
    h->crc = 0;
    h->crc = (uint32_t)crc32(0, file, (uInt)crc_len);
}

/* The small trace used by the exhaustive tests: compressed and raw chunks,
 * chunks of one event, several streams. */
static void small_trace(trace *t, const char *name)
{
    static const size_t sizes[] = {3, 1, 40, 2, 6, 30};
    static const int noisy[] = {0, 0, 0, 1, 0, 0};
    build_trace(t, name, sizes, noisy, 6, test_seed(name));
    int z = 0, raw = 0;
    for (size_t c = 0; c < t->nch; c++) *(t->ch[c].zstd ? &z : &raw) += 1;
    assert_true(z > 0 && raw > 0); /* both payload kinds are exercised */
}

/* ---- tests ---- */

static void test_roundtrip(void **state)
{
    (void)state;
    trace t;
    size_t sizes[40];
    int noisy[40];
    test_rng rng = {test_seed("roundtrip")};
    for (size_t c = 0; c < 40; c++) {
        sizes[c] = 1 + (size_t)rng_below(&rng, c % 9 == 0 ? 20000 : 300);
        noisy[c] = c % 7 == 3;
    }
    build_trace(&t, "roundtrip.htrace", sizes, noisy, 40, rng_next(&rng));
    expect_read(&t, t.path, all_chunks(&t), 0, "intact trace");
    /* header fields come back */
    ht_reader r;
    char err[128];
    assert_int_equal(ht_reader_open(&r, t.path, err, sizeof err), 0);
    assert_memory_equal(r.hdr.magic, HT_FILE_MAGIC, 8);
    assert_int_equal(r.hdr.major, HT_FORMAT_MAJOR);
    assert_int_equal(r.hdr.start_mono_ns, 12345);
    assert_int_equal(r.hdr.raw_per_sec, 1000000000ull);
    ht_reader_close(&r);
    trace_free(&t);
}

static void test_header_only(void **state)
{
    (void)state;
    trace t;
    build_trace(&t, "empty_trace.htrace", NULL, NULL, 0, 1);
    assert_int_equal(t.size, HT_FILE_HEADER_SIZE);
    expect_read(&t, t.path, 0, 0, "trace without chunks");
    trace_free(&t);
}

/* Truncation at every offset of a small file. */
static void test_truncate_everywhere(void **state)
{
    (void)state;
    trace t;
    small_trace(&t, "trunc.htrace");
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    char path[PATH_MAX], what[128];
    tpath(path, "trunc_cut.htrace");
    for (size_t cut = 0; cut < len; cut++) {
        spill(path, file, cut);
        snprintf(what, sizeof what, "truncated at %zu of %zu", cut, len);
        if (cut < HT_FILE_HEADER_SIZE) {
            expect_open_fails(path, -EBADMSG, what);
            continue;
        }
        /* a cut exactly between chunks cannot be told from a shorter file */
        int boundary = cut == HT_FILE_HEADER_SIZE;
        for (size_t c = 0; c < t.nch; c++) boundary |= t.ch[c].end == cut;
        expect_read(&t, path, chunks_before(&t, cut), !boundary, what);
    }
    unlink(path);
    free(file);
    trace_free(&t);
}

/* Every single-bit flip after the file header: the chunk holding the bit
 * is lost, every other chunk is read, and the loss is reported. */
static void test_bitflip_chunks(void **state)
{
    (void)state;
    trace t;
    small_trace(&t, "flip.htrace");
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    char path[PATH_MAX], what[128];
    tpath(path, "flip_one.htrace");
    spill(path, file, len);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    for (size_t off = HT_FILE_HEADER_SIZE; off < len; off++) {
        size_t c = 0;
        while (t.ch[c].end <= off) c++;
        for (int bit = 0; bit < 8; bit++) {
            uint8_t b = (uint8_t)(file[off] ^ (1u << bit));
            assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
            snprintf(what, sizeof what, "bit %d flipped at offset %zu (chunk %zu at %llu)", bit, off,
                     c, (unsigned long long)t.ch[c].off);
            expect_read(&t, path, all_chunks(&t) & ~((uint64_t)1 << c), 1, what);
        }
        assert_int_equal(pwrite(fd, &file[off], 1, (off_t)off), 1);
    }
    close(fd);
    expect_read(&t, path, all_chunks(&t), 0, "restored file");
    unlink(path);
    free(file);
    trace_free(&t);
}

/* Every single-bit flip inside the file header makes open fail: the
 * header is covered by its checksum (a newer major is refused as such).
 * The header_size field is left to test_header_size_damage. */
static void test_bitflip_header(void **state)
{
    (void)state;
    trace t;
    small_trace(&t, "hflip.htrace");
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    char path[PATH_MAX], what[128];
    tpath(path, "hflip_one.htrace");
    for (size_t off = 0; off < HT_FILE_HEADER_SIZE; off++) {
        if (off >= offsetof(ht_file_header, header_size) && off < offsetof(ht_file_header, header_size) + 4)
            continue;
        for (int bit = 0; bit < 8; bit++) {
            file[off] ^= (uint8_t)(1u << bit);
            spill(path, file, len);
            file[off] ^= (uint8_t)(1u << bit);
            uint16_t major = HT_FORMAT_MAJOR;
            if (off == offsetof(ht_file_header, major)) major ^= (uint16_t)(1u << bit);
            if (off == offsetof(ht_file_header, major) + 1) major ^= (uint16_t)(0x100u << bit);
            snprintf(what, sizeof what, "header bit %d flipped at offset %zu", bit, off);
            expect_open_fails(path, major > HT_FORMAT_MAJOR ? -EPROTONOSUPPORT : -EBADMSG, what);
        }
    }
    unlink(path);
    free(file);
    trace_free(&t);
}

/* A damaged header_size.  The header CRC covers the first 256 bytes,
 * header_size included (FORMAT.md 1), so open must refuse the file.  A
 * reader that believed it would start at the wrong offset, lose the chunks
 * before it, and report nothing at all when that offset happens to be a
 * chunk boundary (the last case below). */
static void test_header_size_damage(void **state)
{
    (void)state;
    trace t;
    small_trace(&t, "hsize.htrace");
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    char path[PATH_MAX];
    tpath(path, "hsize_one.htrace");
    char report[1024] = "";
    size_t rl = 0, accepted = 0, silent = 0;
    uint32_t hs0;
    memcpy(&hs0, file + offsetof(ht_file_header, header_size), 4);
    /* the 32 single-bit flips, and a value landing exactly on chunk 1 */
    for (int k = 0; k <= 32; k++) {
        uint32_t hs = k < 32 ? hs0 ^ (1u << k) : (uint32_t)t.ch[1].off;
        memcpy(file + offsetof(ht_file_header, header_size), &hs, 4);
        spill(path, file, len);
        ht_reader r;
        char err[256] = "";
        int rc = ht_reader_open(&r, path, err, sizeof err);
        if (rc == 0) {
            accepted++;
            size_t n = 0;
            ht_event ev;
            while (ht_reader_next(&r, &ev) == 1) n++;
            char pb[256];
            const char *pr = ht_reader_problems(&r, pb, sizeof pb);
            if (!pr) silent++;
            if (rl < sizeof report - 100)
                rl += (size_t)snprintf(report + rl, sizeof report - rl,
                                       "\n  header_size %u: open ok, %zu of %zu events, %s", hs, n,
                                       t.nev, pr ? "damage reported" : "NOTHING reported");
            ht_reader_close(&r);
        }
    }
    memcpy(file + offsetof(ht_file_header, header_size), &hs0, 4);
    unlink(path);
    free(file);
    trace_free(&t);
    if (accepted)
        fail_msg("%zu damaged header_size values accepted by ht_reader_open (%zu with no problem "
                 "reported):%s", accepted, silent, report);
}

/* XORed into a byte: random, but never leaves the byte as it was (a
 * "damaged" chunk must really differ from the intact one). */
static uint8_t garbage_byte(test_rng *r) { return (uint8_t)(1 + rng_below(r, 255)); }

/* Chunks overwritten with garbage: single chunks (whole, header only,
 * payload only), two neighbours at once, and several scattered ones. */
static void test_garbage_chunks(void **state)
{
    (void)state;
    trace t;
    size_t sizes[12];
    int noisy[12];
    test_rng rng = {test_seed("garbage_chunks")};
    for (size_t c = 0; c < 12; c++) {
        sizes[c] = 1 + (size_t)rng_below(&rng, 500);
        noisy[c] = c % 4 == 1;
    }
    build_trace(&t, "garbage.htrace", sizes, noisy, 12, rng_next(&rng));
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    uint8_t *m = malloc(len);
    assert_non_null(m);
    char path[PATH_MAX], what[160];
    tpath(path, "garbage_one.htrace");
    for (int k = 0; k < 400; k++) {
        memcpy(m, file, len);
        size_t c = (size_t)rng_below(&rng, t.nch);
        uint64_t from, to;
        switch (k % 5) {
        case 0: from = t.ch[c].off, to = t.ch[c].end; break;                    /* whole chunk */
        case 1: from = t.ch[c].off, to = t.ch[c].off + HT_CHUNK_HEADER_SIZE; break; /* header */
        case 2:                                                                  /* some payload */
            from = t.ch[c].off + HT_CHUNK_HEADER_SIZE + rng_below(&rng, t.ch[c].end - t.ch[c].off - HT_CHUNK_HEADER_SIZE);
            to = from + 1 + rng_below(&rng, t.ch[c].end - from);
            break;
        case 3: /* the tail of one chunk and the head of the next */
            if (c + 1 == t.nch) c--;
            from = t.ch[c].end - 1 - rng_below(&rng, t.ch[c].end - t.ch[c].off);
            to = t.ch[c + 1].off + 1 + rng_below(&rng, t.ch[c + 1].end - t.ch[c + 1].off);
            break;
        default: { /* three separate chunks, partly */
            uint64_t keep = all_chunks(&t);
            for (int x = 0; x < 3; x++) {
                size_t cc = (size_t)rng_below(&rng, t.nch);
                uint64_t a = t.ch[cc].off + rng_below(&rng, t.ch[cc].end - t.ch[cc].off);
                uint64_t b = a + 1 + rng_below(&rng, t.ch[cc].end - a);
                for (uint64_t i = a; i < b; i++) m[i] ^= garbage_byte(&rng);
                keep &= ~((uint64_t)1 << cc);
            }
            spill(path, m, len);
            snprintf(what, sizeof what, "round %d: garbage in three chunks", k);
            expect_read(&t, path, keep, 1, what);
            continue;
        }
        }
        for (uint64_t i = from; i < to; i++) m[i] ^= garbage_byte(&rng);
        spill(path, m, len);
        snprintf(what, sizeof what, "round %d: garbage over [%llu, %llu)", k, (unsigned long long)from,
                 (unsigned long long)to);
        expect_read(&t, path, chunks_outside(&t, from, to), 1, what);
    }
    /* garbage over a chunk and then a cut inside the last chunk */
    memcpy(m, file, len);
    for (uint64_t i = t.ch[4].off; i < t.ch[4].end; i++) m[i] ^= garbage_byte(&rng);
    size_t cut = (size_t)(t.ch[t.nch - 1].off + 20);
    spill(path, m, cut);
    expect_read(&t, path, chunks_before(&t, cut) & ~((uint64_t)1 << 4), 1, "garbage and truncation");
    /* zeroes instead of random bytes (a hole in a sparse file) */
    memcpy(m, file, len);
    memset(m + t.ch[2].off, 0, t.ch[3].end - t.ch[2].off);
    spill(path, m, len);
    expect_read(&t, path, all_chunks(&t) & ~(3ull << 2), 1, "zeroed chunks 2 and 3");
    unlink(path);
    free(m);
    free(file);
    trace_free(&t);
}

/* Resynchronisation must find the next chunk even when it is far away
 * (more than one 64 KiB read window past the damage). */
static void test_damage_in_large_chunks(void **state)
{
    (void)state;
    trace t;
    static const size_t sizes[] = {50, 1200, 1500, 30, 1300, 20};
    static const int noisy[] = {0, 1, 1, 0, 1, 0};
    build_trace(&t, "large.htrace", sizes, noisy, 6, test_seed("large_chunks"));
    assert_true(t.ch[1].end - t.ch[1].off > 3 * 65536); /* big, raw chunks */
    assert_true(t.ch[2].end - t.ch[2].off > 3 * 65536);
    expect_read(&t, t.path, all_chunks(&t), 0, "intact large trace");
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    char path[PATH_MAX];
    tpath(path, "large_one.htrace");
    /* chunk 1's header magic destroyed */
    file[t.ch[1].off] ^= 0xff;
    spill(path, file, len);
    expect_read(&t, path, all_chunks(&t) & ~2ull, 1, "large chunk 1 without magic");
    file[t.ch[1].off] ^= 0xff;
    /* chunk 1's size made bigger than the file: the next chunk is far */
    ht_chunk_header ch;
    memcpy(&ch, file + t.ch[1].off, sizeof ch);
    uint32_t saved = ch.stored_size;
    ch.stored_size = (uint32_t)(len - t.ch[1].off); /* past the end by the header size */
    memcpy(file + t.ch[1].off, &ch, sizeof ch);
    spill(path, file, len);
    expect_read(&t, path, all_chunks(&t) & ~2ull, 1, "large chunk 1 pointing past the end");
    ch.stored_size = saved;
    memcpy(file + t.ch[1].off, &ch, sizeof ch);
    /* a bit flipped in the middle of chunk 2's payload */
    size_t mid = (size_t)(t.ch[2].off + (t.ch[2].end - t.ch[2].off) / 2);
    file[mid] ^= 4;
    spill(path, file, len);
    expect_read(&t, path, all_chunks(&t) & ~4ull, 1, "large chunk 2 payload bit flip");
    file[mid] ^= 4;
    /* cut in the middle of chunk 4 */
    size_t cut = (size_t)(t.ch[4].off + (t.ch[4].end - t.ch[4].off) / 2);
    spill(path, file, cut);
    expect_read(&t, path, chunks_before(&t, cut), 1, "large chunk 4 cut");
    unlink(path);
    free(file);
    trace_free(&t);
}

/* Garbage between chunks whose length puts the next chunk's magic across
 * the boundary of the reader's 64 KiB resync window, at every position. */
static void test_resync_window_boundary(void **state)
{
    (void)state;
    trace t;
    static const size_t sizes[] = {10, 20, 5};
    build_trace(&t, "window.htrace", sizes, NULL, 3, test_seed("resync_window"));
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    test_rng rng = {t.ev[0].ts};
    char path[PATH_MAX], what[96];
    tpath(path, "window_one.htrace");
    size_t at = (size_t)t.ch[1].off;
    for (size_t glen = 65520; glen <= 65545; glen++) {
        uint8_t *m = malloc(len + glen);
        assert_non_null(m);
        memcpy(m, file, at);
        for (size_t i = 0; i < glen; i++) {
            m[at + i] = (uint8_t)rng_next(&rng);
            if (m[at + i] == 'H') m[at + i] = 'h'; /* no chunk magic in the garbage */
        }
        memcpy(m + at + glen, file + at, len - at);
        spill(path, m, len + glen);
        snprintf(what, sizeof what, "%zu garbage bytes before chunk 1", glen);
        expect_read(&t, path, all_chunks(&t), 1, what);
        free(m);
    }
    unlink(path);
    free(file);
    trace_free(&t);
}

/* Chunks whose checksum is right but whose sizes disagree with their
 * payload (a writer bug, or a crafted file): the chunk is skipped, never
 * decoded from a buffer it only partly filled. */
static void test_sealed_inconsistent_sizes(void **state)
{
    (void)state;
    trace t;
    static const size_t sizes[] = {5, 400, 6};
    build_trace(&t, "sizes.htrace", sizes, NULL, 3, test_seed("sealed_sizes"));
    assert_true(t.ch[1].zstd); /* 400 regular events compress */
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    char path[PATH_MAX], what[96];
    tpath(path, "sizes_one.htrace");
    size_t c1 = (size_t)t.ch[1].off;
    ht_chunk_header ch0;
    memcpy(&ch0, file + c1, sizeof ch0);
    static const int64_t deltas[] = {-1, 1, -100, 4096};
    for (size_t k = 0; k < sizeof deltas / sizeof deltas[0]; k++) {
        ht_chunk_header ch = ch0;
        ch.raw_size = (uint32_t)((int64_t)ch.raw_size + deltas[k]);
        uLong crc = crc32(0, (const Bytef *)&ch, offsetof(ht_chunk_header, crc));
        ch.crc = (uint32_t)crc32(crc, file + c1 + HT_CHUNK_HEADER_SIZE, ch.stored_size);
        memcpy(file + c1, &ch, sizeof ch);
        spill(path, file, len);
        snprintf(what, sizeof what, "zstd chunk with raw_size off by %lld", (long long)deltas[k]);
        expect_read(&t, path, all_chunks(&t) & ~2ull, 1, what);
    }
    memcpy(file + c1, &ch0, sizeof ch0);
    unlink(path);
    free(file);
    trace_free(&t);
}

static void test_bad_files(void **state)
{
    (void)state;
    char path[PATH_MAX];
    /* missing */
    tpath(path, "does_not_exist.htrace");
    expect_open_fails(path, -ENOENT, "missing file");
    /* a directory */
    expect_open_fails(tmpdir, -EINVAL, "directory");
    /* empty */
    tpath(path, "empty.htrace");
    spill(path, "", 0);
    {
        ht_reader r;
        char err[256] = "";
        assert_int_equal(ht_reader_open(&r, path, err, sizeof err), -EBADMSG);
        assert_non_null(strstr(err, "empty"));
    }
    /* text */
    tpath(path, "text.htrace");
    char text[4096];
    for (size_t i = 0; i < sizeof text; i++) text[i] = "heaptrace is not here\n"[i % 22];
    spill(path, text, sizeof text);
    {
        ht_reader r;
        char err[256] = "";
        assert_int_equal(ht_reader_open(&r, path, err, sizeof err), -EBADMSG);
        assert_non_null(strstr(err, "not a heaptrace trace"));
    }
    /* one byte, seven bytes of magic, the magic and nothing more */
    tpath(path, "short.htrace");
    spill(path, HT_FILE_MAGIC, 1);
    expect_open_fails(path, -EBADMSG, "1-byte file");
    spill(path, HT_FILE_MAGIC, 7);
    expect_open_fails(path, -EBADMSG, "7 bytes of magic");
    spill(path, HT_FILE_MAGIC, 8);
    expect_open_fails(path, -EBADMSG, "magic only");
    /* an ELF file */
    size_t len;
    uint8_t *elf = slurp("/proc/self/exe", &len);
    spill(path, elf, len > 65536 ? 65536 : len);
    free(elf);
    expect_open_fails(path, -EBADMSG, "ELF file");
    unlink(path);
    tpath(path, "empty.htrace");
    unlink(path);
    tpath(path, "text.htrace");
    unlink(path);
}

static void test_versions(void **state)
{
    (void)state;
    trace t;
    static const size_t sizes[] = {10, 20, 5};
    build_trace(&t, "ver.htrace", sizes, NULL, 3, test_seed("versions"));
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    ht_file_header *h = (ht_file_header *)file;
    char path[PATH_MAX];
    tpath(path, "ver_mod.htrace");

    /* a newer major, properly sealed: refused as newer */
    h->major = HT_FORMAT_MAJOR + 1;
    reseal_header(file, HT_FILE_HEADER_SIZE);
    spill(path, file, len);
    {
        ht_reader r;
        char err[256] = "";
        assert_int_equal(ht_reader_open(&r, path, err, sizeof err), -EPROTONOSUPPORT);
        assert_non_null(strstr(err, "newer"));
    }
    h->major = 0xffff;
    reseal_header(file, HT_FILE_HEADER_SIZE);
    spill(path, file, len);
    expect_open_fails(path, -EPROTONOSUPPORT, "major 65535");

    /* a newer minor of our major is read */
    h->major = HT_FORMAT_MAJOR;
    h->minor = HT_FORMAT_MINOR + 3;
    reseal_header(file, HT_FILE_HEADER_SIZE);
    spill(path, file, len);
    expect_read(&t, path, all_chunks(&t), 0, "newer minor");

    /* a header without its checksum is refused */
    h->minor = HT_FORMAT_MINOR;
    h->crc ^= 1;
    spill(path, file, len);
    expect_open_fails(path, -EBADMSG, "bad header checksum");
    reseal_header(file, HT_FILE_HEADER_SIZE);

    /* header_size pointing past the end of the file */
    h->header_size = (uint32_t)len + 1;
    reseal_header(file, HT_FILE_HEADER_SIZE);
    spill(path, file, len);
    expect_open_fails(path, -EBADMSG, "header_size past the end");
    h->header_size = 100;
    reseal_header(file, HT_FILE_HEADER_SIZE);
    spill(path, file, len);
    expect_open_fails(path, -EBADMSG, "header_size too small");
    h->header_size = HT_FILE_HEADER_SIZE;
    reseal_header(file, HT_FILE_HEADER_SIZE);

    /* a newer minor's larger header: the chunks start after it */
    {
        size_t ext = 256;
        uint8_t *big = calloc(1, len + ext);
        assert_non_null(big);
        memcpy(big, file, HT_FILE_HEADER_SIZE);
        memset(big + HT_FILE_HEADER_SIZE, 0x5a, ext);
        memcpy(big + HT_FILE_HEADER_SIZE + ext, file + HT_FILE_HEADER_SIZE, len - HT_FILE_HEADER_SIZE);
        ht_file_header *bh = (ht_file_header *)big;
        bh->minor = HT_FORMAT_MINOR + 1;
        bh->header_size = (uint32_t)(HT_FILE_HEADER_SIZE + ext);
        reseal_header(big, HT_FILE_HEADER_SIZE); /* FORMAT.md: the first 256 bytes */
        spill(path, big, len + ext);
        expect_read(&t, path, all_chunks(&t), 0, "larger header of a newer minor");
        free(big);
    }
    unlink(path);
    free(file);
    trace_free(&t);
}

/* A chunk header larger than 48 bytes (a newer minor's) is read: the
 * payload starts at header_size. */
static void test_larger_chunk_header(void **state)
{
    (void)state;
    trace t;
    static const size_t sizes[] = {7, 30, 4};
    build_trace(&t, "chx.htrace", sizes, NULL, 3, test_seed("larger_chunk_header"));
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    size_t ext = 16;
    uint8_t *m = malloc(len + ext);
    assert_non_null(m);
    /* rebuild chunk 1 with a 64-byte header */
    size_t c1 = (size_t)t.ch[1].off, c1end = (size_t)t.ch[1].end;
    memcpy(m, file, c1);
    ht_chunk_header ch;
    memcpy(&ch, file + c1, sizeof ch);
    ch.header_size = HT_CHUNK_HEADER_SIZE + (uint32_t)ext;
    uLong crc = crc32(0, (const Bytef *)&ch, offsetof(ht_chunk_header, crc));
    ch.crc = (uint32_t)crc32(crc, file + c1 + HT_CHUNK_HEADER_SIZE, ch.stored_size);
    memcpy(m + c1, &ch, sizeof ch);
    memset(m + c1 + sizeof ch, 0xee, ext);
    memcpy(m + c1 + sizeof ch + ext, file + c1 + HT_CHUNK_HEADER_SIZE, c1end - c1 - HT_CHUNK_HEADER_SIZE);
    memcpy(m + c1end + ext, file + c1end, len - c1end);
    char path[PATH_MAX];
    tpath(path, "chx_mod.htrace");
    spill(path, m, len + ext);
    expect_read(&t, path, all_chunks(&t), 0, "64-byte chunk header");
    unlink(path);
    free(m);
    free(file);
    trace_free(&t);
}

/* Chunks without records (stored raw, and as an empty zstd frame) are
 * valid and yield nothing, first in the file or between other chunks. */
static void test_empty_chunks(void **state)
{
    (void)state;
    trace t;
    static const size_t sizes[] = {5, 7};
    build_trace(&t, "emptych.htrace", sizes, NULL, 2, test_seed("empty_chunks"));
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    /* an empty zstd frame */
    uint8_t frame[64];
    size_t flen = ZSTD_compress(frame, sizeof frame, "", 0, 1);
    assert_false(ZSTD_isError(flen));
    char path[PATH_MAX];
    tpath(path, "emptych_mod.htrace");
    for (int zstd = 0; zstd < 2; zstd++) {
        ht_chunk_header ch = {.magic = HT_CHUNK_MAGIC, .header_size = HT_CHUNK_HEADER_SIZE,
                              .stream = 4242, .flags = zstd ? HT_CHUNK_FLAG_ZSTD : 0u,
                              .stored_size = zstd ? (uint32_t)flen : 0u};
        uLong crc = crc32(0, (const Bytef *)&ch, offsetof(ht_chunk_header, crc));
        if (zstd) crc = crc32(crc, frame, (uInt)flen);
        ch.crc = (uint32_t)crc;
        size_t clen = sizeof ch + (zstd ? flen : 0);
        uint8_t *m = malloc(len + 2 * clen);
        assert_non_null(m);
        size_t at1 = (size_t)t.ch[1].off, n = 0;
        memcpy(m, file, HT_FILE_HEADER_SIZE);
        n = HT_FILE_HEADER_SIZE;
        memcpy(m + n, &ch, sizeof ch); /* first in the file */
        memcpy(m + n + sizeof ch, frame, clen - sizeof ch);
        n += clen;
        memcpy(m + n, file + HT_FILE_HEADER_SIZE, at1 - HT_FILE_HEADER_SIZE);
        n += at1 - HT_FILE_HEADER_SIZE;
        memcpy(m + n, &ch, sizeof ch); /* between two chunks */
        memcpy(m + n + sizeof ch, frame, clen - sizeof ch);
        n += clen;
        memcpy(m + n, file + at1, len - at1);
        n += len - at1;
        spill(path, m, n);
        expect_read(&t, path, all_chunks(&t), 0, zstd ? "empty zstd chunks" : "empty raw chunks");
        free(m);
    }
    unlink(path);
    free(file);
    trace_free(&t);
}

/* A chunk whose checksum is right but whose payload is not a valid record
 * stream (a writer bug, or a crafted file) must be reported and must not
 * stop the reader from reading the next chunk. */
static void test_malformed_but_sealed_chunk(void **state)
{
    (void)state;
    trace t;
    static const size_t sizes[] = {5, 8, 6};
    static const int noisy[] = {0, 1, 0}; /* random texts: chunk 1 is stored raw */
    build_trace(&t, "sealed.htrace", sizes, noisy, 3, test_seed("malformed_sealed"));
    size_t len;
    uint8_t *file = slurp(t.path, &len);
    assert_false(t.ch[1].zstd); /* small: stored raw */
    /* chunk 1's first record becomes a metadata record with a back-reference
     * bit, which no record can have; the chunk is resealed, so only the
     * decoder can tell */
    size_t c1 = (size_t)t.ch[1].off;
    ht_chunk_header ch;
    memcpy(&ch, file + c1, sizeof ch);
    uint8_t *pl = file + c1 + HT_CHUNK_HEADER_SIZE;
    pl[0] = (uint8_t)((pl[0] & ~HT_TAG_KIND) | HT_TAG_REF1);
    uLong crc = crc32(0, (const Bytef *)&ch, offsetof(ht_chunk_header, crc));
    ch.crc = (uint32_t)crc32(crc, pl, ch.stored_size);
    memcpy(file + c1, &ch, sizeof ch);
    char path[PATH_MAX];
    tpath(path, "sealed_mod.htrace");
    spill(path, file, len);
    ht_reader r;
    char err[128];
    assert_int_equal(ht_reader_open(&r, path, err, sizeof err), 0);
    ht_event ev;
    size_t n0 = 0, n1 = 0, n2 = 0;
    while (ht_reader_next(&r, &ev) == 1) {
        if (ev.ts >= t.ev[t.ch[2].first].ts) n2++;
        else if (ev.ts >= t.ev[t.ch[1].first].ts) n1++;
        else n0++;
    }
    assert_int_equal(n0, 5);
    assert_int_equal(n1, 0);
    assert_int_equal(n2, 6);
    char pb[256];
    assert_non_null(ht_reader_problems(&r, pb, sizeof pb));
    ht_reader_close(&r);
    unlink(path);
    free(file);
    trace_free(&t);
}

/* ---- fixture ---- */

static int setup_dir(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/ht_test_reader_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *de;
        char path[PATH_MAX];
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            tpath(path, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (rmdir(tmpdir) < 0) fprintf(stderr, "# could not remove %s: %s\n", tmpdir, strerror(errno));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_header_only),
        cmocka_unit_test(test_truncate_everywhere),
        cmocka_unit_test(test_bitflip_chunks),
        cmocka_unit_test(test_bitflip_header),
        cmocka_unit_test(test_header_size_damage),
        cmocka_unit_test(test_garbage_chunks),
        cmocka_unit_test(test_damage_in_large_chunks),
        cmocka_unit_test(test_resync_window_boundary),
        cmocka_unit_test(test_sealed_inconsistent_sizes),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_larger_chunk_header),
        cmocka_unit_test(test_empty_chunks),
        cmocka_unit_test(test_malformed_but_sealed_chunk),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
