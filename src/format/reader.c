/*
 * reader.c - reads a .htrace file chunk by chunk, yielding every record of
 * every intact chunk.  A damaged chunk (bad header, checksum, zstd frame or
 * payload) is skipped and the reader resynchronises on the next chunk
 * magic; a truncated tail ends the file.  Either way ht_reader_problems()
 * then has one line saying what was lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "format.h"

static ssize_t read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int ht_reader_open(ht_reader *r, const char *path, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open: %s", strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        close(r->fd);
        return -EINVAL;
    }
    r->file_size = (uint64_t)st.st_size;
    ssize_t n = read_at(r->fd, &r->hdr, sizeof r->hdr, 0);
    int rc = -EBADMSG;
    if (n == 0) {
        snprintf(err, errlen, "empty file, not a heaptrace trace");
    } else if (n < 8 || memcmp(r->hdr.magic, HT_FILE_MAGIC, 8) != 0) {
        snprintf(err, errlen, "not a heaptrace trace (bad magic)");
    } else if (r->hdr.major > HT_FORMAT_MAJOR) {
        snprintf(err, errlen,
                 "trace format %u.%u is newer than this heaptrace reads (%u.x); upgrade heaptrace",
                 r->hdr.major, r->hdr.minor, HT_FORMAT_MAJOR);
        rc = -EPROTONOSUPPORT;
    } else if (n < (ssize_t)sizeof r->hdr || r->hdr.header_size < HT_FILE_HEADER_SIZE ||
               r->hdr.header_size > r->file_size) {
        snprintf(err, errlen, "truncated or damaged file header");
    } else {
        ht_file_header h = r->hdr;
        h.crc = 0;
        /* the CRC covers the first 256 bytes, header_size included, whatever
         * a newer minor version appends after them */
        if ((uint32_t)crc32(0, (const Bytef *)&h, sizeof h) != r->hdr.crc) {
            snprintf(err, errlen, "damaged file header (checksum mismatch)");
        } else {
            rc = 0;
        }
    }
    if (rc < 0) {
        close(r->fd);
        r->fd = -1;
        return rc;
    }
    r->offset = r->hdr.header_size;
    r->dctx = ZSTD_createDCtx();
    if (!r->dctx) {
        snprintf(err, errlen, "out of memory");
        close(r->fd);
        return -ENOMEM;
    }
    return 0;
}

static void note_bad(ht_reader *r, uint64_t off, const char *what)
{
    if (r->chunks_bad++ == 0) {
        r->first_bad_offset = off;
        snprintf(r->first_bad_what, sizeof r->first_bad_what, "%s", what);
    }
}

/* Find the next offset after `from` holding a plausible chunk header. */
static uint64_t resync(ht_reader *r, uint64_t from)
{
    uint8_t buf[65536];
    uint64_t off = from;
    while (off + HT_CHUNK_HEADER_SIZE <= r->file_size) {
        ssize_t n = read_at(r->fd, buf, sizeof buf, off);
        if (n < 4) break;
        for (ssize_t i = 0; i + 4 <= n; i++) {
            uint32_t m;
            memcpy(&m, buf + i, 4);
            if (m == HT_CHUNK_MAGIC) return off + (uint64_t)i;
        }
        off += (uint64_t)n - 3;
    }
    return r->file_size;
}

