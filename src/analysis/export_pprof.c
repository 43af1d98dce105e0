/* export_pprof.c - see export.h (being written). */
#include <errno.h>

#include "export.h"

int ht_export_pprof(const ht_export_ctx *x, FILE *out)
{
    (void)x;
    (void)out;
    return -ENOSYS;
}
