/*
 * control.c - the verbs that talk to running processes through their
 * control endpoints: attach, detach, status, ps.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../analysis/summary.h"
#include "../collector/collector.h"
#include "../common/ctl.h"
#include "../common/proto.h"
#include "cli.h"

/* ---- finding and asking a process ---- */

static void read_comm(pid_t pid, char *out, size_t len)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(p, "r");
    out[0] = 0;
    if (!f) return;
    if (fgets(out, (int)len, f)) out[strcspn(out, "\n")] = 0;
    fclose(f);
}

/* Value of NAME in /proc/PID/environ, into out ("" if unset). */
static void target_env(pid_t pid, const char *name, char *out, size_t len)
{
    char p[64], buf[65536];
    snprintf(p, sizeof p, "/proc/%d/environ", (int)pid);
    out[0] = 0;
    FILE *f = fopen(p, "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (!strncmp(buf + i, name, nl) && buf[i + nl] == '=') {
            snprintf(out, len, "%s", buf + i + nl + 1);
            return;
        }
}

/* The endpoint of pid: in our control directory, else in the one the
 * process's own environment and owner give (root attaching to a user's
 * process).  0, -ESRCH (no such process), -ENOENT (no endpoint). */
static int find_endpoint(pid_t pid, char *path, size_t len)
{
    if (kill(pid, 0) < 0 && errno == ESRCH) return -ESRCH;
    struct stat pst;
    char pdir[64];
    snprintf(pdir, sizeof pdir, "/proc/%d", (int)pid);
    if (stat(pdir, &pst) == 0 && geteuid() != 0 && pst.st_uid != geteuid()) return -EACCES;
    char dir[PATH_MAX];
    struct stat st;
    if (ht_ctl_dir(dir, sizeof dir, 0) == 0 && ht_ctl_sock_path(path, len, dir, (uint32_t)pid) == 0 &&
        stat(path, &st) == 0)
        return 0;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%d", (int)pid);
    if (stat(proc, &st) < 0) return -ESRCH;
    char htd[PATH_MAX], xdg[PATH_MAX];
    target_env(pid, HT_ENV_RUNTIME_DIR, htd, sizeof htd);
    target_env(pid, "XDG_RUNTIME_DIR", xdg, sizeof xdg);
    const char *cands[3][2] = {{htd, NULL}, {NULL, xdg}, {NULL, NULL}};
    for (int i = 0; i < 3; i++) {
        if ((i == 0 && !*htd) || (i == 1 && !*xdg)) continue;
        if (ht_ctl_dir_name(dir, sizeof dir, cands[i][0], cands[i][1], st.st_uid) < 0) continue;
        if (ht_ctl_dir_check(dir, st.st_uid) < 0) continue;
        if (ht_ctl_sock_path(path, len, dir, (uint32_t)pid) == 0 && stat(path, &st) == 0) return 0;
    }
    return -ENOENT;
}

/* Sends REQUEST op, receives the answer into reply.  Bytes or -errno. */
static ssize_t ask(const char *path, uint32_t op, void *reply, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct timeval tv = {10, 0}; /* a detach waits for the process to stop writing */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ht_msg_ctl req = {0};
    ht_msg_init(&req, sizeof req, HT_MSG_REQUEST);
    req.op = op;
    ssize_t n = -1;
    if (send(fd, &req, sizeof req, MSG_NOSIGNAL) == (ssize_t)sizeof req) n = recv(fd, reply, len, 0);
    int e = errno;
    close(fd);
    return n < 0 ? -(e == EAGAIN ? ETIMEDOUT : e) : n;
}

static int parse_pid(const char *verb, const char *s, pid_t *pid)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > INT32_MAX) {
        ht_err("%s: '%s' is not a process id", verb, s);
        return -1;
    }
    *pid = (pid_t)v;
    return 0;
}

