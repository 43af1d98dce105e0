/*
 * symbols.c - see symbols.h.
 *
 * Three tables:
 *  - objects: one per distinct (path, build id), opened on first use in a
 *    libdwfl session of its own, reported at its ELF virtual addresses
 *    (dwfl_report_elf with base 0 relative to p_vaddr, so Dwfl addresses are
 *    ELF vaddrs = process address - load bias, for ET_EXEC and ET_DYN alike);
 *  - ranges: the address map of every process, sorted by (pid, start), the
 *    ranges of one pid never overlapping (a new module trims older ones);
 *  - cache: (object, ELF vaddr) -> a run of frames in the frame pool.
 * The strings handed out point into libdw's data (symbol string tables,
 * .debug_str, line tables' file names), which live as long as the object's
 * session, i.e. until ht_sym_free, or into the objects' own path copies.
 */
#include "symbols.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OBJ_UNOPENED, OBJ_OPEN, OBJ_NONE };

typedef struct sym_obj {
    char *path;         /* as the process saw it (reported in frames) */
    uint8_t *build_id;  /* NULL: not known, the file is taken as it is */
    size_t build_id_len;
    uint64_t hash;      /* of path and build id, to find duplicates fast */
    int state;
    Dwfl *dwfl;         /* OBJ_OPEN: the object's session and its module */
    Dwfl_Module *mod;
} sym_obj;

typedef struct sym_range {
    uint64_t start, end, load_bias;
    uint32_t pid, obj;
} sym_range;

typedef struct cache_slot {
    uint64_t vaddr;
    uint32_t obj1;      /* object index + 1; 0 = empty slot */
    uint32_t first;     /* frames[first .. first+count) */
    uint32_t count;
} cache_slot;

struct ht_symbolizer {
    char *sysroot;          /* NULL or absolute-or-as-given prefix, no trailing '/' */
    char *debuginfo_path;   /* libdwfl's search path; the callbacks point here */
    Dwfl_Callbacks cb;

    sym_obj **objs;
    size_t nobjs, objs_cap;

    sym_range *ranges;
    size_t nranges, ranges_cap;

    cache_slot *cache;
    size_t cache_cap, cache_count;  /* cap: power of two */

    ht_frame_sym *frames;           /* the cached results */
    size_t nframes, frames_cap;

    ht_frame_sym *scratch;          /* one lookup's frames while they are built */
    size_t nscratch, scratch_cap;
};

/* ---- small helpers ---------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np) return -ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

/* "a" + "b" (+ "c"), malloc'd; NULL on out-of-memory. */
static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *r = malloc(la + lb + lc + 1);
    if (!r) return NULL;
    memcpy(r, a, la);
    memcpy(r + la, b, lb);
    if (c) memcpy(r + la + lb, c, lc);
    r[la + lb + lc] = 0;
    return r;
}

/* An absolute form of dir (realpath when it exists), without trailing '/'. */
static char *abs_dir(const char *dir)
{
    char buf[PATH_MAX];
    char *r;
    if (realpath(dir, buf)) {
        r = strdup(buf);
    } else if (dir[0] != '/' && getcwd(buf, sizeof buf)) {
        r = join3(buf, "/", dir);
    } else {
        r = strdup(dir);
    }
    if (!r) return NULL;
    size_t n = strlen(r);
    while (n > 1 && r[n - 1] == '/') r[--n] = 0;
    return r;
}

/* ---- construction ------------------------------------------------------------ */

