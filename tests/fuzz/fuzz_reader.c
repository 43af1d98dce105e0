/*
 * fuzz_reader.c - libFuzzer target for everything that reads untrusted
 * trace bytes: the .htrace reader (file header, chunk framing, checksums,
 * zstd, resynchronisation), the payload decoder, and the analyses that
 * `heaptrace summary`, `report` and `export` run over whatever it yields.
 *
 * Each input is used three times:
 *  1. as a whole .htrace file (written to a memfd, opened by path through
 *     /proc/self/fd, or a temp file if memfd is unavailable):
 *     ht_reader_open / ht_reader_next until the end / ht_reader_problems,
 *     with every event fed to the profile (ht_prof_event) and the STACK/MODULE
 *     records to a stack table (ht_stk_*, without a symbolizer), whose
 *     text is rendered for every heap event that has a stack;
 *  2. the same with the header and chunk CRCs recomputed first, so that
 *     mutations get past the checksums into zstd and the decoder as the
 *     reader drives them (most mutants would otherwise stop at the CRC);
 *  3. as one chunk payload given directly to ht_dec_init / ht_dec_next, once
 *     as format 1 (rows) and once as format 2 (columns).
 *
 * Besides what ASan/UBSan catch, it checks properties a correct reader must
 * have (a failure aborts, which libFuzzer reports as a crash):
 *  - ht_reader_open fails with a negative code and a one-line reason, or
 *    succeeds; ht_reader_problems() is non-NULL exactly when chunks were
 *    skipped or the file was truncated, and is one line;
 *  - every event has a valid kind (1..3 or 64..65535), api < 32,
 *    source < 8, nargs <= HT_EVENT_ARGS, pid == its chunk's stream, and its
 *    text lies inside the decoded payload (the bytes are read, so ASan
 *    checks them);
 *  - the decoder always advances and never runs past the payload;
 *  - round trip: the events decoded from any payload, re-encoded with
 *    ht_enc_event and decoded again, come back field for field identical.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "analysis/stacktab.h"
#include "analysis/export.h"
#include "analysis/profile.h"
#include "analysis/summary.h"
#include "format/format.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_fd = -1;
static char g_path[4096];
static FILE *g_null;
static void check_profile(ht_prof *p, ht_stacktab *tab, const ht_file_header *hdr);
static volatile uint64_t g_sink; /* keeps the text reads from being optimised out */
static int g_unlink_at_exit;

static void remove_temp(void)
{
    if (g_unlink_at_exit) unlink(g_path);
}

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_reader: check failed at %s:%d: %s\n", __FILE__, __LINE__, \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_fd = memfd_create("fuzz.htrace", MFD_CLOEXEC);
    if (g_fd >= 0) {
        snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
        if (access(g_path, R_OK) != 0) { /* no /proc: fall back to a file */
            close(g_fd);
            g_fd = -1;
        }
    }
    if (g_fd < 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/fuzz_reader.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        g_fd = mkstemp(g_path);
        if (g_fd < 0) {
            perror("fuzz_reader: mkstemp");
            abort();
        }
        /* keep the path: the reader opens it by name; removed at exit */
        g_unlink_at_exit = 1;
        atexit(remove_temp);
    }
    g_null = fopen("/dev/null", "w");
    if (!g_null) abort();
    return 0;
}

static void put_input(const uint8_t *data, size_t size)
{
    CHECK(ftruncate(g_fd, 0) == 0);
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(g_fd, data + off, size - off, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        CHECK(w > 0);
        off += (size_t)w;
    }
}

