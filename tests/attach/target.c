/*
 * target.c - programs that the attach tests run, trace and attach to.
 *
 *   work PHASES [PROGRESS|- [PAUSE_US]]
 *       4 threads do PHASES phases of malloc/calloc/realloc/free work of
 *       deterministic content (PHASES 0: until SIGUSR1), checking every
 *       block's content, and print "phases N checksum X bad B".  The
 *       checksum depends only on N: a traced run must print what an
 *       untraced run of N phases prints.  After each phase the number of
 *       phases done is written to PROGRESS (if given).  Phase p repeats the
 *       work of phase p % 64.  PAUSE_US: each thread sleeps that long after
 *       each phase (busy, but leaving the CPUs some room for heaptrace).
 *   expect PHASES
 *       prints what "work PHASES" prints, computed from 64 phases of work
 *       (quick: the attach tests run the target for thousands of phases).
 *   crash segv|abort|kill N WAIT [READY]
 *       (WAIT 1: first waits, allocating, until a session records it)
 *       allocates N blocks of MARKER_CRASH bytes, fills them, then
 *       segv: writes through a null pointer; abort: abort();
 *       kill: writes "ready PID" to READY and sleeps (the test kills it).
 *   forkstorm LONGKIDS
 *       forks children until SIGUSR1 (children allocate and exit, some keep
 *       running for a while, some exec "kid"), while a timer's signal
 *       handler mallocs and frees (in a thread that never allocates
 *       otherwise, so glibc's lock is never held under the handler) and a
 *       worker thread allocates; SIGUSR2 forks a long-lived child that execs
 *       "work 0"; one long-lived plain fork child exists from the start.
 *       Long-lived children are listed in LONGKIDS ("fork PID" / "exec
 *       PID").  At the end waits for every child: exit status 1 if any
 *       failed, else 0; prints "forks N failed F alarms A".
 *   scribble SECONDS WAIT
 *       two threads allocate; a third thread, once a session records the
 *       process (WAIT 1: waits for it; WAIT 0: as soon as the region is
 *       mapped), overwrites random bytes of every heaptrace shared-memory
 *       mapping (/proc/self/maps: a memfd named *heaptrace*) repeatedly for
 *       SECONDS, then the program exits 0.  Prints "scribbled ROUNDS BYTES".
 *   family N
 *       allocates N blocks of MARKER_PARENT, then makes children that each
 *       allocate N blocks of their own marker size: fork (MARKER_FORK),
 *       posix_spawn of "kid" (MARKER_SPAWN), fork+exec of "kid"
 *       (MARKER_FORKEXEC), vfork+exec of "kid" (MARKER_VFORK); waits for
 *       them; prints "parent PID" and "fork|spawn|forkexec|vfork PID".
 *   kid SIZE N
 *       allocates N blocks of SIZE bytes, frees them, exits 0.
 *
 * Built with -O1 -fno-builtin: every heap call is made.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heaptrace.h"

#define MARKER_CRASH 77777
#define MARKER_PARENT 11111
#define MARKER_FORK 22222
#define MARKER_SPAWN 33333
#define MARKER_FORKEXEC 44444
#define MARKER_VFORK 55555

extern char **environ;
static const char *self_path;
static volatile sig_atomic_t stop_flag, usr2_flag;
static void *volatile sink;

static void on_usr1(int sig) { (void)sig; stop_flag = 1; }
static void on_usr2(int sig) { (void)sig; usr2_flag = 1; }

static void set_handler(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- work --- */

#define WORK_THREADS 4
#define SLOTS 128
#define OPS 3000

typedef struct {
    unsigned char *p;
    size_t n;
    uint8_t tag;
} slot_t;

static atomic_ulong bad_blocks;

static void fill(unsigned char *p, size_t from, size_t to, uint8_t tag)
{
    for (size_t j = from; j < to; j++) p[j] = (unsigned char)(tag + j * 31u);
}

/* checks the content and folds it into the hash */
static uint64_t fold(const slot_t *s, uint64_t h)
{
    int bad = 0;
    for (size_t j = 0; j < s->n; j++) {
        unsigned char want = (unsigned char)(s->tag + j * 31u);
        if (s->p[j] != want) bad = 1;
        h = (h ^ s->p[j]) * 0x100000001b3ull;
    }
    if (bad) atomic_fetch_add(&bad_blocks, 1);
    return h ^ s->n;
}

