/*
 * stacks.c - the general path of heap events (rt.h has the fast one), and
 * their call stacks (session option --stacks).
 *
 *   fp     walks the frame-pointer chain: bounded by --depth, every frame
 *          checked to lie inside the thread's stack, 8-aligned and above
 *          the previous one, so a bad chain ends the walk, never faults.
 *          Code built without frame pointers cuts the chain short.
 *   dwarf  the call-frame information (.eh_frame) of each object, correct
 *          through code without frame pointers.  On x86-64 the runtime
 *          unwinds itself (below): one rule per return address, read from
 *          the CFI on first sight (cfi.c) and cached, so a step is a table
 *          load and two stack loads.  Stacks holding a frame it cannot
 *          express (a signal frame, a CFA expression), starting off the
 *          thread's stack, or anywhere else, go to libunwind's
 *          unw_backtrace (libunwind.so.8, loaded with dlopen when the first
 *          such session starts: idle processes never load it).
 *
 * The runtime's own frames are skipped, and a stack ends at the first
 * address that lies in no loaded object (checked once per distinct walk).  A stack is identified by
 * a 64-bit hash of its frames; a thread writes the frames (a STACK record)
 * the first time it uses a hash in this session (a per-thread direct-mapped
 * cache of 1024 hashes, so no lock and no sharing), then only the hash,
 * appended to the heap event's record.  The collector gives each distinct
 * stack of a process one id and writes its frames once.
 *
 * Modules: when a new stack holds an address outside every object described
 * so far in the session, the loaded objects are enumerated
 * (dl_iterate_phdr) and a MODULE record is written for each object not yet
 * described: the library is mapped at that moment, since its code is on the
 * stack, so it symbolizes later even after a dlclose.
 *
 * The general path is here, with the walk inlined into it, so that a dwarf
 * walk starts two frames above the program (see walk_dwarf).  Everything
 * here runs inside the record window (ht__enter), on the thread of the heap
 * event.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/log.h"
#include "cfi.h"
#include "rt.h"

#define CACHE_SLOTS 1024

static uintptr_t self_lo, self_hi; /* our own text */
static int (*unw_bt)(void **, int);

/* ---- the runtime's own dwarf unwinder (x86-64, glibc >= 2.35) ----
 *
 * Rules (cfi.h) are cached per code address in one table shared by all
 * threads, without a lock: a slot is two words, the rule and its address
 * xor a mix of the rule, written and read with relaxed atomics.  A reader
 * that sees one writer's address with another's rule fails the check (but
 * with probability 2^-64) and computes the rule again.  dlclose empties the
 * table: another object may then be mapped where the old one's code was.
 *
 * A step: rule of the return address minus one (the call); CFA = rsp or
 * rbp + offset; the caller's return address and rbp are read at offsets
 * from the CFA.  Every read lies between the walk's starting rsp and the
 * top of the thread's stack, and the CFA strictly grows, so a bad rule or a
 * damaged stack ends the walk (libunwind then has a go), never faults. */
#if defined(__x86_64__) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define HT_OWN_UNWIND 1
#define RULE_BITS 12

typedef struct {
    uint64_t key, rule;
} rule_slot;
static rule_slot *rules;  /* 1 << RULE_BITS slots, mapped by the first dwarf session */
static int own_unwind;     /* unwind with them (HEAPTRACE_UNWIND=libunwind: no) */
static int own_unwind_only; /* and never with libunwind (HEAPTRACE_UNWIND=own) */

static inline uint64_t rule_mix(uint64_t r)
{
    r ^= r >> 31;
    r *= 0xbf58476d1ce4e5b9ull;
    return r ^ (r >> 29) ^ 0x5851f42d4c957f2dull; /* never 0: an empty slot matches no address */
}

/* Two-way: an address has the two slots of one 32-byte pair. */
static inline rule_slot *rule_pair_of(uintptr_t pc)
{
    return &rules[((pc * 0x9e3779b97f4a7c15ull) >> (64 - RULE_BITS)) & ~(uint64_t)1];
}

static inline int rule_hit(rule_slot *s, uintptr_t pc, uint64_t *r)
{
    *r = __atomic_load_n(&s->rule, __ATOMIC_RELAXED);
    return __atomic_load_n(&s->key, __ATOMIC_RELAXED) == (pc ^ rule_mix(*r));
}

