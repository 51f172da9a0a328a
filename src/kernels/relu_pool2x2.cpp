// float versions of relu_pool2x2.h, eight lanes (one AVX2 register) at a time with GCC vector
// extensions on the integer images of the floats.
#include "kernels/relu_pool2x2.h"
#include "kernels/multiversion.h"

#include <cstring>

namespace normnet::kernels {

#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

typedef int32_t i8 __attribute__((vector_size(32)));
typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i16 __attribute__((vector_size(64)));

template <typename V>
NORMNET_INLINE V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
NORMNET_INLINE void store(void* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

constexpr int32_t kInfBits = 0x7f800000;

// One candidate (bits v, key kv, index i) against the current best, per lane.
NORMNET_INLINE void take(i8 v, i8 i, i8& best, i8& kb, i8& bi) {
  const i8 kv = v & 0x7fffffff;
  const i8 t = (kb <= kInfBits) & (kv > kb);
  best = (v & t) | (best & ~t);
  kb = (kv & t) | (kb & ~t);
  bi = (i & t) | (bi & ~t);
}

// Windows ox .. ox+7 of the row pair starting at row (top-left flat index i0 of window ox):
// pooled bits and winners (-1 where the pooled value is <= 0).
NORMNET_INLINE void windows8(i8& best, i8& win, const float* top, const float* bottom, int32_t i0,
                             int32_t w) {
  const i8 even = {0, 2, 4, 6, 8, 10, 12, 14}, odd = even + 1;
  const i8 t0 = load<i8>(top), t1 = load<i8>(top + 8), b0 = load<i8>(bottom), b1 = load<i8>(bottom + 8);
  const i8 idx = even + i0;
  best = __builtin_shuffle(t0, t1, even);
  i8 kb = best & 0x7fffffff, bi = idx;
  take(__builtin_shuffle(t0, t1, odd), idx + 1, best, kb, bi);
  take(__builtin_shuffle(b0, b1, even), idx + w, best, kb, bi);
  take(__builtin_shuffle(b0, b1, odd), idx + w + 1, best, kb, bi);
  win = (bi & ~(kb == 0)) | (kb == 0);  // kb == 0 is all ones: -1
}

}  // namespace

// Rows in order; a row's last group of 8 windows may spill into the next rows' outputs, which
// those rows then overwrite. A group that would spill past the plane stores value by value.
NORMNET_MULTIVERSION
void relu_pool2x2_plane(float* out, int32_t* win, const float* z, int64_t h, int64_t w) {
  const int64_t oh = h / 2, ow = w / 2;
  const int32_t w32 = static_cast<int32_t>(w);
  for (int64_t oy = 0; oy < oh; ++oy) {
    const float* top = z + 2 * oy * w;
    float* o = out + oy * ow;
    int32_t* wi = win + oy * ow;
    for (int64_t ox = 0; ox < ow; ox += 8) {
      i8 best, wv;
      windows8(best, wv, top + 2 * ox, top + w + 2 * ox, static_cast<int32_t>(2 * oy * w + 2 * ox), w32);
      if ((oy * ow + ox + 8) <= oh * ow) {
        store(o + ox, best);
        store(wi + ox, wv);
      } else {
        for (int64_t j = 0; j < ow - ox; ++j) {
          std::memcpy(o + ox + j, reinterpret_cast<const int32_t*>(&best) + j, sizeof(float));
          wi[ox + j] = wv[j];
        }
      }
    }
  }
}

// Window row oy gives rows 2oy and 2oy+1 of g: for each group of 8 windows, each window's
// value and winner repeated for its two columns, kept in the lanes whose flat index is the
// winner (one load and one repeat serve both rows). A row's last group may be partial: its
// lanes past the row get winner -1, so its stores write zeros past the row's end, into the
// next rows; it runs first, before the whole groups (and a group's top row before its bottom
// row), so that every such zero is overwritten after. It reads the next window row's values.
// Where those reads or writes would leave the plane (the last window row, tiny planes), the
// last windows go value by value instead. (A partial vector built in memory and loaded back
// stalled on store forwarding.)
NORMNET_INLINE void grad_group(float* top, const float* d, const int32_t* wi, int64_t j, int64_t ow,
                               int32_t base, int32_t w) {
  const i16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const i8 eight = {0, 1, 2, 3, 4, 5, 6, 7};
  const f8 dv = load<f8>(d + j) + 0.0f;
  i8 wv = load<i8>(wi + j);
  if (j + 8 > ow) wv |= eight >= static_cast<int32_t>(ow - j);  // -1 past the row
  const i16 dd = reinterpret_cast<i16>(
      __builtin_shufflevector(dv, dv, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
  const i16 ww = __builtin_shufflevector(wv, wv, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const i16 idx = lane + (base + static_cast<int32_t>(2 * j));
  store(top + 2 * j, dd & (ww == idx));
  store(top + w + 2 * j, dd & (ww == idx + w));
}

NORMNET_MULTIVERSION
void relu_pool2x2_grad(float* g, const float* dout, const int32_t* win, int64_t h, int64_t w) {
  const int64_t oh = h / 2, ow = w / 2, whole = ow / 8 * 8;
  const int32_t w32 = static_cast<int32_t>(w);
  for (int64_t oy = 0; oy < oh; ++oy) {
    const float* d = dout + oy * ow;
    const int32_t* wi = win + oy * ow;
    float* top = g + 2 * oy * w;
    const int32_t base = static_cast<int32_t>(2 * oy * w);
    const bool inside = oy * ow + whole + 8 <= oh * ow && 2 * oy * w + w + 2 * whole + 16 <= h * w;
    if (whole < ow && inside) {
      grad_group(top, d, wi, whole, ow, base, w32);
    } else {
      for (int64_t j = whole; j < ow; ++j) {
        const float v = d[j] + 0.0f;
        const int32_t i = base + static_cast<int32_t>(2 * j);
        top[2 * j] = wi[j] == i ? v : 0.0f;
        top[2 * j + 1] = wi[j] == i + 1 ? v : 0.0f;
        top[w + 2 * j] = wi[j] == i + w32 ? v : 0.0f;
        top[w + 2 * j + 1] = wi[j] == i + w32 + 1 ? v : 0.0f;
      }
    }
    for (int64_t j = 0; j < whole; j += 8) grad_group(top, d, wi, j, ow, base, w32);
    if (w % 2) top[w - 1] = top[2 * w - 1] = 0.0f;
  }
  for (int64_t i = 2 * oh * w; i < h * w; ++i) g[i] = 0.0f;
}

}  // namespace normnet::kernels