static uint64_t phase_work(unsigned t, unsigned long phase)
{
    uint64_t seed = ((uint64_t)t << 40) ^ phase ^ 0x5eedull;
    uint64_t h = 0xcbf29ce484222325ull;
    slot_t slots[SLOTS];
    memset(slots, 0, sizeof slots);
    for (int i = 0; i < OPS; i++) {
        uint64_t r = splitmix(&seed);
        slot_t *s = &slots[r % SLOTS];
        unsigned op = (unsigned)(r >> 8) % 4;
        size_t size = 16 + (size_t)((r >> 16) % 2048);
        if (!s->p) {
            s->tag = (uint8_t)(r >> 32);
            if (op == 1) {
                size_t m = 1 + size / 16;
                s->p = calloc(m, 16);
                if (!s->p) continue;
                s->n = m * 16;
                for (size_t j = 0; j < s->n; j++)
                    if (s->p[j]) { atomic_fetch_add(&bad_blocks, 1); break; }
            } else if (op == 2) {
                s->p = realloc(NULL, size);
                s->n = size;
            } else {
                s->p = malloc(size);
                s->n = size;
            }
            if (!s->p) { s->n = 0; continue; }
            fill(s->p, 0, s->n, s->tag);
        } else if (op == 0 || op == 3) {
            h = fold(s, h);
            free(s->p);
            s->p = NULL;
            s->n = 0;
        } else if (op == 1) {
            /* realloc: the prefix must survive */
            unsigned char *np = realloc(s->p, size);
            if (!np) continue;
            s->p = np;
            size_t keep = s->n < size ? s->n : size;
            slot_t chk = {np, keep, s->tag};
            h = fold(&chk, h);
            fill(np, keep, size, s->tag);
            s->n = size;
        } else {
            h = fold(s, h);
        }
    }
    for (int k = 0; k < SLOTS; k++) {
        if (!slots[k].p) continue;
        h = fold(&slots[k], h);
        free(slots[k].p);
    }
    return h;
}

/* Phase p does the work of phase p % DISTINCT_PHASES: `expect N` computes
 * what `work` prints after N phases with DISTINCT_PHASES phases of work. */
#define DISTINCT_PHASES 64

static uint64_t phase_mix(uint64_t h, unsigned t, unsigned long p)
{
    uint64_t x = (h + p) * 0x9e3779b97f4a7c15ull + t;
    return x ^ (x >> 29);
}

static int mode_expect(unsigned long phases)
{
    uint64_t sum = 0;
    for (unsigned t = 0; t < WORK_THREADS; t++)
        for (unsigned long q = 0; q < DISTINCT_PHASES && q < phases; q++) {
            uint64_t h = phase_work(t, q);
            for (unsigned long p = q; p < phases; p += DISTINCT_PHASES) sum += phase_mix(h, t, p);
        }
    printf("phases %lu checksum %016llx bad %lu\n", phases, (unsigned long long)sum, atomic_load(&bad_blocks));
    return 0;
}

static pthread_barrier_t work_bar;
static unsigned long work_limit; /* 0: until SIGUSR1 */
static atomic_int work_go = 1;
static unsigned long phases_done;
static atomic_ullong work_sum;
static int progress_fd = -1;
static long work_pause_us; /* each thread's pause after each phase */

static void *work_thread(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t sum = 0;
    for (unsigned long p = 0;; p++) {
        sum += phase_mix(phase_work(t, p % DISTINCT_PHASES), t, p);
        if (work_pause_us) sleep_us(work_pause_us);
        pthread_barrier_wait(&work_bar);
        if (t == 0) {
            phases_done = p + 1;
            if (progress_fd >= 0) {
                char b[32];
                int n = snprintf(b, sizeof b, "%lu\n", p + 1);
                if (pwrite(progress_fd, b, (size_t)n, 0) < 0) {}
            }
            if ((work_limit && p + 1 >= work_limit) || stop_flag) atomic_store(&work_go, 0);
        }
        pthread_barrier_wait(&work_bar);
        if (!atomic_load(&work_go)) break;
    }
    atomic_fetch_add(&work_sum, sum);
    return NULL;
}

