/*
 * gen_seeds.c - writes the seed corpus of fuzz_reader into a directory:
 * a few small valid traces written with the real writer and encoder (every
 * record kind, several threads and streams, zstd and raw chunks), some
 * damaged variants of them, and bare chunk payloads for the decoder.
 *
 * usage: gen_seeds DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "format/format.h"

static const char *g_dir;

static void die(const char *what, int e)
{
    fprintf(stderr, "gen_seeds: %s: %s\n", what, strerror(e));
    exit(1);
}

static void path_of(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", g_dir, name); }

static void write_file(const char *name, const void *p, size_t n)
{
    char path[4096];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f) die(path, errno);
    if (n && fwrite(p, 1, n, f) != n) die(path, errno);
    if (fclose(f) != 0) die(path, errno);
}

static uint8_t *read_file(const char *name, size_t *n)
{
    char path[4096];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "rb");
    if (!f) die(path, errno);
    static uint8_t buf[1 << 20];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint8_t *c = malloc(*n ? *n : 1);
    if (!c) die("malloc", ENOMEM);
    memcpy(c, buf, *n);
    return c;
}

static uint32_t g_stack; /* stack id the next heap events carry (0: none) */

static void ev_core(ht_encoder *e, unsigned kind, uint32_t tid, uint64_t ts, unsigned api, unsigned source,
                    uint64_t heap, uint64_t addr, uint64_t size, uint64_t old_addr, uint64_t old_size)
{
    ht_event ev = {.kind = kind, .tid = tid, .api = (uint8_t)api, .source = (uint8_t)source, .ts = ts,
                   .heap = heap, .addr = addr, .size = size, .old_addr = old_addr, .old_size = old_size,
                   .stack = g_stack};
    if (ht_enc_event(e, &ev) < 0) die("ht_enc_event", EINVAL);
}

static void ev_meta(ht_encoder *e, unsigned kind, uint32_t tid, uint64_t ts, uint64_t heap, unsigned nargs,
                    const uint64_t *args, const char *text)
{
    ht_event ev = {.kind = kind, .tid = tid, .ts = ts, .heap = heap, .nargs = (uint16_t)nargs};
    for (unsigned i = 0; i < nargs && i < HT_EVENT_ARGS; i++) ev.arg[i] = args[i];
    if (text) {
        ev.text = text;
        ev.text_len = (uint32_t)strlen(text);
    }
    if (ht_enc_event(e, &ev) < 0) die("ht_enc_event", EINVAL);
}

/* A process stream: threads whose tids collide in the 64-entry table, every
 * core kind and API, custom heaps, markers, losses, a negative ts delta. */
