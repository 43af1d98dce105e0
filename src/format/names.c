/* names.c - stable names of kinds, APIs and sources (used in dumps: part of
 * the documented output, never rename). */
#include "../common/events.h"

const char *ht_kind_name(unsigned kind)
{
    switch (kind) {
    case HT_EV_ALLOC: return "alloc";
    case HT_EV_FREE: return "free";
    case HT_EV_REALLOC: return "realloc";
    case HT_EV_HEAP_CREATE: return "heap_create";
    case HT_EV_HEAP_DESTROY: return "heap_destroy";
    case HT_EV_MARKER: return "marker";
    case HT_EV_LOST: return "lost";
    case HT_EV_THREAD: return "thread";
    case HT_EV_PROCESS: return "process";
    case HT_EV_PROCESS_END: return "process_end";
    case HT_EV_SESSION_START: return "session_start";
    case HT_EV_SESSION_END: return "session_end";
    case HT_EV_STACK: return "stack";
    case HT_EV_MODULE: return "module";
    default: return "unknown";
    }
}

const char *ht_api_name(unsigned api)
{
    static const char *const names[HT_API_COUNT] = {
        "", "malloc", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign",
        "aligned_alloc", "valloc", "pvalloc", "free", "new", "new[]", "delete", "delete[]", "heap",
    };
    return api < HT_API_COUNT ? names[api] : "unknown";
}

const char *ht_source_name(unsigned source)
{
    static const char *const names[] = {"NONE", "LOOKASIDE", "LOWFRAG", "MAINPATH",
                                        "SLOWPATH", "INVALID", "SEGMENT"};
    return source < sizeof names / sizeof names[0] ? names[source] : "UNKNOWN";
}
