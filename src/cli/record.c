/*
 * record.c - `heaptrace record [options] -- CMD [ARGS...]`.
 *
 * Creates the session socket and the trace file, starts CMD with the
 * runtime preloaded and $HEAPTRACE_SESSION pointing at the socket, records
 * until CMD exits, then prints the session statistics and the summary on
 * stderr.  CMD's stdio is untouched and its exit status is ours (128+N for a
 * death by signal N, as a shell reports it).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../analysis/summary.h"
#include "../collector/collector.h"
#include "../common/ctl.h"
#include "../common/proto.h"
#include "../common/shm.h"
#include "../format/format.h"
#include "cli.h"

static void record_usage(FILE *f)
{
    fprintf(f,
            "usage: heaptrace record [options] -- CMD [ARGS...]\n"
            "\n"
            "Runs CMD with the heaptrace runtime and records every heap event from its\n"
            "first allocation into a trace file; prints statistics and a summary at the end.\n"
            "CMD's stdin, stdout, stderr and exit status pass through unchanged.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE        trace file (default: heaptrace.CMD.PID.htrace)\n"
            "  -m, --mode block|drop    when buffers are full: wait (block, default, nothing\n"
            "                           is lost) or drop and count the dropped events\n"
            "  -b, --buffer-size SIZE   sub-buffer size, e.g. 64K (default %uK; 4K..64M)\n"
            "  -n, --buffers N          number of sub-buffers (default %u)\n"
            "  -f, --flush-interval MS  longest time an event stays in memory (default %u)\n"
            "  -z, --compression-level N  zstd level, -10..-1 (fastest) or 1..19 (default %d)\n"
            HT_STACK_HELP
            "      --follow-forks       also record the processes CMD starts (fork, vfork,\n"
            "                           posix_spawn, exec), each as a stream of its own\n"
            "  -q, --quiet              do not print statistics and summary\n"
            "  -h, --help               this text\n",
            HT_DEFAULT_SUBBUF_SIZE / 1024, HT_DEFAULT_SUBBUF_COUNT, HT_DEFAULT_FLUSH_MS,
            HT_DEFAULT_ZSTD_LEVEL);
}

/* The runtime library: $HEAPTRACE_RUNTIME, else next to the executable or
 * in ../lib/heaptrace/ relative to it. */