static inline void rule_put(rule_slot *s, uintptr_t pc, uint64_t r)
{
    __atomic_store_n(&s->rule, r, __ATOMIC_RELAXED);
    __atomic_store_n(&s->key, pc ^ rule_mix(r), __ATOMIC_RELAXED);
}

static uint32_t rule_flushes; /* times the table was emptied (dlclose) */

/* Not cached: computed from the CFI, then put first in its pair (the
 * pair's first entry moves to the second). */
static HT_NOINLINE uint64_t rule_miss(uintptr_t pc)
{
    uint64_t r;
    if (rule_hit(rule_pair_of(pc) + 1, pc, &r)) return r; /* the pair's second way */
    uint32_t flushes = __atomic_load_n(&rule_flushes, __ATOMIC_ACQUIRE);
    struct dl_find_object o;
    if (_dl_find_object((void *)pc, &o) != 0) return HT_CFI_NONE; /* in no object: not cached */
    r = o.dlfo_eh_frame ? ht_cfi_rule(o.dlfo_eh_frame, (uintptr_t)o.dlfo_map_start, (uintptr_t)o.dlfo_map_end, pc)
                        : HT_CFI_FOREIGN;
    rule_slot *s = rule_pair_of(pc);
    uint64_t old_rule = __atomic_load_n(&s->rule, __ATOMIC_RELAXED), old_key = __atomic_load_n(&s->key, __ATOMIC_RELAXED);
    /* a flush meanwhile (dlclose in another thread): the pair read above,
     * or this rule, may describe unloaded code; put nothing back */
    if (__atomic_load_n(&rule_flushes, __ATOMIC_ACQUIRE) != flushes) return r;
    __atomic_store_n(&s[1].rule, old_rule, __ATOMIC_RELAXED);
    __atomic_store_n(&s[1].key, old_key, __ATOMIC_RELAXED);
    rule_put(s, pc, r);
    /* and if a flush began before these stores were seen (it counts, then
     * clears), take them back: either it clears them or this sees it */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&rule_flushes, __ATOMIC_RELAXED) != flushes) {
        __atomic_store_n(&s[0].key, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s[1].key, 0, __ATOMIC_RELAXED);
    }
    return r;
}

static HT_ALWAYS_INLINE uint64_t rule_of(uintptr_t pc)
{
    uint64_t r;
    if (HT_LIKELY(rule_hit(rule_pair_of(pc), pc, &r))) return r;
    return rule_miss(pc);
}

/* The walk remembered per thread: consecutive stacks of a thread share
 * their outer frames, and a frame's caller is a function of the frame's
 * (pc, rsp, rbp) and of the stack words its rule reads.  So when the walk
 * reaches a frame whose (pc, rsp, rbp) the last complete walk had, and
 * every stack word that walk read from there on still holds what it read,
 * the rest of the stack is that walk's: a few independent loads instead of
 * a rule lookup and two dependent loads per frame.  Frames are kept
 * outermost first, so the shared outer part stays where it is. */
#define UNW_MEMO_MAX (HT_STACK_DEPTH_MAX + 16)
typedef struct {
    uintptr_t pc, sp, bp; /* the frame's return address, rsp and rbp */
    uintptr_t ra_at;      /* where its caller's return address was read */
    uintptr_t bp_at;      /* where its caller's rbp was read, or 0: unchanged */
} unw_frame;
typedef struct {
    uint32_t n;       /* frames of the remembered walk (f[0] outermost), or 0 */
    uint32_t flushes; /* rule_flushes when it was made */
    uintptr_t end_at; /* where its outermost frame read a null return address, or 0 */
    unw_frame f[UNW_MEMO_MAX];
    unw_frame pre[UNW_MEMO_MAX]; /* the walk in progress, innermost first */
} unw_memo;

