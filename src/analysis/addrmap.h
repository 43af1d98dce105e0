/*
 * addrmap.h - the live-block table of the analyses: (pid, heap, address) ->
 * (size, api, ts).  Open addressing, linear probing, backward-shift
 * deletion (no tombstones), so memory follows the live set, not history.
 */
#ifndef HT_ADDRMAP_H
#define HT_ADDRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ht_block {
    uint64_t addr;
    uint32_t pid, heap;
    uint64_t size;
    uint64_t ts;
    uint8_t api;
    uint8_t used;
    uint32_t stack; /* call stack id of the allocation, 0 if none */
} ht_block;

typedef struct ht_addrmap {
    ht_block *slots;
    size_t cap, count; /* cap is a power of two */
} ht_addrmap;

void ht_addrmap_init(ht_addrmap *m);
void ht_addrmap_free(ht_addrmap *m);
/* Insert or overwrite; returns the slot, NULL on allocation failure.
 * *existed tells whether the key was already live. */
ht_block *ht_addrmap_put(ht_addrmap *m, uint32_t pid, uint32_t heap, uint64_t addr, int *existed);
ht_block *ht_addrmap_get(ht_addrmap *m, uint32_t pid, uint32_t heap, uint64_t addr);
/* Remove the block (pointer from get/put); returns its former contents. */
ht_block ht_addrmap_del(ht_addrmap *m, ht_block *b);

#endif
