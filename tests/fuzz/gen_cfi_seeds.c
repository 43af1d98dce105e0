/*
 * gen_cfi_seeds.c DIR - seeds for fuzz_cfi: this program's own
 * .eh_frame_hdr and what follows it (the .eh_frame, up to 64 KiB), with pc
 * offsets inside functions of its search table: the first instruction, a
 * few bytes in, and past the end of the table.
 */
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const uint8_t *hdr;
static size_t avail;

static int find(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    const uint8_t *eh = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_EH_FRAME) eh = (const uint8_t *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (!eh) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
        if (ph->p_type == PT_LOAD && (uintptr_t)eh >= s && (uintptr_t)eh < e) {
            hdr = eh;
            avail = e - (uintptr_t)eh;
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_cfi_seeds DIR\n");
        return 2;
    }
    dl_iterate_phdr(find, NULL);
    if (!hdr || avail < 12 || hdr[0] != 1 || hdr[3] != 0x3b) {
        fprintf(stderr, "gen_cfi_seeds: no usable .eh_frame_hdr in this program\n");
        return 1;
    }
    size_t n = avail < 65536 ? avail : 65536;
    uint32_t count;
    memcpy(&count, hdr + 8, 4); /* fde_count, udata4 after a 4-byte eh_frame_ptr */
    int made = 0;
    for (uint32_t k = 0; k < count && made < 24; k += count / 8 + 1) {
        int32_t start;
        memcpy(&start, hdr + 12 + 8 * (size_t)k, 4);
        for (int d = 0; d < 3; d++) {
            int64_t off = (int64_t)start + (d == 0 ? 0 : d == 1 ? 5 : 40);
            char path[4096];
            snprintf(path, sizeof path, "%s/seed-%u-%d", argv[1], k, d);
            FILE *f = fopen(path, "wb");
            if (!f) {
                perror(path);
                return 1;
            }
            uint8_t le[8];
            for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)off >> (8 * i));
            fwrite(le, 1, 8, f);
            fwrite(hdr, 1, n, f);
            fclose(f);
            made++;
        }
    }
    return made ? 0 : 1;
}
