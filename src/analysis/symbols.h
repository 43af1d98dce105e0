/*
 * symbols.h - the offline symbolizer: a code address of a traced process ->
 * function, source file:line and the chain of inlined frames, read with
 * elfutils libdw from the object files (and their separate debug files) on
 * this machine or under a sysroot.  Never used while recording.
 *
 * Model.  Each process (pid) has its own address map of modules, as the
 * trace's module records describe them; a module names an object file and
 * the load bias it was mapped with.  Object files are shared between
 * processes (keyed by path and build id) and opened lazily, on the first
 * lookup that falls into them, each in its own libdwfl session placed at
 * its ELF virtual addresses; a lookup translates the process address to
 * the object's ELF virtual address (addr - load_bias) and asks that.  So the
 * same library at different addresses in many processes is read once, and
 * the result cache, keyed by (object, ELF address), serves them all.
 *
 * Correctness rules.  A name is only ever reported when it covers the
 * address: from DWARF (the subprogram / inlined instance whose ranges hold
 * it), else from an ELF symbol (.symtab or .dynsym) whose st_value..+st_size
 * holds it.  A file whose build id differs from the module's is not used
 * (module+offset only), nor is a missing one.
 *
 * Not thread-safe: one symbolizer per thread, or a lock around it.
 */
#ifndef HT_SYMBOLS_H
#define HT_SYMBOLS_H

/* The implementation (symbols.c, linked with libdw) is built as a module,
 * libheaptrace-symbols.so, that the tools load on first use (symload.c):
 * so `heaptrace record` does not load libdw and its dependencies at every
 * start.  Inside the module (and in its unit test) the functions carry the
 * _impl names. */
#ifdef HT_SYMBOLS_IMPL
#define ht_sym_new ht_sym_impl_new
#define ht_sym_add_module ht_sym_impl_add_module
#define ht_sym_lookup ht_sym_impl_lookup
#define ht_sym_free ht_sym_impl_free
#define ht_sym_demangle ht_sym_impl_demangle
#endif

#include <stddef.h>
#include <stdint.h>

typedef struct ht_module {
    uint64_t start, end;      /* the mapping's address range in the process [start, end)
                               * (executable segment or whole object) */
    uint64_t file_offset;     /* file offset that `start` maps (as in /proc/PID/maps); informative */
    uint64_t load_bias;       /* l_addr of the object (dl_iterate_phdr's dlpi_addr); 0 for non-PIE executables */
    const char *path;         /* path of the object as the process saw it */
    const uint8_t *build_id;  /* GNU build id bytes, or NULL */
    size_t build_id_len;
} ht_module;

typedef struct ht_frame_sym {
    const char *function;     /* as in the object: C++ names stay mangled (the CLI may demangle);
                               * NULL if unknown */
    const char *file;         /* source file, NULL if unknown */
    int line;                 /* 0 if unknown */
    int inlined;              /* 1: this frame was inlined into the next one */
    const char *module;       /* module path as the process saw it */
    uint64_t module_offset;   /* address - load_bias (the ELF virtual address) */
} ht_frame_sym;

typedef struct ht_symbolizer ht_symbolizer;

/* sysroot: prefix for module paths (traces from another machine), or NULL.
 * debug_dir: extra directory for separate debug files, searched as
 * DEBUGDIR/.build-id/xx/rest.debug and by .gnu_debuglink name (DEBUGDIR/NAME
 * and DEBUGDIR/<dir of the object>/NAME), before SYSROOT/usr/lib/debug (with
 * a sysroot) and /usr/lib/debug; may be NULL.  A relative debug_dir is taken
 * from the current directory.  Neither may contain ':'.
 * Returns NULL on out-of-memory only. */
ht_symbolizer *ht_sym_new(const char *sysroot, const char *debug_dir);

/* Registers a module of process `pid`.  Modules of different processes are
 * independent.  Within one process a new module replaces whatever part of
 * older ones it overlaps (as a new mapping does), so register modules in
 * trace order.  The file is not opened here: a missing or mismatching file is
 * not an error (lookups then yield module+offset only).  Copies everything
 * it keeps.  Returns 0, -EINVAL (NULL path, empty range) or -ENOMEM. */
int ht_sym_add_module(ht_symbolizer *s, uint32_t pid, const ht_module *m);

/* Symbolizes `addr` of process pid.  A return address must be looked up by
 * the CALLER as addr-1 (so that it falls into the call instruction, not the
 * next line or function); this function does not adjust it.  Fills up to max
 * frames, innermost (most inlined) first, the last one being the real
 * (non-inlined) function when max is large enough (when it is not, the
 * innermost max frames).  Returns the number filled: >= 1 (when max >= 1)
 * whenever addr falls in a known module, with at least module and
 * module_offset set; 0 if no module of pid covers addr.  The strings stay
 * valid until ht_sym_free.  Results are cached per (object, ELF address). */
int ht_sym_lookup(ht_symbolizer *s, uint32_t pid, uint64_t addr, ht_frame_sym *out, int max);

void ht_sym_free(ht_symbolizer *s);

/* A C++ mangled name ("_Z...") demangled into out (libstdc++'s
 * __cxa_demangle): 1, or 0 if `name` is not one (out untouched). */
int ht_sym_demangle(const char *name, char *out, size_t len);

#ifndef HT_SYMBOLS_IMPL
/* Why ht_sym_new returned NULL: the module could not be loaded (a line for
 * the user), or NULL if it was out of memory. */
const char *ht_sym_unavailable(void);
#endif

#endif