static HT_NOINLINE unw_memo *memo_new(ht_tls *t)
{
    void *m = mmap(NULL, sizeof(unw_memo), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    t->unw_memo = m;
    return m;
}

static inline int word_is(uintptr_t at, uintptr_t lo, uintptr_t hi, uintptr_t v)
{
    return at >= lo && at <= hi - 8 && *(const uintptr_t *)at == v;
}

/* Whether the stack above frame mi of the remembered walk is unchanged. */
static HT_ALWAYS_INLINE int memo_holds(const unw_memo *m, int mi, uintptr_t lo, uintptr_t hi)
{
    int ok = 1;
    for (int r = mi; r > 0; r--) {
        const unw_frame *f = &m->f[r];
        ok &= word_is(f->ra_at, lo, hi, m->f[r - 1].pc);
        if (f->bp_at) ok &= word_is(f->bp_at, lo, hi, m->f[r - 1].bp);
    }
    if (m->end_at) ok &= word_is(m->end_at, lo, hi, 0);
    return ok;
}

/* The walk so far (n frames in pre) continues as the remembered one from
 * its frame mi: its frames to out, and the whole walk becomes the one
 * remembered. */
static HT_ALWAYS_INLINE int memo_take(unw_memo *m, int mi, void **out, int n, int max)
{
    int total = n;
    for (int r = mi; r >= 0 && total < max; r--) out[total++] = (void *)m->f[r].pc;
    if (mi + 1 + n <= UNW_MEMO_MAX) {
        for (int i = 0; i < n; i++) m->f[mi + n - i] = m->pre[i];
        m->n = (uint32_t)(mi + 1 + n);
    }
    return total;
}

/* A whole walk, made with the rules of flush count `flushes`. */
static HT_ALWAYS_INLINE void memo_store(unw_memo *m, int n, uintptr_t end_at, uint32_t flushes)
{
    for (int i = 0; i < n; i++) m->f[n - 1 - i] = m->pre[i];
    m->n = (uint32_t)n;
    m->end_at = end_at;
    m->flushes = flushes;
}

/* ht__unwind(t, out, max): the return addresses of the stack that called
 * it, innermost first, at most max; -1 if this unwinder cannot walk it.
 * The stub hands the caller's rsp (past the return address), rbp and
 * return address to ht__unwind_regs. */
int ht__unwind(ht_tls *t, void **out, int max);
__asm__(".text\n"
        ".p2align 4\n"
        ".globl ht__unwind\n"
        ".hidden ht__unwind\n"
        ".type ht__unwind, @function\n"
        "ht__unwind:\n"
        ".cfi_startproc\n"
        "    lea 8(%rsp), %rcx\n"
        "    mov %rbp, %r8\n"
        "    mov (%rsp), %r9\n"
        "    jmp ht__unwind_regs\n"
        ".cfi_endproc\n"
        ".size ht__unwind, .-ht__unwind\n");

__attribute__((used)) HT_NOINLINE int ht__unwind_regs(ht_tls *t, void **out, int max, uintptr_t sp, uintptr_t bp,
                                                      uintptr_t pc);
__attribute__((used)) HT_NOINLINE int ht__unwind_regs(ht_tls *t, void **out, int max, uintptr_t sp, uintptr_t bp,
                                                      uintptr_t pc)
{
    uintptr_t lo = sp, hi = t->stk_hi;
    if (sp < t->stk_lo || sp >= hi || hi < 16) return -1; /* another stack (sigaltstack, a fiber) */
    unw_memo *m = t->unw_memo;
    if (HT_UNLIKELY(!m) && !(m = memo_new(t))) return -1;
    if (max > UNW_MEMO_MAX) max = UNW_MEMO_MAX;
    uint32_t flushes = __atomic_load_n(&rule_flushes, __ATOMIC_ACQUIRE); /* the rules this walk uses */
    int mi = m->flushes == flushes ? (int)m->n - 1 : -1;
    int n = 0;
    uintptr_t end_at = 0;
    while (n < max) {
        /* the remembered walk's frames lie above each other: the first
         * whose rsp is not below this one's is the only candidate */
        while (mi >= 0 && m->f[mi].sp < sp) mi--;
        if (mi >= 0 && m->f[mi].sp == sp && m->f[mi].pc == pc && m->f[mi].bp == bp && memo_holds(m, mi, lo, hi))
            return memo_take(m, mi, out, n, max);
        out[n] = (void *)pc;
        unw_frame *fr = &m->pre[n++];
        fr->pc = pc;
        fr->sp = sp;
        fr->bp = bp;
        fr->bp_at = 0;
        uint64_t r = rule_of(pc - 1);
        unsigned kind = ht_cfi_kind(r);
        if (HT_UNLIKELY(kind != HT_CFI_FRAME)) {
            if (kind == HT_CFI_FOREIGN) return -1;
            break; /* END: the outermost frame; NONE: in no object, the stack ends there */
        }
        uintptr_t cfa = ((r & HT_CFI_CFA_RBP) ? bp : sp) + (uintptr_t)ht_cfi_cfa_off(r);
        uintptr_t ra_at = cfa + (uintptr_t)ht_cfi_ra_off(r);
        if (HT_UNLIKELY(cfa <= sp || cfa > hi || ra_at < lo || ra_at > hi - 8)) return -1;
        fr->ra_at = ra_at;
        pc = *(const uintptr_t *)ra_at;
        if (r & HT_CFI_RBP_SAVED) {
            uintptr_t bp_at = cfa + (uintptr_t)ht_cfi_rbp_off(r);
            if (HT_UNLIKELY(bp_at < lo || bp_at > hi - 8)) return -1;
            fr->bp_at = bp_at;
            bp = *(const uintptr_t *)bp_at;
        }
        sp = cfa;
        if (!pc) {
            end_at = ra_at;
            break;
        }
    }
    if (n == max) return n; /* cut short: not a whole walk to remember */
    memo_store(m, n, end_at, flushes);
    return n;
}

static void unwind_setup(void)
{
    if (!rules) {
        void *m = mmap(NULL, sizeof(rule_slot) << RULE_BITS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return;
        rules = m;
    }
    const char *e = getenv("HEAPTRACE_UNWIND");
    own_unwind = !(e && !strcmp(e, "libunwind"));
    /* HEAPTRACE_UNWIND=own (tests): never libunwind, stacks it would take
     * are left without a stack */
    own_unwind_only = e && !strcmp(e, "own");
}

static int own_only(void)
{
    return own_unwind && own_unwind_only;
}

/* A dlclose may unmap code whose rules are cached, and a later dlopen map
 * other code there: the table starts afresh. */
static void unwind_flush(void)
{
    if (!rules) return;
    /* counted first: a miss that stores after this sees it (rule_miss) */
    __atomic_fetch_add(&rule_flushes, 1, __ATOMIC_SEQ_CST); /* and the walks made with them */
    for (size_t i = 0; i < (size_t)1 << RULE_BITS; i++) __atomic_store_n(&rules[i].key, 0, __ATOMIC_RELAXED);
}
#else
static void unwind_setup(void) {}
static void unwind_flush(void) {}
static int own_only(void) { return 0; }
#endif

HT_EXPORT int dlclose(void *handle)
{
    static int (*real_dlclose)(void *);
    if (!real_dlclose) {
        ht__tls.nest++;
        real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
        ht__tls.nest--;
    }
    int r = real_dlclose ? real_dlclose(handle) : -1;
    int e = errno;
    unwind_flush();
    errno = e;
    return r;
}

/* ---- set-up (session install, not on the fast path) ---- */

static int self_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (me >= lo && me < hi) {
            self_lo = lo;
            self_hi = hi;
            return 1;
        }
    }
    return 0;
}