static int find_runtime(char *out, size_t len)
{
    const char *env = getenv("HEAPTRACE_RUNTIME");
    if (env && *env) {
        if (access(env, R_OK) != 0) return -1;
        snprintf(out, len, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    const char *cands[] = {"/libheaptrace.so", "/../lib/heaptrace/libheaptrace.so",
                           "/../lib/libheaptrace.so"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s%s", exe, cands[i]);
        if (access(p, R_OK) == 0) {
            if (!realpath(p, out)) snprintf(out, len, "%.*s", (int)(len - 1), p);
            return 0;
        }
    }
    return -1;
}

int ht_runtime_dir(char *out, size_t len)
{
    return ht_ctl_dir(out, len, 1);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
    if (child_pid > 0) kill(child_pid, sig);
}

void ht_print_session_stats(const char *cmd, const char *path, const ht_collect_stats *st, double cpu_s)
{
    char a[32];
    fprintf(stderr, "heaptrace: recorded %s into %s\n", cmd, path);
    fprintf(stderr, "session:\n");
    if (st->write_error)
        fprintf(stderr, "  TRACE INCOMPLETE writing stopped early: %s\n", strerror(st->write_error));
    fprintf(stderr, "  events           %" PRIu64 "\n", st->events);
    fprintf(stderr, "  bytes written    %" PRIu64 " (%s)\n", st->bytes, ht_fmt_bytes(st->bytes, a, sizeof a));
    fprintf(stderr, "  bytes per event  %.2f\n", st->events ? (double)st->bytes / (double)st->events : 0.0);
    fprintf(stderr, "  events lost      %" PRIu64 "\n", st->lost);
    fprintf(stderr, "  buffers written  %" PRIu64 "\n", st->subbufs);
    fprintf(stderr, "  collector CPU    %.3f s (%.1f ns/event)\n", cpu_s,
            st->events ? cpu_s * 1e9 / (double)st->events : 0.0);
    if (st->damaged)
        fprintf(stderr, "  damaged records  %" PRIu64 " (invalid data in shared memory, skipped)\n", st->damaged);
    if (st->starved)
        fprintf(stderr, "  starved waits    %" PRIu64 " (all buffers held by idle threads: raise --buffers)\n",
                st->starved);
}

/* The session options record and attach share: -m -b -n -f -z.
 * 0, or -1 after printing why the value is wrong. */
int ht_session_opt(int c, const char *optarg, ht_collect_opts *op)
{
    ht_collect_opts o = *op;
    uint64_t v;
    switch (c) {
        case 'm':
            if (!strcmp(optarg, "block")) o.mode = HT_MODE_BLOCK;
            else if (!strcmp(optarg, "drop")) o.mode = HT_MODE_DROP;
            else {
                ht_err("--mode must be 'block' or 'drop', not '%s'", optarg);
                return -1;
            }
            break;
        case 'b':
            if (ht_parse_size(optarg, &v) < 0 || v < HT_SUBBUF_MIN || v > HT_SUBBUF_MAX) {
                ht_err("--buffer-size: '%s' is not a size between 4K and 64M", optarg);
                return -1;
            }
            o.subbuf_size = (uint32_t)((v + 63) & ~63ull);
            break;
        case 'n':
            if (ht_parse_size(optarg, &v) < 0 || v < 2 || v > HT_SUBBUF_COUNT_MAX) {
                ht_err("--buffers: '%s' is not a count between 2 and %u", optarg, HT_SUBBUF_COUNT_MAX);
                return -1;
            }
            o.subbuf_count = (uint32_t)v;
            break;
        case 'f':
            if (ht_parse_size(optarg, &v) < 0 || v < 1 || v > 60000) {
                ht_err("--flush-interval: '%s' is not a number of milliseconds (1..60000)", optarg);
                return -1;
            }
            o.flush_ms = (uint32_t)v;
            break;
        case 'z':
        {
            char *end;
            errno = 0;
            long l = strtol(optarg, &end, 10);
            /* zstd's negative levels are its fastest ("--fast=N") */
            if (errno || end == optarg || *end || l < -10 || l > 19 || l == 0) {
                ht_err("--compression-level: '%s' is not a level -10..-1 or 1..19", optarg);
                return -1;
            }
            o.zstd_level = (int)l;
        }
            break;
    case HT_OPT_STACKS:
        if (!strcmp(optarg, "none")) o.stack_mode = HT_STACKS_NONE;
        else if (!strcmp(optarg, "fp")) o.stack_mode = HT_STACKS_FP;
        else if (!strcmp(optarg, "dwarf")) o.stack_mode = HT_STACKS_DWARF;
        else {
            ht_err("--stacks must be 'none', 'fp' or 'dwarf', not '%s'", optarg);
            return -1;
        }
        break;
    case HT_OPT_DEPTH:
        if (ht_parse_size(optarg, &v) < 0 || v < 1 || v > HT_STACK_DEPTH_MAX) {
            ht_err("--depth: '%s' is not a number of frames (1..%d)", optarg, HT_STACK_DEPTH_MAX);
            return -1;
        }
        o.stack_depth = (uint32_t)v;
        break;
    case HT_OPT_STACK_EVENTS: {
        uint32_t m = 0;
        char buf[128];
        snprintf(buf, sizeof buf, "%s", optarg);
        for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
            if (!strcmp(w, "alloc")) m |= HT_STACK_ON_ALLOC;
            else if (!strcmp(w, "free")) m |= HT_STACK_ON_FREE;
            else if (!strcmp(w, "realloc")) m |= HT_STACK_ON_REALLOC;
            else if (!strcmp(w, "all")) m |= HT_STACK_ON_ALLOC | HT_STACK_ON_FREE | HT_STACK_ON_REALLOC;
            else {
                ht_err("--stack-events: '%s' is not alloc, realloc, free or all", w);
                return -1;
            }
        }
        if (!m) {
            ht_err("--stack-events: no events given (alloc, realloc, free, all)");
            return -1;
        }
        o.stack_events = m;
        break;
    }
    default: return -1;
    }
    *op = o;
    return 0;
}

int ht_run_session(ht_collector *col, pid_t pid, int *status, ht_collect_stats *st, double *cpu_s)
{
    int rc = ht_collector_run(col, pid, status);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
             ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    ht_collector_stats(col, st);
    ht_collector_destroy(col);
    return rc;
}

void ht_session_opts_default(ht_collect_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = HT_MODE_BLOCK;
    o->subbuf_size = HT_DEFAULT_SUBBUF_SIZE;
    o->subbuf_count = HT_DEFAULT_SUBBUF_COUNT;
    o->flush_ms = HT_DEFAULT_FLUSH_MS;
    o->zstd_level = HT_DEFAULT_ZSTD_LEVEL;
}

/* CMD's environment: ours with the runtime added in front of LD_PRELOAD and
 * $HEAPTRACE_SESSION naming the socket.  NULL if out of memory. */
static char **child_env(const char *runtime, const char *sock)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n]) n++;
    char **e = calloc(n + 3, sizeof *e);
    if (!e) return NULL;
    const char *old = getenv("LD_PRELOAD");
    size_t k = 0, plen = strlen(runtime) + (old ? strlen(old) : 0) + 16, slen = strlen(sock) + 32;
    char *pre = malloc(plen), *ses = malloc(slen);
    if (!pre || !ses) {
        free(pre);
        free(ses);
        free(e);
        return NULL;
    }
    if (old && *old) snprintf(pre, plen, "LD_PRELOAD=%s:%s", runtime, old);
    else snprintf(pre, plen, "LD_PRELOAD=%s", runtime);
    snprintf(ses, slen, "%s=%s", HT_ENV_SESSION, sock);
    e[k++] = pre;
    e[k++] = ses;
    size_t sl = strlen(HT_ENV_SESSION);
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(environ[i], "LD_PRELOAD=", 11)) continue;
        if (!strncmp(environ[i], HT_ENV_SESSION, sl) && environ[i][sl] == '=') continue;
        e[k++] = environ[i];
    }
    e[k] = NULL;
    return e;
}

