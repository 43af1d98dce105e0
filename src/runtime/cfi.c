/*
 * cfi.c - the unwind rule of one code address from an object's
 * .eh_frame_hdr / .eh_frame (see cfi.h; the format is the LSB's "Exception
 * Frames" over DWARF's call-frame instructions).
 *
 * Only what x86-64 compilers emit for ordinary code becomes a FRAME rule:
 * the CFA as rsp or rbp plus an offset, the return address and rbp saved at
 * offsets from it.  Anything else (expressions, signal frames, other
 * encodings of the search table) is FOREIGN: the caller unwinds that stack
 * another way.  Every read is checked against [lo, hi) first, so a damaged
 * or hostile table gives FOREIGN, never a fault.
 */
#include "cfi.h"

#include <stddef.h>

typedef struct {
    uintptr_t p, end; /* next byte, end of the readable range */
    int bad;
} rd;

static int need(rd *r, uintptr_t n)
{
    if (r->bad || r->end - r->p < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

static uint64_t get_le(rd *r, unsigned n)
{
    if (!need(r, n)) return 0;
    const uint8_t *b = (const uint8_t *)r->p;
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)b[i] << (8 * i);
    r->p += n;
    return v;
}

static uint64_t uleb(rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (!need(r, 1)) return 0;
        uint8_t b = *(const uint8_t *)r->p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t sleb(rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (!need(r, 1)) return 0;
        uint8_t b = *(const uint8_t *)r->p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (shift + 7 < 64 && (b & 0x40)) v |= ~(uint64_t)0 << (shift + 7);
            return (int64_t)v;
        }
    }
    r->bad = 1;
    return 0;
}

/* DW_EH_PE_*: the value format (low nibble), then how it applies (bits
 * 4-6: absolute, pc-relative, relative to the .eh_frame_hdr).  Indirect
 * and the other applications are not used by what we read: bad. */
static uint64_t get_enc(rd *r, unsigned enc, uintptr_t datarel)
{
    uintptr_t at = r->p;
    uint64_t v;
    switch (enc & 0x0f) {
    case 0x00: /* absptr */
    case 0x04: /* udata8 */
    case 0x0c: v = get_le(r, 8); break;
    case 0x01: v = uleb(r); break;
    case 0x02: v = get_le(r, 2); break;
    case 0x03: v = get_le(r, 4); break;
    case 0x09: v = (uint64_t)sleb(r); break;
    case 0x0a: v = (uint64_t)(int64_t)(int16_t)get_le(r, 2); break;
    case 0x0b: v = (uint64_t)(int64_t)(int32_t)get_le(r, 4); break;
    default: r->bad = 1; return 0;
    }
    switch (enc & 0xf0) {
    case 0x00: break;
    case 0x10: v += at; break;
    case 0x30:
        if (!datarel) r->bad = 1;
        v += datarel;
        break;
    default: r->bad = 1; return 0;
    }
    return v;
}

/* v * f, wrapping: a hostile table may overflow; make_rule then refuses
 * the offset. */
static int64_t scaled(uint64_t v, int64_t f)
{
    return (int64_t)(v * (uint64_t)f);
}

/* How a register is recovered in the caller. */
enum { R_SAME = 0, R_OFFSET, R_UNDEF, R_OTHER };
typedef struct {
    uint8_t how;
    int64_t off;
} reg_rule;

typedef struct {
    uint64_t cfa_reg;
    int64_t cfa_off;
    int cfa_expr;
    reg_rule rbp, ra;
} cfa_state;

typedef struct {
    uint64_t caf;      /* code alignment factor */
    int64_t daf;       /* data alignment factor */
    unsigned fde_enc;  /* encoding of the FDE's addresses */
    int z, signal;
    uintptr_t ins, ins_end; /* initial instructions */
} cie_info;

#define REG_RBP 6
#define REG_RSP 7
#define REG_RA 16
#define STATE_STACK 8

static reg_rule *reg_of(cfa_state *s, uint64_t reg)
{
    return reg == REG_RBP ? &s->rbp : reg == REG_RA ? &s->ra : NULL;
}