static void fill_process(ht_encoder *e, uint32_t pid, uint64_t t0, int n)
{
    uint64_t a1[] = {1};
    ev_meta(e, HT_EV_PROCESS, pid, t0, 0, 1, a1, "demo --threads 3 \"quoted\" arg");
    uint64_t tids[] = {pid, pid + 64, pid + 1};
    const char *names[] = {"main", "worker-1", "worker-2"};
    for (int t = 0; t < 3; t++) {
        uint64_t a[] = {tids[t]};
        ev_meta(e, HT_EV_THREAD, (uint32_t)tids[t], t0 + 1 + (uint64_t)t, 0, 1, a, names[t]);
    }
    /* call stacks (format 1.1): two modules, two stacks, events using them */
    {
        uint64_t m1[] = {0x555500001000ull, 0x555500009000ull, 0x1000, 0x555500000000ull};
        char t1[1 + 20 + 32] = {20};
        for (int k = 0; k < 20; k++) t1[1 + k] = (char)(0xa0 + k);
        memcpy(t1 + 21, "/usr/bin/demo", 14);
        ht_event mod = {.kind = HT_EV_MODULE, .tid = pid, .ts = t0 + 5, .nargs = 4, .text = t1, .text_len = 34};
        memcpy(mod.arg, m1, sizeof m1);
        if (ht_enc_event(e, &mod) < 0) die("ht_enc_event", EINVAL);
        uint64_t m2[] = {0x7f0000001000ull, 0x7f0000100000ull, 0x26000, 0x7f0000000000ull};
        ht_event mod2 = {.kind = HT_EV_MODULE, .tid = pid, .ts = t0 + 5, .nargs = 4, .text = "\0/lib/libc.so.6",
                         .text_len = 15};
        memcpy(mod2.arg, m2, sizeof m2);
        if (ht_enc_event(e, &mod2) < 0) die("ht_enc_event", EINVAL);
        for (uint64_t id = 1; id <= 2; id++) {
            uint8_t fr[8 * 3];
            uint64_t pcs[] = {0x555500001234ull + id, 0x7f0000002345ull, 0x555500004567ull};
            for (int k = 0; k < 3; k++)
                for (int b = 0; b < 8; b++) fr[k * 8 + b] = (uint8_t)(pcs[k] >> (8 * b));
            ht_event st = {.kind = HT_EV_STACK, .tid = pid, .ts = t0 + 6, .nargs = 1, .text = (const char *)fr,
                           .text_len = (uint32_t)(id == 1 ? 24 : 16)};
            st.arg[0] = id;
            if (ht_enc_event(e, &st) < 0) die("ht_enc_event", EINVAL);
        }
    }
    uint64_t ts = t0 + 10;
    uint64_t base = 0x55550000a000ull;
    for (int i = 0; i < n; i++) {
        g_stack = (uint32_t)(i % 3); /* none, 1, 2 */
        uint32_t tid = (uint32_t)tids[i % 3];
        uint64_t addr = base + (uint64_t)(i * 48);
        unsigned api = 1 + (unsigned)(i % 14);
        ev_core(e, HT_EV_ALLOC, tid, ts++, api, (unsigned)(i % 7), 1, addr, 16 + (uint64_t)i * 8, 0, 0);
        if (i % 3 == 0) ev_core(e, HT_EV_FREE, tid, ts++, HT_API_FREE, 3, 1, addr, 0, 0, 0);
        if (i % 5 == 1)
            ev_core(e, HT_EV_REALLOC, tid, ts++, HT_API_REALLOC, 3, 1, addr + 0x1000, 4096, addr,
                    16 + (uint64_t)i * 8);
    }
    g_stack = 0;
    ev_core(e, HT_EV_ALLOC, pid, ts++, HT_API_CALLOC, 5, 1, 0, UINT64_MAX, 0, 0); /* failed, overflowed */
    ev_core(e, HT_EV_REALLOC, pid, ts++, HT_API_REALLOC, 3, 1, 0, 1ull << 40, base, 0); /* failed */
    uint64_t fl[] = {7};
    ev_meta(e, HT_EV_HEAP_CREATE, pid + 1, ts++, 2, 1, fl, "pool");
    ev_core(e, HT_EV_ALLOC, pid + 1, ts++, HT_API_HEAP, 1, 2, 0x1000, 64, 0, 0);
    ev_core(e, HT_EV_ALLOC, pid + 1, ts++, HT_API_HEAP, 2, 2, 0x1040, 64, 0, 0);
    ev_core(e, HT_EV_FREE, pid + 1, ts++, HT_API_HEAP, 1, 2, 0x1000, 0, 0, 0);
    ev_meta(e, HT_EV_HEAP_DESTROY, pid + 1, ts++, 2, 0, NULL, NULL);
    ev_meta(e, HT_EV_MARKER, pid, ts++, 0, 0, NULL, "phase 2: \xe2\x9c\x93 done\n");
    uint64_t lost[] = {12};
    ev_meta(e, HT_EV_LOST, pid + 64, ts++, 0, 1, lost, NULL);
    ev_core(e, HT_EV_FREE, pid + 64, ts - 5, HT_API_DELETE_ARRAY, 0, 1, base + 48, 0, 0, 0); /* back in time */
    uint64_t many[] = {1, 2, 3, 4, 5, 6};
    ev_meta(e, 999, pid, ts++, 0, 6, many, "a future metadata kind"); /* unknown kind: skipped by length */
    uint64_t end[] = {3, 0};
    ev_meta(e, HT_EV_PROCESS_END, pid, ts++, 0, 2, end, NULL);
}

