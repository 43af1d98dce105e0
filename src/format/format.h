/*
 * format.h - the .htrace file format, version 2 (see docs/FORMAT.md, which
 * is the normative description; keep the two in step).
 *
 *   file   = header (256 bytes) chunk*
 *   chunk  = chunk header (48 bytes) payload (zstd frames or raw bytes)
 *   payload decodes to records in timestamp order for one stream (process).
 *
 * Library conventions: functions return 0 (or a count) on success and a
 * negative errno-style value on failure; readers never trust a length.
 */
#ifndef HT_FORMAT_H
#define HT_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/events.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the format is written little-endian");

#define HT_FILE_MAGIC "\x89HTRACE\n"
#define HT_FORMAT_MAJOR 2 /* 2: column payloads; 1.x (row payloads) is still read */
#define HT_FORMAT_MINOR 0
#define HT_FILE_HEADER_SIZE 256u
#define HT_CHUNK_MAGIC 0x4b435448u /* "HTCK" */
#define HT_CHUNK_HEADER_SIZE 48u
#define HT_CHUNK_RAW_MAX (64u << 20)
#define HT_CHUNK_FLAG_ZSTD 1u
#define HT_STREAM_SESSION 0u /* stream of session-wide records */

typedef struct ht_file_header {
    char magic[8];
    uint16_t major, minor;
    uint32_t header_size;
    uint32_t flags;
    uint32_t crc; /* crc32 of the header_size bytes with this field zero */
    uint64_t start_mono_ns; /* CLOCK_MONOTONIC at ts 0 */
    uint64_t start_real_ns; /* CLOCK_REALTIME at ts 0 */
    uint64_t start_raw;     /* raw clock at ts 0 */
    uint64_t raw_per_sec;   /* raw clock rate (TSC Hz), 1e9 for CLOCK_MONOTONIC */
    uint32_t clock;         /* enum ht_clock */
    uint32_t collector_pid;
    char hostname[64];
    char kernel[64];
    char machine[16];
    uint8_t reserved[256 - 208];
} ht_file_header;
_Static_assert(sizeof(ht_file_header) == HT_FILE_HEADER_SIZE, "file header size");

typedef struct ht_chunk_header {
    uint32_t magic;
    uint32_t header_size;
    uint32_t stream;    /* pid of the process, 0 for session records */
    uint32_t flags;     /* HT_CHUNK_FLAG_* */
    uint64_t ts_first;  /* ns since session start */
    uint64_t ts_last;
    uint32_t records;
    uint32_t raw_size;     /* decoded payload size */
    uint32_t stored_size;  /* bytes that follow the header */
    uint32_t crc;          /* crc32 of header bytes [0,44) then the stored payload */
} ht_chunk_header;
_Static_assert(sizeof(ht_chunk_header) == HT_CHUNK_HEADER_SIZE, "chunk header size");

/* A decoded record.  Which fields are meaningful depends on `kind`:
 *   ALLOC      heap api source addr size
 *   FREE       heap api source addr
 *   REALLOC    heap api source addr(new) size(new) old_addr old_size
 *   HEAP_CREATE heap, arg[0]=flags, text=name      HEAP_DESTROY heap
 *   MARKER     text                                 LOST arg[0]=count
 *   THREAD     tid, text=name                       PROCESS arg[0]=ppid, text=command line
 *   PROCESS_END arg[0]=exit code, arg[1]=signal (0: exited)
 *   SESSION_START arg = mode, sub-buffer size, sub-buffer count, flush ms; text=command
 *   SESSION_END arg = events, lost, sub-buffers drained, damaged records */
#define HT_EVENT_ARGS 6
typedef struct ht_event {
    uint32_t kind, pid, tid;
    uint8_t api, source;
    uint16_t nargs;
    uint64_t ts; /* ns since session start */
    uint64_t heap;
    uint64_t addr, size, old_addr, old_size;
    uint64_t arg[HT_EVENT_ARGS]; /* arg[0..nargs); the rest is unspecified (heap events: nargs 0) */
    uint32_t stack; /* heap events: id of the call stack (a STACK record), 0 if none */
    const char *text; /* not NUL-terminated; valid until the next read */
    uint32_t text_len;
} ht_event;