ht_symbolizer *ht_sym_new(const char *sysroot, const char *debug_dir)
{
    ht_symbolizer *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    char *dd = NULL, *sysdebug = NULL;
    if (sysroot && *sysroot) {
        if (!(s->sysroot = abs_dir(sysroot))) goto oom;
        if (!strcmp(s->sysroot, "/")) s->sysroot[0] = 0; /* "/" = no prefix */
        if (s->sysroot[0] && !(sysdebug = join3(s->sysroot, "/usr/lib/debug", NULL))) goto oom;
    }
    if (debug_dir && *debug_dir && !(dd = abs_dir(debug_dir))) goto oom;
    /* libdwfl's path syntax (see dwfl_standard_find_debuginfo): "" = the
     * object's directory, ".debug" = a subdirectory of it, absolute entries
     * are searched by build id (.build-id/xx/rest.debug) and by debuglink
     * name (DIR/<object's dir>/NAME, then DIR/NAME). */
    size_t len = strlen(":.debug") + (dd ? strlen(dd) + 1 : 0) + (sysdebug ? strlen(sysdebug) + 1 : 0) +
                 strlen(":/usr/lib/debug") + 1;
    if (!(s->debuginfo_path = malloc(len))) goto oom;
    snprintf(s->debuginfo_path, len, ":.debug%s%s%s%s:/usr/lib/debug", dd ? ":" : "", dd ? dd : "",
             sysdebug ? ":" : "", sysdebug ? sysdebug : "");
    free(dd);
    free(sysdebug);
    s->cb.find_elf = dwfl_build_id_find_elf;
    s->cb.find_debuginfo = dwfl_standard_find_debuginfo;
    s->cb.section_address = dwfl_offline_section_address;
    s->cb.debuginfo_path = &s->debuginfo_path;
    return s;
oom:
    free(dd);
    free(sysdebug);
    ht_sym_free(s);
    return NULL;
}

void ht_sym_free(ht_symbolizer *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nobjs; i++) {
        sym_obj *o = s->objs[i];
        if (o->dwfl) dwfl_end(o->dwfl);
        free(o->path);
        free(o->build_id);
        free(o);
    }
    free(s->objs);
    free(s->ranges);
    free(s->cache);
    free(s->frames);
    free(s->scratch);
    free(s->sysroot);
    free(s->debuginfo_path);
    free(s);
}

/* ---- modules ----------------------------------------------------------------- */

/* The object for (path, build id): an existing one or a new one; -1 on OOM. */
static long obj_get(ht_symbolizer *s, const char *path, const uint8_t *bid, size_t bid_len)
{
    if (!bid) bid_len = 0;
    uint64_t h = hash_bytes(hash_bytes(0xcbf29ce484222325ull, path, strlen(path) + 1), bid, bid_len);
    for (size_t i = 0; i < s->nobjs; i++) {
        sym_obj *o = s->objs[i];
        if (o->hash == h && o->build_id_len == bid_len && !strcmp(o->path, path) &&
            (bid_len == 0 || !memcmp(o->build_id, bid, bid_len)))
            return (long)i;
    }
    if (s->nobjs >= UINT32_MAX - 1) return -1;
    if (grow((void **)&s->objs, &s->objs_cap, s->nobjs + 1, sizeof *s->objs) < 0) return -1;
    sym_obj *o = calloc(1, sizeof *o);
    if (!o) return -1;
    o->path = strdup(path);
    if (bid_len) {
        o->build_id = malloc(bid_len);
        if (o->build_id) memcpy(o->build_id, bid, bid_len);
    }
    if (!o->path || (bid_len && !o->build_id)) {
        free(o->path);
        free(o->build_id);
        free(o);
        return -1;
    }
    o->build_id_len = bid_len;
    o->hash = h;
    o->state = OBJ_UNOPENED;
    s->objs[s->nobjs] = o;
    return (long)s->nobjs++;
}

