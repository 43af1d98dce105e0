/* export_folded.c - see export.h (being written). */
#include <errno.h>

#include "export.h"

int ht_export_folded(const ht_export_ctx *x, FILE *out)
{
    (void)x;
    (void)out;
    return -ENOSYS;
}