/* DW_CFA_restore: the register's rule as the CIE left it. */
static void restore_reg(cfa_state *s, uint64_t reg, const cfa_state *init)
{
    if (!init) return; /* in the CIE itself: nothing to restore to */
    if (reg == REG_RBP) s->rbp = init->rbp;
    else if (reg == REG_RA) s->ra = init->ra;
}

static void set_reg(cfa_state *s, uint64_t reg, uint8_t how, int64_t off)
{
    reg_rule *rr = reg_of(s, reg);
    if (rr) {
        rr->how = how;
        rr->off = off;
    }
}

/* Runs call-frame instructions [r.p, r.end) from location *loc until the
 * row that holds `target`.  0: done (state in *s), -1: malformed or an
 * instruction this unwinder does not follow. */
static int run(rd r, const cie_info *c, uintptr_t *loc, uintptr_t target, cfa_state *s, const cfa_state *init)
{
    cfa_state stack[STATE_STACK];
    int depth = 0;
    while (r.p < r.end && !r.bad) { /* every instruction takes a byte at least: this ends */
        uint8_t op = (uint8_t)get_le(&r, 1);
        uint64_t reg, delta;
        int64_t off;
        switch (op >> 6) {
        case 1: /* advance_loc */
            delta = (uint64_t)(op & 0x3f) * c->caf;
            goto advance;
        case 2: /* offset */
            off = scaled(uleb(&r), c->daf);
            set_reg(s, op & 0x3f, R_OFFSET, off);
            continue;
        case 3: /* restore */
            restore_reg(s, op & 0x3f, init);
            continue;
        default: break;
        }
        switch (op) {
        case 0x00: /* nop */
            continue;
        case 0x01: { /* set_loc */
            uint64_t to = get_enc(&r, c->fde_enc, 0);
            if (r.bad) return -1;
            if (to > target) return 0;
            *loc = to;
            continue;
        }
        case 0x02: delta = get_le(&r, 1) * c->caf; goto advance;
        case 0x03: delta = get_le(&r, 2) * c->caf; goto advance;
        case 0x04: delta = get_le(&r, 4) * c->caf; goto advance;
        case 0x05: /* offset_extended */
            reg = uleb(&r);
            off = scaled(uleb(&r), c->daf);
            set_reg(s, reg, R_OFFSET, off);
            continue;
        case 0x06: /* restore_extended */
            restore_reg(s, uleb(&r), init);
            continue;
        case 0x07: set_reg(s, uleb(&r), R_UNDEF, 0); continue; /* undefined */
        case 0x08: set_reg(s, uleb(&r), R_SAME, 0); continue;  /* same_value */
        case 0x09: /* register */
            reg = uleb(&r);
            (void)uleb(&r);
            set_reg(s, reg, R_OTHER, 0);
            continue;
        case 0x0a: /* remember_state */
            if (depth == STATE_STACK) return -1;
            stack[depth++] = *s;
            continue;
        case 0x0b: /* restore_state */
            if (depth == 0) return -1;
            *s = stack[--depth];
            continue;
        case 0x0c: /* def_cfa */
            s->cfa_reg = uleb(&r);
            s->cfa_off = (int64_t)uleb(&r);
            s->cfa_expr = 0;
            continue;
        case 0x0d: s->cfa_reg = uleb(&r); continue;            /* def_cfa_register */
        case 0x0e: s->cfa_off = (int64_t)uleb(&r); continue;   /* def_cfa_offset */
        case 0x0f: /* def_cfa_expression */
            s->cfa_expr = 1;
            delta = uleb(&r);
            if (need(&r, delta)) r.p += delta;
            continue;
        case 0x10: /* expression */
        case 0x16: /* val_expression */
            reg = uleb(&r);
            set_reg(s, reg, R_OTHER, 0);
            delta = uleb(&r);
            if (need(&r, delta)) r.p += delta;
            continue;
        case 0x11: /* offset_extended_sf */
            reg = uleb(&r);
            off = scaled((uint64_t)sleb(&r), c->daf);
            set_reg(s, reg, R_OFFSET, off);
            continue;
        case 0x12: /* def_cfa_sf */
            s->cfa_reg = uleb(&r);
            s->cfa_off = scaled((uint64_t)sleb(&r), c->daf);
            s->cfa_expr = 0;
            continue;
        case 0x13: s->cfa_off = scaled((uint64_t)sleb(&r), c->daf); continue; /* def_cfa_offset_sf */
        case 0x14: /* val_offset */
            set_reg(s, uleb(&r), R_OTHER, 0);
            (void)uleb(&r);
            continue;
        case 0x15: /* val_offset_sf */
            set_reg(s, uleb(&r), R_OTHER, 0);
            (void)sleb(&r);
            continue;
        case 0x2e: (void)uleb(&r); continue; /* GNU_args_size */
        case 0x2f: /* GNU_negative_offset_extended */
            reg = uleb(&r);
            off = scaled(0 - uleb(&r), c->daf);
            set_reg(s, reg, R_OFFSET, off);
            continue;
        default: return -1;
        }
    advance:
        if (r.bad) return -1;
        if (delta > target - *loc) return 0; /* the next row starts past target */
        *loc += delta;
        continue;
    }
    return r.bad ? -1 : 0;
}

