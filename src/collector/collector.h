/*
 * collector.h - a recording session on the collector side: the control
 * socket, the shared regions of the traced processes, draining them,
 * merging each process's threads into timestamp order, encoding and
 * writing the trace.  Single-threaded; driven by ht_collector_run.
 */
#ifndef HT_COLLECTOR_H
#define HT_COLLECTOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ht_collect_opts {
    uint32_t mode;         /* enum ht_mode */
    uint32_t subbuf_size;  /* data bytes of each sub-buffer */
    uint32_t subbuf_count;
    uint32_t flush_ms;     /* longest time an event waits in shared memory */
    int zstd_level;
    const char *command;   /* for the SESSION_START record */
    int follow_forks;      /* record: descendants join with streams of their own */
    volatile int *stop;    /* attach: set (from a signal handler) to end the session */
    double duration_s;     /* attach: end the session after this long (0: no limit) */
    uint32_t stack_mode;   /* enum ht_stack_mode */
    uint32_t stack_depth;  /* frames (0: 64) */
    uint32_t stack_events; /* HT_STACK_ON_* (0: allocations and reallocs) */
} ht_collect_opts;

#define HT_DEFAULT_SUBBUF_SIZE (64u * 1024u)
#define HT_DEFAULT_SUBBUF_COUNT 64u
#define HT_DEFAULT_FLUSH_MS 100u
#define HT_DEFAULT_ZSTD_LEVEL 1

typedef struct ht_collect_stats {
    uint64_t events;       /* heap events written (alloc, free, realloc) */
    uint64_t records;      /* all records written */
    uint64_t lost;         /* events the runtime dropped (drop mode / starvation) */
    uint64_t subbufs;      /* sub-buffers drained */
    uint64_t bytes;        /* trace file size */
    uint64_t damaged;      /* invalid records found in shared memory */
    uint64_t starved;      /* block-mode waits given up */
    uint64_t processes;
    int write_error;       /* errno of the first write failure, 0 if none */
} ht_collect_stats;

typedef struct ht_collector ht_collector;

/* Creates the listening socket at sock_path (record; NULL for attach) and
 * the trace file at out_path.
 * Returns 0 or -errno with a one-line reason in err. */
int ht_collector_create(ht_collector **out, const ht_collect_opts *o, const char *sock_path,
                        const char *out_path, char *err, size_t errlen);

/* Renames the trace file (record names it after the program's pid once
 * known).  0 or -errno; the old name stays on failure. */
int ht_collector_rename(ht_collector *c, const char *path);

/* Records until process `root` (our child) exits; *status gets its wait
 * status.  Returns 0, or -errno if the session failed (the process still
 * ran).  After ht_collector_attach, `root` is the attached process (not a
 * child) and the run ends when its session does (detach, stop, duration,
 * its exit); *status is then -1 while it runs on, its exit status when it
 * reported one, -2 when it ended without (a signal or a crash). */
int ht_collector_run(ht_collector *c, pid_t root, int *status);

/* Starts a session in a running process through its control endpoint at
 * sock_path.  The collector must have been created with sock_path NULL.
 * 0, or -errno with a one-line reason in err: -EACCES another user's,
 * -EBUSY already traced (err names the file), -ECONNREFUSED/-ENOENT no
 * endpoint, -EPROTO an unexpected answer. */
int ht_collector_attach(ht_collector *c, pid_t pid, const char *sock_path, char *err, size_t errlen);

void ht_collector_stats(const ht_collector *c, ht_collect_stats *s);

/* /proc/PID/cmdline with the arguments separated by spaces, NUL-terminated
 * within cap; returns its length (0 if unreadable). */
size_t ht_proc_cmdline(uint32_t pid, char *buf, size_t cap);
void ht_collector_destroy(ht_collector *c);

#endif