void ht__stacks_setup(uint32_t mode)
{
    if (!self_hi) {
        ht__tls.nest++;
        dl_iterate_phdr(self_cb, (void *)(uintptr_t)&ht__stacks_setup);
        ht__tls.nest--;
    }
    if (mode == HT_STACKS_DWARF) unwind_setup();
    if (mode == HT_STACKS_DWARF && !unw_bt && !own_only()) {
        ht__tls.nest++;
        void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
        if (h) {
            /* per-thread caches of unwind info, as heaptrack sets them: the
             * default global cache takes a lock on every step */
            void **as = (void **)dlsym(h, "_ULx86_64_local_addr_space");
            int (*policy)(void *, int) = (int (*)(void *, int))dlsym(h, "_ULx86_64_set_caching_policy");
            int (*csize)(void *, size_t, int) = (int (*)(void *, size_t, int))dlsym(h, "_ULx86_64_set_cache_size");
            if (as && policy) policy(*as, 2 /* UNW_CACHE_PER_THREAD */);
            if (as && csize) csize(*as, 1024, 0);
            unw_bt = (int (*)(void **, int))dlsym(h, "unw_backtrace");
        }
        ht__tls.nest--;
        if (!unw_bt) {
#ifdef HT_OWN_UNWIND
            if (own_unwind)
                ht_log("cannot load libunwind.so.8: stacks through a signal frame or a CFA expression are left out");
            else
#endif
                ht_log("cannot load libunwind.so.8: dwarf stacks fall back to frame pointers");
        }
    }
}

