/* export.c - `heaptrace export`: a trace in the formats other tools read. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/export.h"
#include "analyze.h"
#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(const ht_export_ctx *, FILE *);
    int binary;
} formats[] = {
    {"pprof", ht_export_pprof, 1},
    {"massif", ht_export_massif, 0},
    {"folded", ht_export_folded, 0},
    {"chrome", ht_export_chrome, 0},
};

static const struct {
    const char *name;
    int value;
} values[] = {
    {"alloc", HT_VALUE_ALLOC_BYTES},   {"allocated", HT_VALUE_ALLOC_BYTES}, {"count", HT_VALUE_ALLOC_COUNT},
    {"allocations", HT_VALUE_ALLOC_COUNT}, {"leaked", HT_VALUE_LEAK_BYTES}, {"leak", HT_VALUE_LEAK_BYTES},
    {"peak", HT_VALUE_PEAK_BYTES},     {"temporary", HT_VALUE_TEMPORARY},
};

static void help(void)
{
    fputs("usage: heaptrace export FILE --format FORMAT [-o OUT] [options]\n"
          "\n"
          "Writes a trace in a format other tools read:\n"
          "  pprof    gzipped profile.proto (go tool pprof, pprof, speedscope): sample types\n"
          "           alloc_objects, alloc_space, inuse_objects, inuse_space (in use = live\n"
          "           at the end of the trace)\n"
          "  massif   valgrind massif.out (ms_print, massif-visualizer): memory over time,\n"
          "           the peak snapshot with its allocation tree\n"
          "  folded   collapsed stacks 'outer;...;inner VALUE' (flamegraph.pl, inferno,\n"
          "           speedscope), weighed by --value\n"
          "  chrome   Chrome trace event JSON (Perfetto UI, chrome://tracing): a live-bytes\n"
          "           counter per process, markers as instant events\n"
          "\n"
          "options:\n"
          "  -f, --format FORMAT      pprof, massif, folded or chrome (required)\n"
          "  -o, --output OUT         the file to write (default: standard output; pprof\n"
          "                           is not written to a terminal)\n"
          "      --value V            folded: alloc (bytes allocated, default), count,\n"
          "                           leaked (live at the end), peak (live at the peak),\n"
          "                           temporary\n"
          HT_FILTER_HELP HT_SYMBOL_HELP
          "\n"
          "A damaged trace is exported as far as it is intact; the damage is named on\n"
          "stderr and the exit status is 1.\n",
          stdout);
}

static mode_t current_umask(void)
{
    mode_t m = umask(0);
    umask(m);
    return m;
}

int ht_cmd_export(int argc, char **argv)
{
    enum { O_VALUE = 1200 };
    static const struct option lo[] = {{"format", required_argument, 0, 'f'},
                                       {"output", required_argument, 0, 'o'},
                                       {"value", required_argument, 0, O_VALUE},
                                       
                                       
                                       {"help", no_argument, 0, 'h'},
                                       HT_SYMBOL_LONGOPTS, HT_FILTER_LONGOPTS,
                                       {0, 0, 0, 0}};
    const char *format = NULL, *out_path = NULL;
    int value = HT_VALUE_ALLOC_BYTES, c;
    ht_symbol_opts so = {0};
    ht_prof_opts po = {0};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:o:h", lo, NULL)) != -1) {
        int s = ht_symbol_opt(c, optarg, &so, "export");
        if (!s) s = ht_filter_opt(c, optarg, &po, "export");
        if (s < 0) return 2;
        if (s) continue;
        switch (c) {
        case 'h': help(); return 0;
        case 'f': format = optarg; break;
        case 'o': out_path = optarg; break;
        case O_VALUE: {
            size_t i;
            for (i = 0; i < sizeof values / sizeof *values; i++)
                if (!strcmp(optarg, values[i].name)) break;
            if (i == sizeof values / sizeof *values) {
                ht_err("export: --value must be alloc, count, leaked, peak or temporary, not '%s'", optarg);
                return 2;
            }
            value = values[i].value;
            break;
        }
        case ':': ht_err("export: option '%s' needs a value", argv[optind - 1]); return 2;
        default: ht_err("export: unknown option '%s'; see 'heaptrace export --help'", ht_optname(argv)); return 2;
        }
    }
    if (optind != argc - 1) {
        ht_err("usage: heaptrace export FILE --format pprof|massif|folded|chrome [-o OUT]");
        return 2;
    }
    if (!format) {
        ht_err("export: which format? --format pprof, massif, folded or chrome");
        return 2;
    }
    size_t fi;
    for (fi = 0; fi < sizeof formats / sizeof *formats; fi++)
        if (!strcmp(format, formats[fi].name)) break;
    if (fi == sizeof formats / sizeof *formats) {
        ht_err("export: unknown format '%s' (pprof, massif, folded or chrome)", format);
        return 2;
    }
    int to_stdout = !out_path || !strcmp(out_path, "-");
    if (to_stdout && formats[fi].binary && isatty(1)) {
        ht_err("export: %s output is binary; not writing it to a terminal (use -o FILE)", format);
        return 2;
    }
    const char *path = argv[optind];
    /* Open the output first: an unwritable one fails before the long pass.
     * A regular file (or a new one) is written under a temporary name and
     * renamed into place at the end, so a failed export leaves no partial
     * file and an existing one untouched; anything else (a device, a pipe)
     * is written directly and never removed. */
    int ofd = -1;
    char tmp[4096] = "";
    if (!to_stdout) {
        struct stat st;
        if (stat(out_path, &st) == 0 && !S_ISREG(st.st_mode)) {
            ofd = open(out_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        } else if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out_path) >= (int)sizeof tmp) {
            errno = ENAMETOOLONG;
        } else {
            ofd = mkstemp(tmp);
            if (ofd >= 0) fchmod(ofd, 0666 & ~current_umask());
        }
        if (ofd < 0) {
            ht_err("export: cannot write %s: %s", out_path, strerror(errno));
            return 1;
        }
    }
    ht_analysis a;
    int rc = ht_analyze(path, &po, &so, &a);
    /* the stream (and its buffer) only now: allocated before the pass it
     * shifted the analysis's heap layout and cost 15% of its speed */
    FILE *out = rc || to_stdout ? stdout : fdopen(ofd, "w");
    if (rc || !out) {
        if (!rc) ht_err("export: cannot write %s: %s", out_path, strerror(errno));
        if (ofd >= 0) close(ofd);
        if (tmp[0]) unlink(tmp);
        if (!rc) ht_analysis_free(&a);
        return rc ? rc : 1;
    }
    ht_export_ctx x = {.prof = &a.prof, .stk = a.stk, .hdr = &a.hdr, .trace_path = path, .value = value};
    int e = formats[fi].fn(&x, out);
    int werr = fflush(out) != 0 || ferror(out);
    int serr = errno;
    if (!to_stdout && fclose(out) != 0 && !werr) werr = 1, serr = errno;
    if (!werr && e >= 0 && tmp[0] && rename(tmp, out_path) != 0) werr = 1, serr = errno;
    if (e < 0 || werr) {
        ht_err("export: writing %s failed: %s", to_stdout ? "standard output" : out_path,
               strerror(e < 0 && e != -EIO ? -e : serr ? serr : EIO));
        if (tmp[0]) unlink(tmp);
        ht_analysis_free(&a);
        return 1;
    }
    int damaged = a.damaged;
    ht_analysis_free(&a);
    return damaged ? 1 : 0;
}
