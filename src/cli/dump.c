/*
 * dump.c - `heaptrace dump FILE [--format text|csv|jsonl]` and
 * `heaptrace summary FILE`.
 *
 * The csv columns and jsonl keys are a stable interface (docs/FORMAT.md,
 * "dump output"): event, ts_ns, pid, tid, heap, api, address, size,
 * new_address, new_size, old_address, old_size, source, detail.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../analysis/stacktab.h"
#include "../analysis/summary.h"
#include "../analysis/symbols.h"
#include "../format/format.h"
#include "analyze.h"
#include "cli.h"

enum { FMT_TEXT, FMT_CSV, FMT_JSONL };

static ht_stacktab *stk; /* stacks and modules met so far */
static char stk_text[16384];

/* The event's stack as text (frames joined by sep), or NULL if none. */
static const char *stack_of(const ht_event *ev, const char *sep)
{
    if (!ev->stack || !stk) return NULL;
    if (!ht_stk_format(stk, ev->pid, ev->stack, sep, stk_text, sizeof stk_text)) return NULL;
    return stk_text;
}

/* Text of a metadata record (names, markers, counts) for the detail field. */
static void detail(const ht_event *ev, char *buf, size_t len)
{
    int tl = (int)ev->text_len;
    switch (ev->kind) {
    case HT_EV_LOST: snprintf(buf, len, "%" PRIu64, ev->arg[0]); break;
    case HT_EV_PROCESS_END:
        if (ev->nargs > 2 && ev->arg[2] == 2) snprintf(buf, len, "unknown (no exit report)");
        else if (ev->arg[1]) snprintf(buf, len, "signal %" PRIu64, ev->arg[1]);
        else snprintf(buf, len, "exit %" PRIu64, ev->arg[0]);
        break;
    case HT_EV_SESSION_START:
        snprintf(buf, len, "mode=%s buffer_size=%" PRIu64 " buffers=%" PRIu64 " flush_ms=%" PRIu64 " command=%.*s",
                 ev->arg[0] ? "drop" : "block", ev->arg[1], ev->arg[2], ev->arg[3], tl, ev->text);
        break;
    case HT_EV_SESSION_END:
        snprintf(buf, len, "events=%" PRIu64 " lost=%" PRIu64 " buffers=%" PRIu64 " damaged=%" PRIu64,
                 ev->arg[0], ev->arg[1], ev->arg[2], ev->arg[3]);
        break;
    case HT_EV_PROCESS:
        snprintf(buf, len, "ppid=%" PRIu64 " command=%.*s", ev->arg[0], tl, ev->text);
        break;
    case HT_EV_STACK: snprintf(buf, len, "id=%" PRIu64 " frames=%u", ev->arg[0], ev->text_len / 8); break;
    case HT_EV_MODULE: {
        const uint8_t *x = (const uint8_t *)ev->text;
        unsigned bl = tl ? x[0] : 0;
        if (1 + (int)bl > tl) bl = tl ? (unsigned)tl - 1 : 0;
        char bid[2 * 64 + 1] = "";
        for (unsigned i = 0; i < bl && i < 64; i++) snprintf(bid + 2 * i, 3, "%02x", x[1 + i]);
        int pl = tl - 1 - (int)bl;
        snprintf(buf, len, "0x%" PRIx64 "-0x%" PRIx64 " offset=0x%" PRIx64 " bias=0x%" PRIx64 " build_id=%s path=%.*s",
                 ev->arg[0], ev->arg[1], ev->arg[2], ev->arg[3], *bid ? bid : "-", pl > 0 ? pl : 0,
                 tl ? (const char *)x + 1 + bl : "");
        break;
    }
    default: snprintf(buf, len, "%.*s", tl, ev->text ? ev->text : ""); break;
    }
}

static void put_escaped(FILE *f, const char *s, int json)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (json) {
            if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
            else if (ch < 0x20 || ch == 0x7f) fprintf(f, "\\u%04x", ch);
            else fputc(ch, f);
        } else {
            if (ch == '"') fputs("\"\"", f);
            else fputc(ch < 0x20 ? ' ' : ch, f);
        }
    }
}

static int is_heap_event(unsigned k) { return k == HT_EV_ALLOC || k == HT_EV_FREE || k == HT_EV_REALLOC; }

