/* shm.c - initialisation and validation of a session's shared region. */
#include "shm.h"

#include <errno.h>
#include <string.h>

void ht_shm_init(ht_shm_hdr *h, uint32_t subbuf_size, uint32_t subbuf_count, uint32_t mode,
                 uint32_t clock, uint32_t pid)
{
    memset(h, 0, HT_SHM_HDR_SIZE);
    h->magic = HT_SHM_MAGIC;
    h->version = HT_SHM_VERSION;
    h->hdr_size = HT_SHM_HDR_SIZE;
    h->total_size = ht_shm_size(subbuf_size, subbuf_count);
    h->subbuf_size = subbuf_size;
    h->subbuf_count = subbuf_count;
    h->mode = mode;
    h->clock = clock;
    h->pid = pid;
    ht_atomic_store_relaxed(&h->free_head, (uint64_t)HT_FREE_NONE);
    for (uint32_t i = subbuf_count; i-- > 0;) {
        ht_subbuf *sb = ht_shm_subbuf(h, i);
        memset(sb, 0, sizeof *sb);
        ht_shm_push(h, i);
    }
    ht_atomic_store_relaxed(&h->free_seq, 0);
    ht_atomic_store_release(&h->state, HT_SHM_RUNNING);
}

int ht_shm_check(const ht_shm_hdr *h, size_t mapped_size)
{
    if (mapped_size < HT_SHM_HDR_SIZE) return -EINVAL;
    if (h->magic != HT_SHM_MAGIC || h->version != HT_SHM_VERSION) return -EINVAL;
    if (h->hdr_size != HT_SHM_HDR_SIZE) return -EINVAL;
    if (h->subbuf_size < HT_SUBBUF_MIN || h->subbuf_size > HT_SUBBUF_MAX ||
        h->subbuf_size % 64 != 0)
        return -EINVAL;
    if (h->subbuf_count == 0 || h->subbuf_count > HT_SUBBUF_COUNT_MAX) return -EINVAL;
    if (h->total_size != ht_shm_size(h->subbuf_size, h->subbuf_count)) return -EINVAL;
    if (h->total_size > mapped_size) return -EINVAL;
    if (h->mode > HT_MODE_DROP || h->clock > HT_CLOCK_MONOTONIC) return -EINVAL;
    return 0;
}