static void free_env(char **e)
{
    free(e[0]); /* the two strings we made */
    free(e[1]);
    free(e);
}

/* Starts CMD as execvp would: searched in $PATH, and a file the kernel
 * cannot execute (a script without #!) run by /bin/sh, as shells do.
 * 0 or an errno. */
static int spawn_cmd(pid_t *pid, char **cmdv, char **envp)
{
    int se = posix_spawnp(pid, cmdv[0], NULL, NULL, cmdv, envp);
    if (se != ENOEXEC) return se;
    char path[PATH_MAX];
    if (strchr(cmdv[0], '/')) {
        snprintf(path, sizeof path, "%s", cmdv[0]);
    } else { /* the file posix_spawnp found: the first executable one in $PATH */
        const char *p = getenv("PATH");
        if (!p) p = "/bin:/usr/bin";
        path[0] = 0;
        while (*p && !path[0]) {
            size_t n = strcspn(p, ":");
            char cand[PATH_MAX];
            /* an empty element is the current directory */
            snprintf(cand, sizeof cand, "%.*s/%s", (int)(n ? n : 1), n ? p : ".", cmdv[0]);
            struct stat sb;
            if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode) && access(cand, X_OK) == 0)
                snprintf(path, sizeof path, "%s", cand);
            p += n + (p[n] == ':');
        }
        if (!path[0]) return ENOEXEC;
    }
    size_t n = 0;
    while (cmdv[n]) n++;
    char **argv = calloc(n + 2, sizeof *argv);
    if (!argv) return ENOMEM;
    argv[0] = (char *)"/bin/sh";
    argv[1] = path;
    for (size_t i = 1; i <= n; i++) argv[i + 1] = cmdv[i];
    se = posix_spawn(pid, "/bin/sh", NULL, NULL, argv, envp);
    free(argv);
    return se;
}