/* ---- walking ---- */

static HT_NOINLINE void stack_bounds(ht_tls *t)
{
    pthread_attr_t at;
    void *addr = NULL;
    size_t size = 0;
    t->nest++; /* glibc reads /proc/self/maps for the main thread: allocates */
    if (pthread_getattr_np(pthread_self(), &at) == 0) {
        pthread_attr_getstack(&at, &addr, &size);
        pthread_attr_destroy(&at);
    }
    t->nest--;
    t->stk_lo = (uintptr_t)addr;
    t->stk_hi = (uintptr_t)addr + size;
    if (!t->stk_hi) t->stk_hi = 1; /* unknown: fp walks stop at once */
}

/* Inlined into the general path, whose frame the walk starts from. */
static HT_ALWAYS_INLINE int walk_fp(ht_tls *t, void **out, int max)
{
    if (HT_UNLIKELY(!t->stk_hi)) stack_bounds(t);
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    /* callers' frames lie above our own: below it the stack may not even be
     * mapped (the main thread's grows on demand); a frame's two words lie
     * below the top */
    uintptr_t lo = fp > t->stk_lo ? fp : t->stk_lo, hi = t->stk_hi >= 16 ? t->stk_hi - 16 : 0;
    uintptr_t own = self_hi - self_lo;
    int n = 0;
    for (int guard = max + 64; n < max && guard > 0; guard--) {
        if (fp < lo || fp > hi || (fp & 7)) break;
        uintptr_t next = ((const uintptr_t *)fp)[0], ret = ((const uintptr_t *)fp)[1];
        if (!ret) break;
        if (ret - self_lo >= own) out[n++] = (void *)ret; /* our own frames: not the program's */
        if (next <= fp) break;
        fp = next;
    }
    return n;
}

/* unw_backtrace into buf[0..want), then the runtime's own frames taken
 * out in place: they come first (the unwinder starts in the general path
 * below; *first is where the program's begin), and some may stand further
 * up (a C++ operator new of ours calling the C++ library's, which calls
 * malloc).  Inlined, as the general path is in each event's function:
 * every frame between the program and unw_backtrace is one more step of
 * the unwinder (about 7 ns each here), so the runtime keeps one (the
 * general path, which the interposer jumps to). */
static HT_ALWAYS_INLINE int walk_dwarf(ht_tls *t, void **buf, int want, int max, int *first)
{
    int got = -1;
#ifdef HT_OWN_UNWIND
    if (HT_LIKELY(own_unwind)) {
        if (HT_UNLIKELY(!t->stk_hi)) stack_bounds(t);
        got = ht__unwind(t, buf, want);
    }
#endif
    if (got < 0) {
        if (!unw_bt) return 0;
        t->nest++; /* libunwind may allocate: not the program's event */
        got = unw_bt(buf, want);
        t->nest--;
    }
    uintptr_t own = self_hi - self_lo;
    int i = 0;
    while (i < got && (uintptr_t)buf[i] - self_lo < own) i++;
    *first = i;
    int n = 0;
    for (; i < got && n < max; i++)
        if ((uintptr_t)buf[i] - self_lo >= own) buf[*first + n++] = buf[i];
    return n;
}

/* 64-bit hash of a walk, the stack's identity in the trace.  Four lanes of
 * multiply-xorshift take the frames in turn, so the multiplies of a walk
 * overlap instead of making one chain of ~6 cycles per frame (D's stacks
 * have 17 frames on average); a murmur finalizer mixes the lanes. */
