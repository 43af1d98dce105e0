/*
 * export_pprof.c - see export.h.
 *
 * The profile is perftools.profiles.Profile (github.com/google/pprof,
 * proto/profile.proto), protobuf-encoded by hand and gzip-compressed, as
 * `go tool pprof` and pprof read it from disk.  Protobuf lets a message's
 * fields come in any order and repeated fields interleave, so the top-level
 * fields are streamed into the compressor as they are made: a Location or
 * Function goes out the first time a sample needs it, and only the tables
 * that deduplicate them (strings, functions, locations, mappings) stay in
 * memory.  The string table and the mappings (whose address ranges are
 * only known at the end) are written last.
 *
 * One Sample per site, its stack from the allocation site outwards: the
 * allocator's plumbing above it (libheaptrace's interposer, malloc,
 * operator new; stacktab.h's ht_stk_site) is left out, as Go's heap
 * profiles leave out mallocgc, so that pprof's "flat" column names the
 * functions that allocate rather than malloc itself.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "export.h"

/* profile.proto field numbers */
enum {
    P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4, P_FUNCTION = 5, P_STRING_TABLE = 6,
    P_TIME_NANOS = 9, P_DURATION_NANOS = 10, P_PERIOD_TYPE = 11, P_PERIOD = 12, P_COMMENT = 13,
    P_DEFAULT_SAMPLE_TYPE = 14,
};
enum { VT_TYPE = 1, VT_UNIT = 2 };
enum { S_LOCATION_ID = 1, S_VALUE = 2, S_LABEL = 3 };
enum { LB_KEY = 1, LB_NUM = 3 };
enum {
    M_ID = 1, M_MEMORY_START = 2, M_MEMORY_LIMIT = 3, M_FILE_OFFSET = 4, M_FILENAME = 5, M_HAS_FUNCTIONS = 7,
    M_HAS_FILENAMES = 8, M_HAS_LINE_NUMBERS = 9, M_HAS_INLINE_FRAMES = 10,
};
enum { L_ID = 1, L_MAPPING_ID = 2, L_ADDRESS = 3, L_LINE = 4 };
enum { LN_FUNCTION_ID = 1, LN_LINE = 2 };
enum { F_ID = 1, F_NAME = 2, F_SYSTEM_NAME = 3, F_FILENAME = 4 };
enum { WT_VARINT = 0, WT_LEN = 2 };

/* ---- protobuf wire encoding into a growable buffer ---- */

/* A failed allocation sets oom and turns later writes into no-ops, so the
 * encoders need no error paths; the caller checks once per message. */
typedef struct pbuf {
    uint8_t *d;
    size_t len, cap;
    int oom;
} pbuf;

static void pb_put(pbuf *b, const void *p, size_t n)
{
    if (b->oom || !n) return;
    if (n > b->cap - b->len) {
        size_t c = b->cap ? b->cap : 256;
        while (c - b->len < n) c *= 2;
        uint8_t *d = realloc(b->d, c);
        if (!d) {
            b->oom = 1;
            return;
        }
        b->d = d;
        b->cap = c;
    }
    memcpy(b->d + b->len, p, n);
    b->len += n;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) v >>= 7, n++;
    return n;
}

static void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    pb_put(b, t, n);
}

static void pb_key(pbuf *b, unsigned field, unsigned wire) { pb_varint(b, (uint64_t)field << 3 | wire); }

/* An integer field.  proto3 leaves out zeros: they are the default. */
static void pb_int(pbuf *b, unsigned field, uint64_t v)
{
    if (!v) return;
    pb_key(b, field, WT_VARINT);
    pb_varint(b, v);
}

static void pb_bytes(pbuf *b, unsigned field, const void *p, size_t n)
{
    pb_key(b, field, WT_LEN);
    pb_varint(b, n);
    pb_put(b, p, n);
}

static void pb_msg(pbuf *b, unsigned field, const pbuf *m)
{
    if (m->oom) b->oom = 1;
    pb_bytes(b, field, m->d, m->len);
}

/* A packed repeated integer field (proto3's encoding of repeated scalars). */
static void pb_packed(pbuf *b, unsigned field, const uint64_t *v, size_t n)
{
    if (!n) return;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += varint_len(v[i]);
    pb_key(b, field, WT_LEN);
    pb_varint(b, len);
    for (size_t i = 0; i < n; i++) pb_varint(b, v[i]);
}

