/*
 * chains.c - stk_chains PLUGIN [ROUNDS]: heap calls through known call
 * chains, each of its own marker size, for the stacks tests (check_stacks.py
 * reads the LINE markers of this file to know the expected source lines):
 *   10001  main -> chain_a -> chain_b -> chain_c -> malloc
 *   10002  main -> inl_caller -> inl_helper (always_inline) -> malloc
 *   10003  main -> plugin_alloc -> plugin_inner -> malloc (stk_plugin.c,
 *          dlopen'ed, dlclose'd before the end)
 *   10004  main -> cxx_entry -> cxx_caller -> make<Marker> -> new (chains_cxx.cpp)
 *   10005  main -> realloc_site -> realloc (from 64 bytes)
 * and every block is freed in free_site.  Linked -rdynamic: the exported
 * functions stay in .dynsym when stripped; the static ones do not.  Prints what it did and whether
 * the plugin was really unmapped.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define MAXB 64

void *cxx_entry(void);
void cxx_release(void *p);

static void *blocks[MAXB];
static char is_cxx[MAXB];
static int nblocks;
static unsigned long sum;

static void keep(void *p)
{
    if (!p) exit(3);
    is_cxx[nblocks] = 0;
    memset(p, (int)(nblocks + 1), 16);
    sum += ((unsigned char *)p)[3];
    blocks[nblocks++] = p;
}

NOINLINE void chain_c(void)
{
    void *p = malloc(10001); /* LINE: chain_c */
    keep(p);
}

/* static: not in .dynsym, so a stripped copy must not name it */
static NOINLINE void chain_b(void)
{
    chain_c(); /* LINE: chain_b */
    __asm__ volatile("" ::: "memory");
}

NOINLINE void chain_a(void)
{
    chain_b(); /* LINE: chain_a */
    __asm__ volatile("" ::: "memory");
}

static inline __attribute__((always_inline)) void *inl_helper(size_t n)
{
    return malloc(n); /* LINE: inl_helper */
}

NOINLINE void inl_caller(void)
{
    void *p = inl_helper(10002); /* LINE: inl_caller */
    keep(p);
}

NOINLINE void realloc_site(void)
{
    void *p = malloc(64);
    if (!p) exit(3);
    void *q = realloc(p, 10005); /* LINE: realloc_site */
    keep(q);
}

NOINLINE void free_site(void)
{
    for (int i = 0; i < nblocks; i++) {
        if (is_cxx[i]) cxx_release(blocks[i]); /* LINE: free_site_cxx */
        else free(blocks[i]); /* LINE: free_site */
        __asm__ volatile("" ::: "memory");
    }
    nblocks = 0;
}

static int mapped(const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strstr(line, path)) found = 1;
    fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: stk_chains PLUGIN [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (rounds < 1 || rounds > 10) rounds = 3;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    void *(*plugin_alloc)(void) = (void *(*)(void))dlsym(h, "plugin_alloc");
    if (!plugin_alloc) return 2;
    char *real = realpath(argv[1], NULL);

    for (int r = 0; r < rounds; r++) {
        chain_a(); /* LINE: main_chain */
        __asm__ volatile("" ::: "memory");
        inl_caller(); /* LINE: main_inl */
        __asm__ volatile("" ::: "memory");
        keep(plugin_alloc()); /* LINE: main_plugin */
        keep(cxx_entry()); /* LINE: main_cxx */
        is_cxx[nblocks - 1] = 1;
        realloc_site(); /* LINE: main_realloc */
        __asm__ volatile("" ::: "memory");
    }
    int before = mapped(real);
    dlclose(h);
    int after = mapped(real);
    printf("rounds %d blocks %d sum %lu\n", rounds, nblocks, sum);
    free_site(); /* LINE: main_free */
    printf("plugin mapped before dlclose %s, after %s\n", before == 1 ? "yes" : "no", after == 0 ? "no" : "yes");
    free(real);
    return 0;
}