static HT_ALWAYS_INLINE uint64_t hash_frames(void *const *f, int n)
{
#define HT_LANE(x, v) ((x) = ((x) ^ (v)) * 0xff51afd7ed558ccdull, (x) ^= (x) >> 29)
    /* four scalar lanes: vectorized, the 64-bit multiplies would be emulated */
    uint64_t a = 0x9e3779b97f4a7c15ull ^ (uint64_t)n, b = 0xc2b2ae3d27d4eb4full, c = 0x165667b19e3779f9ull,
             d = 0x27d4eb2f165667c5ull;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        HT_LANE(a, (uintptr_t)f[i]);
        HT_LANE(b, (uintptr_t)f[i + 1]);
        HT_LANE(c, (uintptr_t)f[i + 2]);
        HT_LANE(d, (uintptr_t)f[i + 3]);
        __asm__("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d)); /* keeps them scalar */
    }
    for (; i < n; i++) HT_LANE(a, (uintptr_t)f[i]);
#undef HT_LANE
    uint64_t h = a ^ (b << 17 | b >> 47) ^ (c << 31 | c >> 33) ^ (d << 47 | d >> 17);
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

/* ---- modules ---- */

#define MODS_MAX 1024
static struct { uintptr_t lo, hi; } mods[MODS_MAX];
static int nmods;
static uint32_t mods_gen; /* session the table describes */
static atomic_flag mods_lock = ATOMIC_FLAG_INIT;

static int covered(uintptr_t a)
{
    int n = __atomic_load_n(&nmods, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (a >= mods[i].lo && a < mods[i].hi) return 1;
    return 0;
}

typedef struct rundown {
    ht_tls *t;
    uint32_t gen;
    char exe[512];
} rundown;

static void put_module(ht_tls *t, uint32_t gen, uintptr_t lo, uintptr_t hi, uint64_t off, uint64_t bias,
                       const uint8_t *bid, uint32_t bid_len, const char *path)
{
    size_t plen = strlen(path);
    if (plen > 1500) plen = 1500;
    if (bid_len > 64) bid_len = 0;
    size_t bytes = (sizeof(ht_rec_module) + bid_len + plen + 1 + 7) & ~(size_t)7;
    char *r = ht__reserve(t, gen, bytes);
    if (!r) return;
    ht_rec_module *m = (ht_rec_module *)r;
    uint64_t ts = ht__begin(t, r);
    ht__hdr(&m->h, HT_EV_MODULE, 0, 0, bytes, 0, ts);
    m->start = lo;
    m->end = hi;
    m->offset = off;
    m->bias = bias;
    m->build_id_len = bid_len;
    m->path_len = (uint32_t)plen;
    memcpy(m->data, bid, bid_len);
    memcpy(m->data + bid_len, path, plen);
    memset(m->data + bid_len + plen, 0, bytes - sizeof *m - bid_len - plen);
    ht__commit(t, r + bytes);
}

static int rundown_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    rundown *rd = arg;
    const uint8_t *bid = NULL;
    uint32_t bid_len = 0;
    for (int i = 0; i < info->dlpi_phnum && !bid; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            size_t nsz = (nh->n_namesz + 3) & ~3u, dsz = (nh->n_descsz + 3) & ~3u;
            const uint8_t *name = p + sizeof *nh, *desc = name + nsz;
            if (desc + dsz > end) break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
                bid = desc;
                bid_len = nh->n_descsz;
                break;
            }
            p = desc + dsz;
        }
    }
    const char *path = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : rd->exe;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        int known = 0;
        for (int k = 0; k < nmods && !known; k++) known = mods[k].lo == lo && mods[k].hi == hi;
        if (known || nmods >= MODS_MAX) continue;
        put_module(rd->t, rd->gen, lo, hi, ph->p_offset, info->dlpi_addr, bid, bid_len, path);
        mods[nmods].lo = lo;
        mods[nmods].hi = hi;
        __atomic_store_n(&nmods, nmods + 1, __ATOMIC_RELEASE);
    }
    return 0;
}

static unsigned long long seen_adds, seen_subs; /* loader counters at the last rundown */

static int counters_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    unsigned long long *c = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        c[0] = info->dlpi_adds;
        c[1] = info->dlpi_subs;
    }
    return 1; /* the first object is enough */
}

/* Whether objects were loaded or unloaded since the last rundown. */
static int modules_changed(ht_tls *t)
{
    unsigned long long c[2] = {~0ull, ~0ull};
    t->nest++;
    dl_iterate_phdr(counters_cb, c);
    t->nest--;
    return c[0] != seen_adds || c[1] != seen_subs;
}