/* int64 fields: a count past INT64_MAX would read back negative */
static uint64_t i64(uint64_t v) { return v > INT64_MAX ? (uint64_t)INT64_MAX : v; }

/* ---- hashing ---- */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdu;
    return h ^ (h >> 32);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3u;
    return h;
}

/* Open-addressing index: slot holds id+1 of an entry (0: empty).  Grows at
 * half full so that probes stay short. */
typedef struct hindex {
    uint32_t *slot;
    size_t cap;
} hindex;

static int hi_grow(hindex *ix, size_t n, uint64_t (*hash_of)(const void *, uint32_t), const void *ctx)
{
    if (ix->cap && (n + 1) * 2 <= ix->cap) return 0;
    size_t cap = ix->cap ? ix->cap * 2 : 1024;
    uint32_t *s = calloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->slot[i]) continue;
        size_t k = hash_of(ctx, ix->slot[i] - 1) & (cap - 1);
        while (s[k]) k = (k + 1) & (cap - 1);
        s[k] = ix->slot[i];
    }
    free(ix->slot);
    ix->slot = s;
    ix->cap = cap;
    return 0;
}

/* ---- the export's state ---- */

typedef struct func {
    uint64_t name, file; /* string ids */
} func;

typedef struct loc {
    uint32_t pid, nlines;
    uint64_t pc;
    size_t lines; /* first of nlines (function id, line) pairs in lv */
} loc;

typedef struct map {
    uint32_t pid;
    uint64_t file;   /* string id of the module's name */
    uint64_t lo, hi; /* addresses seen: [lo, hi] */
    uint64_t lo_off; /* module offset of lo */
} map;

typedef struct pp {
    const ht_export_ctx *x;
    FILE *out;
    z_stream z;
    int z_open;
    int err;           /* first error, -errno */
    pbuf top;          /* top-level fields not yet compressed */
    pbuf m1, m2;       /* scratch for a message and one nested in it */
    /* strings: id -> text */
    char **str;
    size_t nstr, capstr;
    hindex str_ix;
    func *fn;
    size_t nfn, capfn;
    hindex fn_ix;
    loc *lc;
    size_t nlc, caplc;
    hindex lc_ix;
    uint64_t *lv; /* location lines: function id, line, ... */
    size_t nlv, caplv;
    map *mp;
    size_t nmp, capmp;
    uint64_t *ids; /* one sample's location ids */
    size_t capids;
    uint8_t zbuf[65536];
} pp;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *n = realloc(*p, c * elem);
    if (!n) return -ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

/* Feeds the top-level bytes to the compressor; with finish, ends the gzip
 * stream. */
static int pp_flush(pp *s, int finish)
{
    if (s->err) return s->err;
    if (s->top.oom) return s->err = -ENOMEM;
    s->z.next_in = s->top.d;
    s->z.avail_in = (uInt)s->top.len;
    int zr;
    do {
        s->z.next_out = s->zbuf;
        s->z.avail_out = sizeof s->zbuf;
        zr = deflate(&s->z, finish ? Z_FINISH : Z_NO_FLUSH);
        if (zr == Z_STREAM_ERROR) return s->err = -EIO;
        size_t have = sizeof s->zbuf - s->z.avail_out;
        if (have && fwrite(s->zbuf, 1, have, s->out) != have) return s->err = -EIO;
    } while (s->z.avail_in || s->z.avail_out == 0 || (finish && zr != Z_STREAM_END));
    s->top.len = 0;
    return 0;
}

/* After a top-level field was added: compress once enough has gathered. */
static int pp_emitted(pp *s)
{
    if (s->top.oom) return s->err = -ENOMEM;
    return s->top.len >= sizeof s->zbuf ? pp_flush(s, 0) : s->err;
}

/* ---- strings ---- */

static uint64_t str_hash(const void *ctx, uint32_t id) { return hash_str(((const pp *)ctx)->str[id]); }