/* First range index whose (pid, start) is >= (pid, start). */
static size_t range_lower(const ht_symbolizer *s, uint32_t pid, uint64_t start)
{
    size_t lo = 0, hi = s->nranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sym_range *r = &s->ranges[mid];
        if (r->pid < pid || (r->pid == pid && r->start < start))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ht_sym_add_module(ht_symbolizer *s, uint32_t pid, const ht_module *m)
{
    if (!s || !m || !m->path || m->start >= m->end) return -EINVAL;
    if (grow((void **)&s->ranges, &s->ranges_cap, s->nranges + 2, sizeof *s->ranges) < 0) return -ENOMEM;
    long obj = obj_get(s, m->path, m->build_id, m->build_id_len);
    if (obj < 0) return -ENOMEM;
    sym_range nr = {.start = m->start, .end = m->end, .load_bias = m->load_bias, .pid = pid, .obj = (uint32_t)obj};

    /* The new range replaces what it overlaps: the predecessor is cut (and
     * split if it reaches beyond), followers are dropped or cut. */
    sym_range *R = s->ranges;
    size_t p = range_lower(s, pid, nr.start), e = p;
    sym_range tail = {0};
    int have_tail = 0;
    if (p > 0 && R[p - 1].pid == pid && R[p - 1].end > nr.start) {
        if (R[p - 1].end > nr.end) {
            tail = R[p - 1];
            tail.start = nr.end;
            have_tail = 1;
        }
        R[p - 1].end = nr.start;
    }
    while (e < s->nranges && R[e].pid == pid && R[e].start < nr.end) {
        if (R[e].end > nr.end) {
            R[e].start = nr.end;
            break;
        }
        e++;
    }
    size_t add = 1 + (size_t)have_tail;
    memmove(&R[p + add], &R[e], (s->nranges - e) * sizeof *R);
    R[p] = nr;
    if (have_tail) R[p + 1] = tail;
    s->nranges = s->nranges - (e - p) + add;
    return 0;
}

static const sym_range *range_find(const ht_symbolizer *s, uint32_t pid, uint64_t addr)
{
    /* the last range with (pid, start) <= (pid, addr) */
    size_t i = range_lower(s, pid, addr);
    if (i < s->nranges && s->ranges[i].pid == pid && s->ranges[i].start == addr) return &s->ranges[i];
    if (i == 0) return NULL;
    const sym_range *r = &s->ranges[i - 1];
    return r->pid == pid && addr >= r->start && addr < r->end ? r : NULL;
}

/* ---- opening objects -------------------------------------------------------- */

/* Reports `file` as the object's ELF in a new session; keeps it if it is an
 * ELF file whose build id is the module's (when that is known). */
static int obj_try(ht_symbolizer *s, sym_obj *o, const char *file)
{
    if (access(file, R_OK) != 0) return -1;
    Dwfl *dwfl = dwfl_begin(&s->cb);
    if (!dwfl) return -1;
    dwfl_report_begin(dwfl);
    /* base 0 relative to p_vaddr: the module's addresses are its ELF
     * vaddrs (ET_EXEC ignores the base and is at its vaddrs anyway). */
    Dwfl_Module *mod = dwfl_report_elf(dwfl, o->path, file, -1, 0, true);
    if (dwfl_report_end(dwfl, NULL, NULL) != 0 || !mod) goto fail;
    if (o->build_id) {
        const unsigned char *bits;
        GElf_Addr vaddr;
        int n = dwfl_module_build_id(mod, &bits, &vaddr);
        if (n <= 0 || (size_t)n != o->build_id_len || memcmp(bits, o->build_id, o->build_id_len) != 0)
            goto fail;
    }
    o->dwfl = dwfl;
    o->mod = mod;
    return 0;
fail:
    dwfl_end(dwfl);
    return -1;
}

/* Finds the object's file: the path (under the sysroot), else, by build id
 * in the debug directories, the object itself (.build-id/xx/rest, as
 * dwfl_build_id_find_elf looks for it) or its debug file (rest.debug: it
 * keeps the program headers, symbols and DWARF, all a lookup needs). */
static void obj_open(ht_symbolizer *s, sym_obj *o)
{
    o->state = OBJ_NONE;
    char *file = s->sysroot && s->sysroot[0] ? join3(s->sysroot, o->path[0] == '/' ? "" : "/", o->path)
                                             : strdup(o->path);
    if (!file) return;
    int ok = obj_try(s, o, file) == 0;
    free(file);
    if (!ok && o->build_id && o->build_id_len >= 2 && o->build_id_len <= 64) {
        char hex[130];
        for (size_t i = 0; i < o->build_id_len; i++) snprintf(hex + 2 * i, 3, "%02x", o->build_id[i]);
        char *path = strdup(s->debuginfo_path);
        if (!path) return;
        char *save = NULL;
        for (char *dir = strtok_r(path, ":", &save); dir && !ok; dir = strtok_r(NULL, ":", &save)) {
            if (dir[0] != '/') continue;
            char cand[PATH_MAX];
            for (int dbg = 0; dbg < 2 && !ok; dbg++) {
                int n = snprintf(cand, sizeof cand, "%s/.build-id/%.2s/%s%s", dir, hex, hex + 2,
                                 dbg ? ".debug" : "");
                if (n > 0 && (size_t)n < sizeof cand) ok = obj_try(s, o, cand) == 0;
            }
        }
        free(path);
    }
    if (ok) o->state = OBJ_OPEN;
}

/* ---- symbolizing -------------------------------------------------------------- */

static int scratch_push(ht_symbolizer *s, const char *fn, const char *file, int line, int inlined)
{
    if (grow((void **)&s->scratch, &s->scratch_cap, s->nscratch + 1, sizeof *s->scratch) < 0) return -1;
    ht_frame_sym *f = &s->scratch[s->nscratch++];
    f->function = fn;
    f->file = file;
    f->line = file ? line : 0;
    f->inlined = inlined;
    f->module = NULL;
    f->module_offset = 0;
    return 0;
}

/* A DIE's name, following abstract origins and specifications; the
 * linkage (mangled) name when there is one, as in the symbol table. */
static const char *die_name(Dwarf_Die *die)
{
    Dwarf_Attribute a;
    const char *n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));
    if (!n) n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a));
    if (!n) n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
    return n && *n ? n : NULL;
}