static void check_event(const ht_event *ev, const uint8_t *pay, const uint8_t *pay_end)
{
    CHECK(ev->kind == HT_EV_ALLOC || ev->kind == HT_EV_FREE || ev->kind == HT_EV_REALLOC ||
          (ev->kind >= 64 && ev->kind <= 0xffff));
    CHECK(ev->api < 32);
    CHECK(ev->source < 8);
    CHECK(ev->nargs <= HT_EVENT_ARGS);
    if (ev->kind <= HT_EV_REALLOC) {
        CHECK(ev->text == NULL && ev->text_len == 0);
    } else {
        CHECK(ev->text != NULL);
        const uint8_t *t = (const uint8_t *)ev->text;
        CHECK(t >= pay && t <= pay_end && ev->text_len <= (size_t)(pay_end - t));
        uint64_t sum = 0;
        for (uint32_t i = 0; i < ev->text_len; i++) sum += t[i];
        g_sink += sum;
    }
    /* the names used by dump must exist for any value */
    CHECK(ht_kind_name(ev->kind) != NULL);
    CHECK(ht_api_name(ev->api) != NULL);
    CHECK(ht_source_name(ev->source) != NULL);
}

/* ---- 1: the bytes as a whole file ---- */
static void fuzz_file(const uint8_t *data, size_t size)
{
    put_input(data, size);
    static ht_reader r;
    char err[256];
    memset(err, 0, sizeof err);
    int rc = ht_reader_open(&r, g_path, err, sizeof err);
    if (rc < 0) {
        CHECK(err[0] != 0 && strchr(err, '\n') == NULL);
        return;
    }
    CHECK(rc == 0);
    ht_prof prof;
    ht_prof_init(&prof, &(ht_prof_opts){.have_range = 1, .t0 = 1000, .t1 = 1000000, .series_max = 16});
    ht_stacktab *tab = ht_stk_new(NULL);
    CHECK(tab != NULL);
    ht_event ev;
    char text[4096];
    while ((rc = ht_reader_next(&r, &ev)) > 0) {
        CHECK(r.in_chunk);
        CHECK(ev.pid == r.chunk.stream);
        const uint8_t *pay_end = r.dec.cur[HT_NCOLS - 1].end; /* the last column ends the payload */
        const uint8_t *pay = pay_end - r.chunk.raw_size;
        check_event(&ev, pay, pay_end);
        ht_prof_event(&prof, &ev);
        if (ev.kind == HT_EV_STACK || ev.kind == HT_EV_MODULE) {
            int src = ht_stk_event(tab, &ev);
            CHECK(src == 0 || src == -EBADMSG);
        }
        if (ev.stack) {
            size_t n = ht_stk_format(tab, ev.pid, ev.stack, ";", text, sizeof text);
            CHECK(n < sizeof text && strlen(text) == n);
            n = ht_stk_site(tab, ev.pid, ev.stack, text, sizeof text);
            CHECK(n < sizeof text && strlen(text) == n);
            g_sink += n;
        }
    }
    CHECK(rc == 0); /* a memfd never fails to read; -ENOMEM would be an abort in ASan anyway */
    char pbuf[512];
    const char *p = ht_reader_problems(&r, pbuf, sizeof pbuf);
    CHECK((p != NULL) == (r.chunks_bad != 0 || r.truncated != 0));
    if (p) CHECK(strlen(p) < sizeof pbuf && strchr(p, '\n') == NULL);
    CHECK(r.offset <= r.file_size);
    check_profile(&prof, tab, &r.hdr);
    ht_prof_free(&prof);
    ht_stk_free(tab);
    ht_reader_close(&r);
}

/* The report's model over whatever the reader yields: its invariants hold
 * for any input, and every exporter runs over it. */