static void dump_text(FILE *f, const ht_event *ev)
{
    fprintf(f, "%" PRIu64 ".%09" PRIu64 " %u/%u %-8s", ev->ts / 1000000000u, ev->ts % 1000000000u,
            ev->pid, ev->tid, ht_kind_name(ev->kind));
    if (is_heap_event(ev->kind)) {
        fprintf(f, " %-14s heap=%" PRIu64 " ", ht_api_name(ev->api), ev->heap);
        if (ev->kind == HT_EV_ALLOC) fprintf(f, "addr=0x%" PRIx64 " size=%" PRIu64, ev->addr, ev->size);
        else if (ev->kind == HT_EV_FREE) fprintf(f, "addr=0x%" PRIx64, ev->addr);
        else
            fprintf(f, "new=0x%" PRIx64 " new_size=%" PRIu64 " old=0x%" PRIx64 " old_size=%" PRIu64, ev->addr,
                    ev->size, ev->old_addr, ev->old_size);
        fprintf(f, " %s", ht_source_name(ev->source));
        if (ev->stack) fprintf(f, " stack=%u", ev->stack);
        fputc('\n', f);
        const char *st = stack_of(ev, "\n    ");
        if (st) fprintf(f, "    %s\n", st);
        return;
    }
    char d[1400];
    detail(ev, d, sizeof d);
    if (ev->kind == HT_EV_HEAP_CREATE || ev->kind == HT_EV_HEAP_DESTROY) fprintf(f, " heap=%" PRIu64, ev->heap);
    fprintf(f, " %s\n", d);
}

static void dump_csv(FILE *f, const ht_event *ev)
{
    fprintf(f, "%s,%" PRIu64 ",%u,%u,", ht_kind_name(ev->kind), ev->ts, ev->pid, ev->tid);
    if (ev->heap || is_heap_event(ev->kind)) fprintf(f, "%" PRIu64, ev->heap);
    fputc(',', f);
    if (is_heap_event(ev->kind)) fputs(ht_api_name(ev->api), f);
    fputc(',', f);
    switch (ev->kind) {
    case HT_EV_ALLOC: fprintf(f, "0x%" PRIx64 ",%" PRIu64 ",,,,,", ev->addr, ev->size); break;
    case HT_EV_FREE: fprintf(f, "0x%" PRIx64 ",,,,,,", ev->addr); break;
    case HT_EV_REALLOC:
        fprintf(f, ",,0x%" PRIx64 ",%" PRIu64 ",0x%" PRIx64 ",%" PRIu64 ",", ev->addr, ev->size, ev->old_addr,
                ev->old_size);
        break;
    default: fputs(",,,,,,", f); break;
    }
    if (is_heap_event(ev->kind)) fputs(ht_source_name(ev->source), f);
    fputc(',', f);
    if (!is_heap_event(ev->kind)) {
        char d[1400];
        detail(ev, d, sizeof d);
        fputc('"', f);
        put_escaped(f, d, 0);
        fputc('"', f);
    }
    fputc(',', f);
    const char *st = stack_of(ev, ";");
    if (st) {
        fputc('"', f);
        put_escaped(f, st, 0);
        fputc('"', f);
    }
    fputc('\n', f);
}

static void dump_jsonl(FILE *f, const ht_event *ev)
{
    fprintf(f, "{\"event\":\"%s\",\"ts_ns\":%" PRIu64 ",\"pid\":%u,\"tid\":%u", ht_kind_name(ev->kind), ev->ts,
            ev->pid, ev->tid);
    if (ev->heap || is_heap_event(ev->kind)) fprintf(f, ",\"heap\":%" PRIu64, ev->heap);
    switch (ev->kind) {
    case HT_EV_ALLOC:
        fprintf(f, ",\"api\":\"%s\",\"address\":\"0x%" PRIx64 "\",\"size\":%" PRIu64, ht_api_name(ev->api), ev->addr,
                ev->size);
        break;
    case HT_EV_FREE: fprintf(f, ",\"api\":\"%s\",\"address\":\"0x%" PRIx64 "\"", ht_api_name(ev->api), ev->addr); break;
    case HT_EV_REALLOC:
        fprintf(f,
                ",\"api\":\"%s\",\"new_address\":\"0x%" PRIx64 "\",\"new_size\":%" PRIu64
                ",\"old_address\":\"0x%" PRIx64 "\",\"old_size\":%" PRIu64,
                ht_api_name(ev->api), ev->addr, ev->size, ev->old_addr, ev->old_size);
        break;
    default: {
        char d[1400];
        detail(ev, d, sizeof d);
        fputs(",\"detail\":\"", f);
        put_escaped(f, d, 1);
        fputc('"', f);
    }
    }
    if (is_heap_event(ev->kind)) fprintf(f, ",\"source\":\"%s\"", ht_source_name(ev->source));
    const char *st = stack_of(ev, ";");
    if (st) {
        fputs(",\"stack\":\"", f);
        put_escaped(f, st, 1);
        fputc('"', f);
    }
    fputs("}\n", f);
}

