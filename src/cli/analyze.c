/* analyze.c - the one pass of `report` and `export` over a trace: every
 * record into the profile and, when the trace has stacks, the stack table
 * (symbolized lazily with the symbols module). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../analysis/symbols.h"
#include "analyze.h"
#include "cli.h"

int ht_symbol_opt(int c, const char *optarg, ht_symbol_opts *o, const char *verb)
{
    switch (c) {
    case HT_OPT_NO_SYMBOLS: o->off = 1; return 1;
    case HT_OPT_DEBUG_DIR:
    case HT_OPT_SYSROOT:
        if (strchr(optarg, ':')) {
            ht_err("%s: %s must not contain ':'", verb, c == HT_OPT_DEBUG_DIR ? "--debug-dir" : "--sysroot");
            return -1;
        }
        *(c == HT_OPT_DEBUG_DIR ? &o->debug_dir : &o->sysroot) = optarg;
        return 1;
    default: return 0;
    }
}

int ht_filter_opt(int c, const char *optarg, ht_prof_opts *o, const char *verb)
{
    if (c != HT_OPT_PID && c != HT_OPT_HEAP) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(optarg, &end, c == HT_OPT_PID ? 10 : 0);
    if (errno || *end || !*optarg || *optarg == '-' || (c == HT_OPT_PID && v > UINT32_MAX)) {
        ht_err("%s: %s needs %s, not '%s'", verb, c == HT_OPT_PID ? "--pid" : "--heap",
               c == HT_OPT_PID ? "a process id" : "a heap handle", optarg);
        return -1;
    }
    if (c == HT_OPT_PID) o->pid = (uint32_t)v, o->have_pid = 1;
    else o->heap = v, o->have_heap = 1;
    return 1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int ht_analyze(const char *path, const ht_prof_opts *po, const ht_symbol_opts *so, ht_analysis *a)
{
    memset(a, 0, sizeof *a);
    ht_reader r;
    if (ht_open_trace(&r, path)) return 1;
    a->hdr = r.hdr;
    ht_prof_init(&a->prof, po);
    int progress = isatty(2);
    double next = progress ? now_s() + 0.5 : 0;
    int shown = 0, said = 0;
    ht_event ev;
    int rc;
    uint64_t n = 0;
    while ((rc = ht_reader_next(&r, &ev)) > 0) {
        if (ev.kind == HT_EV_STACK || ev.kind == HT_EV_MODULE) {
            if (!a->stk) {
                if (!so->off) a->sym = ht_sym_new(so->sysroot, so->debug_dir);
                if (!so->off && !a->sym && ht_sym_unavailable() && !said) {
                    ht_err("%s", ht_sym_unavailable());
                    said = 1;
                }
                a->stk = ht_stk_new(a->sym);
            }
            if (a->stk) ht_stk_event(a->stk, &ev);
        }
        ht_prof_event(&a->prof, &ev);
        if (progress && (++n & 0xffff) == 0 && now_s() >= next) {
            fprintf(stderr, "\rreading %s: %3.0f%% (%.1fM records)", path,
                    r.file_size ? 100.0 * (double)r.offset / (double)r.file_size : 0.0, (double)n / 1e6);
            shown = 1;
            next = now_s() + 0.25;
        }
    }
    if (shown) fprintf(stderr, "\r\033[K");
    if (!a->stk) a->stk = ht_stk_new(NULL);
    ht_prof_finish(&a->prof);
    a->damaged = rc < 0 || ht_report_problems(&r);
    ht_reader_close(&r);
    if (!a->stk || a->prof.oom) {
        ht_err("%s: out of memory while analysing the trace", path);
        ht_analysis_free(a);
        return 1;
    }
    return 0;
}

void ht_analysis_free(ht_analysis *a)
{
    ht_stk_free(a->stk);
    a->stk = NULL;
    if (a->sym) ht_sym_free(a->sym);
    a->sym = NULL;
    ht_prof_free(&a->prof);
}

/* "1.5", "1.5s", "200ms", "30us", "100ns", "2m" -> ns; -1 on error. */
int ht_parse_time(const char *s, uint64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v != v) return -1;
    double mul = 1e9;
    if (!strcmp(end, "") || !strcmp(end, "s")) mul = 1e9;
    else if (!strcmp(end, "ms")) mul = 1e6;
    else if (!strcmp(end, "us")) mul = 1e3;
    else if (!strcmp(end, "ns")) mul = 1;
    else if (!strcmp(end, "m") || !strcmp(end, "min")) mul = 60e9;
    else return -1;
    double x = v * mul;
    if (x > 1.8e19) return -1;
    *ns = (uint64_t)(x + 0.5);
    return 0;
}