/* Load and verify the chunk at r->offset. 1: loaded; 0: end of file. */
static int load_chunk(ht_reader *r)
{
    for (;;) {
        uint64_t off = r->offset;
        if (off >= r->file_size) return 0;
        ht_chunk_header ch;
        ssize_t n = read_at(r->fd, &ch, sizeof ch, off);
        if (n < 0) return n;
        if ((size_t)n < sizeof ch) {
            r->truncated = 1;
            r->truncated_at = off;
            r->bytes_skipped += r->file_size - off;
            r->offset = r->file_size;
            return 0;
        }
        const char *bad = NULL;
        if (ch.magic != HT_CHUNK_MAGIC) bad = "no chunk header where one was expected";
        else if (ch.header_size < HT_CHUNK_HEADER_SIZE || ch.header_size > 4096) bad = "bad chunk header size";
        else if (ch.raw_size > HT_CHUNK_RAW_MAX || ch.stored_size > HT_CHUNK_RAW_MAX) bad = "chunk too large";
        else if ((ch.flags & ~HT_CHUNK_FLAG_ZSTD) != 0) bad = "unknown chunk flags";
        else if (!(ch.flags & HT_CHUNK_FLAG_ZSTD) && ch.stored_size != ch.raw_size) bad = "inconsistent chunk sizes";
        if (!bad && off + ch.header_size + ch.stored_size > r->file_size) {
            uint64_t next = resync(r, off + 1);
            if (next < r->file_size) { /* a chunk follows: this one is damaged */
                note_bad(r, off, "chunk size points past the end of the file");
                r->bytes_skipped += next - off;
                r->offset = next;
                continue;
            }
            r->truncated = 1;
            r->truncated_at = off;
            r->bytes_skipped += r->file_size - off;
            r->offset = r->file_size;
            return 0;
        }
        if (!bad) {
            if (ht_buf_reserve(&r->stored, ch.stored_size) < 0) return -ENOMEM;
            n = read_at(r->fd, r->stored.data, ch.stored_size, off + ch.header_size);
            if (n < 0) return n;
            if ((size_t)n != ch.stored_size) bad = "short read";
        }
        if (!bad) {
            uLong crc = crc32(0, (const Bytef *)&ch, offsetof(ht_chunk_header, crc));
            if (ch.stored_size) /* crc32(crc, NULL, 0) would restart at 0 */
                crc = crc32(crc, r->stored.data, ch.stored_size);
            if ((uint32_t)crc != ch.crc) bad = "checksum mismatch";
        }
        static const uint8_t empty[1];
        const uint8_t *payload = ch.stored_size ? r->stored.data : empty;
        if (!bad && (ch.flags & HT_CHUNK_FLAG_ZSTD)) {
            if (ht_buf_reserve(&r->raw, ch.raw_size + 1) < 0) return -ENOMEM;
            size_t z = ZSTD_decompressDCtx(r->dctx, r->raw.data, ch.raw_size, r->stored.data, ch.stored_size);
            if (ZSTD_isError(z) || z != ch.raw_size) bad = "undecodable zstd frame";
            payload = ch.raw_size ? r->raw.data : empty;
        }
        if (bad) {
            note_bad(r, off, bad);
            uint64_t next = resync(r, off + 1);
            r->bytes_skipped += next - off;
            r->offset = next;
            continue;
        }
        r->chunk = ch;
        r->chunk_offset = off;
        r->offset = off + ch.header_size + ch.stored_size;
        if (ht_dec_init(&r->dec, r->hdr.major, ch.stream, ch.ts_first, payload, ch.raw_size) < 0) {
            note_bad(r, off, "malformed column table");
            continue;
        }
        r->in_chunk = 1;
        return 1;
    }
}

int ht_reader_next(ht_reader *r, ht_event *ev)
{
    for (;;) {
        if (!r->in_chunk) {
            int rc = load_chunk(r);
            if (rc <= 0) return rc;
        }
        int rc = ht_dec_next(&r->dec, ev);
        if (rc > 0) return 1;
        r->in_chunk = 0;
        if (rc < 0) {
            /* events before the bad record were delivered; count the chunk */
            note_bad(r, r->chunk_offset, "malformed records in chunk");
            continue;
        }
        r->chunks_ok++;
    }
}

const char *ht_reader_problems(const ht_reader *r, char *buf, size_t len)
{
    if (!r->chunks_bad && !r->truncated) return NULL;
    size_t n = 0;
    if (r->chunks_bad)
        n += (size_t)snprintf(buf + n, len - n,
                              "%" PRIu64 " damaged chunk%s skipped (first at offset %" PRIu64 ": %s)",
                              r->chunks_bad, r->chunks_bad == 1 ? "" : "s", r->first_bad_offset,
                              r->first_bad_what);
    if (r->truncated && n < len)
        snprintf(buf + n, len - n, "%sfile truncated at offset %" PRIu64 " (%" PRIu64 " bytes of an incomplete chunk ignored)",
                 n ? "; " : "", r->truncated_at, r->file_size - r->truncated_at);
    return buf;
}

void ht_reader_close(ht_reader *r)
{
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    ZSTD_freeDCtx(r->dctx);
    r->dctx = NULL;
    ht_buf_free(&r->stored);
    ht_buf_free(&r->raw);
}
