/*
 * fx_lib.c - the shared library of the symbolizer fixture (see fx_main.c).
 * Built -g -O2 -fno-toplevel-reorder, so fxlib_hidden (a local symbol, absent
 * from .dynsym) lies after fxlib_exported: in a stripped copy the nearest
 * preceding dynamic symbol of an address in fxlib_hidden is fxlib_exported,
 * which the symbolizer must not report.  The LINE_MARK comments are looked
 * up by test_symbols.c: keep them on the calls.
 */
typedef void (*fx_rec_fn)(int slot);

int fxlib_exported(fx_rec_fn rec, int x);
static int fxlib_hidden(fx_rec_fn rec, int x);

__attribute__((noipa)) int fxlib_exported(fx_rec_fn rec, int x)
{
    rec(2); /* LINE_MARK_lib_call */
    return fxlib_hidden(rec, x + 1) + 1;
}

__attribute__((noipa)) static int fxlib_hidden(fx_rec_fn rec, int x)
{
    rec(3); /* LINE_MARK_lib_hidden */
    return x * 2;
}
