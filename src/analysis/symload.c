/* symload.c - the symbolizer's entry points for the tools: they load
 * libheaptrace-symbols.so (symbols.c with libdw) on first use, from
 * $HEAPTRACE_SYMBOLS, next to the executable, or ../lib/heaptrace/. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "symbols.h"

static struct {
    int tried;
    ht_symbolizer *(*new_)(const char *, const char *);
    int (*add)(ht_symbolizer *, uint32_t, const ht_module *);
    int (*lookup)(ht_symbolizer *, uint32_t, uint64_t, ht_frame_sym *, int);
    void (*free_)(ht_symbolizer *);
    int (*demangle)(const char *, char *, size_t);
    char why[PATH_MAX + 128];
} api;

static void *open_module(void)
{
    const char *env = getenv("HEAPTRACE_SYMBOLS");
    if (env && *env) return dlopen(env, RTLD_NOW | RTLD_LOCAL);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    static const char *const cands[] = {"/libheaptrace-symbols.so", "/../lib/heaptrace/libheaptrace-symbols.so"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s%s", exe, cands[i]);
        if (access(p, R_OK) != 0) continue;
        void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
        snprintf(api.why, sizeof api.why, "symbols unavailable: %s", dlerror());
        return NULL;
    }
    return NULL;
}

static int load(void)
{
    if (api.tried) return api.new_ != NULL;
    api.tried = 1;
    snprintf(api.why, sizeof api.why,
             "symbols unavailable: libheaptrace-symbols.so not found (set HEAPTRACE_SYMBOLS to its path); "
             "frames are module+offset");
    void *h = open_module();
    if (!h) return 0;
    api.new_ = (ht_symbolizer * (*)(const char *, const char *)) dlsym(h, "ht_sym_impl_new");
    api.add = (int (*)(ht_symbolizer *, uint32_t, const ht_module *))dlsym(h, "ht_sym_impl_add_module");
    api.lookup = (int (*)(ht_symbolizer *, uint32_t, uint64_t, ht_frame_sym *, int))dlsym(h, "ht_sym_impl_lookup");
    api.free_ = (void (*)(ht_symbolizer *))dlsym(h, "ht_sym_impl_free");
    api.demangle = (int (*)(const char *, char *, size_t))dlsym(h, "ht_sym_impl_demangle");
    if (!api.new_ || !api.add || !api.lookup || !api.free_) {
        snprintf(api.why, sizeof api.why, "symbols unavailable: libheaptrace-symbols.so lacks its entry points");
        api.new_ = NULL;
        return 0;
    }
    return 1;
}

const char *ht_sym_unavailable(void)
{
    return api.tried && !api.new_ ? api.why : NULL;
}

ht_symbolizer *ht_sym_new(const char *sysroot, const char *debug_dir)
{
    return load() ? api.new_(sysroot, debug_dir) : NULL;
}

int ht_sym_add_module(ht_symbolizer *s, uint32_t pid, const ht_module *m)
{
    return s && api.add ? api.add(s, pid, m) : -1;
}

int ht_sym_lookup(ht_symbolizer *s, uint32_t pid, uint64_t addr, ht_frame_sym *out, int max)
{
    return s && api.lookup ? api.lookup(s, pid, addr, out, max) : 0;
}

void ht_sym_free(ht_symbolizer *s)
{
    if (s && api.free_) api.free_(s);
}

int ht_sym_demangle(const char *name, char *out, size_t len)
{
    return api.demangle ? api.demangle(name, out, len) : 0;
}
