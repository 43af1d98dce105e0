/* cli.h - the heaptrace command's verbs and shared helpers. */
#ifndef HT_CLI_H
#define HT_CLI_H

#include <stdint.h>
#include <stdio.h>

int ht_cmd_record(int argc, char **argv);
int ht_cmd_dump(int argc, char **argv);
int ht_cmd_summary(int argc, char **argv);
int ht_cmd_attach(int argc, char **argv);
int ht_cmd_detach(int argc, char **argv);
int ht_cmd_status(int argc, char **argv);
int ht_cmd_ps(int argc, char **argv);
int ht_cmd_report(int argc, char **argv);
int ht_cmd_export(int argc, char **argv);

/* Session options shared by record and attach (record.c). */
enum { HT_OPT_STACKS = 1000, HT_OPT_DEPTH, HT_OPT_STACK_EVENTS };
#define HT_STACK_LONGOPTS                                                                   \
    {"stacks", required_argument, 0, HT_OPT_STACKS}, {"depth", required_argument, 0, HT_OPT_DEPTH}, \
    {"stack-events", required_argument, 0, HT_OPT_STACK_EVENTS}
#define HT_STACK_HELP                                                                        \
    "      --stacks none|fp|dwarf  record call stacks: fp walks frame pointers (fast;\n"       \
    "                           needs code built with them), dwarf unwinds with the\n"        \
    "                           call-frame information (any code); default none\n"           \
    "      --depth N            frames per stack (default 64, at most 200)\n"                 \
    "      --stack-events LIST  events that get a stack: alloc,realloc,free,all\n"          \
    "                           (default alloc,realloc)\n"
struct ht_collect_opts;
struct ht_collect_stats;
void ht_session_opts_default(struct ht_collect_opts *o);
int ht_session_opt(int c, const char *optarg, struct ht_collect_opts *o);
struct ht_collector;
/* Runs the collector to the session's end, then takes its statistics and
 * this process's CPU time and destroys it; returns ht_collector_run's. */
int ht_run_session(struct ht_collector *col, int pid, int *status, struct ht_collect_stats *st, double *cpu_s);
void ht_print_session_stats(const char *what, const char *path, const struct ht_collect_stats *st,
                            double cpu_s);

/* The option getopt just refused, as the user wrote it ("-x" inside a
 * cluster such as "-xyz", or the whole "--long" word). */
const char *ht_optname(char **argv);

/* "heaptrace: <fmt>\n" on stderr. */
void ht_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse "64K", "1M", "4096" into bytes; -1 on error. */
int ht_parse_size(const char *s, uint64_t *out);

/* Opens a trace for reading, printing one clear line on failure.
 * Returns 0 or nonzero exit code. */
struct ht_reader;
int ht_open_trace(struct ht_reader *r, const char *path);
/* After reading: prints the reader's problems, returns 1 if any. */
int ht_report_problems(const struct ht_reader *r);

/* The per-user directory for control sockets ($XDG_RUNTIME_DIR/heaptrace or
 * /tmp/heaptrace-UID), created mode 0700 and checked to be ours and private.
 * 0 or -errno (-EPERM: exists but is not private). */
int ht_runtime_dir(char *out, size_t len);

/* Summary of a trace file, printed to out; returns an exit code. */
int ht_print_summary_of(const char *path, FILE *out);

#endif
