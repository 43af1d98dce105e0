/* stacktab.c - see stacktab.h. */
#include "stacktab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbols.h"

#define MAX_ID (1u << 24) /* ids are dense per process: a larger one is hostile */

typedef struct stk {
    uint32_t n;        /* return addresses */
    uint64_t *pcs;
    uint32_t nt;       /* frames (inlined ones included) */
    ht_stk_frame *fr;  /* their strings are owned: text, function, file */
    uint32_t site;     /* index into fr of the allocation site */
} stk;

typedef struct rmod { /* for raw frames: module+offset */
    uint64_t start, end, bias;
    char *name;       /* basename */
} rmod;

typedef struct ptab {
    uint32_t pid;
    stk **by_id;      /* by_id[id], id >= 1 */
    uint32_t cap;
    rmod *mods;
    size_t nmods, capmods;
} ptab;

struct ht_stacktab {
    ht_symbolizer *sym;
    ptab *procs;
    size_t nprocs, cap;
};

ht_stacktab *ht_stk_new(ht_symbolizer *sym)
{
    ht_stacktab *t = calloc(1, sizeof *t);
    if (t) t->sym = sym;
    return t;
}

static void stk_free(stk *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < s->nt; i++) {
        free((char *)s->fr[i].text);
        free((char *)s->fr[i].function);
        free((char *)s->fr[i].file);
    }
    free(s->fr);
    free(s->pcs);
    free(s);
}

void ht_stk_free(ht_stacktab *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nprocs; i++) {
        ptab *p = &t->procs[i];
        for (uint32_t k = 0; k < p->cap; k++) stk_free(p->by_id[k]);
        free(p->by_id);
        for (size_t k = 0; k < p->nmods; k++) free(p->mods[k].name);
        free(p->mods);
    }
    free(t->procs);
    free(t);
}

static ptab *proc_of(ht_stacktab *t, uint32_t pid, int add)
{
    for (size_t i = 0; i < t->nprocs; i++)
        if (t->procs[i].pid == pid) return &t->procs[i];
    if (!add) return NULL;
    if (t->nprocs == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        ptab *n = realloc(t->procs, cap * sizeof *n);
        if (!n) return NULL;
        t->procs = n;
        t->cap = cap;
    }
    ptab *p = &t->procs[t->nprocs++];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    return p;
}

static const char *base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A frame of allocator plumbing, not the allocation site. */
static int plumbing(const char *module, const char *fn)
{
    static const char *const mods[] = {"libheaptrace.so", "libc.so", "libstdc++.so", "libgcc_s.so"};
    static const char *const fns[] = {"malloc", "calloc", "realloc", "reallocarray", "free", "memalign",
                                      "posix_memalign", "aligned_alloc", "valloc", "pvalloc",
                                      "_Znw", "_Zna", "operator new", "_ZNSt15__new_allocator",
                                      "_ZN9__gnu_cxx13new_allocator", "_ZNSt16allocator_traits",
                                      "std::__new_allocator", "__gnu_cxx::new_allocator",
                                      "std::allocator_traits", "std::allocator<", "_ZNSaI"};
    if (module)
        for (size_t i = 0; i < sizeof mods / sizeof *mods; i++)
            if (!strncmp(base(module), mods[i], strlen(mods[i]))) return 1;
    if (fn)
        for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
            size_t l = strlen(fns[i]);
            if (!strncmp(fn, fns[i], l) && (fns[i][0] == '_' || fn[l] == 0 || fn[l] == '(' || fn[l] == '<' ||
                                            fn[l] == ' ' || fn[l] == ':'))
                return 1;
        }
    return 0;
}

static char *xstrdup(const char *s)
{
    size_t l = strlen(s) + 1;
    char *d = malloc(l);
    if (d) memcpy(d, s, l);
    return d;
}

/* Appends a frame; the strings are copied (module is the rmod's or the
 * symbolizer's, which outlive the stack). */