/* ---- growable byte buffer ---- */
typedef struct ht_buf {
    uint8_t *data;
    size_t len, cap;
} ht_buf;
int ht_buf_reserve(ht_buf *b, size_t extra);
void ht_buf_free(ht_buf *b);

/* ---- chunk payload encoder / decoder ---- */
/* The record tag byte (FORMAT.md §3). */
#define HT_TAG_KIND 0x03u     /* 1 ALLOC, 2 FREE, 3 REALLOC, 0 metadata */
#define HT_TAG_META 0x00u
#define HT_TAG_APISRC 0x04u   /* an api|source byte follows */
#define HT_TAG_HEAP 0x08u     /* a heap varint follows */
#define HT_TAG_REF1 0x10u     /* the (new) address is a back-reference */
#define HT_TAG_REF2 0x20u     /* REALLOC: the old address is a back-reference */
#define HT_TAG_THREAD 0x40u   /* a tid varint follows */
#define HT_TAG_STACK 0x80u    /* heap events: a stack id follows the body (v1.1) */

#define HT_CODEC_CTX 64      /* per-thread delta state, indexed by tid % 64 */
#define HT_CODEC_HIST 8192   /* back-reference window (addresses), power of 2 */
#define HT_CODEC_SETS 4096   /* encoder's address -> serial cache: 2-way sets, power of 2 */
#define HT_CHUNK_RECORDS_MAX 65536 /* most records a chunk holds (the encoder's capacity) */

/* The columns of a format 2 payload (FORMAT.md §3): every field of a record
 * goes to the column of its kind, in record order. */
enum {
    HT_COL_TAG,   /* one tag byte per record */
    HT_COL_TID,   /* tid (records with tag bit 6) */
    HT_COL_TS,    /* ts delta */
    HT_COL_HDR,   /* api|source bytes, heaps; metadata kind, length, body */
    HT_COL_FREED, /* release-side addresses */
    HT_COL_ALLOC, /* alloc-side addresses */
    HT_COL_SIZE,  /* sizes */
    HT_COL_STACK, /* stack ids */
    HT_NCOLS
};

typedef struct ht_codec_ctx {
    uint32_t tid;
    uint8_t apisrc[4]; /* last api|source<<5 per heap event kind; 0xff: none */
    uint64_t alloc_addr, free_addr, heap;
} ht_codec_ctx;

/* The last HT_CODEC_HIST allocated and freed addresses of the chunk, in
 * order: an address can be sent as "the one allocated (freed) d events ago";
 * with the allocations' sizes (format 2: a realloc's new size is sent as
 * a difference from the size of the block it reallocates). */
typedef struct ht_codec_hist {
    uint32_t nalloc, nfree;
    uint64_t alloc[HT_CODEC_HIST], freed[HT_CODEC_HIST], asize[HT_CODEC_HIST];
} ht_codec_hist;

/* Encoder's cache entry: an address, the serial number of its history
 * entry, and (allocation side) the block's size if below UINT32_MAX. */
typedef struct ht_addr_slot {
    uint64_t addr;
    uint32_t serial, size;
} ht_addr_slot;

/* Encodes the records of one chunk into columns (format 2).  The columns
 * other than HDR have room for HT_CHUNK_RECORDS_MAX records; a record past
 * that is refused with -ENOBUFS (the caller writes the chunk first). */
typedef struct ht_encoder {
    uint8_t *col[HT_NCOLS];  /* write positions (HDR: hdr.data + hdr.len) */
    uint8_t *col0[HT_NCOLS]; /* starts */
    ht_buf hdr;              /* the HDR column, which grows */
    void *map;               /* the other columns, one mapping */
    size_t map_len;
    uint32_t stream, records;
    uint64_t ts_first, ts_last, prev_ts;
    uint32_t prev_tid;
    /* history serials run on across chunks; a chunk's entries are those
     * from abase/fbase on (the cache is cleared when they near wrapping) */
    uint32_t nalloc, nfree, abase, fbase;
    ht_codec_ctx ctx[HT_CODEC_CTX];
    ht_addr_slot acache[HT_CODEC_SETS][2], fcache[HT_CODEC_SETS][2];
} ht_encoder;

