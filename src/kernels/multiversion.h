// Run-time dispatch for the float hot loops: a function marked NORMNET_MULTIVERSION is compiled
// for AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and baseline x86-64, and the loader picks the
// best the CPU has. Helpers called from such a function must be NORMNET_INLINE: GCC does not
// inline a plain function into a clone built for another -march, and a call per element or per
// vector would cost more than the work.
#pragma once

#if defined(__x86_64__) && !defined(__clang__)
#define NORMNET_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NORMNET_MULTIVERSION
#endif

#define NORMNET_INLINE inline __attribute__((always_inline))