static int push_frame(stk *s, uint32_t *cap, const char *txt, const ht_stk_frame *f)
{
    if (s->nt == *cap) {
        uint32_t c = *cap ? *cap * 2 : 16;
        ht_stk_frame *n = realloc(s->fr, c * sizeof *n);
        if (!n) return -ENOMEM;
        s->fr = n;
        *cap = c;
    }
    ht_stk_frame d = *f;
    d.text = xstrdup(txt);
    d.function = f->function ? xstrdup(f->function) : NULL;
    d.file = f->file ? xstrdup(f->file) : NULL;
    if (!d.text || (f->function && !d.function) || (f->file && !d.file)) {
        free((char *)d.text);
        free((char *)d.function);
        free((char *)d.file);
        return -ENOMEM;
    }
    s->fr[s->nt++] = d;
    return 0;
}

/* Renders the frames of s now, with the modules known at this point. */
static int render(ht_stacktab *t, ptab *p, stk *s)
{
    uint32_t cap = 0;
    int site_found = 0;
    char buf[1024];
    for (uint32_t i = 0; i < s->n; i++) {
        uint64_t pc = s->pcs[i];
        /* return addresses: look up the call instruction */
        uint64_t q = pc ? pc - 1 : 0;
        ht_frame_sym fr[16];
        int k = t->sym ? ht_sym_lookup(t->sym, p->pid, q, fr, 16) : 0;
        if (k <= 0) {
            const rmod *m = NULL;
            for (size_t j = p->nmods; j-- > 0;)
                if (pc >= p->mods[j].start && pc < p->mods[j].end) {
                    m = &p->mods[j];
                    break;
                }
            if (m) snprintf(buf, sizeof buf, "%s+0x%" PRIx64, m->name, q - m->bias);
            else snprintf(buf, sizeof buf, "0x%" PRIx64, pc);
            if (!site_found && !(m && plumbing(m->name, NULL))) s->site = s->nt, site_found = 1;
            ht_stk_frame f = {.pc = pc, .module = m ? m->name : NULL, .module_offset = m ? q - m->bias : q};
            if (push_frame(s, &cap, buf, &f) < 0) return -ENOMEM;
            continue;
        }
        for (int j = 0; j < k; j++) {
            const ht_frame_sym *f = &fr[j];
            const char *fn = f->function;
            char dm[512];
            if (fn && ht_sym_demangle(fn, dm, sizeof dm)) fn = dm;
            if (fn && f->file)
                snprintf(buf, sizeof buf, "%s (%s:%d)%s", fn, f->file, f->line, f->inlined ? " [inlined]" : "");
            else if (fn)
                snprintf(buf, sizeof buf, "%s (%s)%s", fn, base(f->module ? f->module : "?"),
                         f->inlined ? " [inlined]" : "");
            else
                snprintf(buf, sizeof buf, "%s+0x%" PRIx64, base(f->module ? f->module : "?"), f->module_offset);
            if (!site_found && !plumbing(f->module, fn)) s->site = s->nt, site_found = 1;
            ht_stk_frame sf = {.function = fn, .file = f->file, .line = f->line, .inlined = f->inlined,
                               .module = f->module ? base(f->module) : NULL, .pc = pc,
                               .module_offset = f->module_offset};
            if (push_frame(s, &cap, buf, &sf) < 0) return -ENOMEM;
        }
    }
    if (!site_found) s->site = 0;
    return 0;
}