/* *id: the string table index of text (added if new).  0 or -ENOMEM. */
static int str_id(pp *s, const char *text, uint64_t *id)
{
    if (hi_grow(&s->str_ix, s->nstr, str_hash, s) < 0) return -ENOMEM;
    size_t mask = s->str_ix.cap - 1, k = hash_str(text) & mask;
    for (; s->str_ix.slot[k]; k = (k + 1) & mask)
        if (!strcmp(s->str[s->str_ix.slot[k] - 1], text)) {
            *id = s->str_ix.slot[k] - 1;
            return 0;
        }
    if (grow((void **)&s->str, &s->capstr, s->nstr + 1, sizeof *s->str) < 0) return -ENOMEM;
    size_t l = strlen(text) + 1;
    char *c = malloc(l);
    if (!c) return -ENOMEM;
    memcpy(c, text, l);
    s->str[s->nstr] = c;
    s->str_ix.slot[k] = (uint32_t)++s->nstr;
    *id = s->nstr - 1;
    return 0;
}

/* ---- functions ---- */

static uint64_t fn_hash(const void *ctx, uint32_t id)
{
    const func *f = &((const pp *)ctx)->fn[id];
    return mix(mix(1, f->name), f->file);
}

/* The id (from 1) of the function (name, file), written out when new. */
static int fn_id(pp *s, const char *name, const char *file, uint64_t *id)
{
    func f;
    if (str_id(s, name, &f.name) < 0 || str_id(s, file ? file : "", &f.file) < 0) return -ENOMEM;
    if (hi_grow(&s->fn_ix, s->nfn, fn_hash, s) < 0) return -ENOMEM;
    size_t mask = s->fn_ix.cap - 1, k = mix(mix(1, f.name), f.file) & mask;
    for (; s->fn_ix.slot[k]; k = (k + 1) & mask) {
        const func *g = &s->fn[s->fn_ix.slot[k] - 1];
        if (g->name == f.name && g->file == f.file) {
            *id = s->fn_ix.slot[k];
            return 0;
        }
    }
    if (grow((void **)&s->fn, &s->capfn, s->nfn + 1, sizeof *s->fn) < 0) return -ENOMEM;
    s->fn[s->nfn] = f;
    s->fn_ix.slot[k] = (uint32_t)++s->nfn;
    *id = s->nfn;
    /* stacktab keeps only the demangled name: it is the system name too */
    pbuf *m = &s->m1;
    m->len = 0;
    pb_int(m, F_ID, *id);
    pb_int(m, F_NAME, f.name);
    pb_int(m, F_SYSTEM_NAME, f.name);
    pb_int(m, F_FILENAME, f.file);
    pb_msg(&s->top, P_FUNCTION, m);
    return pp_emitted(s);
}

/* ---- mappings ---- */

/* The mapping (from 1) of module `name` in process pid, its address range
 * widened to cover addr; 0 when the frame has no module. */
static int map_id(pp *s, uint32_t pid, const char *name, uint64_t addr, uint64_t off, uint64_t *id)
{
    *id = 0;
    if (!name) return 0;
    uint64_t file;
    if (str_id(s, name, &file) < 0) return -ENOMEM;
    /* few modules per process: a linear search is enough */
    for (size_t i = 0; i < s->nmp; i++) {
        map *m = &s->mp[i];
        if (m->pid != pid || m->file != file) continue;
        if (addr < m->lo) m->lo = addr, m->lo_off = off;
        if (addr > m->hi) m->hi = addr;
        *id = i + 1;
        return 0;
    }
    if (grow((void **)&s->mp, &s->capmp, s->nmp + 1, sizeof *s->mp) < 0) return -ENOMEM;
    s->mp[s->nmp] = (map){.pid = pid, .file = file, .lo = addr, .hi = addr, .lo_off = off};
    *id = ++s->nmp;
    return 0;
}

/* ---- locations ---- */

static uint64_t lc_hash_of(uint32_t pid, uint64_t pc, const uint64_t *lines, uint32_t n)
{
    uint64_t h = mix(mix(pid, pc), n);
    for (uint32_t i = 0; i < 2 * n; i++) h = mix(h, lines[i]);
    return h;
}

static uint64_t lc_hash(const void *ctx, uint32_t id)
{
    const pp *s = ctx;
    const loc *l = &s->lc[id];
    return lc_hash_of(l->pid, l->pc, s->lv + l->lines, l->nlines);
}

/* The location (from 1) of pc in process pid whose Lines are the frames
 * fr[0..n) (innermost first: the functions inlined into the last one).
 * Keyed by the lines as well as the pc: a module unloaded and another
 * loaded at its address gives the same pc other functions, and a stack
 * whose plumbing ends inside an inlined chain starts that chain part-way. */
