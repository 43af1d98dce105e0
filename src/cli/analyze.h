/* analyze.h - the shared pass of `report` and `export` (analyze.c). */
#ifndef HT_ANALYZE_H
#define HT_ANALYZE_H

#include "../analysis/profile.h"
#include "../analysis/stacktab.h"
#include "../format/format.h"

struct ht_symbolizer;

/* Symbol options of dump, report and export. */
enum { HT_OPT_NO_SYMBOLS = 1100, HT_OPT_DEBUG_DIR, HT_OPT_SYSROOT };
#define HT_SYMBOL_LONGOPTS                                                                             \
    {"no-symbols", no_argument, 0, HT_OPT_NO_SYMBOLS}, {"debug-dir", required_argument, 0, HT_OPT_DEBUG_DIR}, \
    {"sysroot", required_argument, 0, HT_OPT_SYSROOT}
#define HT_SYMBOL_HELP                                                                     \
    "      --no-symbols         raw frames (module+offset), no symbol lookup\n"             \
    "      --debug-dir DIR      a directory of separate debug files (build-id tree or\n"    \
    "                           debuglink names)\n"                                          \
    "      --sysroot DIR        read the traced program's files under DIR (a trace from\n"  \
    "                           another machine)\n"
typedef struct ht_symbol_opts {
    int off;
    const char *debug_dir, *sysroot;
} ht_symbol_opts;
/* 1: c was a symbol option (taken), 0: not one, -1: bad value (said). */
int ht_symbol_opt(int c, const char *optarg, ht_symbol_opts *o, const char *verb);

/* --pid and --heap of report and export. */
enum { HT_OPT_PID = 1110, HT_OPT_HEAP };
#define HT_FILTER_LONGOPTS {"pid", required_argument, 0, HT_OPT_PID}, {"heap", required_argument, 0, HT_OPT_HEAP}
#define HT_FILTER_HELP                                                      \
    "      --pid PID            only this process of the trace\n"          \
    "      --heap HANDLE        only this heap (1: the libc heap)\n"
/* 1: c was a filter option (taken), 0: not one, -1: bad value (said). */
int ht_filter_opt(int c, const char *optarg, ht_prof_opts *o, const char *verb);

typedef struct ht_analysis {
    ht_prof prof;               /* finished */
    ht_stacktab *stk;           /* never NULL after success */
    struct ht_symbolizer *sym;
    ht_file_header hdr;
    int damaged;                /* the trace had damage (already said on stderr) */
} ht_analysis;

/* Reads the whole trace (a progress line on stderr when it is a terminal).
 * 0: done (a->damaged tells whether parts were skipped); else an exit code,
 * the reason said. */
int ht_analyze(const char *path, const ht_prof_opts *po, const ht_symbol_opts *so, ht_analysis *a);
void ht_analysis_free(ht_analysis *a);

/* "1.5", "1.5s", "200ms", "30us", "100ns", "2m" -> ns; -1 on error. */
int ht_parse_time(const char *s, uint64_t *ns);

#endif