static int endpoint_or_err(const char *verb, pid_t pid, char *path, size_t len)
{
    int rc = find_endpoint(pid, path, len);
    if (rc == -ESRCH) ht_err("%s %d: no such process", verb, (int)pid);
    else if (rc == -EACCES) ht_err("%s %d: permission denied (the process belongs to another user)", verb, (int)pid);
    else if (rc < 0)
        ht_err("%s %d: no control endpoint for that process: start it with LD_PRELOAD=libheaptrace.so "
               "(not setuid, HEAPTRACE_CONTROL not 0, its control directory private to its user)", verb, (int)pid);
    return rc;
}

static const char *ask_err(ssize_t n)
{
    if (n == -ECONNREFUSED) return "its runtime is not answering (the process is gone or stopped)";
    if (n == -EACCES) return "permission denied";
    return strerror((int)-n);
}

/* ---- attach ---- */

static volatile int stop_flag;
static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void attach_usage(FILE *f)
{
    fprintf(f,
            "usage: heaptrace attach [options] PID\n"
            "\n"
            "Starts recording the heap events of a running process that has the heaptrace\n"
            "runtime loaded (LD_PRELOAD=libheaptrace.so, or linked with -lheaptrace), until\n"
            "Ctrl-C, --duration, 'heaptrace detach PID' or the process's end.  The process\n"
            "then runs on untraced, and can be attached again.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE        trace file (default: heaptrace.COMM.PID.htrace)\n"
            "  -d, --duration SECONDS   stop after this long (e.g. 10, 0.5)\n"
            "  -m, --mode block|drop    when buffers are full: wait (block, default) or drop\n"
            "                           and count the dropped events\n"
            "  -b, --buffer-size SIZE   sub-buffer size, e.g. 64K (default %uK; 4K..64M)\n"
            "  -n, --buffers N          number of sub-buffers (default %u)\n"
            "  -f, --flush-interval MS  longest time an event stays in memory (default %u)\n"
            "  -z, --compression-level N  zstd level, -10..-1 or 1..19 (default %d)\n"
            HT_STACK_HELP
            "  -q, --quiet              do not print statistics and summary\n"
            "  -h, --help               this text\n",
            HT_DEFAULT_SUBBUF_SIZE / 1024, HT_DEFAULT_SUBBUF_COUNT, HT_DEFAULT_FLUSH_MS,
            HT_DEFAULT_ZSTD_LEVEL);
}