static void fill_session_start(ht_encoder *e, uint64_t ts)
{
    uint64_t a[] = {0, 65536, 64, 100};
    ev_meta(e, HT_EV_SESSION_START, 0, ts, 0, 4, a, "demo --threads 3");
}

static void fill_session_end(ht_encoder *e, uint64_t ts)
{
    uint64_t a[] = {120, 12, 5, 0};
    ev_meta(e, HT_EV_SESSION_END, 0, ts, 0, 4, a, NULL);
}

static void chunk(ht_writer *w, ht_encoder *e)
{
    int rc = ht_writer_chunk(w, e);
    if (rc < 0) die("ht_writer_chunk", -rc);
    ht_enc_reset(e, e->stream);
}

static void open_writer(ht_writer *w, const char *name)
{
    char path[4096];
    path_of(path, sizeof path, name);
    ht_file_header h;
    ht_file_header_init(&h);
    /* fixed host fields keep the seeds reproducible */
    memset(h.hostname, 0, sizeof h.hostname);
    memset(h.kernel, 0, sizeof h.kernel);
    memset(h.machine, 0, sizeof h.machine);
    strcpy(h.hostname, "fuzzhost");
    strcpy(h.kernel, "6.1.0");
    strcpy(h.machine, "x86_64");
    h.start_mono_ns = 1000000000ull;
    h.start_real_ns = 1700000000000000000ull;
    h.raw_per_sec = 1000000000ull;
    h.clock = 1;
    h.collector_pid = 77;
    int rc = ht_writer_open(w, path, &h, 3);
    if (rc < 0) die(path, -rc);
}

static void close_writer(ht_writer *w)
{
    int rc = ht_writer_close(w);
    if (rc < 0) die("ht_writer_close", -rc);
}

