/*
 * export.h - a trace's profile (profile.h, after ht_prof_finish) written in
 * the formats other tools read.  Each writer streams to `out` and returns 0,
 * or -errno (-EIO: a write failed; the caller also checks fflush/fclose).
 *
 * Sites are (process, call stack) pairs; their frames come from the stack
 * table (stacktab.h), innermost first.  A site without a stack (stack 0, or
 * an id the trace never defined) is exported as one frame named
 * "[no call stack]" so totals stay complete.
 */
#ifndef HT_EXPORT_H
#define HT_EXPORT_H

#include <stdio.h>

#include "../format/format.h"
#include "profile.h"
#include "stacktab.h"

/* What the folded (and other single-valued) output weighs stacks by. */
enum ht_export_value {
    HT_VALUE_ALLOC_BYTES,  /* bytes allocated (default) */
    HT_VALUE_ALLOC_COUNT,  /* allocations */
    HT_VALUE_LEAK_BYTES,   /* bytes live at the end */
    HT_VALUE_PEAK_BYTES,   /* bytes live at the peak */
    HT_VALUE_TEMPORARY,    /* temporary allocations */
};

typedef struct ht_export_ctx {
    const ht_prof *prof;         /* finished */
    ht_stacktab *stk;            /* never NULL (may hold no stacks) */
    const ht_file_header *hdr;   /* the trace's file header (start time, host) */
    const char *trace_path;      /* for descriptions */
    int value;                   /* enum ht_export_value (folded) */
} ht_export_ctx;

/* pprof: gzipped profile.proto; sample types alloc_objects/count,
 * alloc_space/bytes, inuse_objects/count, inuse_space/bytes (in use = live
 * at the end of the trace). */
int ht_export_pprof(const ht_export_ctx *x, FILE *out);
/* massif.out (valgrind's massif format), read by ms_print and
 * massif-visualizer: snapshots of the live bytes over time, the peak one
 * detailed with its heap tree. */
int ht_export_massif(const ht_export_ctx *x, FILE *out);
/* Collapsed stacks, outermost frame first: "frame;frame;frame value". */
int ht_export_folded(const ht_export_ctx *x, FILE *out);
/* Chrome trace event JSON: a live-bytes counter track per process, markers
 * as instant events, process and thread names as metadata. */
int ht_export_chrome(const ht_export_ctx *x, FILE *out);

#endif
