// Force-included (-include) in the NORMNET_FUZZ build, which clang compiles: GCC's
// __builtin_shuffle(a, b, mask) / (a, mask) on vector types, which clang lacks (it has
// __builtin_shufflevector with constant indices), written as a loop over the lanes. The library
// uses it in src/kernels/maxpool2d.cpp; the result is the same, only the code differs.
#pragma once
#if defined(__clang__) && defined(__cplusplus)
template <typename V, typename M>
inline V normnet_gcc_shuffle(V a, V b, M mask) {
  constexpr int n = static_cast<int>(sizeof(V) / sizeof(a[0]));
  V r = a;
  for (int k = 0; k < n; ++k) {
    const int j = static_cast<int>(mask[k]) & (2 * n - 1);
    r[k] = j < n ? a[j] : b[j - n];
  }
  return r;
}
template <typename V, typename M>
inline V normnet_gcc_shuffle(V a, M mask) {
  constexpr int n = static_cast<int>(sizeof(V) / sizeof(a[0]));
  V r = a;
  for (int k = 0; k < n; ++k) r[k] = a[static_cast<int>(mask[k]) & (n - 1)];
  return r;
}
#define __builtin_shuffle(...) normnet_gcc_shuffle(__VA_ARGS__)
#endif