/* The ELF symbol (.symtab, else .dynsym) that really holds vaddr: the
 * address must lie inside st_value..st_value+st_size (a sizeless symbol
 * only at its own address), never the nearest preceding symbol. */
static const char *elf_symbol(Dwfl_Module *mod, uint64_t vaddr)
{
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *n = dwfl_module_addrinfo(mod, vaddr, &off, &sym, NULL, NULL, NULL);
    if (!n || !*n) return NULL;
    if (sym.st_size ? off >= sym.st_size : off != 0) return NULL;
    return n;
}

/* Fills s->scratch with the frames of vaddr in an open object. */
static int symbolize(ht_symbolizer *s, Dwfl_Module *mod, uint64_t vaddr)
{
    const char *file = NULL;
    int line = 0;
    Dwfl_Line *ln = dwfl_module_getsrc(mod, vaddr);
    if (ln) file = dwfl_lineinfo(ln, NULL, &line, NULL, NULL, NULL);

    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(mod, vaddr, &bias);
    Dwarf_Die *scopes = NULL;
    int n = cu ? dwarf_getscopes(cu, vaddr - bias, &scopes) : 0;
    if (n > 0) {
        /* dwarf_getscopes continues from an inlined instance into its
         * abstract origin's scopes (the view for variable lookup); the
         * call chain is the innermost scope's physical parents. */
        Dwarf_Die inner = scopes[0];
        free(scopes);
        scopes = NULL;
        n = dwarf_getscopes_die(&inner, &scopes);
    }
    Dwarf_Files *files = NULL;
    int files_tried = 0;
    for (int i = 0; i < n; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine && tag != DW_TAG_entry_point)
            continue;
        int inl = tag == DW_TAG_inlined_subroutine;
        const char *fn = die_name(&scopes[i]);
        if (!fn && !inl) fn = elf_symbol(mod, vaddr);
        if (scratch_push(s, fn, file, line, inl) < 0) goto oom;
        if (!inl) break;
        /* the next (outer) frame is at the call site of this one */
        Dwarf_Attribute a;
        Dwarf_Word v;
        file = NULL;
        line = 0;
        if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &a), &v) == 0 && v <= INT_MAX)
            line = (int)v;
        if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &a), &v) == 0) {
            if (!files_tried) {
                Dwarf_Die cudie;
                files_tried = 1;
                if (!dwarf_diecu(&scopes[i], &cudie, NULL, NULL) || dwarf_getsrcfiles(&cudie, &files, NULL) != 0)
                    files = NULL;
            }
            if (files) file = dwarf_filesrc(files, v, NULL, NULL);
        }
    }
    free(scopes);
    scopes = NULL;
    /* no DWARF function (or only inlined frames): the ELF symbol, if any
     * holds the address, is the real function */
    if (s->nscratch == 0 || s->scratch[s->nscratch - 1].inlined)
        if (scratch_push(s, elf_symbol(mod, vaddr), file, line, 0) < 0) goto oom;
    return 0;
