/*
 * exp_pf_prog.c - exp_pf_prog [fork | many N]: heap calls through known call chains
 * with known counts and sizes, for the pprof and folded export tests
 * (check_pprof_folded.py reads the LINE markers for the expected lines and
 * knows the numbers below; keep the two in step).
 *
 *   chain A  main -> stage_alpha -> leaf_alpha -> malloc(1000) x100, each
 *            freed right away (100 temporary allocations)
 *   chain B  main -> stage_beta -> mid_beta -> leaf_beta -> malloc(333) x50;
 *            then the first 43 freed, 7 left live (leaks: 2331 bytes)
 *   chain C  main -> leaf_gamma -> inl_gamma (always_inline) -> calloc(1, 4096)
 *            x20; then the first 19 freed, 1 left live (4096 bytes).  The
 *            peak (84251 bytes) is when C's 20 blocks and B's 7 are live.
 *   fork     first a child: main -> child_work -> leaf_delta -> malloc(2000)
 *            x10, 3 left live when it _exits (6000 bytes); the parent waits
 *            for it, then runs A, B, C.
 *   many N   chain A N times, nothing else (a trace of many chunks, to be
 *            cut short by the tests)
 *
 * No stdio: its buffers would be heap blocks of their own.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *blocks[64];

static void touch(void *p, size_t n)
{
    if (!p) _exit(3);
    memset(p, 0x5a, n < 64 ? n : 64);
}

NOINLINE void *leaf_alpha(void)
{
    void *p = malloc(1000); /* LINE: leaf_alpha */
    touch(p, 1000);
    return p;
}

NOINLINE void stage_alpha(void)
{
    for (int i = 0; i < 100; i++) {
        void *p = leaf_alpha(); /* LINE: stage_alpha */
        free(p);
    }
}

NOINLINE void *leaf_beta(void)
{
    void *p = malloc(333); /* LINE: leaf_beta */
    touch(p, 333);
    return p;
}

NOINLINE void mid_beta(int i)
{
    blocks[i] = leaf_beta(); /* LINE: mid_beta */
    __asm__ volatile("" ::: "memory");
}

NOINLINE void stage_beta(void)
{
    for (int i = 0; i < 50; i++) {
        mid_beta(i); /* LINE: stage_beta */
        __asm__ volatile("" ::: "memory");
    }
    for (int i = 0; i < 43; i++) free(blocks[i]);
}

static inline __attribute__((always_inline)) void *inl_gamma(void)
{
    return calloc(1, 4096); /* LINE: inl_gamma */
}

NOINLINE void leaf_gamma(void)
{
    void *b[20];
    for (int i = 0; i < 20; i++) {
        b[i] = inl_gamma(); /* LINE: leaf_gamma */
        touch(b[i], 4096);
    }
    for (int i = 0; i < 19; i++) free(b[i]);
    blocks[63] = b[19];
}

NOINLINE void *leaf_delta(void)
{
    void *p = malloc(2000); /* LINE: leaf_delta */
    touch(p, 2000);
    return p;
}

NOINLINE void child_work(void)
{
    for (int i = 0; i < 10; i++) {
        void *p = leaf_delta(); /* LINE: child_work */
        if (i < 7) free(p);
        else blocks[i] = p;
    }
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "many")) {
        for (int n = atoi(argv[2]); n > 0; n--) stage_alpha();
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "fork")) {
        pid_t c = fork();
        if (c < 0) return 4;
        if (c == 0) {
            child_work(); /* LINE: main_child */
            _exit(0);
        }
        int st;
        if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) return 5;
    }
    stage_alpha(); /* LINE: main_alpha */
    stage_beta();  /* LINE: main_beta */
    leaf_gamma();  /* LINE: main_gamma */
    __asm__ volatile("" ::: "memory");
    return 0;
}