/* Rundown of the objects not yet described in this session (lock held). */
static void describe_modules_locked(ht_tls *t, uint32_t gen)
{
    if (mods_gen != gen) { /* a new session: its trace needs them all again */
        __atomic_store_n(&nmods, 0, __ATOMIC_RELEASE);
        mods_gen = gen;
    }
    rundown rd = {t, gen, {0}};
    ssize_t k = readlink("/proc/self/exe", rd.exe, sizeof rd.exe - 1);
    rd.exe[k > 0 ? k : 0] = 0;
    unsigned long long c[2] = {~0ull, ~0ull};
    t->nest++;
    dl_iterate_phdr(counters_cb, c);
    dl_iterate_phdr(rundown_cb, &rd);
    t->nest--;
    seen_adds = c[0];
    seen_subs = c[1];
}

/* Whether `a` lies in a loaded object, describing objects as needed. */
static int check_covered(ht_tls *t, uint32_t gen, uintptr_t a)
{
    if (mods_gen == gen && covered(a)) return 1;
    while (atomic_flag_test_and_set_explicit(&mods_lock, memory_order_acquire)) sched_yield();
    if (mods_gen != gen || modules_changed(t)) describe_modules_locked(t, gen);
    int ok = covered(a);
    atomic_flag_clear_explicit(&mods_lock, memory_order_release);
    return ok;
}

/* ---- the stack of the current heap event ---- */

/* Whether a dwarf walk can be made (else frame pointers are walked). */
static inline int dwarf_ok(void)
{
#ifdef HT_OWN_UNWIND
    if (own_unwind) return 1;
#endif
    return unw_bt != NULL;
}

