/* addrmap.c - see addrmap.h */
#include "addrmap.h"

#include <stdlib.h>
#include <string.h>

static inline uint64_t hash3(uint32_t pid, uint32_t heap, uint64_t addr)
{
    uint64_t h = addr ^ ((uint64_t)pid << 32 | heap) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

void ht_addrmap_init(ht_addrmap *m) { memset(m, 0, sizeof *m); }

void ht_addrmap_free(ht_addrmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int grow(ht_addrmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    ht_block *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        ht_block *b = &m->slots[i];
        if (!b->used) continue;
        size_t j = hash3(b->pid, b->heap, b->addr) & (ncap - 1);
        while (ns[j].used) j = (j + 1) & (ncap - 1);
        ns[j] = *b;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

ht_block *ht_addrmap_get(ht_addrmap *m, uint32_t pid, uint32_t heap, uint64_t addr)
{
    if (!m->cap) return NULL;
    size_t j = hash3(pid, heap, addr) & (m->cap - 1);
    for (;;) {
        ht_block *b = &m->slots[j];
        if (!b->used) return NULL;
        if (b->addr == addr && b->pid == pid && b->heap == heap) return b;
        j = (j + 1) & (m->cap - 1);
    }
}

ht_block *ht_addrmap_put(ht_addrmap *m, uint32_t pid, uint32_t heap, uint64_t addr, int *existed)
{
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0) return NULL;
    size_t j = hash3(pid, heap, addr) & (m->cap - 1);
    for (;;) {
        ht_block *b = &m->slots[j];
        if (!b->used) {
            memset(b, 0, sizeof *b);
            b->used = 1;
            b->addr = addr;
            b->pid = pid;
            b->heap = heap;
            m->count++;
            *existed = 0;
            return b;
        }
        if (b->addr == addr && b->pid == pid && b->heap == heap) {
            *existed = 1;
            return b;
        }
        j = (j + 1) & (m->cap - 1);
    }
}

ht_block ht_addrmap_del(ht_addrmap *m, ht_block *b)
{
    ht_block old = *b;
    size_t i = (size_t)(b - m->slots), mask = m->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        ht_block *c = &m->slots[j];
        if (!c->used) break;
        size_t home = hash3(c->pid, c->heap, c->addr) & mask;
        /* move c back into the hole at i if its home is not in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = *c;
            i = j;
        }
    }
    m->slots[i].used = 0;
    m->count--;
    return old;
}
