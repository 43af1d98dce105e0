/* writer.c - writes the .htrace header and zstd-compressed chunks. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "format.h"

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

void ht_file_header_init(ht_file_header *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, HT_FILE_MAGIC, 8);
    h->major = HT_FORMAT_MAJOR;
    h->minor = HT_FORMAT_MINOR;
    h->header_size = HT_FILE_HEADER_SIZE;
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(h->hostname, sizeof h->hostname, "%.63s", u.nodename);
        snprintf(h->kernel, sizeof h->kernel, "%.63s", u.release);
        snprintf(h->machine, sizeof h->machine, "%.15s", u.machine);
    }
}

static void seal_header(ht_file_header *h)
{
    h->crc = 0;
    h->crc = (uint32_t)crc32(0, (const Bytef *)h, sizeof *h);
}

/* At level 1, the default, the columns other than the timestamps get
 * minMatch 7 instead of level 1's 5 or 6: in these varint columns the short
 * matches cost more time than they save bytes (recorded traces of bench/
 * re-encoded, medians of 7 alternated runs: C's writer 35.8 -> 28.8 ns per
 * record, A's and D's within 0.3 ns; sizes within 0.13 %).  The timestamps
 * keep level 1's own: their short matches are worth the time (D's trace
 * 2.8 % larger without them; bench/README.md, "zstd per column"). */
static size_t set_min_match(ht_writer *w, int col)
{
    return ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_minMatch, col == HT_COL_TS ? 0 : 7);
}

/* Compresses one part of a chunk (col: its column, or -1 for the table). */
static size_t compress_part(ht_writer *w, int col, void *dst, size_t cap, const void *src, size_t len)
{
    if (!w->tuned) return ZSTD_compressCCtx(w->cctx, dst, cap, src, len, w->level);
    size_t r = set_min_match(w, col);
    return ZSTD_isError(r) ? r : ZSTD_compress2(w->cctx, dst, cap, src, len);
}

int ht_writer_open(ht_writer *w, const char *path, const ht_file_header *hdr, int level)
{
    memset(w, 0, sizeof *w);
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) return -errno;
    w->level = level;
    w->cctx = ZSTD_createCCtx();
    if (!w->cctx) {
        close(w->fd);
        return -ENOMEM;
    }
    w->tuned = level == 1 && !ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, 1));
    w->hdr = *hdr;
    seal_header(&w->hdr);
    int rc = write_all(w->fd, &w->hdr, sizeof w->hdr);
    if (rc < 0) {
        ZSTD_freeCCtx(w->cctx);
        close(w->fd);
        return rc;
    }
    w->offset = sizeof w->hdr;
    return 0;
}

int ht_writer_update_header(ht_writer *w, const ht_file_header *hdr)
{
    w->hdr = *hdr;
    seal_header(&w->hdr);
    if (pwrite(w->fd, &w->hdr, sizeof w->hdr, 0) != (ssize_t)sizeof w->hdr)
        return errno == ESPIPE ? 0 : -errno;
    return 0;
}

/* The payload goes out as one zstd frame per part (the column table, then
 * each column that has bytes), back to back: each kind of value gets its
 * own frame, and no copy of the whole payload is made.  A payload that
 * does not shrink is stored as is. */
int ht_writer_chunk(ht_writer *w, const ht_encoder *e)
{
    if (e->records == 0) return 0;
    uint8_t table[HT_ENC_TABLE_MAX];
    const uint8_t *part[HT_NCOLS + 1];
    size_t plen[HT_NCOLS + 1], nparts = 1, raw = 0, bound = 0;
    int pcol[HT_NCOLS + 1];
    part[0] = table;
    plen[0] = ht_enc_table(e, table);
    pcol[0] = -1;
    for (int i = 0; i < HT_NCOLS; i++) {
        size_t n = (size_t)(e->col[i] - e->col0[i]);
        if (!n) continue;
        part[nparts] = e->col0[i];
        pcol[nparts] = i;
        plen[nparts++] = n;
    }
    for (size_t i = 0; i < nparts; i++) {
        raw += plen[i];
        bound += ZSTD_compressBound(plen[i]);
    }
    if (raw > HT_CHUNK_RAW_MAX) return -EFBIG;
    w->zbuf.len = 0;
    if (ht_buf_reserve(&w->zbuf, bound) < 0) return -ENOMEM;
    size_t z = 0;
    for (size_t i = 0; i < nparts && z < raw; i++) {
        size_t r = compress_part(w, pcol[i], w->zbuf.data + z, bound - z, part[i], plen[i]);
        if (ZSTD_isError(r)) {
            z = raw; /* store it raw */
            break;
        }
        z += r;
    }
    ht_chunk_header ch = {
        .magic = HT_CHUNK_MAGIC,
        .header_size = HT_CHUNK_HEADER_SIZE,
        .stream = e->stream,
        .flags = HT_CHUNK_FLAG_ZSTD,
        .ts_first = e->ts_first,
        .ts_last = e->ts_last,
        .records = e->records,
        .raw_size = (uint32_t)raw,
    };
    if (z >= raw) { /* store raw if it does not shrink: the payload, whole */
        if (ht_enc_payload(e, &w->zbuf) < 0) return -ENOMEM;
        ch.flags = 0;
        z = w->zbuf.len;
    }
    const void *payload = w->zbuf.data;
    ch.stored_size = (uint32_t)z;
    uLong crc = crc32(0, (const Bytef *)&ch, offsetof(ht_chunk_header, crc));
    ch.crc = (uint32_t)crc32(crc, payload, (uInt)z);
    int rc = write_all(w->fd, &ch, sizeof ch);
    if (rc == 0) rc = write_all(w->fd, payload, z);
    if (rc < 0) return rc;
    w->offset += sizeof ch + z;
    w->chunks++;
    return 0;
}

int ht_writer_close(ht_writer *w)
{
    int rc = 0;
    if (w->fd >= 0 && close(w->fd) < 0) rc = -errno;
    w->fd = -1;
    ZSTD_freeCCtx(w->cctx);
    w->cctx = NULL;
    ht_buf_free(&w->zbuf);
    return rc;
}