/* Starts a chunk (the first call also sets the encoder up: -ENOMEM). */
int ht_enc_reset(ht_encoder *e, uint32_t stream);
int ht_enc_event(ht_encoder *e, const ht_event *ev);
/* Bytes the chunk's payload will have (ht_enc_payload). */
size_t ht_enc_size(const ht_encoder *e);
/* The chunk's payload: the column table (the columns' lengths), then the
 * columns, e->col0[i] .. e->col[i]. */
int ht_enc_payload(const ht_encoder *e, ht_buf *out);
#define HT_ENC_TABLE_MAX (HT_NCOLS * 10)
/* Just the column table, into buf (HT_ENC_TABLE_MAX bytes); its length. */
size_t ht_enc_table(const ht_encoder *e, uint8_t *buf);
/* The heap events without building an ht_event (the collector's path). */
int ht_enc_ev_alloc(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api, unsigned src,
                    uint64_t heap, uint64_t addr, uint64_t size, uint32_t stack);
int ht_enc_ev_free(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api, unsigned src,
                   uint64_t heap, uint64_t addr, uint32_t stack);
int ht_enc_ev_realloc(ht_encoder *e, uint32_t tid, uint64_t ts, unsigned api, unsigned src,
                      uint64_t heap, uint64_t new_addr, uint64_t new_size, uint64_t old_addr,
                      uint64_t old_size, uint32_t stack);
void ht_enc_free(ht_encoder *e); /* releases the encoder's memory */

typedef struct ht_cursor {
    const uint8_t *p, *end;
} ht_cursor;

typedef struct ht_decoder {
    ht_cursor cur[HT_NCOLS];
    ht_cursor *col[HT_NCOLS]; /* format 1: all &cur[0] (one row of fields) */
    int columns;              /* format 2 */
    uint32_t stream;
    uint64_t prev_ts;
    uint32_t prev_tid;
    ht_codec_ctx ctx[HT_CODEC_CTX];
    ht_codec_hist hist;
} ht_decoder;

/* A chunk payload of format `major` (1: rows, 2: columns).  0, or
 * -EBADMSG if its column table is malformed. */
int ht_dec_init(ht_decoder *d, unsigned major, uint32_t stream, uint64_t ts_first, const void *data, size_t len);
/* 1: an event in *ev; 0: end of payload; -EBADMSG: malformed payload. */
int ht_dec_next(ht_decoder *d, ht_event *ev);

/* ---- writer ---- */
typedef struct ht_writer {
    int fd;
    int level;            /* zstd level */
    int tuned;            /* level 1 with per-column parameters (writer.c) */
    uint64_t offset;      /* bytes written */
    uint64_t chunks;
    void *cctx;           /* ZSTD_CCtx */
    ht_buf zbuf;
    ht_file_header hdr;
} ht_writer;

/* Creates (mode 0600) and writes the header.  -errno on failure. */
int ht_writer_open(ht_writer *w, const char *path, const ht_file_header *hdr, int level);
int ht_writer_chunk(ht_writer *w, const ht_encoder *e);
/* Rewrites the header (e.g. a refined clock rate) if the file is seekable. */
int ht_writer_update_header(ht_writer *w, const ht_file_header *hdr);
int ht_writer_close(ht_writer *w);
void ht_file_header_init(ht_file_header *h);

/* ---- reader ---- */
typedef struct ht_reader {
    int fd;
    const char *path;
    uint64_t file_size, offset;
    ht_file_header hdr;
    ht_buf stored, raw;
    void *dctx; /* ZSTD_DCtx */
    ht_decoder dec;
    int in_chunk;
    ht_chunk_header chunk;
    uint64_t chunk_offset;
    /* what went wrong, for one clear message at the end */
    uint64_t chunks_ok, chunks_bad, bytes_skipped;
    uint64_t first_bad_offset;
    char first_bad_what[96];
    int truncated;
    uint64_t truncated_at;
} ht_reader;

/* Opens and checks the header.  On failure returns -errno / -EBADMSG /
 * -EPROTONOSUPPORT (newer major) and writes a one-line reason into err. */
int ht_reader_open(ht_reader *r, const char *path, char *err, size_t errlen);
/* 1: next event; 0: end (intact or not: see ht_reader_problems). */
int ht_reader_next(ht_reader *r, ht_event *ev);
/* A one-line description of skipped damage / truncation, or NULL if clean. */
const char *ht_reader_problems(const ht_reader *r, char *buf, size_t len);
void ht_reader_close(ht_reader *r);

#endif