static int mode_work(unsigned long phases, const char *progress, long pause_us)
{
    work_limit = phases;
    work_pause_us = pause_us;
    set_handler(SIGUSR1, on_usr1, SA_RESTART);
    if (progress) {
        progress_fd = open(progress, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (progress_fd < 0) { perror(progress); return 1; }
    }
    pthread_barrier_init(&work_bar, NULL, WORK_THREADS);
    pthread_t th[WORK_THREADS];
    for (unsigned t = 0; t < WORK_THREADS; t++)
        if (pthread_create(&th[t], NULL, work_thread, (void *)(uintptr_t)t)) return 1;
    for (unsigned t = 0; t < WORK_THREADS; t++) pthread_join(th[t], NULL);
    printf("phases %lu checksum %016llx bad %lu\n", phases_done, (unsigned long long)atomic_load(&work_sum),
           atomic_load(&bad_blocks));
    fflush(stdout);
    return atomic_load(&bad_blocks) ? 3 : 0;
}

/* ----------------------------------------------------------- crash ------- */

static void wait_session(void)
{
    double t0 = now_s();
    while (!ht_enabled()) {
        sink = malloc(100); /* an event: a lazily mapping runtime sees the session */
        free(sink);
        sleep_us(1000);
        if (now_s() - t0 > 60) { fprintf(stderr, "target: no session after 60 s\n"); exit(4); }
    }
}

static int mode_crash(const char *how, int n, int wait, const char *ready)
{
    if (wait) wait_session();
    void **keep = calloc((size_t)n, sizeof *keep);
    for (int i = 0; i < n; i++) {
        keep[i] = malloc(MARKER_CRASH);
        memset(keep[i], i, MARKER_CRASH);
    }
    sink = keep;
    if (!strcmp(how, "segv")) {
        *(volatile int *)(uintptr_t)0 = 1;
    } else if (!strcmp(how, "abort")) {
        abort();
    } else if (!strcmp(how, "kill")) {
        if (ready) {
            FILE *f = fopen(ready, "w");
            if (f) { fprintf(f, "ready %d\n", (int)getpid()); fclose(f); }
        }
        for (;;) pause();
    }
    return 2;
}

/* --------------------------------------------------------- forkstorm ----- */

static atomic_long alarms;

static void on_alarm(int sig)
{
    (void)sig;
    int e = errno;
    for (int i = 0; i < 3; i++) {
        void *p = malloc(24 + (size_t)i * 200);
        sink = p;
        free(p);
    }
    void *q = calloc(4, 64);
    q = realloc(q, 1000);
    free(q);
    atomic_fetch_add(&alarms, 1);
    errno = e;
}

static atomic_int storm_done;

static void *alarm_thread(void *arg)
{
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    while (!atomic_load(&storm_done)) sleep_us(200); /* never allocates itself */
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    return NULL;
}

static void *busy_thread(void *arg)
{
    (void)arg;
    unsigned long i = 0;
    while (!atomic_load(&storm_done)) {
        void *p = malloc(32 + i % 3000);
        sink = p;
        p = realloc(p, 64 + i % 5000);
        free(p);
        if (++i % 1000 == 0) sleep_us(100);
    }
    return NULL;
}

static void child_alloc(int n, size_t size)
{
    void **v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) {
        v[i] = malloc(size);
        memset(v[i], 0x5a, size < 64 ? size : 64);
    }
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void long_child_loop(void)
{
    /* SIGUSR1 handler (stop_flag) is inherited */
    set_handler(SIGUSR1, on_usr1, SA_RESTART);
    unsigned long i = 0;
    while (!stop_flag) {
        void *p = malloc(100 + i++ % 900);
        sink = p;
        free(p);
        if (i % 100 == 0) sleep_us(1000);
    }
    _exit(0);
}

static pid_t longkids[64];
static int nlongkids;

static void note_longkid(FILE *f, const char *kind, pid_t pid)
{
    if (nlongkids < 64) longkids[nlongkids++] = pid;
    fprintf(f, "%s %d\n", kind, (int)pid);
    fflush(f);
}

static int mode_forkstorm(const char *longkids_path)
{
    FILE *lk = fopen(longkids_path, "w");
    if (!lk) { perror(longkids_path); return 1; }
    set_handler(SIGUSR1, on_usr1, SA_RESTART);
    set_handler(SIGUSR2, on_usr2, SA_RESTART);
    set_handler(SIGALRM, on_alarm, SA_RESTART);
    /* SIGALRM only in alarm_thread */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &s, NULL);

    pid_t lc = fork();
    if (lc == 0) long_child_loop();
    note_longkid(lk, "fork", lc);

    pthread_t at, bt;
    pthread_create(&at, NULL, alarm_thread, NULL);
    pthread_create(&bt, NULL, busy_thread, NULL);
    struct itimerval it = {{0, 500}, {0, 500}};
    setitimer(ITIMER_REAL, &it, NULL);

    long forks = 0, failed = 0, outstanding = 0;
    uint64_t seed = 42;
    while (!stop_flag) {
        if (usr2_flag) {
            usr2_flag = 0;
            pid_t c = fork();
            if (c == 0) {
                set_handler(SIGUSR1, SIG_DFL, 0);
                execl(self_path, self_path, "work", "0", "-", "5000", (char *)NULL);
                _exit(127);
            }
            if (c > 0) note_longkid(lk, "exec", c);
        }
        if (outstanding < 8) {
            uint64_t r = splitmix(&seed);
            pid_t c = fork();
            if (c == 0) {
                child_alloc(20, 100 + (size_t)(r % 2000));
                switch ((r >> 8) % 8) {
                case 0: case 1: { /* keeps running briefly */
                    double t0 = now_s();
                    while (now_s() - t0 < 0.02 + (double)((r >> 16) % 30) / 1000.0) {
                        child_alloc(5, 200);
                        sleep_us(500);
                    }
                    exit(0);
                }
                case 2:
                    execl(self_path, self_path, "kid", "3000", "10", (char *)NULL);
                    _exit(127);
                case 3:
                    exit(0); /* atexit handlers, stdio flush */
                default:
                    _exit(0);
                }
            }
            if (c < 0) { sleep_us(1000); continue; }
            forks++;
            outstanding++;
        }
        void *p = malloc(500);
        sink = p;
        free(p);
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
            int is_long = 0;
            for (int k = 0; k < nlongkids; k++) if (longkids[k] == w) { is_long = 1; longkids[k] = -1; }
            if (!is_long) outstanding--;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                failed++;
                fprintf(stderr, "target: child %d ended with status 0x%x\n", (int)w, st);
            }
        }
        sleep_us(2000);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    for (int k = 0; k < nlongkids; k++) if (longkids[k] > 0) kill(longkids[k], SIGUSR1);
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, 0)) > 0) {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed++;
            fprintf(stderr, "target: child %d ended with status 0x%x\n", (int)w, st);
        }
    }
    atomic_store(&storm_done, 1);
    pthread_join(at, NULL);
    pthread_join(bt, NULL);
    fclose(lk);
    printf("forks %ld failed %ld alarms %ld\n", forks, failed, atomic_load(&alarms));
    fflush(stdout);
    return failed ? 1 : 0;
}