int ht_cmd_attach(int argc, char **argv)
{
    ht_collect_opts o;
    ht_session_opts_default(&o);
    const char *output = NULL;
    int quiet = 0;
    static const struct option lo[] = {
        {"output", required_argument, 0, 'o'},      {"duration", required_argument, 0, 'd'},
        {"mode", required_argument, 0, 'm'},        {"buffer-size", required_argument, 0, 'b'},
        {"buffers", required_argument, 0, 'n'},     {"flush-interval", required_argument, 0, 'f'},
        {"compression-level", required_argument, 0, 'z'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},              HT_STACK_LONGOPTS, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:d:m:b:n:f:z:qh", lo, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'd': {
            char *end;
            errno = 0;
            double d = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(d > 0) || d > 1e7) {
                ht_err("--duration: '%s' is not a number of seconds", optarg);
                return 2;
            }
            o.duration_s = d;
            break;
        }
        case 'm': case 'b': case 'n': case 'f': case 'z':
        case HT_OPT_STACKS: case HT_OPT_DEPTH: case HT_OPT_STACK_EVENTS:
            if (ht_session_opt(c, optarg, &o) < 0) return 2;
            break;
        case 'q': quiet = 1; break;
        case 'h': attach_usage(stdout); return 0;
        case ':':
            ht_err("attach: option '%s' needs a value; see 'heaptrace attach --help'", argv[optind - 1]);
            return 2;
        default:
            ht_err("attach: unknown option '%s'; see 'heaptrace attach --help'", ht_optname(argv));
            return 2;
        }
    }
    if (optind != argc - 1) {
        ht_err("attach: usage: heaptrace attach [options] PID");
        return 2;
    }
    pid_t pid;
    if (parse_pid("attach", argv[optind], &pid) < 0) return 2;
    char path[PATH_MAX];
    if (endpoint_or_err("attach", pid, path, sizeof path) < 0) return 1;

    char comm[64], defname[PATH_MAX], what[128], cmd[96];
    read_comm(pid, comm, sizeof comm);
    if (!output) {
        snprintf(defname, sizeof defname, "heaptrace.%s.%d.htrace", *comm ? comm : "process", (int)pid);
        output = defname;
    }
    snprintf(cmd, sizeof cmd, "attach %d", (int)pid);
    o.command = cmd;
    o.stop = &stop_flag;
    ht_collector *col = NULL;
    char err[512];
    int rc = ht_collector_create(&col, &o, NULL, output, err, sizeof err);
    if (rc < 0) {
        ht_err("attach %d: %s", (int)pid, err);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: poll returns */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = ht_collector_attach(col, pid, path, err, sizeof err);
    if (rc < 0) {
        ht_err("attach %d: %s", (int)pid, err);
        ht_collector_destroy(col);
        unlink(output);
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "heaptrace: attached to %d (%s), writing %s; Ctrl-C or 'heaptrace detach %d' ends it\n",
                (int)pid, comm, output, (int)pid);
    int status = 0;
    ht_collect_stats st;
    double cpu_s;
    rc = ht_run_session(col, pid, &status, &st, &cpu_s);
    if (!quiet) {
        snprintf(what, sizeof what, "process %d (%s)", (int)pid, comm);
        ht_print_session_stats(what, output, &st, cpu_s);
        ht_print_summary_of(output, stderr);
    }
    return rc < 0 ? 1 : 0;
}

/* ---- detach, status ---- */

int ht_cmd_detach(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: heaptrace detach PID\n\nEnds the session recording PID; the process runs on untraced "
               "and the\n'heaptrace attach' that recorded it finishes its trace.\n");
        return 0;
    }
    if (argc != 2) {
        ht_err("detach: usage: heaptrace detach PID");
        return 2;
    }
    pid_t pid;
    if (parse_pid("detach", argv[1], &pid) < 0) return 2;
    char path[PATH_MAX];
    if (endpoint_or_err("detach", pid, path, sizeof path) < 0) return 1;
    ht_msg_ctl r;
    ssize_t n = ask(path, HT_OP_DETACH, &r, sizeof r);
    if (n < 0) {
        ht_err("detach %d: %s", (int)pid, ask_err(n));
        return 1;
    }
    if (!ht_msg_ok(&r, n, sizeof r, HT_MSG_REPLY)) {
        ht_err("detach %d: unexpected answer from the process", (int)pid);
        return 1;
    }
    if (r.status == HT_PROTO_DENIED) ht_err("detach %d: permission denied (another user's process)", (int)pid);
    else if (r.status == HT_PROTO_NOT_TRACING) ht_err("detach %d: not being traced", (int)pid);
    else if (r.status != HT_PROTO_OK) ht_err("detach %d: refused", (int)pid);
    return r.status == HT_PROTO_OK ? 0 : 1;
}

/* QUERY pid's endpoint at path.  0, or -errno / -EACCES. */
static int query(const char *path, ht_msg_status *st)
{
    union { ht_msg_status st; ht_msg_ctl ctl; } m;
    memset(&m, 0, sizeof m);
    ssize_t n = ask(path, HT_OP_QUERY, &m, sizeof m);
    if (n < 0) return (int)n;
    if (ht_msg_ok(&m, n, sizeof m.ctl, HT_MSG_REPLY)) return m.ctl.status == HT_PROTO_DENIED ? -EACCES : -EPROTO;
    if (!ht_msg_ok(&m, n, sizeof m.st, HT_MSG_STATUS)) return -EPROTO;
    *st = m.st;
    st->trace[sizeof st->trace - 1] = 0;
    return 0;
}