static void check_profile(ht_prof *p, ht_stacktab *tab, const ht_file_header *hdr)
{
    ht_prof_finish(p);
    CHECK(!p->oom);
    uint64_t live = 0, peak = 0, bytes = 0, blocks = 0, lblocks = 0;
    for (size_t i = 0; i < p->nsites; i++) {
        const ht_prof_site *x = &p->sites[i];
        CHECK(x->used);
        live += x->live_bytes;
        lblocks += x->live_blocks;
        peak += x->peak_bytes;
        bytes += x->bytes;
        blocks += x->allocs;
        CHECK(x->live_blocks <= x->allocs && x->temporary <= x->allocs);
    }
    CHECK(live == p->live_bytes && lblocks == p->live_blocks);
    CHECK(peak == p->peak_bytes); /* the sites' values at the peak add up to it */
    CHECK(bytes == p->bytes_allocated && blocks == p->blocks_allocated);
    CHECK(p->live_bytes <= p->peak_bytes);
    for (size_t i = 0; i < p->nprocs; i++) {
        const ht_prof_proc *r = &p->procs[i];
        CHECK(r->nseries <= 16);
        for (uint32_t k = 1; k < r->nseries; k++) CHECK(r->series[k - 1].ts <= r->series[k].ts);
        for (uint32_t k = 0; k < r->nseries; k++) CHECK(r->series[k].live <= r->peak_bytes);
    }
    ht_summary_print(p, g_null);
    ht_summary_print_sites(p, tab, g_null, 10);
    ht_export_ctx x = {.prof = p, .stk = tab, .hdr = hdr, .trace_path = "fuzz"};
    for (int v = HT_VALUE_ALLOC_BYTES; v <= HT_VALUE_TEMPORARY; v++) {
        x.value = v;
        ht_export_folded(&x, g_null);
    }
    ht_export_pprof(&x, g_null);
    ht_export_massif(&x, g_null);
    ht_export_chrome(&x, g_null);
}

/* ---- 2: the same with valid checksums ---- */
static uint8_t *g_fixed;
static size_t g_fixed_cap;

static void fuzz_file_fixed_crcs(const uint8_t *data, size_t size)
{
    if (size < HT_FILE_HEADER_SIZE) return;
    if (g_fixed_cap < size) {
        free(g_fixed);
        g_fixed = malloc(size);
        CHECK(g_fixed != NULL);
        g_fixed_cap = size;
    }
    uint8_t *f = g_fixed;
    memcpy(f, data, size);
    uint32_t hs, crc;
    memcpy(&hs, f + 12, 4);
    if (hs == HT_FILE_HEADER_SIZE) {
        memset(f + 20, 0, 4);
        crc = (uint32_t)crc32(0, f, HT_FILE_HEADER_SIZE);
        memcpy(f + 20, &crc, 4);
    }
    /* walk the chunks the way the reader frames them, fixing each CRC */
    size_t off = hs >= HT_FILE_HEADER_SIZE && hs <= size ? hs : HT_FILE_HEADER_SIZE;
    int fixed = 0;
    while (off + HT_CHUNK_HEADER_SIZE <= size) {
        ht_chunk_header ch;
        memcpy(&ch, f + off, sizeof ch);
        if (ch.magic == HT_CHUNK_MAGIC && ch.header_size >= HT_CHUNK_HEADER_SIZE && ch.header_size <= 4096 &&
            (uint64_t)off + ch.header_size + ch.stored_size <= size) {
            uLong c = crc32(0, f + off, offsetof(ht_chunk_header, crc));
            c = crc32(c, f + off + ch.header_size, ch.stored_size);
            ch.crc = (uint32_t)c;
            memcpy(f + off + offsetof(ht_chunk_header, crc), &ch.crc, 4);
            off += ch.header_size + ch.stored_size;
            fixed++;
        } else {
            off++;
        }
    }
    (void)fixed;
    if (memcmp(f, data, size) != 0) fuzz_file(f, size); /* else case 1 did it */
}

/* ---- 3: the bytes as one chunk payload, plus a round trip ---- */
static int same_event(const ht_event *a, const ht_event *b)
{
    if (a->kind != b->kind || a->pid != b->pid || a->tid != b->tid || a->api != b->api ||
        a->source != b->source || a->nargs != b->nargs || a->ts != b->ts || a->heap != b->heap ||
        a->addr != b->addr || a->size != b->size || a->old_addr != b->old_addr ||
        a->old_size != b->old_size || a->text_len != b->text_len)
        return 0;
    for (int i = 0; i < a->nargs && i < HT_EVENT_ARGS; i++) /* arg[nargs..] is unspecified */
        if (a->arg[i] != b->arg[i]) return 0;
    if ((a->text == NULL) != (b->text == NULL)) return 0;
    return a->text_len == 0 || memcmp(a->text, b->text, a->text_len) == 0;
}