/* ---------------------------------------------------------- scribble ----- */

static atomic_int scribble_done;
static __thread volatile int in_scribble;
static __thread sigjmp_buf scribble_jmp;

static void on_segv(int sig)
{
    if (in_scribble) siglongjmp(scribble_jmp, 1); /* the region went away under us */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void *scribble_alloc_thread(void *arg)
{
    uint64_t seed = (uintptr_t)arg;
    void *keep[64] = {0};
    while (!atomic_load(&scribble_done)) {
        uint64_t r = splitmix(&seed);
        int k = (int)(r % 64);
        free(keep[k]);
        keep[k] = malloc(16 + (size_t)((r >> 8) % 4081));
    }
    for (int k = 0; k < 64; k++) free(keep[k]);
    return NULL;
}

typedef struct { unsigned char *lo, *hi; } region_t;

static int find_regions(region_t *out, int max)
{
    /* no stdio: fopen would allocate; read /proc/self/maps into a buffer */
    static char buf[1 << 16];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
    close(fd);
    buf[len] = 0;
    int cnt = 0;
    for (char *line = buf; line && *line && cnt < max;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (strstr(line, "memfd:") && strstr(line, "heaptrace")) {
            unsigned long lo, hi;
            char perms[8];
            if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[0] == 'r' && perms[1] == 'w') {
                out[cnt].lo = (unsigned char *)lo;
                out[cnt].hi = (unsigned char *)hi;
                cnt++;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return cnt;
}

static int mode_scribble(double seconds, int wait)
{
    set_handler(SIGSEGV, on_segv, SA_NODEFER);
    set_handler(SIGBUS, on_segv, SA_NODEFER);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, scribble_alloc_thread, (void *)(uintptr_t)(i + 7));
    double t0 = now_s();
    if (wait) wait_session();
    region_t rg[16];
    int nr;
    while ((nr = find_regions(rg, 16)) == 0) {
        sleep_us(1000);
        if (now_s() - t0 > 30) { fprintf(stderr, "target: no heaptrace mapping after 30 s\n"); return 4; }
    }
    uint64_t seed = 1234;
    long rounds = 0, bytes = 0;
    double t1 = now_s();
    while (now_s() - t1 < seconds) {
        nr = find_regions(rg, 16);
        for (int i = 0; i < nr; i++) {
            size_t size = (size_t)(rg[i].hi - rg[i].lo);
            in_scribble = 1;
            if (sigsetjmp(scribble_jmp, 1) == 0) {
                if (rounds % 50 == 49) {
                    /* a whole random span */
                    size_t off = splitmix(&seed) % size, len = 4096;
                    if (off + len > size) len = size - off;
                    for (size_t j = 0; j < len; j++) rg[i].lo[off + j] = (unsigned char)splitmix(&seed);
                    bytes += (long)len;
                } else {
                    for (int k = 0; k < 32; k++) {
                        uint64_t r = splitmix(&seed);
                        size_t off = r % size;
                        int len = 1 + (int)((r >> 40) % 16);
                        for (int j = 0; j < len && off + (size_t)j < size; j++)
                            rg[i].lo[off + (size_t)j] = (unsigned char)splitmix(&seed);
                        bytes += len;
                    }
                }
            }
            in_scribble = 0;
        }
        rounds++;
        sleep_us(500);
    }
    atomic_store(&scribble_done, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    printf("scribbled %ld %ld\n", rounds, bytes);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------ family ----- */

static int run_wait(pid_t pid, const char *what)
{
    int st;
    if (pid < 0) { fprintf(stderr, "target: %s: cannot start\n", what); return 1; }
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "target: %s child %d failed (0x%x)\n", what, (int)pid, st);
        return 1;
    }
    return 0;
}

static int mode_family(int n)
{
    char nbuf[16];
    snprintf(nbuf, sizeof nbuf, "%d", n);
    printf("parent %d\n", (int)getpid());
    fflush(stdout);
    void **v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = malloc(MARKER_PARENT);
    int fails = 0;

    pid_t c = fork();
    if (c == 0) {
        child_alloc(n, MARKER_FORK);
        _exit(0);
    }
    printf("fork %d\n", (int)c);
    fails += run_wait(c, "fork");

    char sz[16];
    snprintf(sz, sizeof sz, "%d", MARKER_SPAWN);
    char *sargv[] = {(char *)self_path, "kid", sz, nbuf, NULL};
    if (posix_spawn(&c, self_path, NULL, NULL, sargv, environ) != 0) c = -1;
    printf("spawn %d\n", (int)c);
    fails += run_wait(c, "spawn");

    char sz2[16];
    snprintf(sz2, sizeof sz2, "%d", MARKER_FORKEXEC);
    fflush(stdout);
    c = fork();
    if (c == 0) {
        execl(self_path, self_path, "kid", sz2, nbuf, (char *)NULL);
        _exit(127);
    }
    printf("forkexec %d\n", (int)c);
    fails += run_wait(c, "forkexec");

    char sz3[16];
    snprintf(sz3, sizeof sz3, "%d", MARKER_VFORK);
    char *vargv[] = {(char *)self_path, "kid", sz3, nbuf, NULL};
    fflush(stdout);
    c = vfork();
    if (c == 0) {
        execve(self_path, vargv, environ);
        _exit(127);
    }
    printf("vfork %d\n", (int)c);
    fails += run_wait(c, "vfork");

    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    fflush(stdout);
    return fails ? 1 : 0;
}

/* -------------------------------------------------------------- main ----- */

int main(int argc, char **argv)
{
    self_path = "/proc/self/exe";
    static char exe[4096];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l > 0) { exe[l] = 0; self_path = exe; }
    if (argc >= 3 && !strcmp(argv[1], "work"))
        return mode_work(strtoul(argv[2], NULL, 10), argc > 3 && strcmp(argv[3], "-") ? argv[3] : NULL,
                         argc > 4 ? atol(argv[4]) : 0);
    if (argc >= 3 && !strcmp(argv[1], "expect")) return mode_expect(strtoul(argv[2], NULL, 10));
    if (argc >= 5 && !strcmp(argv[1], "crash"))
        return mode_crash(argv[2], atoi(argv[3]), atoi(argv[4]), argc > 5 ? argv[5] : NULL);
    if (argc >= 3 && !strcmp(argv[1], "forkstorm")) return mode_forkstorm(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "scribble")) return mode_scribble(atof(argv[2]), atoi(argv[3]));
    if (argc >= 3 && !strcmp(argv[1], "family")) return mode_family(atoi(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "kid")) {
        child_alloc(atoi(argv[3]), (size_t)atol(argv[2]));
        return 0;
    }
    fprintf(stderr, "usage: target work|crash|forkstorm|scribble|family|kid ...\n");
    return 2;
}