int ht_cmd_status(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: heaptrace status PID\n\nShows whether PID is being traced and the live figures of its "
               "session:\nevents, events lost, bytes and buffers written, buffers in use.\n");
        return 0;
    }
    if (argc != 2) {
        ht_err("status: usage: heaptrace status PID");
        return 2;
    }
    pid_t pid;
    if (parse_pid("status", argv[1], &pid) < 0) return 2;
    char path[PATH_MAX];
    if (endpoint_or_err("status", pid, path, sizeof path) < 0) return 1;
    ht_msg_status st;
    int rc = query(path, &st);
    if (rc < 0) {
        ht_err("status %d: %s", (int)pid, ask_err(rc));
        return 1;
    }
    char cmd[256];
    ht_proc_cmdline((uint32_t)pid, cmd, sizeof cmd);
    printf("pid              %d\n", (int)pid);
    printf("command          %s\n", cmd);
    printf("state            %s\n", st.tracing ? "tracing" : "idle");
    if (st.tracing) {
        printf("trace            %s\n", st.trace);
        printf("collector        %u\n", st.collector_pid);
        printf("events           %" PRIu64 "\n", st.events);
        printf("lost             %" PRIu64 "\n", st.lost);
        printf("buffers in use   %u of %u\n", st.subbufs_in_use, st.subbufs_total);
        printf("buffers written  %" PRIu64 "\n", st.subbufs_written);
        printf("bytes written    %" PRIu64 "\n", st.bytes);
    }
    return 0;
}

/* ---- ps ---- */

static void ps_dir(const char *dir, int *header)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (end == e->d_name || strcmp(end, ".sock") || pid <= 0) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ht_msg_status st;
        int rc = query(path, &st);
        if (rc == -ECONNREFUSED) { /* nobody listens: the process is gone (or exec'd untraced) */
            unlink(path);
            continue;
        }
        if (rc < 0) continue;
        if (!*header) {
            printf("%7s  %-7s  %-30s  %s\n", "PID", "STATE", "TRACE", "COMMAND");
            *header = 1;
        }
        char cmd[256];
        ht_proc_cmdline((uint32_t)pid, cmd, sizeof cmd);
        printf("%7ld  %-7s  %-30s  %s\n", pid, st.tracing ? "tracing" : "idle", st.tracing ? st.trace : "-", cmd);
    }
    closedir(d);
}

int ht_cmd_ps(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: heaptrace ps\n\nLists the processes that can be attached (the heaptrace runtime loaded):\n"
               "pid, state (idle or tracing), the trace being written, command.  Root also\n"
               "sees other users' processes.\n");
        return 0;
    }
    if (argc != 1) {
        ht_err("ps: usage: heaptrace ps");
        return 2;
    }
    int header = 0;
    char dir[PATH_MAX];
    if (ht_ctl_dir(dir, sizeof dir, 0) == 0) ps_dir(dir, &header);
    if (geteuid() == 0) { /* other users' default directories */
        DIR *d = opendir("/tmp");
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (!strncmp(e->d_name, "heaptrace-", 10) && strcmp(e->d_name, "heaptrace-0")) {
                snprintf(dir, sizeof dir, "/tmp/%s", e->d_name);
                ps_dir(dir, &header);
            }
        if (d) closedir(d);
        d = opendir("/run/user");
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.' && strcmp(e->d_name, "0")) {
                snprintf(dir, sizeof dir, "/run/user/%s/heaptrace", e->d_name);
                ps_dir(dir, &header);
            }
        if (d) closedir(d);
    }
    if (!header) fprintf(stderr, "heaptrace: no attachable processes (none has libheaptrace.so loaded)\n");
    return 0;
}