static int lc_id(pp *s, uint32_t pid, uint64_t pc, const ht_stk_frame *fr, uint32_t n, const char *fake,
                 uint64_t *id)
{
    size_t at = s->nlv;
    if (grow((void **)&s->lv, &s->caplv, at + 2 * (size_t)n, sizeof *s->lv) < 0) return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t f;
        /* a frame without a symbol is named by its text, "module+0xoffset" */
        const char *name = fake ? fake : fr[i].function ? fr[i].function : fr[i].text;
        if (fn_id(s, name, fake ? NULL : fr[i].file, &f) < 0) return -ENOMEM;
        s->lv[at + 2 * i] = f;
        s->lv[at + 2 * i + 1] = fake ? 0 : (uint64_t)(fr[i].line > 0 ? fr[i].line : 0);
    }
    if (hi_grow(&s->lc_ix, s->nlc, lc_hash, s) < 0) return -ENOMEM;
    const uint64_t *lines = s->lv + at;
    size_t mask = s->lc_ix.cap - 1, k = lc_hash_of(pid, pc, lines, n) & mask;
    for (; s->lc_ix.slot[k]; k = (k + 1) & mask) {
        const loc *l = &s->lc[s->lc_ix.slot[k] - 1];
        if (l->pid == pid && l->pc == pc && l->nlines == n &&
            !memcmp(s->lv + l->lines, lines, 2 * (size_t)n * sizeof *lines)) {
            *id = s->lc_ix.slot[k];
            return 0; /* the lines just added at `at` are left unused, overwritten next time */
        }
    }
    if (grow((void **)&s->lc, &s->caplc, s->nlc + 1, sizeof *s->lc) < 0) return -ENOMEM;
    s->lc[s->nlc] = (loc){.pid = pid, .nlines = n, .pc = pc, .lines = at};
    s->nlv = at + 2 * (size_t)n;
    s->lc_ix.slot[k] = (uint32_t)++s->nlc;
    *id = s->nlc;
    /* the address of the call instruction, as stacktab looks it up */
    uint64_t addr = pc ? pc - 1 : 0, mid = 0;
    const ht_stk_frame *outer = fake ? NULL : &fr[n - 1];
    if (outer && map_id(s, pid, outer->module, addr, outer->module_offset, &mid) < 0) return -ENOMEM;
    pbuf *m = &s->m1, *ln = &s->m2;
    m->len = 0;
    pb_int(m, L_ID, *id);
    pb_int(m, L_MAPPING_ID, mid);
    pb_int(m, L_ADDRESS, addr);
    for (uint32_t i = 0; i < n; i++) {
        ln->len = 0;
        pb_int(ln, LN_FUNCTION_ID, lines[2 * i]);
        pb_int(ln, LN_LINE, lines[2 * i + 1]);
        pb_msg(m, L_LINE, ln);
    }
    pb_msg(&s->top, P_LOCATION, m);
    return pp_emitted(s);
}

/* ---- samples ---- */

