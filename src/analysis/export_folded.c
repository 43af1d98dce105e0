/*
 * export_folded.c - see export.h.
 *
 * Brendan Gregg's collapsed-stack format, read by flamegraph.pl, inferno
 * and speedscope: one line per stack, "outer;...;inner VALUE".  A line is
 * split at its last space, so frames may hold spaces but never ';' (the
 * separator, written ':') nor a newline (dropped).
 *
 * A stack starts at its allocation site (stacktab.h's ht_stk_site): the
 * allocator's plumbing above it (libheaptrace's interposer, malloc,
 * operator new) is the same on every stack and would only make every flame
 * end in the same narrow towers; pprof's export leaves it out too.  Stacks
 * that render alike (the same frames under different ids, as after a
 * module was reloaded) are merged; lines are sorted, so a trace always
 * gives the same file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"

typedef struct line {
    char *text;  /* the stack, without the value */
    uint64_t value;
} line;

typedef struct sbuf {
    char *d;
    size_t len, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s, size_t n)
{
    if (n + 1 > b->cap - b->len) {
        size_t c = b->cap ? b->cap : 256;
        while (c - b->len < n + 1) c *= 2;
        char *d = realloc(b->d, c);
        if (!d) return -ENOMEM;
        b->d = d;
        b->cap = c;
    }
    memcpy(b->d + b->len, s, n);
    b->len += n;
    b->d[b->len] = 0;
    return 0;
}

/* Appends a frame, made safe for the format: ';' becomes ':', line breaks
 * go; an empty one would leave ";;", so it reads "?". */
static int sb_frame(sbuf *b, const char *text)
{
    if (b->len && sb_add(b, ";", 1) < 0) return -ENOMEM;
    size_t start = b->len;
    for (const char *p = text; *p; p++) {
        char c = *p == ';' ? ':' : *p;
        if (c == '\n' || c == '\r') continue;
        if (sb_add(b, &c, 1) < 0) return -ENOMEM;
    }
    return b->len == start ? sb_add(b, "?", 1) : 0;
}

static uint64_t value_of(const ht_prof_site *t, int what)
{
    switch (what) {
    case HT_VALUE_ALLOC_COUNT: return t->allocs;
    case HT_VALUE_LEAK_BYTES: return t->live_bytes;
    case HT_VALUE_PEAK_BYTES: return t->peak_bytes;
    case HT_VALUE_TEMPORARY: return t->temporary;
    default: return t->bytes;
    }
}

/* "cmd (pid)": the program's name, the first word of its command line
 * without the directory, as ps shows it. */
static int root_frame(sbuf *b, const ht_prof *p, uint32_t pid)
{
    const ht_prof_proc *pr = ht_prof_proc_of(p, pid);
    const char *cmd = pr && pr->command && pr->command[0] ? pr->command : NULL;
    char name[256];
    if (cmd) {
        size_t n = strcspn(cmd, " \t");
        const char *slash = memrchr(cmd, '/', n);
        const char *s = slash && slash + 1 < cmd + n ? slash + 1 : cmd;
        n -= (size_t)(s - cmd);
        snprintf(name, sizeof name, "%.*s (%" PRIu32 ")", (int)(n < 200 ? n : 200), s, pid);
    } else {
        snprintf(name, sizeof name, "pid %" PRIu32, pid);
    }
    return sb_frame(b, name);
}

static int line_cmp(const void *a, const void *b)
{
    return strcmp(((const line *)a)->text, ((const line *)b)->text);
}

int ht_export_folded(const ht_export_ctx *x, FILE *out)
{
    const ht_prof *p = x->prof;
    int multi = p->nprocs > 1, rc = 0;
    line *v = malloc((p->nsites ? p->nsites : 1) * sizeof *v);
    if (!v) return -ENOMEM;
    size_t nv = 0;
    sbuf b = {0};
    for (size_t i = 0; i < p->capsites && nv < p->nsites; i++) {
        const ht_prof_site *t = &p->sites[i];
        uint64_t val = t->used ? value_of(t, x->value) : 0;
        if (!val) continue;
        b.len = 0;
        if (multi && root_frame(&b, p, t->pid) < 0) goto oom;
        const ht_stk_frame *fr = NULL;
        uint32_t site = 0;
        int n = t->stack ? ht_stk_nframes(x->stk, t->pid, t->stack, &fr, &site) : 0;
        if (n <= 0) {
            /* no stack recorded, or an id the trace never defined */
            if (sb_frame(&b, "[no call stack]") < 0) goto oom;
        } else {
            for (int k = n - 1; k >= (int)site; k--) /* outermost first */
                if (sb_frame(&b, fr[k].text) < 0) goto oom;
        }
        v[nv].text = malloc(b.len + 1);
        if (!v[nv].text) goto oom;
        memcpy(v[nv].text, b.d, b.len + 1);
        v[nv++].value = val;
    }
    qsort(v, nv, sizeof *v, line_cmp);
    for (size_t i = 0; i < nv;) {
        uint64_t sum = v[i].value;
        size_t j = i + 1;
        for (; j < nv && !strcmp(v[j].text, v[i].text); j++) sum += v[j].value;
        if (fprintf(out, "%s %" PRIu64 "\n", v[i].text, sum) < 0) {
            rc = -EIO;
            break;
        }
        i = j;
    }
    goto done;
oom:
    rc = -ENOMEM;
done:
    for (size_t i = 0; i < nv; i++) free(v[i].text);
    free(v);
    free(b.d);
    return rc;
}