static int parse_cie(uintptr_t cie, uintptr_t lo, uintptr_t hi, cie_info *c)
{
    if (cie < lo || cie >= hi) return -1;
    rd r = {cie, hi, 0};
    uint64_t len = get_le(&r, 4);
    if (len == 0 || len == 0xffffffffu || !need(&r, len)) return -1;
    r.end = r.p + len;
    if (get_le(&r, 4) != 0) return -1; /* CIE id */
    uint64_t ver = get_le(&r, 1);
    if (ver != 1 && ver != 3) return -1;
    char aug[8];
    unsigned na = 0;
    for (;;) {
        uint8_t ch = (uint8_t)get_le(&r, 1);
        if (r.bad) return -1;
        if (!ch) break;
        if (na == sizeof aug) return -1;
        aug[na++] = (char)ch;
    }
    if (na && aug[0] != 'z') return -1; /* "eh" and other old forms */
    c->caf = uleb(&r);
    c->daf = sleb(&r);
    /* x86-64 code: 1 and -8; anything far off is damage (and would let
     * the factored arithmetic wrap) */
    if (c->caf == 0 || c->caf > 64 || c->daf < -64 || c->daf > 64) return -1;
    uint64_t ra = ver == 1 ? get_le(&r, 1) : uleb(&r);
    if (r.bad || ra != REG_RA) return -1;
    c->fde_enc = 0;
    c->z = na > 0;
    c->signal = 0;
    if (c->z) {
        uint64_t alen = uleb(&r);
        if (!need(&r, alen)) return -1;
        rd a = {r.p, r.p + alen, 0};
        r.p += alen;
        for (unsigned i = 1; i < na; i++) {
            if (aug[i] == 'R') {
                c->fde_enc = (unsigned)get_le(&a, 1);
            } else if (aug[i] == 'P') {
                unsigned penc = (unsigned)get_le(&a, 1);
                (void)get_enc(&a, penc & 0x0f, 0); /* only its size matters */
            } else if (aug[i] == 'L') {
                (void)get_le(&a, 1);
            } else if (aug[i] == 'S') {
                c->signal = 1;
            } else if (aug[i] != 'B') {
                return -1; /* unknown: what follows it cannot be read */
            }
        }
        if (a.bad) return -1;
    }
    c->ins = r.p;
    c->ins_end = r.end;
    return r.bad ? -1 : 0;
}

static uint64_t make_rule(const cfa_state *s)
{
    if (s->ra.how == R_UNDEF) return HT_CFI_END;
    if (s->cfa_expr || (s->cfa_reg != REG_RSP && s->cfa_reg != REG_RBP)) return HT_CFI_FOREIGN;
    if (s->ra.how != R_OFFSET || (s->rbp.how != R_SAME && s->rbp.how != R_OFFSET)) return HT_CFI_FOREIGN;
    if (s->cfa_off < INT32_MIN || s->cfa_off > INT32_MAX) return HT_CFI_FOREIGN;
    if (s->ra.off % 8 || s->ra.off < -1024 || s->ra.off > 1016) return HT_CFI_FOREIGN;
    if (s->rbp.how == R_OFFSET && (s->rbp.off < INT16_MIN || s->rbp.off > INT16_MAX)) return HT_CFI_FOREIGN;
    uint64_t r = HT_CFI_FRAME;
    if (s->cfa_reg == REG_RBP) r |= HT_CFI_CFA_RBP;
    if (s->rbp.how == R_OFFSET) r |= HT_CFI_RBP_SAVED | (uint64_t)(uint16_t)(int16_t)s->rbp.off << 16;
    r |= (uint64_t)(uint8_t)(int8_t)(s->ra.off / 8) << 8;
    r |= (uint64_t)(uint32_t)(int32_t)s->cfa_off << 32;
    return r;
}