int ht_stk_event(ht_stacktab *t, const ht_event *ev)
{
    if (ev->kind == HT_EV_MODULE) {
        if (ev->nargs < 4 || ev->text_len < 1) return -EBADMSG;
        const uint8_t *x = (const uint8_t *)ev->text;
        uint32_t bl = x[0];
        if (1 + bl > ev->text_len || ev->arg[1] <= ev->arg[0]) return -EBADMSG;
        size_t pl = ev->text_len - 1 - bl;
        char *path = malloc(pl + 1);
        if (!path) return -ENOMEM;
        memcpy(path, x + 1 + bl, pl);
        path[pl] = 0;
        ptab *p = proc_of(t, ev->pid, 1);
        if (!p) {
            free(path);
            return -ENOMEM;
        }
        if (t->sym) {
            ht_module m = {ev->arg[0], ev->arg[1], ev->arg[2], ev->arg[3], path, bl ? x + 1 : NULL, bl};
            ht_sym_add_module(t->sym, ev->pid, &m);
        }
        if (p->nmods == p->capmods) {
            size_t c = p->capmods ? p->capmods * 2 : 16;
            rmod *n = realloc(p->mods, c * sizeof *n);
            if (!n) {
                free(path);
                return -ENOMEM;
            }
            p->mods = n;
            p->capmods = c;
        }
        rmod *r = &p->mods[p->nmods];
        r->start = ev->arg[0];
        r->end = ev->arg[1];
        r->bias = ev->arg[3];
        r->name = xstrdup(base(path));
        free(path);
        if (!r->name) return -ENOMEM;
        p->nmods++;
        return 0;
    }
    if (ev->kind != HT_EV_STACK) return 0;
    if (ev->nargs < 1 || ev->arg[0] == 0 || ev->arg[0] >= MAX_ID || ev->text_len == 0 || ev->text_len % 8 ||
        ev->text_len / 8 > 4096)
        return -EBADMSG;
    ptab *p = proc_of(t, ev->pid, 1);
    if (!p) return -ENOMEM;
    uint32_t id = (uint32_t)ev->arg[0];
    if (id >= p->cap) {
        uint32_t cap = p->cap ? p->cap : 256;
        while (cap <= id) cap *= 2;
        stk **n = realloc(p->by_id, cap * sizeof *n);
        if (!n) return -ENOMEM;
        memset(n + p->cap, 0, (cap - p->cap) * sizeof *n);
        p->by_id = n;
        p->cap = cap;
    }
    stk *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->n = ev->text_len / 8;
    s->pcs = malloc(s->n * sizeof *s->pcs);
    if (!s->pcs) {
        free(s);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->n; i++) {
        uint64_t v = 0;
        for (int b = 7; b >= 0; b--) v = v << 8 | (uint8_t)ev->text[i * 8 + (uint32_t)b];
        s->pcs[i] = v;
    }
    if (render(t, p, s) < 0) {
        stk_free(s);
        return -ENOMEM;
    }
    stk_free(p->by_id[id]); /* a repeated id: the newer one counts */
    p->by_id[id] = s;
    return 0;
}

static const stk *find(const ht_stacktab *t, uint32_t pid, uint32_t id)
{
    for (size_t i = 0; i < t->nprocs; i++)
        if (t->procs[i].pid == pid) return id < t->procs[i].cap ? t->procs[i].by_id[id] : NULL;
    return NULL;
}

int ht_stk_frames(const ht_stacktab *t, uint32_t pid, uint32_t id, const uint64_t **pcs)
{
    const stk *s = find(t, pid, id);
    if (!s) return 0;
    *pcs = s->pcs;
    return (int)s->n;
}

size_t ht_stk_format(ht_stacktab *t, uint32_t pid, uint32_t id, const char *sep, char *out, size_t len)
{
    const stk *s = find(t, pid, id);
    size_t n = 0;
    if (len) out[0] = 0;
    if (!s || !len) return 0;
    for (uint32_t i = 0; i < s->nt && n + 1 < len; i++) {
        int w = snprintf(out + n, len - n, "%s%s", i ? sep : "", s->fr[i].text);
        if (w < 0) break;
        n += (size_t)w;
    }
    return n < len ? n : len - 1;
}

size_t ht_stk_site(ht_stacktab *t, uint32_t pid, uint32_t id, char *out, size_t len)
{
    const stk *s = find(t, pid, id);
    if (len) out[0] = 0;
    if (!s || !s->nt || !len) return 0;
    int w = snprintf(out, len, "%s", s->fr[s->site < s->nt ? s->site : 0].text);
    return w < 0 ? 0 : (size_t)w < len ? (size_t)w : len - 1;
}

int ht_stk_nframes(const ht_stacktab *t, uint32_t pid, uint32_t id, const ht_stk_frame **frames, uint32_t *site)
{
    const stk *s = find(t, pid, id);
    if (!s) return 0;
    *frames = s->fr;
    if (site) *site = s->site < s->nt ? s->site : 0;
    return (int)s->nt;
}
