/* main.c - the heaptrace command: verb dispatch, help, shared helpers. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../format/format.h"
#include "cli.h"

#ifndef HT_VERSION_STRING
#define HT_VERSION_STRING "0.1.0"
#endif

void ht_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("heaptrace: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *ht_optname(char **argv)
{
    static char buf[3];
    if (optopt > 0 && optopt < 128) { /* a short option, maybe inside a cluster: argv[optind-1] is not it */
        buf[0] = '-';
        buf[1] = (char)optopt;
        return buf;
    }
    return argv[optind - 1];
}

int ht_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-') return -1;
    uint64_t mul = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mul = 1024; break;
        case 'm': case 'M': mul = 1024 * 1024; break;
        case 'g': case 'G': mul = 1024ull * 1024 * 1024; break;
        default: return -1;
        }
        end++;
        if (*end == 'i') end++;
        if (*end == 'B' || *end == 'b') end++;
        if (*end) return -1;
    }
    if (v > UINT64_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

int ht_open_trace(ht_reader *r, const char *path)
{
    char err[256];
    if (ht_reader_open(r, path, err, sizeof err) < 0) {
        ht_err("%s: %s", path, err);
        return 1;
    }
    return 0;
}

int ht_report_problems(const ht_reader *r)
{
    char buf[512];
    const char *p = ht_reader_problems(r, buf, sizeof buf);
    if (!p) return 0;
    ht_err("%s: %s; everything intact was read", r->path, p);
    return 1;
}

static void usage(FILE *f)
{
    fputs("usage: heaptrace <command> [options]\n"
          "\n"
          "Heap-event tracing for Linux: every malloc, free, realloc (the whole family,\n"
          "C++ new/delete, and custom heaps that report themselves) becomes an event.\n"
          "\n"
          "commands:\n"
          "  record [options] -- CMD [ARGS...]   run CMD and record its heap events\n"
          "  dump FILE [--format text|csv|jsonl] print every record of a trace\n"
          "  summary FILE                        totals, peak, leaks of a trace\n"
          "  report FILE [options]               what a trace says: peak, leaks, sites,\n"
          "                                      histograms, mismatches, time ranges\n"
          "  export FILE --format F [-o OUT]     pprof, massif, folded stacks, Chrome JSON\n"
          "  attach [options] PID                record a running process (runtime loaded)\n"
          "  detach PID                          end the session recording PID\n"
          "  status PID                          is PID traced; live session figures\n"
          "  ps                                  processes that can be attached\n"
          "  help [COMMAND]                      this text, or a command's options\n"
          "  version                             print the version\n"
          "\n"
          "Run 'heaptrace COMMAND --help' for a command's options.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "record")) return ht_cmd_record(argc - 1, argv + 1);
    if (!strcmp(cmd, "dump")) return ht_cmd_dump(argc - 1, argv + 1);
    if (!strcmp(cmd, "summary")) return ht_cmd_summary(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return ht_cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return ht_cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "attach")) return ht_cmd_attach(argc - 1, argv + 1);
    if (!strcmp(cmd, "detach")) return ht_cmd_detach(argc - 1, argv + 1);
    if (!strcmp(cmd, "status")) return ht_cmd_status(argc - 1, argv + 1);
    if (!strcmp(cmd, "ps")) return ht_cmd_ps(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2) {
            char *h[] = {argv[2], "--help", NULL};
            if (!strcmp(argv[2], "record")) return ht_cmd_record(2, h);
            if (!strcmp(argv[2], "dump")) return ht_cmd_dump(2, h);
            if (!strcmp(argv[2], "summary")) return ht_cmd_summary(2, h);
            if (!strcmp(argv[2], "report")) return ht_cmd_report(2, h);
            if (!strcmp(argv[2], "export")) return ht_cmd_export(2, h);
            if (!strcmp(argv[2], "attach")) return ht_cmd_attach(2, h);
            if (!strcmp(argv[2], "detach")) return ht_cmd_detach(2, h);
            if (!strcmp(argv[2], "status")) return ht_cmd_status(2, h);
            if (!strcmp(argv[2], "ps")) return ht_cmd_ps(2, h);
        }
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("heaptrace %s (trace format %d.%d)\n", HT_VERSION_STRING, HT_FORMAT_MAJOR, HT_FORMAT_MINOR);
        return 0;
    }
    ht_err("'%s' is not a heaptrace command; see 'heaptrace --help'", cmd);
    return 2;
}
