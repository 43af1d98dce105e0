/*
 * fx_main.c - fixture program of test_symbols: known call chains, including
 * an always_inline helper, and a library loaded with dlopen and dlclose'd
 * before the program ends.  Each chain records the return address of a call
 * to fx_record (the caller's pc, inside the inlined code where it is
 * inlined), and the program prints what a trace's module records would say:
 *
 *   pid PID
 *   module exe|lib PATH START END FILE_OFFSET LOAD_BIAS BUILD_ID_HEX|-
 *   pc SLOT ADDR          a return address (look it up as ADDR-1)
 *   fn NAME ADDR          a function's entry address
 *   unloaded 0|1          the library is no longer mapped after dlclose
 *
 * START..END is the executable mapping from /proc/self/maps, LOAD_BIAS is
 * dl_iterate_phdr's dlpi_addr, the build id comes from the PT_NOTE segments.
 * Usage: fx_main LIBRARY.  Built -g -O2 -fno-optimize-sibling-calls as a PIE
 * and as a non-PIE executable.  The LINE_MARK comments are looked up by
 * test_symbols.c: keep them on the calls.
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NSLOTS 5
static void *pcs[NSLOTS];
static volatile int sink;

__attribute__((noipa)) void fx_record(int slot);
__attribute__((noipa)) int fx_outer(int x);
__attribute__((noipa)) int fx_deep(int x);

__attribute__((noipa)) void fx_record(int slot)
{
    pcs[slot] = __builtin_return_address(0);
}

static inline __attribute__((always_inline)) int fx_helper(int x)
{
    sink += x;
    fx_record(0); /* LINE_MARK_helper_call */
    return sink * 3;
}

__attribute__((noipa)) int fx_outer(int x)
{
    int r = x + 1;
    r += fx_helper(r); /* LINE_MARK_outer_call */
    fx_record(1); /* LINE_MARK_outer_direct */
    return r + sink;
}

/* two levels of inlining */
static inline __attribute__((always_inline)) int fx_deep_inner(int x)
{
    fx_record(4); /* LINE_MARK_deep_inner */
    return x + sink;
}

static inline __attribute__((always_inline)) int fx_deep_middle(int x)
{
    int r = fx_deep_inner(x * 2); /* LINE_MARK_deep_middle */
    return r + 1;
}

__attribute__((noipa)) int fx_deep(int x)
{
    int r = fx_deep_middle(x); /* LINE_MARK_deep_outer */
    return r + sink;
}

typedef struct modinfo {
    const char *path;   /* NULL: the main program */
    uintptr_t bias;
    char build_id[130];
    int found;
} modinfo;

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    modinfo *m = arg;
    (void)size;
    int is_main = info->dlpi_name == NULL || info->dlpi_name[0] == 0;
    if (m->path ? is_main || strcmp(info->dlpi_name, m->path) != 0 : !is_main) return 0;
    m->bias = info->dlpi_addr;
    m->found = 1;
    strcpy(m->build_id, "-");
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const char *name = p + sizeof *nh;
            const unsigned char *desc = (const unsigned char *)name + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4) &&
                nh->n_descsz <= 64) {
                for (unsigned j = 0; j < nh->n_descsz; j++) sprintf(m->build_id + 2 * j, "%02x", desc[j]);
                return 1;
            }
            p = (const char *)desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
    return 1;
}

/* The executable mapping of `path` in /proc/self/maps: 1 if found. */
static int exec_mapping(const char *path, unsigned long *start, unsigned long *end, unsigned long *off)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char perms[8];
        int pos = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", start, end, perms, off, &pos) < 4 || !pos) continue;
        line[strcspn(line, "\n")] = 0;
        found = perms[2] == 'x' && !strcmp(line + pos, path);
    }
    fclose(f);
    return found;
}

static void print_module(const char *kind, const char *path, const modinfo *m)
{
    unsigned long start = 0, end = 0, off = 0;
    if (!exec_mapping(path, &start, &end, &off)) {
        fprintf(stderr, "fx_main: no executable mapping of %s\n", path);
        exit(1);
    }
    printf("module %s %s %#lx %#lx %#lx %#lx %s\n", kind, path, start, end, off, (unsigned long)m->bias,
           m->build_id);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fx_main LIBRARY\n");
        return 2;
    }
    printf("pid %d\n", (int)getpid());
    fx_outer(argc);
    fx_deep(argc);

    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 1;
    exe[n] = 0;
    modinfo mm = {0};
    dl_iterate_phdr(phdr_cb, &mm);
    if (!mm.found) return 1;
    print_module("exe", exe, &mm);

    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "fx_main: %s\n", dlerror());
        return 1;
    }
    int (*lib_fn)(void (*)(int), int);
    *(void **)&lib_fn = dlsym(h, "fxlib_exported");
    if (!lib_fn) return 1;
    sink += lib_fn(fx_record, 5);
    struct link_map *lm = NULL;
    if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0) return 1;
    modinfo ml = {.path = lm->l_name};
    dl_iterate_phdr(phdr_cb, &ml);
    if (!ml.found) return 1;
    char libpath[4096]; /* as /proc/self/maps shows it: symbolic links resolved */
    if (!realpath(lm->l_name, libpath)) return 1;
    print_module("lib", libpath, &ml);
    printf("fn fxlib_exported %#lx\n", (unsigned long)(uintptr_t)lib_fn);
    dlclose(h);
    unsigned long s, e, o;
    printf("unloaded %d\n", !exec_mapping(libpath, &s, &e, &o));

    for (int i = 0; i < NSLOTS; i++) printf("pc %d %#lx\n", i, (unsigned long)(uintptr_t)pcs[i]);
    printf("fn fx_outer %#lx\n", (unsigned long)(uintptr_t)fx_outer);
    printf("fn main %#lx\n", (unsigned long)(uintptr_t)main);
    return 0;
}