uint64_t ht_cfi_rule(const uint8_t *hdr_p, uintptr_t lo, uintptr_t hi, uintptr_t pc)
{
    uintptr_t hdr = (uintptr_t)hdr_p;
    if (hdr < lo || hdr >= hi) return HT_CFI_FOREIGN;
    rd r = {hdr, hi, 0};
    unsigned ver = (unsigned)get_le(&r, 1), ptr_enc = (unsigned)get_le(&r, 1), cnt_enc = (unsigned)get_le(&r, 1),
             tab_enc = (unsigned)get_le(&r, 1);
    /* the binary-search table: what every linker writes (datarel sdata4) */
    if (r.bad || ver != 1 || ptr_enc == 0xff || cnt_enc == 0xff || tab_enc != 0x3b) return HT_CFI_FOREIGN;
    (void)get_enc(&r, ptr_enc, hdr);
    uint64_t count = get_enc(&r, cnt_enc, hdr);
    if (r.bad || count == 0 || count > (r.end - r.p) / 8) return HT_CFI_FOREIGN;
    const uint8_t *tab = (const uint8_t *)r.p;
    /* the last entry whose start is <= pc */
    uint64_t a = 0, b = count;
    while (b - a > 1) {
        uint64_t m = a + (b - a) / 2;
        rd e = {(uintptr_t)(tab + m * 8), hi, 0};
        uintptr_t start = hdr + (uintptr_t)(int64_t)(int32_t)get_le(&e, 4);
        if (start <= pc) a = m;
        else b = m;
    }
    rd e = {(uintptr_t)(tab + a * 8), hi, 0};
    uintptr_t start = hdr + (uintptr_t)(int64_t)(int32_t)get_le(&e, 4);
    uintptr_t fde = hdr + (uintptr_t)(int64_t)(int32_t)get_le(&e, 4);
    if (e.bad || start > pc || fde < lo || fde >= hi) return HT_CFI_FOREIGN;

    rd f = {fde, hi, 0};
    uint64_t len = get_le(&f, 4);
    if (len == 0 || len == 0xffffffffu || !need(&f, len)) return HT_CFI_FOREIGN;
    f.end = f.p + len;
    uintptr_t cie_field = f.p;
    uint64_t cie_off = get_le(&f, 4);
    if (f.bad || cie_off == 0 || cie_off > cie_field - lo) return HT_CFI_FOREIGN;
    cie_info c;
    if (parse_cie(cie_field - (uintptr_t)cie_off, lo, hi, &c) < 0 || c.signal) return HT_CFI_FOREIGN;
    uintptr_t pc_begin = (uintptr_t)get_enc(&f, c.fde_enc, 0);
    uint64_t pc_range = get_enc(&f, c.fde_enc & 0x0f, 0);
    if (f.bad || pc < pc_begin || pc - pc_begin >= pc_range) return HT_CFI_FOREIGN;
    if (c.z) {
        uint64_t alen = uleb(&f);
        if (!need(&f, alen)) return HT_CFI_FOREIGN;
        f.p += alen;
    }

    cfa_state s = {.cfa_reg = REG_RSP, .cfa_off = 8, .rbp = {R_SAME, 0}, .ra = {R_SAME, 0}};
    uintptr_t loc = pc_begin;
    rd ci = {c.ins, c.ins_end, 0};
    if (run(ci, &c, &loc, pc, &s, NULL) < 0) return HT_CFI_FOREIGN;
    cfa_state init = s;
    loc = pc_begin;
    if (run(f, &c, &loc, pc, &s, &init) < 0) return HT_CFI_FOREIGN;
    return make_rule(&s);
}
