/*
 * events.h - the event vocabulary shared by runtime, collector and readers:
 * event kinds, the API that made a libc event, and the fixed-layout records
 * the runtime writes into shared memory.
 *
 * Invariants:
 *  - Values of ht_kind and ht_api are part of the trace format (FORMAT.md);
 *    never renumber, only append.
 *  - Shared-memory records are 8-byte aligned, start with ht_rec_hdr and are
 *    hdr.words * 8 bytes long.  The reader of shared memory checks that
 *    length against the kind's minimum and the buffer's committed size.
 */
#ifndef HT_EVENTS_H
#define HT_EVENTS_H

#include <stdint.h>

/* Event kinds.  1..14: heap events with a fixed encoding in the file (new
 * ones need a new major format version); 64..: metadata records that carry
 * their own length in the file (new ones: a minor version). */
enum ht_kind {
    HT_EV_ALLOC = 1,
    HT_EV_FREE = 2,
    HT_EV_REALLOC = 3,
    HT_EV_HEAP_CREATE = 64,
    HT_EV_HEAP_DESTROY = 65,
    HT_EV_MARKER = 66,
    HT_EV_LOST = 67,
    HT_EV_THREAD = 68,
    HT_EV_PROCESS = 69,
    HT_EV_PROCESS_END = 70,
    HT_EV_SESSION_START = 71,
    HT_EV_SESSION_END = 72,
    HT_EV_STACK = 73,  /* a call stack: id, frames */
    HT_EV_MODULE = 74, /* a loaded object: where, which file, build id */
};

/* Session stack options (shm header, written by the collector). */
enum ht_stack_mode { HT_STACKS_NONE = 0, HT_STACKS_FP = 1, HT_STACKS_DWARF = 2 };
#define HT_STACK_ON_ALLOC 1u   /* which heap events get a stack */
#define HT_STACK_ON_FREE 2u
#define HT_STACK_ON_REALLOC 4u
#define HT_STACK_DEPTH_MAX 200

/* The API that produced a libc-heap event (custom heaps use HT_API_HEAP). */
enum ht_api {
    HT_API_NONE = 0,
    HT_API_MALLOC = 1,
    HT_API_CALLOC = 2,
    HT_API_REALLOC = 3,
    HT_API_REALLOCARRAY = 4,
    HT_API_MEMALIGN = 5,
    HT_API_POSIX_MEMALIGN = 6,
    HT_API_ALIGNED_ALLOC = 7,
    HT_API_VALLOC = 8,
    HT_API_PVALLOC = 9,
    HT_API_FREE = 10,
    HT_API_NEW = 11,
    HT_API_NEW_ARRAY = 12,
    HT_API_DELETE = 13,
    HT_API_DELETE_ARRAY = 14,
    HT_API_HEAP = 15, /* reported through the public custom-heap API */
    HT_API_COUNT
};

const char *ht_kind_name(unsigned kind);
const char *ht_api_name(unsigned api);
const char *ht_source_name(unsigned source);

/* ---- shared-memory records (runtime -> collector) ---- */

typedef struct ht_rec_hdr {
    uint8_t kind;   /* enum ht_kind */
    uint8_t api;    /* enum ht_api */
    uint8_t source; /* ht_source */
    uint8_t words;  /* total record length in 8-byte words */
    uint32_t heap;  /* heap handle (1 = libc) */
    uint64_t ts;    /* raw clock (TSC ticks or CLOCK_MONOTONIC ns) */
} ht_rec_hdr;

typedef struct ht_rec_alloc { ht_rec_hdr h; uint64_t addr, size; } ht_rec_alloc;
typedef struct ht_rec_free { ht_rec_hdr h; uint64_t addr; } ht_rec_free;
typedef struct ht_rec_realloc {
    ht_rec_hdr h;
    uint64_t new_addr, new_size, old_addr, old_size;
} ht_rec_realloc;
typedef struct ht_rec_lost { ht_rec_hdr h; uint64_t count; } ht_rec_lost;
/* Written at the start of every sub-buffer a thread takes. */
typedef struct ht_rec_thread {
    ht_rec_hdr h;
    uint32_t tid, _pad;
    char name[16];
} ht_rec_thread;
/* HEAP_CREATE: flags then a NUL-terminated name, padded to 8 bytes.
 * MARKER: a NUL-terminated text padded to 8 bytes.  HEAP_DESTROY: hdr only. */
typedef struct ht_rec_text { ht_rec_hdr h; uint32_t flags, len; char text[]; } ht_rec_text;

/* A heap event with a stack has 8 more bytes: the stack's 64-bit hash
 * (never 0).  The first time a thread uses a hash it writes the frames
 * first, as a STACK record (hash, count, return addresses innermost first). */
typedef struct ht_rec_stack { ht_rec_hdr h; uint64_t hash; uint32_t n, _pad; uint64_t frames[]; } ht_rec_stack;
/* MODULE: an object's executable segment [start, end) mapped from file
 * offset `offset`, its load bias; then build id (build_id_len bytes) and
 * the NUL-terminated path, padded to 8 bytes. */
typedef struct ht_rec_module {
    ht_rec_hdr h;
    uint64_t start, end, offset, bias;
    uint32_t build_id_len, path_len;
    uint8_t data[]; /* build id, then path */
} ht_rec_module;

#define HT_HEAP_NAME_MAX 63
#define HT_MARKER_MAX 255

#endif
