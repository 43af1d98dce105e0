/*
 * summary.h - the end-of-run summary: the headline figures of a trace's
 * profile (profile.h), the block `record` prints at exit and `summary FILE`
 * prints, so both print the same thing and agree with `report`.
 */
#ifndef HT_SUMMARY_H
#define HT_SUMMARY_H

#include <stdint.h>
#include <stdio.h>

#include "profile.h"

struct ht_stacktab;

/* Prints the summary block of a finished profile (live blocks = leaks at the end). */
void ht_summary_print(const ht_prof *p, FILE *out);
/* With call stacks: the top allocation sites (bytes allocated) and the
 * sites of the blocks live at the end, named by their first frame that is
 * not allocator plumbing.  Prints nothing without stacks. */
void ht_summary_print_sites(const ht_prof *p, struct ht_stacktab *stk, FILE *out, int top);

/* Human-readable sizes and times into buf ("1.5 MiB", "12.3 ms"). */
const char *ht_fmt_bytes(uint64_t b, char *buf, size_t len);
const char *ht_fmt_ns(uint64_t ns, char *buf, size_t len);

#endif