/* Decode `data` as one payload of format `major`, check every event and
 * the decoder's cursors, then re-encode what decoded (format 2) and
 * decode it again: it must come back identical. */
static void fuzz_payload_as(unsigned major, uint32_t stream, uint64_t ts_first, const uint8_t *data, size_t size)
{
    ht_event *evs = NULL;
    size_t n = 0, cap = 0;
    static ht_decoder d;
    int init = ht_dec_init(&d, major, stream, ts_first, data, size);
    CHECK(init == 0 || (init == -EBADMSG && major == 2));
    int rc;
    for (;;) {
        const uint8_t *before = d.col[HT_COL_TAG]->p;
        ht_event ev;
        rc = ht_dec_next(&d, &ev);
        for (int i = 0; i < HT_NCOLS; i++) /* no cursor ever leaves the payload */
            CHECK(d.cur[i].p >= data && d.cur[i].p <= d.cur[i].end && d.cur[i].end <= data + size);
        if (rc <= 0) break;
        CHECK(init == 0);
        CHECK(rc == 1);
        CHECK(d.col[HT_COL_TAG]->p > before); /* every record consumes its tag: no endless loop */
        CHECK(ev.pid == stream);
        check_event(&ev, data, data + size);
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ht_event *ne = realloc(evs, cap * sizeof *ne);
            CHECK(ne != NULL);
            evs = ne;
        }
        evs[n++] = ev;
    }
    CHECK(rc == 0 || rc == -EBADMSG);
    if (rc == 0)
        for (int i = 0; i < HT_NCOLS; i++) CHECK(d.cur[i].p == d.cur[i].end); /* all used up */
    if (n > HT_CHUNK_RECORDS_MAX) n = HT_CHUNK_RECORDS_MAX; /* what one chunk holds */

    /* round trip of what decoded */
    if (n > 0) {
        /* static: the encoder and decoder hold large tables; the encoder's
         * columns and the payload buffer are reused between inputs */
        static ht_encoder e;
        static ht_decoder d2;
        static ht_buf payload;
        CHECK(ht_enc_reset(&e, stream) == 0);
        for (size_t i = 0; i < n; i++) CHECK(ht_enc_event(&e, &evs[i]) == 0);
        CHECK(e.records == n);
        CHECK(e.ts_first == evs[0].ts);
        CHECK(ht_enc_payload(&e, &payload) == 0);
        CHECK(ht_dec_init(&d2, HT_FORMAT_MAJOR, stream, e.ts_first, payload.data, payload.len) == 0);
        for (size_t i = 0; i < n; i++) {
            ht_event ev;
            CHECK(ht_dec_next(&d2, &ev) == 1);
            if (!same_event(&ev, &evs[i])) {
                fprintf(stderr,
                        "fuzz_reader: format %u round trip differs at record %zu (kind %u/%u tid %u/%u ts %llu/%llu)\n",
                        major, i, evs[i].kind, ev.kind, evs[i].tid, ev.tid, (unsigned long long)evs[i].ts,
                        (unsigned long long)ev.ts);
                abort();
            }
        }
        ht_event ev;
        CHECK(ht_dec_next(&d2, &ev) == 0);
    }
    free(evs);
}

static void fuzz_payload(const uint8_t *data, size_t size)
{
    /* the first 8 bytes, if any, also serve as ts_first and stream: they
     * are part of the payload too, which is fine for a fuzzer */
    uint64_t ts_first = 0;
    uint32_t stream = 4242;
    if (size >= 8) {
        memcpy(&ts_first, data, 8);
        stream = (uint32_t)ts_first;
    }
    /* as a format 1 (rows) and as a format 2 (columns) payload */
    for (unsigned major = 1; major <= 2; major++) fuzz_payload_as(major, stream, ts_first, data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file(data, size);
    fuzz_file_fixed_crcs(data, size);
    fuzz_payload(data, size);
    return 0;
}
