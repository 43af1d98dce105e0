/*
 * stacktab.h - the call stacks and loaded modules of a trace, as a reader
 * meets them (STACK and MODULE records, FORMAT.md §3.3), and their text.
 *
 * Feed every record in file order to ht_stk_event; then ht_stk_format
 * renders the stack of a heap event.  A frame is tied to the module that
 * covered its address when the STACK record was read, so a library
 * unloaded and replaced at the same address later still names the right
 * file.  Symbols (function, file:line, inlined frames) come from
 * symbols.h when a symbolizer is given; otherwise, or when a module has no
 * symbols, a frame reads "module+0xoffset".
 */
#ifndef HT_STACKTAB_H
#define HT_STACKTAB_H

#include <stddef.h>
#include <stdint.h>

#include "../format/format.h"

typedef struct ht_stacktab ht_stacktab;
struct ht_symbolizer;

ht_stacktab *ht_stk_new(struct ht_symbolizer *sym); /* sym may be NULL: raw frames */
void ht_stk_free(ht_stacktab *t);

/* Takes note of STACK and MODULE records; ignores the others.  0, or
 * -EBADMSG for a malformed one (it is skipped), -ENOMEM. */
int ht_stk_event(ht_stacktab *t, const ht_event *ev);

/* Number of frames of stack `id` of process pid (0: unknown); *pcs gets
 * the return addresses, innermost first. */
int ht_stk_frames(const ht_stacktab *t, uint32_t pid, uint32_t id, const uint64_t **pcs);

/* The stack as text, innermost first, frames separated by `sep`, each
 * "function (file:line)", "function" or "module+0xoff"; inlined frames are
 * their own entries.  Returns the length written (truncated to len-1). */
size_t ht_stk_format(ht_stacktab *t, uint32_t pid, uint32_t id, const char *sep, char *out, size_t len);

/* One frame of a rendered stack (inlined functions are frames of their own,
 * sharing their caller's pc).  Strings stay valid until ht_stk_free. */
typedef struct ht_stk_frame {
    const char *text;        /* as ht_stk_format prints it */
    const char *function;    /* demangled name, NULL if unknown */
    const char *file;        /* source file, NULL if unknown */
    int line;                /* 0 if unknown */
    int inlined;             /* 1: inlined into the next frame */
    const char *module;      /* basename of the object, NULL if no module covers pc */
    uint64_t pc;             /* the return address */
    uint64_t module_offset;  /* pc - 1 - load bias (the ELF address of the call) */
} ht_stk_frame;

/* The frames of stack `id` of process pid, innermost first (0 frames: the
 * stack is unknown); *site (may be NULL) gets the index of the allocation
 * site frame (see ht_stk_site). */
int ht_stk_nframes(const ht_stacktab *t, uint32_t pid, uint32_t id, const ht_stk_frame **frames, uint32_t *site);

/* The first frame of the stack that is not in the allocator's plumbing
 * (libheaptrace, libc's malloc family, libstdc++'s operator new,
 * std::allocator internals): the allocation site.  Same text as one frame
 * of ht_stk_format; returns its length, 0 if the stack is unknown. */
size_t ht_stk_site(ht_stacktab *t, uint32_t pid, uint32_t id, char *out, size_t len);

#endif
