/*
 * cfi.h - the unwind rule of one code address, read from the call-frame
 * information (.eh_frame_hdr and .eh_frame) of a loaded x86-64 object.
 *
 * The runtime's own unwinder (unwind.c, --stacks dwarf) caches one rule per
 * return address and applies it to step from a frame to its caller.  This
 * part only reads the CFI: it has no state, allocates nothing, and reads
 * nothing outside [lo, hi), so it is fuzzed on its own (tests/fuzz).
 *
 * A rule is one 64-bit word:
 *   bits 0-1   kind: HT_CFI_NONE (no rule: not cached), HT_CFI_FRAME,
 *              HT_CFI_END (the return address is undefined: outermost
 *              frame), HT_CFI_FOREIGN (this unwinder cannot express the
 *              frame: a CFA or register expression, a signal frame, an
 *              unusual encoding; libunwind unwinds such stacks)
 *   bit 2      the CFA is rbp + cfa_off (else rsp + cfa_off)
 *   bit 3      the caller's rbp is saved at CFA + rbp_off (else unchanged)
 *   bits 8-15  ra_off / 8 (signed): the return address is at CFA + ra_off
 *   bits 16-31 rbp_off (signed, bytes)
 *   bits 32-63 cfa_off (signed, bytes)
 */
#ifndef HT_CFI_H
#define HT_CFI_H

#include <stdint.h>

enum { HT_CFI_NONE = 0, HT_CFI_FRAME = 1, HT_CFI_END = 2, HT_CFI_FOREIGN = 3 };
#define HT_CFI_CFA_RBP 4u
#define HT_CFI_RBP_SAVED 8u

static inline unsigned ht_cfi_kind(uint64_t r) { return (unsigned)(r & 3); }
static inline int64_t ht_cfi_cfa_off(uint64_t r) { return (int32_t)(uint32_t)(r >> 32); }
static inline int64_t ht_cfi_ra_off(uint64_t r) { return (int64_t)(int8_t)(uint8_t)(r >> 8) * 8; }
static inline int64_t ht_cfi_rbp_off(uint64_t r) { return (int16_t)(uint16_t)(r >> 16); }

/* The rule of the instruction at `pc` (for a return address, pass it minus
 * one: the call, not what follows it), from the object whose
 * .eh_frame_hdr is at `hdr`; every byte read lies in [lo, hi).  Returns a
 * rule of kind FRAME, END or FOREIGN (FOREIGN too when no FDE covers pc). */
uint64_t ht_cfi_rule(const uint8_t *hdr, uintptr_t lo, uintptr_t hi, uintptr_t pc);

#endif