oom:
    free(scopes);
    return -1;
}

static size_t cache_home(const ht_symbolizer *s, uint32_t obj1, uint64_t vaddr)
{
    return mix64(vaddr ^ (uint64_t)obj1 * 0x9e3779b97f4a7c15ull) & (s->cache_cap - 1);
}

static int cache_grow(ht_symbolizer *s)
{
    size_t ncap = s->cache_cap ? s->cache_cap * 2 : 1024;
    cache_slot *old = s->cache, *nc = calloc(ncap, sizeof *nc);
    if (!nc) return -1;
    size_t ocap = s->cache_cap;
    s->cache = nc;
    s->cache_cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].obj1) continue;
        size_t j = cache_home(s, old[i].obj1, old[i].vaddr);
        while (nc[j].obj1) j = (j + 1) & (ncap - 1);
        nc[j] = old[i];
    }
    free(old);
    return 0;
}

int ht_sym_lookup(ht_symbolizer *s, uint32_t pid, uint64_t addr, ht_frame_sym *out, int max)
{
    const sym_range *r = range_find(s, pid, addr);
    if (!r) return 0;
    if (max <= 0) return 0;
    uint32_t obj1 = r->obj + 1;
    uint64_t vaddr = addr - r->load_bias;
    sym_obj *o = s->objs[r->obj];

    cache_slot *slot = NULL;
    if (s->cache_cap) {
        for (size_t j = cache_home(s, obj1, vaddr);; j = (j + 1) & (s->cache_cap - 1)) {
            if (!s->cache[j].obj1) break;
            if (s->cache[j].obj1 == obj1 && s->cache[j].vaddr == vaddr) {
                slot = &s->cache[j];
                break;
            }
        }
    }
    if (!slot) {
        if (o->state == OBJ_UNOPENED) obj_open(s, o);
        s->nscratch = 0;
        int rc = o->state == OBJ_OPEN ? symbolize(s, o->mod, vaddr) : 0;
        if (rc == 0 && s->nscratch == 0) rc = scratch_push(s, NULL, NULL, 0, 0);
        if (rc == 0 && (s->cache_count + 1) * 4 > s->cache_cap * 3) rc = cache_grow(s);
        if (rc == 0 && s->nframes + s->nscratch > UINT32_MAX) rc = -1;
        if (rc == 0)
            rc = grow((void **)&s->frames, &s->frames_cap, s->nframes + s->nscratch, sizeof *s->frames);
        if (rc < 0) {
            /* out of memory: still say which module it is, uncached */
            out[0] = (ht_frame_sym){.module = o->path, .module_offset = vaddr};
            return 1;
        }
        size_t j = cache_home(s, obj1, vaddr);
        while (s->cache[j].obj1) j = (j + 1) & (s->cache_cap - 1);
        slot = &s->cache[j];
        slot->obj1 = obj1;
        slot->vaddr = vaddr;
        slot->first = (uint32_t)s->nframes;
        slot->count = (uint32_t)s->nscratch;
        for (size_t i = 0; i < s->nscratch; i++) {
            ht_frame_sym *f = &s->frames[s->nframes++];
            *f = s->scratch[i];
            f->module = o->path;
            f->module_offset = vaddr;
        }
        s->cache_count++;
    }
    int n = slot->count < (uint32_t)max ? (int)slot->count : max;
    memcpy(out, &s->frames[slot->first], (size_t)n * sizeof *out);
    return n;
}

/* ---- C++ names ---- */

/* libstdc++'s demangler (C ABI); the module links libstdc++, which only a
 * tool reading stacks loads. */
extern char *__cxa_demangle(const char *mangled, char *out, size_t *len, int *status);

int ht_sym_demangle(const char *name, char *out, size_t len)
{
    if (!name || name[0] != '_' || name[1] != 'Z' || !len) return 0;
    int st = -1;
    char *d = __cxa_demangle(name, NULL, NULL, &st);
    if (!d || st != 0) {
        free(d);
        return 0;
    }
    snprintf(out, len, "%s", d);
    free(d);
    return 1;
}
