/* export_massif.c - see export.h (being written). */
#include <errno.h>

#include "export.h"

int ht_export_massif(const ht_export_ctx *x, FILE *out)
{
    (void)x;
    (void)out;
    return -ENOSYS;
}