static void fix_header_crc(uint8_t *f)
{
    memset(f + 20, 0, 4);
    uint32_t crc = (uint32_t)crc32(0, f, HT_FILE_HEADER_SIZE);
    memcpy(f + 20, &crc, 4);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    g_dir = argv[1];
    if (mkdir(g_dir, 0755) < 0 && errno != EEXIST) die(g_dir, errno);

    ht_writer w;
    ht_encoder e;
    memset(&e, 0, sizeof e);

    /* 1. a multi-stream trace: two processes (a zstd chunk and a raw one),
     *    session records in stream 0 */
    open_writer(&w, "multi.htrace");
    ht_enc_reset(&e, 1000);
    fill_process(&e, 1000, 5, 60);
    chunk(&w, &e);
    ht_enc_reset(&e, 2000);
    fill_process(&e, 2000, 7, 2);
    chunk(&w, &e);
    ht_enc_reset(&e, 1000); /* a second chunk of the first stream */
    ev_core(&e, HT_EV_FREE, 1000, 5000, HT_API_FREE, 3, 1, 0x55550000a030ull, 0, 0, 0);
    chunk(&w, &e);
    ht_enc_reset(&e, HT_STREAM_SESSION);
    fill_session_start(&e, 0);
    fill_session_end(&e, 6000);
    chunk(&w, &e);
    close_writer(&w);

    /* 2. what recording /bin/true gives: one tiny raw chunk per stream */
    open_writer(&w, "small.htrace");
    ht_enc_reset(&e, 31337);
    uint64_t pp[] = {1};
    ev_meta(&e, HT_EV_PROCESS, 31337, 100, 0, 1, pp, "/bin/true");
    chunk(&w, &e);
    ht_enc_reset(&e, HT_STREAM_SESSION);
    fill_session_start(&e, 0);
    fill_session_end(&e, 200);
    chunk(&w, &e);
    close_writer(&w);

    /* 3. sizes no process can have: two blocks whose sum wraps 64 bits, then
     *    the first freed (the live bytes of a naive sum would exceed the
     *    peak), then a realloc of the second, a block of 2^64-1 bytes and a normal
     *    block */
    open_writer(&w, "huge_sizes.htrace");
    ht_enc_reset(&e, 4242);
    ev_core(&e, HT_EV_ALLOC, 4242, 10, HT_API_MALLOC, 3, 1, 0x10000, (1ull << 63) + 5, 0, 0);
    ev_core(&e, HT_EV_ALLOC, 4242, 20, HT_API_MALLOC, 3, 1, 0x20000, (1ull << 63) + 10, 0, 0);
    ev_core(&e, HT_EV_FREE, 4242, 30, HT_API_FREE, 3, 1, 0x10000, 0, 0, 0);
    ev_core(&e, HT_EV_REALLOC, 4242, 40, HT_API_REALLOC, 3, 1, 0x30000, 1ull << 40, 0x20000, 0);
    ev_core(&e, HT_EV_ALLOC, 4242, 45, HT_API_MALLOC, 3, 1, 0x50000, UINT64_MAX, 0, 0);
    ev_core(&e, HT_EV_ALLOC, 4242, 50, HT_API_MALLOC, 3, 1, 0x40000, 64, 0, 0);
    chunk(&w, &e);
    close_writer(&w);

    /* 4. header only: a valid, empty trace */
    open_writer(&w, "empty_trace.htrace");
    close_writer(&w);

    /* damaged variants of multi.htrace */
    size_t n;
    uint8_t *f = read_file("multi.htrace", &n);
    uint32_t first_stored;
    memcpy(&first_stored, f + HT_FILE_HEADER_SIZE + 40, 4);
    size_t first_end = HT_FILE_HEADER_SIZE + HT_CHUNK_HEADER_SIZE + first_stored;

    write_file("truncated.htrace", f, n - 30);                 /* cut inside the last chunk */
    write_file("truncated_hdr.htrace", f, first_end + 20);     /* cut inside the 2nd chunk header */
    uint8_t *g = malloc(n);
    if (!g) die("malloc", ENOMEM);
    memcpy(g, f, n);
    g[HT_FILE_HEADER_SIZE + HT_CHUNK_HEADER_SIZE + first_stored / 2] ^= 0x10; /* bad crc in chunk 1 */
    write_file("flipped_payload.htrace", g, n);
    memcpy(g, f, n);
    g[HT_FILE_HEADER_SIZE + 41] ^= 0x7f; /* chunk 1 stored_size points far away */
    write_file("bad_size.htrace", g, n);
    memcpy(g, f, n);
    g[8] = 99; /* a future major version (stale crc) */
    write_file("future_major.htrace", g, n);
    memcpy(g, f, n);
    g[10] = 7; /* a newer minor: must still read */
    fix_header_crc(g);
    write_file("newer_minor.htrace", g, n);
    /* a larger header (minor versions may grow it): 512 bytes */
    uint8_t *big = calloc(1, n + 256);
    if (!big) die("calloc", ENOMEM);
    memcpy(big, f, HT_FILE_HEADER_SIZE);
    uint32_t hs = 512;
    memcpy(big + 12, &hs, 4);
    memcpy(big + 512, f + HT_FILE_HEADER_SIZE, n - HT_FILE_HEADER_SIZE);
    write_file("big_header.htrace", big, n + 256);
    free(big);
    free(g);
    free(f);

    /* bare payloads for the decoder path */
    ht_buf pl = {0};
    ht_enc_reset(&e, 1000);
    fill_process(&e, 1000, 5, 12);
    if (ht_enc_payload(&e, &pl) < 0) die("ht_enc_payload", ENOMEM);
    write_file("payload_process.bin", pl.data, pl.len);
    ht_enc_reset(&e, HT_STREAM_SESSION);
    fill_session_start(&e, 0);
    fill_session_end(&e, 6000);
    if (ht_enc_payload(&e, &pl) < 0) die("ht_enc_payload", ENOMEM);
    write_file("payload_session.bin", pl.data, pl.len);
    ht_buf_free(&pl);
    ht_enc_free(&e);
    return 0;
}