static HT_ALWAYS_INLINE uint64_t stack_of(ht_tls *t, uint32_t gen)
{
    void *buf[HT_STACK_DEPTH_MAX + 16], **frames = buf;
    int max = (int)ht__sess.stack_depth, n, first = 0;
    if (max < 1 || max > HT_STACK_DEPTH_MAX) max = HT_STACK_DEPTH_MAX;
    if (ht__sess.stack_mode == HT_STACKS_DWARF && dwarf_ok()) {
        n = walk_dwarf(t, buf, max + 16, max, &first);
        frames = buf + first;
    } else {
        n = walk_fp(t, buf, max);
    }
    if (n <= 0) return 0;
    uint64_t h = hash_frames(frames, n);
    if (!t->stk_cache) {
        void *m = mmap(NULL, CACHE_SLOTS * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 0;
        t->stk_cache = m;
        t->stk_gen = gen;
    }
    if (t->stk_gen != gen) { /* a new session: its trace needs the frames again */
        memset(t->stk_cache, 0, CACHE_SLOTS * sizeof(uint64_t));
        t->stk_gen = gen;
    }
    uint64_t *slot = &t->stk_cache[h % CACHE_SLOTS];
    if (*slot == h) return h;
    /* First use by this thread: describe the objects new to the session,
     * and end the stack at the first return address that is in no loaded
     * object: a walk through code that uses rbp as a plain register (no
     * frame pointers) can read a stack word that is not a return address.
     * The record keeps the walk's hash `h`, so later events with the same
     * walk refer to this checked stack. */
    for (int i = 0; i < n; i++)
        if (!check_covered(t, gen, (uintptr_t)frames[i])) {
            n = i;
            break;
        }
    if (n == 0) {
        *slot = h; /* nothing usable: no stack, and no retry for this walk */
        return 0;
    }
    size_t bytes = sizeof(ht_rec_stack) + (size_t)n * 8;
    char *r = ht__reserve(t, gen, bytes);
    if (!r) return 0;
    ht_rec_stack *s = (ht_rec_stack *)r;
    uint64_t ts = ht__begin(t, r);
    ht__hdr(&s->h, HT_EV_STACK, 0, 0, bytes, 0, ts);
    s->hash = h;
    s->n = (uint32_t)n;
    s->_pad = 0;
    memcpy(s->frames, frames, (size_t)n * 8);
    ht__commit(t, r + bytes);
    *slot = h;
    return h;
}

/* The hash of this event's stack (0: none).  errno is the program's: the
 * walk, mmap and dl_iterate_phdr may change it. */
static HT_ALWAYS_INLINE uint64_t event_stack(ht_tls *t, uint32_t gen)
{
    int e = errno;
    uint64_t h = stack_of(t, gen);
    errno = e;
    return h;
}

/* ---- the general path of the heap events ---- */

/* The general path of the heap events (rt.h has the fast one): the record
 * is the header, then the kind's `nw` words, then the stack's hash if the
 * session wants one for this kind (HT_STACK_ON_* is 1 << (kind - 1)).
 * Inlined in each kind's function: one frame fewer for dwarf walks. */
static HT_ALWAYS_INLINE void emit_general(ht_tls *t, uint32_t gen, unsigned kind, unsigned api, unsigned src, uint64_t heap,
                         const uint64_t *w, unsigned nw)
{
    if (!ht__enter(t, gen)) return;
    uint64_t sh = 0;
    if (HT_UNLIKELY(ht__sess.stack_events & (1u << (kind - 1)))) sh = event_stack(t, gen);
    size_t body = sizeof(ht_rec_hdr) + nw * 8u, sz = body + (sh ? 8 : 0);
    char *r = ht__reserve(t, gen, sz);
    if (HT_LIKELY(r != NULL)) {
        uint64_t ts = ht__begin(t, r);
        ht__hdr((ht_rec_hdr *)r, kind, api, src, sz, heap, ts);
        memcpy(r + sizeof(ht_rec_hdr), w, nw * 8u);
        if (sh) memcpy(r + body, &sh, 8);
        ht__commit(t, r + sz);
    }
    ht__leave(t);
}

void ht__emit_alloc_general(ht_tls *t, uint32_t gen, unsigned api, unsigned src, uint64_t heap, const void *p,
                            uint64_t size)
{
    uint64_t w[2] = {(uintptr_t)p, size}; /* ht_rec_alloc */
    emit_general(t, gen, HT_EV_ALLOC, api, src, heap, w, 2);
}

void ht__emit_free_general(ht_tls *t, uint32_t gen, unsigned api, unsigned src, uint64_t heap, const void *p)
{
    uint64_t w[1] = {(uintptr_t)p}; /* ht_rec_free */
    emit_general(t, gen, HT_EV_FREE, api, src, heap, w, 1);
}

void ht__emit_realloc_general(ht_tls *t, uint32_t gen, unsigned api, unsigned src, uint64_t heap,
                              const void *np, uint64_t nsize, const void *op, uint64_t osize)
{
    uint64_t w[4] = {(uintptr_t)np, nsize, (uintptr_t)op, osize}; /* ht_rec_realloc */
    emit_general(t, gen, HT_EV_REALLOC, api, src, heap, w, 4);
}

void *ht__emit_libc_alloc_general(uint32_t gen, unsigned apisrc, void *p, uint64_t size)
{
    uint64_t w[2] = {(uintptr_t)p, size}; /* ht_rec_alloc */
    emit_general(&ht__tls, gen, HT_EV_ALLOC, apisrc & 0xff, apisrc >> 8, 1, w, 2);
    return p;
}

void *ht__emit_libc_realloc_general(uint32_t gen, unsigned apisrc, void *np, uint64_t nsize, const void *op)
{
    uint64_t w[4] = {(uintptr_t)np, nsize, (uintptr_t)op, 0}; /* ht_rec_realloc, old size unknown */
    emit_general(&ht__tls, gen, HT_EV_REALLOC, apisrc & 0xff, apisrc >> 8, 1, w, 4);
    return np;
}

_Static_assert(sizeof(ht_rec_alloc) == sizeof(ht_rec_hdr) + 16 && sizeof(ht_rec_free) == sizeof(ht_rec_hdr) + 8 &&
                   sizeof(ht_rec_realloc) == sizeof(ht_rec_hdr) + 32,
               "heap records: the header, then 8-byte words");
_Static_assert(HT_STACK_ON_ALLOC == 1u << (HT_EV_ALLOC - 1) && HT_STACK_ON_FREE == 1u << (HT_EV_FREE - 1) &&
                   HT_STACK_ON_REALLOC == 1u << (HT_EV_REALLOC - 1),
               "HT_STACK_ON_* is 1 << (kind - 1)");

void ht__stacks_thread_exit(ht_tls *t)
{
    if (t->stk_cache) munmap(t->stk_cache, CACHE_SLOTS * sizeof(uint64_t));
    t->stk_cache = NULL;
#ifdef HT_OWN_UNWIND
    if (t->unw_memo) munmap(t->unw_memo, sizeof(unw_memo));
#endif
    t->unw_memo = NULL;
}
