// chains_cxx.cpp - the C++ part of stk_chains: a new through a template.
#include <cstddef>

struct Marker {
    char bytes[10004];
};

template <class T> __attribute__((noinline)) T *make()
{
    return new T; /* LINE: make */
}

__attribute__((noinline)) Marker *cxx_caller()
{
    Marker *m = make<Marker>(); /* LINE: cxx_caller */
    __asm__ volatile("" ::: "memory");
    return m;
}

extern "C" __attribute__((noinline)) void *cxx_entry(void)
{
    void *p = cxx_caller(); /* LINE: cxx_entry */
    __asm__ volatile("" ::: "memory");
    return p;
}

extern "C" __attribute__((noinline)) void cxx_release(void *p)
{
    delete static_cast<Marker *>(p); /* LINE: cxx_release */
}