static int site_cmp(const void *a, const void *b)
{
    const ht_prof_site *x = *(const ht_prof_site *const *)a, *y = *(const ht_prof_site *const *)b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

static int sample(pp *s, const ht_prof_site *t, uint64_t pid_key)
{
    const ht_stk_frame *fr = NULL;
    uint32_t site = 0;
    int n = t->stack ? ht_stk_nframes(s->x->stk, t->pid, t->stack, &fr, &site) : 0;
    size_t nids = 0;
    if (n <= 0) {
        /* no stack recorded, or an id the trace never defined */
        if (grow((void **)&s->ids, &s->capids, 1, sizeof *s->ids) < 0) return -ENOMEM;
        if (lc_id(s, t->pid, 0, NULL, 1, "[no call stack]", &s->ids[0]) < 0) return -ENOMEM;
        nids = 1;
    } else {
        for (uint32_t i = site; i < (uint32_t)n;) {
            /* one Location per pc: the frames inlined into a function share
             * its pc and come before it */
            uint32_t j = i;
            while (j + 1 < (uint32_t)n && fr[j].inlined) j++;
            if (grow((void **)&s->ids, &s->capids, nids + 1, sizeof *s->ids) < 0) return -ENOMEM;
            if (lc_id(s, t->pid, fr[j].pc, fr + i, j - i + 1, NULL, &s->ids[nids]) < 0) return -ENOMEM;
            nids++;
            i = j + 1;
        }
    }
    const uint64_t v[4] = {i64(t->allocs), i64(t->bytes), i64(t->live_blocks), i64(t->live_bytes)};
    pbuf *m = &s->m1, *lb = &s->m2;
    m->len = 0;
    pb_packed(m, S_LOCATION_ID, s->ids, nids);
    pb_packed(m, S_VALUE, v, 4);
    if (pid_key) {
        lb->len = 0;
        pb_int(lb, LB_KEY, pid_key);
        pb_int(lb, LB_NUM, t->pid);
        pb_msg(m, S_LABEL, lb);
    }
    pb_msg(&s->top, P_SAMPLE, m);
    return pp_emitted(s);
}

/* Named like a shared object: "*.so", "*.so.1", "*.so_2" (pprof's test). */
static int shared_object(const char *name)
{
    for (const char *p = strstr(name, ".so"); p; p = strstr(p + 1, ".so")) {
        if (!p[3]) return 1;
        if ((p[3] == '.' || p[3] == '_') && p[4] >= '0' && p[4] <= '9') return 1;
    }
    return 0;
}

/* The mapping of the traced program: the module named like the program of
 * the first process (its command line's first word, without the
 * directory), else the first that is not a shared object. */
static size_t main_mapping(const pp *s)
{
    const ht_prof *p = s->x->prof;
    for (size_t k = 0; k < p->nprocs; k++) {
        const char *cmd = p->procs[k].command;
        if (!cmd || !*cmd) continue;
        size_t n = strcspn(cmd, " \t");
        const char *slash = memrchr(cmd, '/', n);
        const char *b = slash ? slash + 1 : cmd;
        size_t bl = n - (size_t)(b - cmd);
        for (size_t i = 0; i < s->nmp; i++) {
            const char *f = s->str[s->mp[i].file];
            if (s->mp[i].pid == p->procs[k].pid && strlen(f) == bl && !memcmp(f, b, bl)) return i;
        }
        break;
    }
    for (size_t i = 0; i < s->nmp; i++)
        if (!shared_object(s->str[s->mp[i].file])) return i;
    return 0;
}

static int value_type(pp *s, unsigned field, const char *type, const char *unit)
{
    uint64_t ti, ui;
    if (str_id(s, type, &ti) < 0 || str_id(s, unit, &ui) < 0) return -ENOMEM;
    pbuf *m = &s->m1;
    m->len = 0;
    pb_int(m, VT_TYPE, ti);
    pb_int(m, VT_UNIT, ui);
    pb_msg(&s->top, field, m);
    return pp_emitted(s);
}

static int write_profile(pp *s)
{
    const ht_export_ctx *x = s->x;
    const ht_prof *p = x->prof;
    uint64_t id;
    if (str_id(s, "", &id) < 0) return -ENOMEM; /* string_table[0] must be "" */
    /* the order go's heap profiles use; in use = live at the end of the trace */
    static const char *const types[4][2] = {
        {"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
    for (int i = 0; i < 4; i++)
        if (value_type(s, P_SAMPLE_TYPE, types[i][0], types[i][1]) < 0) return s->err ? s->err : -ENOMEM;
    /* pprof opens a profile on alloc_space, not on inuse_space as Go's heap
     * profiles do: a trace runs to the program's end, where "in use" means
     * leaked, and a program that frees what it allocates would open on an
     * empty graph.  Bytes allocated is what the report's sites and the
     * folded export rank by too. */
    uint64_t def;
    if (str_id(s, "alloc_space", &def) < 0) return -ENOMEM;
    if (value_type(s, P_PERIOD_TYPE, "space", "bytes") < 0) return s->err ? s->err : -ENOMEM;
    pb_int(&s->top, P_PERIOD, 1); /* every allocation is in the trace, none sampled */
    pb_int(&s->top, P_DEFAULT_SAMPLE_TYPE, def);
    if (x->hdr) pb_int(&s->top, P_TIME_NANOS, i64(x->hdr->start_real_ns));
    pb_int(&s->top, P_DURATION_NANOS, i64(p->last_ts));

    /* comments: where the profile came from (`go tool pprof -comments`) */
    char buf[512];
    uint64_t cm[2];
    size_t ncm = 0;
    snprintf(buf, sizeof buf, "heaptrace export of %s", x->trace_path ? x->trace_path : "a trace");
    if (str_id(s, buf, &cm[ncm++]) < 0) return -ENOMEM;
    if (x->hdr && x->hdr->hostname[0]) {
        snprintf(buf, sizeof buf, "recorded on %.*s (%.*s %.*s)", (int)sizeof x->hdr->hostname, x->hdr->hostname,
                 (int)sizeof x->hdr->kernel, x->hdr->kernel, (int)sizeof x->hdr->machine, x->hdr->machine);
        if (str_id(s, buf, &cm[ncm++]) < 0) return -ENOMEM;
    }
    pb_packed(&s->top, P_COMMENT, cm, ncm);

    uint64_t pid_key = 0;
    if (p->nprocs > 1 && str_id(s, "pid", &pid_key) < 0) return -ENOMEM;

    /* sites in (pid, stack) order: the same trace gives the same file */
    const ht_prof_site **v = malloc((p->nsites ? p->nsites : 1) * sizeof *v);
    if (!v) return -ENOMEM;
    size_t nv = 0;
    for (size_t i = 0; i < p->capsites && nv < p->nsites; i++) {
        const ht_prof_site *t = &p->sites[i];
        if (t->used && (t->allocs || t->bytes || t->live_blocks || t->live_bytes)) v[nv++] = t;
    }
    qsort(v, nv, sizeof *v, site_cmp);
    int rc = 0;
    for (size_t i = 0; i < nv && !rc; i++) rc = sample(s, v[i], pid_key);
    free(v);
    if (rc) return s->err ? s->err : rc;

    /* The mappings: one per module and process, spanning the addresses its
     * frames have.  The frames are symbolized already (has_functions and
     * the rest), so pprof never tries to symbolize them again.  The main
     * program's goes first: pprof names the profile after mapping[0]. */
    size_t first = main_mapping(s);
    for (size_t k = 0; k < s->nmp; k++) {
        size_t i = k == 0 ? first : k <= first ? k - 1 : k;
        const map *mp = &s->mp[i];
        pbuf *m = &s->m1;
        m->len = 0;
        pb_int(m, M_ID, i + 1);
        pb_int(m, M_MEMORY_START, mp->lo);
        pb_int(m, M_MEMORY_LIMIT, mp->hi + 1);
        /* module offset of the start: the ELF address, which is the file
         * offset in the usual text segments (p_offset == p_vaddr) */
        pb_int(m, M_FILE_OFFSET, mp->lo_off);
        pb_int(m, M_FILENAME, mp->file);
        pb_int(m, M_HAS_FUNCTIONS, 1);
        pb_int(m, M_HAS_FILENAMES, 1);
        pb_int(m, M_HAS_LINE_NUMBERS, 1);
        pb_int(m, M_HAS_INLINE_FRAMES, 1);
        pb_msg(&s->top, P_MAPPING, m);
        if (pp_emitted(s) < 0) return s->err;
    }
    for (size_t i = 0; i < s->nstr; i++) {
        pb_bytes(&s->top, P_STRING_TABLE, s->str[i], strlen(s->str[i]));
        if (pp_emitted(s) < 0) return s->err;
    }
    return pp_flush(s, 1);
}

int ht_export_pprof(const ht_export_ctx *x, FILE *out)
{
    pp *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->x = x;
    s->out = out;
    int rc;
    /* windowBits 15 + 16: a gzip wrapper, which is what pprof expects on disk */
    if (deflateInit2(&s->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        rc = -ENOMEM;
    } else {
        s->z_open = 1;
        rc = write_profile(s);
        if (!rc && s->err) rc = s->err;
    }
    if (s->z_open) deflateEnd(&s->z);
    for (size_t i = 0; i < s->nstr; i++) free(s->str[i]);
    free(s->str);
    free(s->str_ix.slot);
    free(s->fn);
    free(s->fn_ix.slot);
    free(s->lc);
    free(s->lc_ix.slot);
    free(s->lv);
    free(s->mp);
    free(s->ids);
    free(s->top.d);
    free(s->m1.d);
    free(s->m2.d);
    free(s);
    return rc < 0 ? rc : 0;
}
