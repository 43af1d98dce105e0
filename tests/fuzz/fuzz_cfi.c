/*
 * fuzz_cfi.c - libFuzzer target for the runtime's reader of call-frame
 * information (src/runtime/cfi.c), which the own dwarf unwinder runs on the
 * .eh_frame_hdr / .eh_frame of every object a stack passes through.
 *
 * An input is an 8-byte little-endian pc offset, then an image that starts
 * with the .eh_frame_hdr: the rule of image + offset is asked for, with the
 * image as the whole readable range [lo, hi).  ASan checks that nothing
 * outside it is read; the rule must be of a known kind, and a FRAME rule's
 * offsets must decode to what the unwinder can apply (the return address
 * 8-aligned).  Seeds (gen_cfi_seeds) are this program's own CFI.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cfi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) return 0;
    uint64_t off = 0;
    for (int i = 0; i < 8; i++) off |= (uint64_t)data[i] << (8 * i);
    size_t n = size - 8;
    /* a copy of exactly n bytes, so ASan sees any read past the image */
    uint8_t *img = malloc(n ? n : 1);
    if (!img) return 0;
    memcpy(img, data + 8, n);
    uintptr_t lo = (uintptr_t)img, hi = lo + n;
    uint64_t r = ht_cfi_rule(img, lo, hi, lo + (uintptr_t)off);
    unsigned kind = ht_cfi_kind(r);
    if (kind == HT_CFI_NONE) abort(); /* the reader never says "no object" */
    if (kind == HT_CFI_FRAME && ht_cfi_ra_off(r) % 8) abort();
    if (kind != HT_CFI_FRAME && (r >> 2)) abort(); /* END and FOREIGN carry nothing */
    free(img);
    return 0;
}