int ht_cmd_record(int argc, char **argv)
{
    ht_collect_opts o;
    ht_session_opts_default(&o);
    const char *output = NULL;
    int quiet = 0;
    static const struct option lo[] = {
        {"output", required_argument, 0, 'o'},       {"mode", required_argument, 0, 'm'},
        {"buffer-size", required_argument, 0, 'b'},  {"subbuf-size", required_argument, 0, 'b'},
        {"buffers", required_argument, 0, 'n'},      {"num-subbuf", required_argument, 0, 'n'},
        {"flush-interval", required_argument, 0, 'f'}, {"compression-level", required_argument, 0, 'z'},
        {"quiet", no_argument, 0, 'q'},              {"help", no_argument, 0, 'h'},
        {"follow-forks", no_argument, 0, 'F'},
        HT_STACK_LONGOPTS,
        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:o:m:b:n:f:z:qh", lo, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'm': case 'b': case 'n': case 'f': case 'z':
        case HT_OPT_STACKS: case HT_OPT_DEPTH: case HT_OPT_STACK_EVENTS:
            if (ht_session_opt(c, optarg, &o) < 0) return 2;
            break;
        case 'F': o.follow_forks = 1; break;
        case 'q': quiet = 1; break;
        case 'h': record_usage(stdout); return 0;
        case ':':
            ht_err("record: option '%s' needs a value; see 'heaptrace record --help'", argv[optind - 1]);
            return 2;
        default:
            ht_err("record: unknown option '%s'; see 'heaptrace record --help'", ht_optname(argv));
            return 2;
        }
    }
    if (optind >= argc) {
        ht_err("record: no command given; usage: heaptrace record [options] -- CMD [ARGS...]");
        return 2;
    }
    char **cmdv = argv + optind;
    if ((uint64_t)o.subbuf_size * o.subbuf_count > (8ull << 30)) {
        ht_err("buffers too large: %u x %u bytes exceeds 8 GiB", o.subbuf_count, o.subbuf_size);
        return 2;
    }

    char runtime[PATH_MAX];
    if (find_runtime(runtime, sizeof runtime) < 0) {
        ht_err("cannot find libheaptrace.so (set HEAPTRACE_RUNTIME to its path)");
        return 1;
    }
    char dir[PATH_MAX - 64], sock[PATH_MAX];
    int rc = ht_runtime_dir(dir, sizeof dir);
    if (rc < 0) {
        ht_err("cannot use control directory %s: %s", dir,
               rc == -EPERM ? "not a private directory of this user (mode 0700 required)" : strerror(-rc));
        return 1;
    }
    snprintf(sock, sizeof sock, "%s/record-%d.sock", dir, (int)getpid());

    /* command line text for the trace */
    char cmdline[1024];
    size_t cl = 0;
    cmdline[0] = 0;
    for (char **a = cmdv; *a && cl < sizeof cmdline - 2; a++)
        cl += (size_t)snprintf(cmdline + cl, sizeof cmdline - cl, "%s%s", cl ? " " : "", *a);
    o.command = cmdline;

    /* What can fail is set up before CMD starts: the socket and the trace
     * file.  Then CMD is spawned (vfork semantics: no copy-on-write of our
     * pages, which a forked child waiting for us made every first write of
     * ours pay), and CMD's region is made while CMD loads.  The default file
     * name holds CMD's pid: the file is created under ours and renamed once
     * CMD's is known. */
    char defname[PATH_MAX], tmpname[PATH_MAX];
    if (!output) {
        snprintf(tmpname, sizeof tmpname, "heaptrace.%s.%d.htrace.part", base_name(cmdv[0]), (int)getpid());
        output = tmpname;
    }
    ht_collector *col = NULL;
    char err[512];
    rc = ht_collector_create(&col, &o, sock, output, err, sizeof err);
    if (rc < 0) {
        ht_err("%s", err);
        return 1;
    }
    char **envp = child_env(runtime, sock);
    if (!envp) {
        ht_err("cannot start %s: %s", cmdv[0], strerror(ENOMEM));
        ht_collector_destroy(col);
        unlink(output);
        return 1;
    }
    fflush(NULL);
    pid_t pid;
    int se = spawn_cmd(&pid, cmdv, envp);
    free_env(envp);
    if (se != 0) {
        ht_err("cannot run '%s': %s", cmdv[0], strerror(se));
        ht_collector_destroy(col);
        unlink(output);
        return se == ENOENT ? 127 : 126;
    }
    child_pid = pid;
    /* the terminal's ^C and ^\ are for CMD; we keep recording until it ends */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = forward_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (output == tmpname) {
        snprintf(defname, sizeof defname, "heaptrace.%s.%d.htrace", base_name(cmdv[0]), (int)pid);
        rc = ht_collector_rename(col, defname);
        if (rc < 0) ht_err("cannot rename %s to %s: %s; the trace keeps the first name", tmpname, defname, strerror(-rc));
        else output = defname;
    }

    int status = 0;
    ht_collect_stats st;
    double cpu_s;
    rc = ht_run_session(col, pid, &status, &st, &cpu_s);

    int code;
    if (WIFSIGNALED(status)) {
        code = 128 + WTERMSIG(status);
        ht_err("'%s' was killed by signal %d (%s)%s", cmdv[0], WTERMSIG(status), strsignal(WTERMSIG(status)),
               WCOREDUMP(status) ? ", core dumped" : "");
    } else {
        code = WEXITSTATUS(status);
    }
    if (!quiet) {
        char what[1100];
        snprintf(what, sizeof what, "'%s'", cmdline);
        ht_print_session_stats(what, output, &st, cpu_s);
        ht_print_summary_of(output, stderr);
    }
    if (rc < 0 && code == 0) code = 1; /* the trace failed although the program did not */
    return code;
}