int ht_cmd_dump(int argc, char **argv)
{
    static const struct option lo[] = {{"format", required_argument, 0, 'F'}, {"help", no_argument, 0, 'h'},
                                       HT_SYMBOL_LONGOPTS, {0, 0, 0, 0}};
    int fmt = FMT_TEXT, c;
    ht_symbol_opts so = {0};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":F:h", lo, NULL)) != -1) {
        if (c == 'h') {
            puts("usage: heaptrace dump FILE [--format text|csv|jsonl] [--no-symbols]\n"
                 "                      [--debug-dir DIR] [--sysroot DIR]\n\n"
                 "Prints every record of a trace in time order within each process.\n"
                 "csv columns / jsonl keys: event, ts_ns, pid, tid, heap, api, address, size,\n"
                 "new_address, new_size, old_address, old_size, source, detail, stack.\n"
                 "Stacks (recorded with --stacks) are symbolized from the object files on this\n"
                 "machine: --sysroot DIR reads them under DIR (a trace from another machine),\n"
                 "--debug-dir DIR adds a directory of separate debug files, --no-symbols prints\n"
                 "module+offset only.");
            return 0;
        }
        if (c == ':') {
            ht_err("dump: option '%s' needs a value", argv[optind - 1]);
            return 2;
        }
        int so_rc = ht_symbol_opt(c, optarg, &so, "dump");
        if (so_rc < 0) return 2;
        if (so_rc) continue;
        if (c != 'F') {
            ht_err("dump: unknown option '%s'; see 'heaptrace dump --help'", ht_optname(argv));
            return 2;
        }
        if (!strcmp(optarg, "text")) fmt = FMT_TEXT;
        else if (!strcmp(optarg, "csv")) fmt = FMT_CSV;
        else if (!strcmp(optarg, "jsonl") || !strcmp(optarg, "json")) fmt = FMT_JSONL;
        else {
            ht_err("--format must be text, csv or jsonl, not '%s'", optarg);
            return 2;
        }
    }
    if (optind != argc - 1) {
        ht_err("usage: heaptrace dump FILE [--format text|csv|jsonl]");
        return 2;
    }
    int symbols = !so.off;
    ht_symbolizer *sym = symbols ? ht_sym_new(so.sysroot, so.debug_dir) : NULL;
    stk = ht_stk_new(sym);
    ht_reader r;
    if (ht_open_trace(&r, argv[optind])) return 1;
    if (fmt == FMT_CSV)
        puts("event,ts_ns,pid,tid,heap,api,address,size,new_address,new_size,old_address,old_size,source,detail,"
             "stack");
    ht_event ev;
    int rc;
    while ((rc = ht_reader_next(&r, &ev)) > 0) {
        if (stk && (ev.kind == HT_EV_STACK || ev.kind == HT_EV_MODULE)) {
            if (symbols && !sym && ht_sym_unavailable()) {
                ht_err("%s", ht_sym_unavailable());
                symbols = 0; /* said once */
            }
            ht_stk_event(stk, &ev);
        }
        if (fmt == FMT_TEXT) dump_text(stdout, &ev);
        else if (fmt == FMT_CSV) dump_csv(stdout, &ev);
        else dump_jsonl(stdout, &ev);
    }
    int bad = rc < 0 || ht_report_problems(&r);
    if (fflush(stdout) != 0) {
        ht_err("writing output failed");
        bad = 1;
    }
    ht_reader_close(&r);
    ht_stk_free(stk);
    stk = NULL;
    if (sym) ht_sym_free(sym);
    return bad ? 1 : 0;
}

int ht_print_summary_of(const char *path, FILE *out)
{
    /* the report's pass: the summary is its headline, so the two agree */
    ht_analysis a;
    ht_symbol_opts so = {0};
    int rc = ht_analyze(path, NULL, &so, &a);
    if (rc) return rc;
    ht_summary_print(&a.prof, out);
    ht_summary_print_sites(&a.prof, a.stk, out, 10);
    int bad = a.damaged;
    ht_analysis_free(&a);
    return bad ? 1 : 0;
}

int ht_cmd_summary(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: heaptrace summary FILE\n\n"
             "Prints the totals, peak live bytes and when, and the blocks live at the end\n"
             "(leaks) of a trace: the summary that 'heaptrace record' prints at exit.");
        return 0;
    }
    if (argc != 2) {
        ht_err("usage: heaptrace summary FILE");
        return 2;
    }
    return ht_print_summary_of(argv[1], stdout);
}
