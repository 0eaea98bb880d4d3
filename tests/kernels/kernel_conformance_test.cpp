// Kernel conformance: every (family, ISA) of registry.inc against the scalar reference, and hand-derived
// cases that pin the reference itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/dispatch.hpp"
#include "kernels/fused.hpp"
#include "kernels/reference.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "test_util.hpp"

namespace sparsity::kernels {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

const KernelTable& reference_table() {
  static const KernelTable t = [] {
    KernelTable r;
    fill_reference(r);
    return r;
  }();
  return t;
}

// f32 lanes of the ISA's vectors (the L of the size list).
size_t lanes(Isa isa) {
  switch (isa) {
    case Isa::sse2: return 4;
    case Isa::avx2: return 8;
    case Isa::avx512: return 16;
    default: return 1;
  }
}

// The sizes every kernel runs at: {0, 1, L-1, L, L+1, 2L+3, 1021, 1<<20} plus the 64-element group edges.
std::vector<size_t> sizes(Isa isa, bool with_large = true) {
  const size_t l = lanes(isa);
  std::vector<size_t> s{0, 1, l - 1, l, l + 1, 2 * l + 3, 63, 64, 65, 4 * l + 1, 1021};
  if (with_large) s.push_back(size_t{1} << 20);
  return s;
}

// Random bytes in which the float patterns NaN, +-inf, -0.0, +0.0 and denormals are frequent.
std::vector<uint8_t> special_bytes(size_t nbytes, size_t elem, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(nbytes);
  for (size_t i = 0; i + elem <= nbytes; i += elem) {
    const uint64_t r = rng();
    uint64_t v = rng();
    if (elem == 4) {
      const uint32_t pats[] = {0x7fc00000u, 0xffc00001u, 0x7f800000u, 0xff800000u, 0x80000000u, 0u, 1u, 0x3f800000u};
      if (r % 4 == 0) v = pats[(r >> 8) % 8];
    } else if (elem == 8) {
      const uint64_t pats[] = {0x7ff8000000000000ull, 0xfff0000000000001ull, 0x7ff0000000000000ull,
                               0xfff0000000000000ull, 0x8000000000000000ull, 0, 1, 0x3ff0000000000000ull};
      if (r % 4 == 0) v = pats[(r >> 8) % 8];
    } else if (elem == 2) {
      const uint16_t pats[] = {0x7e00u, 0xfc01u, 0x7c00u, 0xfc00u, 0x8000u, 0u, 1u, 0x3c00u};
      if (r % 4 == 0) v = pats[(r >> 8) % 8];
    } else {
      v = (r % 3 == 0) ? 0 : v;
    }
    std::memcpy(out.data() + i, &v, elem);
  }
  return out;
}

#define EXPECT_BYTES_EQ(a, b, what)                                                                  \
  do {                                                                                               \
    ASSERT_EQ((a).size(), (b).size()) << what;                                                       \
    size_t first_ = (a).size();                                                                      \
    for (size_t i_ = 0; i_ < (a).size(); ++i_) {                                                     \
      if ((a)[i_] != (b)[i_]) {                                                                      \
        first_ = i_;                                                                                 \
        break;                                                                                       \
      }                                                                                              \
    }                                                                                                \
    EXPECT_EQ(first_, (a).size()) << what << ": first difference at byte " << first_;              \
  } while (0)

// ---- apply_mask ------------------------------------------------------------------------------------

void check_apply_mask(const KernelTable& t) {
  const KernelTable& ref = reference_table();
  const size_t widths[] = {2, 4, 8};
  for (int wi = 0; wi < 3; ++wi) {
    const size_t es = widths[wi];
    for (size_t n : sizes(t.isa)) {
      // The large size runs once (misaligned by one byte): the scalar reference is slow.
      for (size_t misalign : {size_t{1}, size_t{0}, es}) {
        if (n > 4096 && misalign != 1) continue;
        // Buffers with room for a one-element or one-byte shift of every pointer.
        const std::vector<uint8_t> w = special_bytes(n * es + 16, es, 11 + n);
        std::vector<uint8_t> bytes_mask(n + 16), bits((n + 7) / 8 + 16);
        std::mt19937_64 rng(n * 7 + misalign);
        for (auto& b : bytes_mask) {
          const uint64_t r = rng();
          b = (r % 2) ? static_cast<uint8_t>(1u << (r >> 8) % 8) : 0;  // any non-zero byte keeps
        }
        for (auto& b : bits) b = static_cast<uint8_t>(rng());
        const std::vector<uint8_t> fmask = special_bytes(n * es + 16, es, 99 + n);
        for (bool stream : {false, true}) {
          for (int form = 0; form < 3; ++form) {
            std::vector<uint8_t> got(n * es + 128), want(n * es + 128);
            // Streaming needs a 64-byte aligned output; the vectors are at least 16-byte aligned.
            const size_t out_shift = stream ? (64 - reinterpret_cast<uintptr_t>(got.data()) % 64) % 64 : misalign;
            const size_t want_shift = (64 - reinterpret_cast<uintptr_t>(want.data()) % 64) % 64;
            uint8_t* go = got.data() + out_shift;
            uint8_t* wo = want.data() + (stream ? want_shift : misalign);
            const uint8_t* wp = w.data() + misalign;
            if (form == 0) {
              t.apply_bytes[wi](wp, bytes_mask.data() + misalign, go, n, stream);
              ref.apply_bytes[wi](wp, bytes_mask.data() + misalign, wo, n, false);
            } else if (form == 1) {
              t.apply_bits[wi](wp, bits.data() + misalign, go, n, stream);
              ref.apply_bits[wi](wp, bits.data() + misalign, wo, n, false);
            } else {
              t.apply_float[wi](wp, fmask.data() + misalign, go, n, stream);
              ref.apply_float[wi](wp, fmask.data() + misalign, wo, n, false);
            }
            const std::vector<uint8_t> g(go, go + n * es), r(wo, wo + n * es);
            EXPECT_BYTES_EQ(g, r, "form " << form << " width " << es << " n " << n << " misalign " << misalign
                                          << " stream " << stream);
          }
          // In place (out == w).
          std::vector<uint8_t> in_got(w), in_want(w);
          t.apply_bytes[wi](in_got.data() + misalign, bytes_mask.data(), in_got.data() + misalign, n, false);
          ref.apply_bytes[wi](in_want.data() + misalign, bytes_mask.data(), in_want.data() + misalign, n, false);
          EXPECT_BYTES_EQ(in_got, in_want, "in place, width " << es << " n " << n);
        }
      }
    }
  }
}

// ---- block scores ----------------------------------------------------------------------------------

void check_block_scores(const KernelTable& t) {
  const KernelTable& ref = reference_table();
  struct Shape2 {
    int64_t rows, cols, br, bc;
  };
  const Shape2 shapes[] = {{1, 1, 1, 1},   {3, 5, 2, 2},   {7, 33, 1, 4},  {8, 64, 4, 4},  {5, 17, 1, 1},
                           {9, 70, 2, 3},  {16, 40, 8, 8}, {4, 100, 1, 16}, {6, 6, 7, 7}, {33, 129, 3, 5},
                           {1, 1021, 1, 4}, {64, 1024, 1, 4}};
  const DType dtypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
  for (int di = 0; di < 4; ++di) {
    const size_t es = size_of(dtypes[di]);
    const size_t ses = dtypes[di] == DType::f64 ? 8 : 4;
    for (const Shape2& s : shapes) {
      for (int64_t pad : {int64_t{0}, int64_t{3}}) {
        for (Norm norm : {Norm::L1, Norm::L2}) {
          const int64_t ld = s.cols + pad;
          const std::vector<uint8_t> w = special_bytes(static_cast<size_t>(s.rows * ld) * es + es, es,
                                                       static_cast<uint64_t>(s.rows * 1000 + s.cols + pad));
          const int64_t tiles = ((s.rows + s.br - 1) / s.br) * ((s.cols + s.bc - 1) / s.bc);
          std::vector<uint8_t> got(static_cast<size_t>(tiles) * ses, 0xAB), want(static_cast<size_t>(tiles) * ses, 0xCD);
          const int64_t trows = (s.rows + s.br - 1) / s.br;
          // Misaligned by one element; split the tile rows in two calls as the threads do.
          const int64_t mid = trows / 2;
          t.block_scores[di](w.data() + es, s.rows, s.cols, ld, s.br, s.bc, norm, got.data(), 0, mid);
          t.block_scores[di](w.data() + es, s.rows, s.cols, ld, s.br, s.bc, norm, got.data(), mid, trows);
          ref.block_scores[di](w.data() + es, s.rows, s.cols, ld, s.br, s.bc, norm, want.data(), 0, trows);
          EXPECT_BYTES_EQ(got, want, "dtype " << to_string(dtypes[di]) << " shape " << s.rows << "x" << s.cols
                                              << " block " << s.br << "x" << s.bc << " ld " << ld << " norm "
                                              << static_cast<int>(norm));
        }
      }
    }
  }
}

// ---- selection -------------------------------------------------------------------------------------

template <class T>
std::vector<T> tied_scores(size_t n, uint64_t seed) {
  // Few distinct values (many ties), NaNs, infinities and both zeros.
  std::mt19937_64 rng(seed);
  std::vector<T> s(n);
  const T pool[] = {T(0.5), T(-0.0), T(0.0), std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                    -std::numeric_limits<T>::infinity(), T(1e-40), T(-3), T(2.25)};
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = rng();
    s[i] = (r % 4 == 0) ? pool[(r >> 8) % 9] : static_cast<T>(static_cast<int>((r >> 16) % 50)) / T(8);
  }
  return s;
}

void check_select(const KernelTable& t) {
  const KernelTable& ref = reference_table();
  for (size_t n : sizes(t.isa)) {
    const auto s32 = tied_scores<float>(n + 1, n);
    const auto s64 = tied_scores<double>(n + 1, n + 5);
    for (size_t k : {size_t{0}, size_t{1}, n / 3, n / 2, n > 0 ? n - 1 : 0, n, n + 5}) {
      std::vector<uint8_t> got(n, 7), want(n, 9);
      t.select_f32(s32.data() + 1, n, k, got.data());
      ref.select_f32(s32.data() + 1, n, k, want.data());
      EXPECT_BYTES_EQ(got, want, "f32 n " << n << " k " << k);
      std::vector<uint8_t> got64(n, 7), want64(n, 9);
      t.select_f64(s64.data() + 1, n, k, got64.data());
      ref.select_f64(s64.data() + 1, n, k, want64.data());
      EXPECT_BYTES_EQ(got64, want64, "f64 n " << n << " k " << k);
    }
  }
}

// ---- tile_smallest ---------------------------------------------------------------------------------

void check_tile_smallest(const KernelTable& t) {
  const KernelTable& ref = reference_table();
  struct Case {
    int64_t rows, cols, br, bc, zeros;
  };
  const Case cases[] = {{1, 4, 1, 4, 2},   {3, 10, 1, 4, 2},  {7, 37, 1, 4, 3},  {5, 64, 1, 8, 4},
                        {9, 33, 2, 2, 1},  {6, 10, 4, 4, 16}, {4, 9, 3, 3, 0},   {17, 70, 1, 16, 9},
                        {12, 12, 4, 1, 2}, {2, 1021, 1, 4, 2}, {64, 256, 1, 4, 2}, {30, 30, 8, 8, 40}};
  for (const Case& c : cases) {
    for (int64_t pad : {int64_t{0}, int64_t{5}}) {
      const int64_t ld = c.cols + pad;
      const auto s32 = tied_scores<float>(static_cast<size_t>(c.rows * ld) + 1, static_cast<uint64_t>(c.cols + pad));
      const auto s64 = tied_scores<double>(static_cast<size_t>(c.rows * ld) + 1, static_cast<uint64_t>(c.rows + pad));
      const int64_t trows = (c.rows + c.br - 1) / c.br;
      const size_t n = static_cast<size_t>(c.rows * c.cols);
      for (int f = 0; f < 2; ++f) {
        const void* s = f == 0 ? static_cast<const void*>(s32.data() + 1) : static_cast<const void*>(s64.data() + 1);
        std::vector<uint8_t> got(n, 7), want(n, 9);
        t.tile_smallest[f](s, c.rows, c.cols, ld, c.br, c.bc, c.zeros, got.data(), 0, trows / 2);
        t.tile_smallest[f](s, c.rows, c.cols, ld, c.br, c.bc, c.zeros, got.data(), trows / 2, trows);
        ref.tile_smallest[f](s, c.rows, c.cols, ld, c.br, c.bc, c.zeros, want.data(), 0, trows);
        EXPECT_BYTES_EQ(got, want, (f ? "f64 " : "f32 ") << c.rows << "x" << c.cols << " block " << c.br << "x"
                                                        << c.bc << " zeros " << c.zeros << " ld " << ld);
      }
    }
  }
}

// ---- statistics and conversions ----------------------------------------------------------------------

void check_stats(const KernelTable& t) {
  const KernelTable& ref = reference_table();
  for (size_t n : sizes(t.isa)) {
    const std::vector<uint8_t> bytes = special_bytes(n + 16, 1, n + 3);
    std::vector<uint8_t> bits(n / 8 + 16);
    std::mt19937_64 rng(n);
    for (auto& b : bits) b = static_cast<uint8_t>(rng());
    for (size_t off : {size_t{0}, size_t{1}}) {
      EXPECT_EQ(t.count_bytes(bytes.data() + off, n), ref.count_bytes(bytes.data() + off, n)) << n;
      EXPECT_EQ(t.count_bits(bits.data() + off, n), ref.count_bits(bits.data() + off, n)) << n;
      std::vector<uint8_t> gb((n + 7) / 8 + 1, 0xEE), wb((n + 7) / 8 + 1, 0xEE);
      t.bytes_to_bits(bytes.data() + off, n, gb.data());
      ref.bytes_to_bits(bytes.data() + off, n, wb.data());
      EXPECT_BYTES_EQ(gb, wb, "bytes_to_bits n " << n);
      std::vector<uint8_t> gy(n + 1, 0xEE), wy(n + 1, 0xEE);
      t.bits_to_bytes(bits.data() + off, n, gy.data() + off);
      ref.bits_to_bytes(bits.data() + off, n, wy.data() + off);
      EXPECT_BYTES_EQ(gy, wy, "bits_to_bytes n " << n);
      const uint64_t ones[] = {1u, 0x3c00u, 0x3f800000u, 0x3ff0000000000000ull};
      const uint64_t values[] = {0xffu, 0x7fffu, 0x7fffffffu, ~0ull};
      for (int si = 0; si < 4; ++si) {
        const size_t es = size_t{1} << si;
        std::vector<uint8_t> gt(n * es + 8, 0xEE), wt(n * es + 8, 0xEE);
        t.bits_to_mask[si](bits.data() + off, n, ones[si], gt.data() + off);
        ref.bits_to_mask[si](bits.data() + off, n, ones[si], wt.data() + off);
        EXPECT_BYTES_EQ(gt, wt, "bits_to_mask size " << es << " n " << n);
        std::vector<uint8_t> gm(n * es + 8, 0xEE), wm(n * es + 8, 0xEE);
        t.bytes_to_mask[si](bytes.data() + off, n, ones[si], gm.data() + off);
        ref.bytes_to_mask[si](bytes.data() + off, n, ones[si], wm.data() + off);
        EXPECT_BYTES_EQ(gm, wm, "bytes_to_mask size " << es << " n " << n);
        const std::vector<uint8_t> m = special_bytes(n * es + 8, es, n + si);
        std::vector<uint8_t> gz(n + 1, 0xEE), wz(n + 1, 0xEE);
        t.mask_to_bytes[si](m.data() + off, n, values[si], gz.data());
        ref.mask_to_bytes[si](m.data() + off, n, values[si], wz.data());
        EXPECT_BYTES_EQ(gz, wz, "mask_to_bytes size " << es << " n " << n);
      }
    }
  }
}

// ---- fused WeightNorm passes over flat tiles ----------------------------------------------------------

void check_flat_threshold(const KernelTable& t);

void check_flat_tiles(const KernelTable& t) {
  check_flat_threshold(t);
  const KernelTable& ref = reference_table();
  for (int64_t bc : {1, 2, 4, 8, 16}) {
    const size_t b = static_cast<size_t>(bc);
    // Whole super-blocks, a tail, and a tail-only size.
    for (size_t n : {size_t{0}, b, 64 * b, 256 * b + 3 * b, size_t{4096} + 5 * b, size_t{1} << 16}) {
      for (int source = 0; source < 2; ++source) {
        // Random bit patterns (NaN, +-inf, -0, denormals), or few distinct values (ties inside tiles).
        std::vector<uint8_t> w = special_bytes(n * 4 + 4, 4, n + b + 31 * source);
        if (source == 1) {
          const auto tied = tied_scores<float>(n + 1, n + b);
          std::memcpy(w.data(), tied.data(), (n + 1) * 4);
        }
        const std::vector<uint8_t> fmask = special_bytes(n * 4 + 4, 4, n * 3 + b);
        std::vector<uint8_t> bmask = special_bytes(n + 4, 1, n * 5 + b);
        for (int64_t zeros : {int64_t{0}, int64_t{1}, bc / 2, bc - 1, bc}) {
          for (Norm norm : {Norm::L1, Norm::L2}) {
            for (int byte_mask = 0; byte_mask < 2; ++byte_mask) {
              const void* m = byte_mask ? static_cast<const void*>(bmask.data()) : static_cast<const void*>(fmask.data());
              const size_t nb = (n + 7) / 8;
              std::vector<uint32_t> gk(n / b + 1, 0xABABABABu), wk(n / b + 1, 0xCDCDCDCDu);
              std::vector<uint8_t> go(nb + 1, 0xEE), wo(nb + 1, 0xEE), gp(nb + 1, 0xEE), wp(nb + 1, 0xEE);
              gk.back() = wk.back() = 0;
              // Two calls split at a multiple of 64 elements, as the sparsifier's chunks are.
              const size_t mid = n / 2 / (64 * b) * (64 * b);
              const size_t msz = byte_mask ? 1 : 4;
              bool gc = t.flat_scores[byte_mask](w.data(), m, mid, bc, norm, zeros, gk.data(), go.data(), gp.data());
              gc &= t.flat_scores[byte_mask](w.data() + mid * 4, static_cast<const uint8_t*>(m) + mid * msz, n - mid, bc,
                                             norm, zeros, gk.data() + mid / b, go.data() + mid / 8, gp.data() + mid / 8);
              const bool wc = ref.flat_scores[byte_mask](w.data(), m, n, bc, norm, zeros, wk.data(), wo.data(), wp.data());
              const std::string what = "bc " + std::to_string(bc) + " n " + std::to_string(n) + " zeros " +
                                       std::to_string(zeros) + " norm " + std::to_string(static_cast<int>(norm)) +
                                       (byte_mask ? " byte mask" : " f32 mask") + " source " + std::to_string(source);
              EXPECT_EQ(gk, wk) << "keys, " << what;
              EXPECT_EQ(gc, wc) << "canonical, " << what;
              EXPECT_BYTES_EQ(go, wo, "old bits, " << what);
              if (zeros < bc) EXPECT_BYTES_EQ(gp, wp, "pruned bits, " << what);
              if (zeros >= bc || n == 0) continue;
              // Pass 2 on the keys just made: thresholds at a present key, ties cut at several places.
              const size_t tiles = n / b;
              for (size_t pick : {size_t{0}, tiles / 3, tiles - 1}) {
                for (size_t cut : {size_t{0}, tiles / 2, tiles}) {
                  for (bool with_pruned : {false, true}) {
                    const uint8_t* pr = with_pruned ? wp.data() : nullptr;
                    std::vector<uint8_t> gb(nb + 1, 0xEE), wb(nb + 1, 0xEE);
                    t.flat_mask(wk.data(), n, bc, wk[pick], cut, pr, gb.data());
                    ref.flat_mask(wk.data(), n, bc, wk[pick], cut, pr, wb.data());
                    EXPECT_BYTES_EQ(gb, wb, "mask bits, " << what << " pick " << pick << " cut " << cut);
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

// ---- sparse linear -----------------------------------------------------------------------------------

// A packed weight built here, independently of core/packed: random values (with NaN, +-inf and -0.0 among
// them) at a random pattern of the layout, every part in its own buffer.
struct TestSparse {
  SparseWeight w;
  std::vector<uint8_t> values, bitmask, offsets, indices;
};

struct SparseCase {
  SparseLayout layout;
  int64_t rows, cols;
  int64_t a = 0, b = 0;  // nm: n, m; bsr: block rows, block cols
  double density = 0.5;
  DType indices_dtype = DType::i32;
  DType offsets_dtype = DType::i64;
};

uint16_t to_bits16(float f, DType dtype) {
  return dtype == DType::f16 ? Half::from_float(f) : BFloat16::from_float(f);
}

float random_value(std::mt19937_64& rng, bool specials) {
  const uint64_t r = rng();
  if (specials && r % 97 == 0) return kNaN;
  if (specials && r % 89 == 0) return (r & 256) ? kInf : -kInf;
  if (r % 13 == 0) return -0.0f;
  return static_cast<float>(static_cast<double>(r >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

void put_index(std::vector<uint8_t>& buf, DType dtype, int64_t v) {
  const size_t es = size_of(dtype);
  const size_t at = buf.size();
  buf.resize(at + es);
  if (dtype == DType::u8) {
    buf[at] = static_cast<uint8_t>(v);
  } else if (dtype == DType::i16) {
    const int16_t s = static_cast<int16_t>(v);
    std::memcpy(&buf[at], &s, 2);
  } else if (dtype == DType::i32) {
    const int32_t s = static_cast<int32_t>(v);
    std::memcpy(&buf[at], &s, 4);
  } else {
    std::memcpy(&buf[at], &v, 8);
  }
}

TestSparse make_sparse(const SparseCase& sc, DType dtype, uint64_t seed, bool specials, size_t value_shift) {
  std::mt19937_64 rng(seed);
  TestSparse s;
  SparseWeight& w = s.w;
  w.layout = sc.layout;
  w.dtype = dtype;
  w.rows = sc.rows;
  w.cols = sc.cols;
  w.indices_dtype = sc.indices_dtype;
  w.offsets_dtype = sc.layout == SparseLayout::bitmask ? DType::i64 : sc.offsets_dtype;
  const size_t es = size_of(dtype);
  s.values.assign(value_shift, 0xAB);  // the values start `value_shift` bytes into the buffer
  auto push_value = [&](float f) {
    const size_t at = s.values.size();
    s.values.resize(at + es);
    if (dtype == DType::f32) {
      std::memcpy(&s.values[at], &f, 4);
    } else {
      const uint16_t h = to_bits16(f, dtype);
      std::memcpy(&s.values[at], &h, 2);
    }
  };
  auto keep = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53 < sc.density; };
  const int64_t row_bytes = (sc.cols + 7) / 8;
  int64_t nnz = 0;
  if (sc.layout == SparseLayout::nm || sc.layout == SparseLayout::bitmask) {
    w.n = sc.a;
    w.m = sc.b;
    s.bitmask.assign(static_cast<size_t>(sc.rows * row_bytes), 0);
    for (int64_t i = 0; i < sc.rows; ++i) {
      if (sc.layout == SparseLayout::bitmask) put_index(s.offsets, DType::i64, nnz);
      std::vector<bool> row(static_cast<size_t>(sc.cols), false);
      if (sc.layout == SparseLayout::nm) {
        for (int64_t g = 0; g < sc.cols; g += sc.b) {
          int64_t chosen = 0;
          while (chosen < sc.a) {
            const int64_t p = static_cast<int64_t>(rng() % static_cast<uint64_t>(sc.b));
            if (!row[static_cast<size_t>(g + p)]) {
              row[static_cast<size_t>(g + p)] = true;
              ++chosen;
            }
          }
        }
      } else {
        for (int64_t c = 0; c < sc.cols; ++c) row[static_cast<size_t>(c)] = keep();
      }
      for (int64_t c = 0; c < sc.cols; ++c) {
        if (!row[static_cast<size_t>(c)]) continue;
        s.bitmask[static_cast<size_t>(i * row_bytes + c / 8)] |= static_cast<uint8_t>(1u << (c % 8));
        push_value(random_value(rng, specials));
        ++nnz;
      }
    }
  } else if (sc.layout == SparseLayout::csr) {
    for (int64_t i = 0; i < sc.rows; ++i) {
      put_index(s.offsets, sc.offsets_dtype, nnz);
      for (int64_t c = 0; c < sc.cols; ++c) {
        if (!keep()) continue;
        put_index(s.indices, sc.indices_dtype, c);
        push_value(random_value(rng, specials));
        ++nnz;
      }
    }
    put_index(s.offsets, sc.offsets_dtype, nnz);
  } else {
    w.block_rows = sc.a;
    w.block_cols = sc.b;
    int64_t blocks = 0;
    for (int64_t br = 0; br < sc.rows / sc.a; ++br) {
      put_index(s.offsets, sc.offsets_dtype, blocks);
      for (int64_t bc = 0; bc < sc.cols / sc.b; ++bc) {
        if (!keep()) continue;
        put_index(s.indices, sc.indices_dtype, bc);
        for (int64_t f = 0; f < sc.a * sc.b; ++f) push_value(random_value(rng, specials));
        ++blocks;
      }
    }
    put_index(s.offsets, sc.offsets_dtype, blocks);
    nnz = blocks * sc.a * sc.b;
  }
  w.nnz = nnz;
  s.values.resize(s.values.size() + 64);  // room past the end, never read
  w.values = s.values.data() + value_shift;
  w.bitmask = s.bitmask.empty() ? nullptr : s.bitmask.data();
  w.offsets = s.offsets.empty() ? nullptr : s.offsets.data();
  w.indices = s.indices.empty() ? nullptr : s.indices.data();
  return s;
}

std::vector<float> random_floats(size_t n, uint64_t seed, bool specials) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(n);
  for (auto& f : v) f = random_value(rng, specials);
  return v;
}

// Same bits, or both NaN (NaN payloads follow operand order, which the compiler may commute).
#define EXPECT_FLOATS_SAME(a, b, what)                                                                 \
  do {                                                                                                 \
    ASSERT_EQ((a).size(), (b).size()) << what;                                                         \
    size_t first_ = (a).size();                                                                        \
    for (size_t i_ = 0; i_ < (a).size(); ++i_) {                                                       \
      if (!(std::isnan((a)[i_]) && std::isnan((b)[i_])) && bits_of((a)[i_]) != bits_of((b)[i_])) {  \
        first_ = i_;                                                                                   \
        break;                                                                                         \
      }                                                                                                \
    }                                                                                                  \
    EXPECT_EQ(first_, (a).size()) << what << ": first difference at " << first_ << " ("                \
                                  << (first_ < (a).size() ? (a)[first_] : 0.f) << " vs "              \
                                  << (first_ < (b).size() ? (b)[first_] : 0.f) << ")";                \
  } while (0)

uint32_t bits_of(float f);

// The first 64-byte aligned float at or after p (buffers have 16 floats of room).
float* align64(float* p) { return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) / 64 * 64); }

std::vector<SparseCase> sparse_cases() {
  std::vector<SparseCase> cases;
  for (auto [n, m] : {std::pair<int64_t, int64_t>{2, 4}, {1, 4}, {3, 4}, {4, 8}, {1, 8}, {7, 8}, {2, 16}, {9, 16}}) {
    for (int64_t rows : {1, 3, 17}) {
      for (int64_t groups : {1, 3, 5, 17, 33, 255}) cases.push_back({SparseLayout::nm, rows, groups * m, n, m});
    }
  }
  for (int64_t rows : {1, 3, 17}) {
    for (int64_t cols : {1, 7, 15, 16, 17, 33, 63, 64, 65, 1021}) {
      for (double d : {0.0, 0.1, 0.5, 1.0}) {
        cases.push_back({SparseLayout::bitmask, rows, cols, 0, 0, d});
        const DType idx = cols <= 256 && rows != 3 ? DType::u8 : rows == 3 ? DType::i16 : DType::i32;
        const DType off = rows == 1 ? DType::i16 : rows == 3 ? DType::i32 : DType::i64;
        cases.push_back({SparseLayout::csr, rows, cols, 0, 0, d, idx, off});
      }
    }
  }
  for (auto [r, c] : {std::pair<int64_t, int64_t>{1, 4}, {1, 8}, {1, 16}, {4, 1}, {8, 1}, {16, 1}, {1, 1}, {1, 2},
                      {2, 1}, {2, 2}, {4, 4}, {2, 8}, {8, 8}, {16, 16}}) {
    for (int64_t brows : {1, 3}) {
      for (int64_t bcols : {1, 5, 17, 40}) {
        for (double d : {0.0, 0.3, 1.0}) {
          const DType idx = bcols == 5 ? DType::u8 : bcols == 17 ? DType::i16 : DType::i32;
          const DType off = brows == 1 ? DType::u8 : bcols == 5 ? DType::i16 : DType::i64;
          cases.push_back({SparseLayout::bsr, brows * r, bcols * c, r, c, d, idx, off});
        }
      }
    }
  }
  return cases;
}

std::string describe(const SparseCase& c, DType dtype) {
  std::ostringstream os;
  os << "layout " << static_cast<int>(c.layout) << " " << c.rows << "x" << c.cols << " (" << c.a << ", " << c.b
     << ") density " << c.density << " values " << to_string(dtype) << " indices " << to_string(c.indices_dtype)
     << " offsets " << to_string(c.offsets_dtype);
  return os.str();
}

void check_sparse_linear(const KernelTable& t) {
  const KernelTable& ref = reference_table();
  const std::vector<SparseCase> cases = sparse_cases();
  uint64_t seed = 1;
  for (const SparseCase& sc : cases) {
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      ++seed;
      const bool specials = seed % 3 == 0;
      const size_t es = size_of(dtype);
      const TestSparse s = make_sparse(sc, dtype, seed, specials, seed % 2 ? es : 0);
      const SparseWeight& w = s.w;
      const int li = static_cast<int>(w.layout), vi = sparse_value_index(dtype);
      const std::string what = describe(sc, dtype);
      const int64_t unit = w.layout == SparseLayout::bsr ? w.block_rows : 1;
      const int64_t mid = w.rows / unit / 2 * unit;
      const std::vector<float> x = random_floats(static_cast<size_t>(w.cols) + 1, seed * 7, specials);
      const std::vector<float> bias = random_floats(static_cast<size_t>(w.rows) + 1, seed * 11, false);
      std::vector<float> scratch_buf(sparse_scratch_floats(w, 0) + 64);
      float* scratch = align64(scratch_buf.data());
      // Batch 1: x and y misaligned by one float; the rows in two calls, as two threads would.
      for (bool with_bias : {true, false}) {
        const float* bp = with_bias ? bias.data() + 1 : nullptr;
        std::vector<float> got(static_cast<size_t>(w.rows) + 1, 7.0f), want(static_cast<size_t>(w.rows) + 1, 9.0f);
        t.sparse_matvec[li][vi](w, x.data() + 1, bp, got.data() + 1, 0, mid, scratch);
        t.sparse_matvec[li][vi](w, x.data() + 1, bp, got.data() + 1, mid, w.rows, scratch);
        ref.sparse_matvec[li][vi](w, x.data() + 1, bp, want.data() + 1, 0, w.rows, scratch);
        got.erase(got.begin());
        want.erase(want.begin());
        EXPECT_FLOATS_SAME(got, want, "batch 1, " << what << " bias " << with_bias);
      }
      // Batches: the transposed input as the entry point builds it (64-byte aligned, ldxt = 16k).
      for (int64_t batch : {2, 7, 8, 9, 17, 64}) {
        if (w.rows * w.cols > 20000 && batch != 9 && batch != 64) continue;
        const int64_t ldxt = (batch + 15) / 16 * 16;
        std::vector<float> xt_buf(static_cast<size_t>(w.cols * ldxt) + 16);
        float* xt = align64(xt_buf.data());
        const std::vector<float> xb = random_floats(static_cast<size_t>(w.cols * ldxt), seed * 13 + batch, specials);
        std::copy(xb.begin(), xb.end(), xt);
        const int64_t ldy = w.rows + 3;
        std::vector<float> mscratch_buf(sparse_scratch_floats(w, ldxt) + 64);
        float* mscratch = align64(mscratch_buf.data());
        std::vector<float> got(static_cast<size_t>(batch * ldy) + 1, 7.0f), want(got.size(), 7.0f);
        t.sparse_matmul[li][vi](w, xt, ldxt, batch, bias.data(), got.data() + 1, ldy, 0, mid, mscratch);
        t.sparse_matmul[li][vi](w, xt, ldxt, batch, bias.data(), got.data() + 1, ldy, mid, w.rows, mscratch);
        ref.sparse_matmul[li][vi](w, xt, ldxt, batch, bias.data(), want.data() + 1, ldy, 0, w.rows, mscratch);
        EXPECT_FLOATS_SAME(got, want, "batch " << batch << ", " << what);
      }
    }
  }
}

// The bracket pass of flat_threshold and the threshold itself (against the radix select) on keys with many
// ties, NaN keys and ranges that hold everything, nothing or overflow the cap.
void check_flat_threshold(const KernelTable& t) {
  const KernelTable& ref = reference_table();
  for (size_t n : sizes(t.isa)) {
    std::vector<uint32_t> keys(n + 1);
    std::mt19937_64 rng(n + 11);
    for (auto& k : keys) k = static_cast<uint32_t>(rng() % 97) * 0x01000000u + static_cast<uint32_t>(rng() % 3);
    for (uint32_t lo : {0u, 0x10000000u, 0x30000001u}) {
      for (uint32_t hi : {0x2fffffffu, 0x60000000u, ~0u}) {
        for (size_t cap : {size_t{0}, n / 8, n}) {
         for (int with_heavy = 0; with_heavy < 3; ++with_heavy) {
          // No heavy key; one inside the bracket (a frequent key); one outside it.
          const uint32_t heavy = with_heavy == 1 ? 0x30000001u : 0x70000000u;
          const uint32_t* hp = with_heavy ? &heavy : nullptr;
          std::vector<uint32_t> go(cap + 2, 1), wo(cap + 2, 2);
          size_t gb = 3, wb = 4, gh = 5, wh = 6;
          const size_t gm = t.flat_bracket(keys.data() + 1, n, lo, hi, hp, go.data(), cap, &gb, &gh);
          const size_t wm = ref.flat_bracket(keys.data() + 1, n, lo, hi, hp, wo.data(), cap, &wb, &wh);
          const std::string what = "n " + std::to_string(n) + " lo " + std::to_string(lo) + " hi " +
                                   std::to_string(hi) + " cap " + std::to_string(cap) + " heavy " + std::to_string(with_heavy);
          ASSERT_EQ(gm > cap, wm > cap) << what;
          if (wm > cap) continue;
          EXPECT_EQ(gm, wm) << what;
          EXPECT_EQ(gb, wb) << what;
          EXPECT_EQ(gh, wh) << what;
          go.resize(gm);
          wo.resize(wm);
          EXPECT_EQ(go, wo) << what;
         }
        }
      }
    }
  }
  // The split of a global ranking's window: below / heavy bits and the window's keys with their indices.
  for (size_t n : sizes(t.isa)) {
    std::vector<uint32_t> keys(n + 1);
    std::mt19937_64 rng(n + 12);
    for (auto& k : keys) k = static_cast<uint32_t>(rng() % 97) * 0x01000000u + static_cast<uint32_t>(rng() % 3);
    for (uint32_t lo : {0u, 0x30000001u}) {
      for (uint32_t hi : {0x30ffffffu, ~0u}) {
        for (size_t cap : {size_t{0}, size_t{3}, n / 8, n}) {
          for (bool with_heavy : {false, true}) {
            const uint32_t heavy = 0x30000001u;
            const size_t words = (n + 63) / 64 + 1;
            std::vector<uint64_t> gb(words, 7), wb(words, 7), gh(words, 9), wh(words, 9);
            std::vector<uint32_t> gk(cap + 2, 1), wk(cap + 2, 1), gi(cap + 2, 3), wi(cap + 2, 3);
            const uint32_t* hp = with_heavy ? &heavy : nullptr;
            const size_t gm = t.flat_split(keys.data() + 1, n, lo, hi, hp, gb.data(), with_heavy ? gh.data() : nullptr,
                                           gk.data(), gi.data(), 1000, cap);
            const size_t wm = ref.flat_split(keys.data() + 1, n, lo, hi, hp, wb.data(), with_heavy ? wh.data() : nullptr,
                                             wk.data(), wi.data(), 1000, cap);
            const std::string what = "split n " + std::to_string(n) + " lo " + std::to_string(lo) + " hi " +
                                     std::to_string(hi) + " cap " + std::to_string(cap) + " heavy " + std::to_string(with_heavy);
            ASSERT_EQ(gm > cap, wm > cap) << what;
            if (wm > cap) continue;
            EXPECT_EQ(gm, wm) << what;
            EXPECT_EQ(gb, wb) << what;
            if (with_heavy) EXPECT_EQ(gh, wh) << what;
            gk.resize(gm);
            wk.resize(wm);
            gi.resize(gm);
            wi.resize(wm);
            EXPECT_EQ(gk, wk) << what;
            EXPECT_EQ(gi, wi) << what;
          }
        }
      }
    }
  }
  ScopedIsaOverride force(t.isa);
  for (size_t n : {size_t{300000}, size_t{1} << 20}) {
    for (int source = 0; source < 3; ++source) {
      std::vector<uint32_t> keys(n);
      std::mt19937_64 rng(n + static_cast<uint64_t>(source));
      for (auto& k : keys) {
        const uint64_t r = rng();
        // Distinct keys; a few distinct values; half the keys equal (a sticky mask's zero scores).
        k = source == 0 ? static_cast<uint32_t>(r) : source == 1 ? static_cast<uint32_t>(r % 5) + 0x80000000u
                                                                 : (r % 2 ? 0x80000000u : static_cast<uint32_t>(r >> 32) | 0x80000000u);
      }
      for (size_t k : {size_t{0}, size_t{1}, n / 3, n / 2, n / 2 + 1, n - 1, n}) {
        const KeyThreshold<uint32_t> got = flat_threshold(keys.data(), n, k);
        const KeyThreshold<uint32_t> want = select_threshold_u32(keys.data(), n, k);
        EXPECT_EQ(got.key, want.key) << "n " << n << " source " << source << " k " << k;
        EXPECT_EQ(got.cut, want.cut) << "n " << n << " source " << source << " k " << k;
      }
    }
  }
}

// ---- WeightNorm's general path and the whole mask computation ---------------------------------------

// The general path's primitives against their references: the prologue (old bits and masked weights from
// an f32 or byte mask), and the mask pass (tile flags and in-tile choice to bits) at edge shapes.
void check_norm_primitives(const KernelTable& t) {
  const KernelTable& ref = reference_table();
  for (size_t n : sizes(t.isa)) {
    const std::vector<uint8_t> w = special_bytes(n * 4 + 8, 4, n + 17);
    const std::vector<uint8_t> fmask = special_bytes(n * 4 + 8, 4, n + 29);
    const std::vector<uint8_t> bmask = special_bytes(n + 8, 1, n + 31);
    for (int byte_mask = 0; byte_mask < 2; ++byte_mask) {
      for (bool with_masked : {true, false}) {
        const size_t off = n % 2;  // misaligned by one element for odd sizes
        const void* m = byte_mask ? static_cast<const void*>(bmask.data() + off) : static_cast<const void*>(fmask.data() + 4 * off);
        std::vector<uint8_t> gm(n * 4 + 4, 0xEE), wm(n * 4 + 4, 0xEE), gb((n + 7) / 8 + 1, 0xEE), wb((n + 7) / 8 + 1, 0xEE);
        const bool gc = t.norm_prologue[byte_mask](w.data() + 4 * off, m, n, with_masked ? gm.data() : nullptr, gb.data());
        const bool wc = ref.norm_prologue[byte_mask](w.data() + 4 * off, m, n, with_masked ? wm.data() : nullptr, wb.data());
        EXPECT_EQ(gc, wc) << "prologue canonical n " << n;
        EXPECT_BYTES_EQ(gb, wb, "prologue bits n " << n << (byte_mask ? " byte mask" : " f32 mask"));
        EXPECT_BYTES_EQ(gm, wm, "prologue masked n " << n << (byte_mask ? " byte mask" : " f32 mask"));
      }
    }
  }
  struct Shape {
    int64_t rows, cols, br, bc;
  };
  const size_t l = lanes(t.isa);
  const int64_t li = static_cast<int64_t>(l);
  const Shape shapes[] = {{1, 1, 1, 1},      {3, li - 1, 1, 1},  {2, li, 1, 2},     {5, li + 1, 2, 4},
                          {4, 2 * li + 3, 1, 8}, {7, 64, 3, 16}, {6, 65, 2, 3},     {9, 1021, 4, 4},
                          {8, 33, 8, 1},     {3, 100, 1, 5},     {16, 48, 1, 16},   {2, 250, 2, 8}};
  for (const Shape& sh : shapes) {
    const int64_t tiles_c = (sh.cols + sh.bc - 1) / sh.bc, tiles_r = (sh.rows + sh.br - 1) / sh.br;
    const size_t n = static_cast<size_t>(sh.rows * sh.cols);
    std::vector<uint8_t> selected = special_bytes(static_cast<size_t>(tiles_r * tiles_c) + 64, 1, n + 3);
    for (auto& f : selected) f = f != 0;
    std::vector<uint8_t> pruned((n + 7) / 8 + 8);
    std::mt19937_64 rng(n);
    for (auto& b : pruned) b = static_cast<uint8_t>(rng());
    for (bool with_pruned : {true, false}) {
      std::vector<uint8_t> got((n + 7) / 8 + 1, 0xEE), want((n + 7) / 8 + 1, 0xEE);
      const uint8_t* pr = with_pruned ? pruned.data() : nullptr;
      t.norm_bits(selected.data(), tiles_c, pr, sh.rows, sh.cols, sh.br, sh.bc, got.data());
      ref.norm_bits(selected.data(), tiles_c, pr, sh.rows, sh.cols, sh.br, sh.bc, want.data());
      EXPECT_BYTES_EQ(got, want, "mask bits " << sh.rows << "x" << sh.cols << " block " << sh.br << "x" << sh.bc
                                              << (with_pruned ? " with" : " without") << " in-tile choice");
    }
  }
}

// One norm_mask problem: weights and a starting mask of the given dtypes.
struct NormCase {
  int64_t batch, rows, cols, br, bc, zeros;
  double level;
  int64_t tiles_to_prune;
  DType wdt, mdt;
  bool mask_weights;
  Norm norm;
  int source;  // 0: special bit patterns, 1: few distinct values (ties)
};

std::string describe(const NormCase& c) {
  std::string s = std::to_string(c.batch) + "x" + std::to_string(c.rows) + "x" + std::to_string(c.cols) + " block " +
                  std::to_string(c.br) + "x" + std::to_string(c.bc) + " zeros " + std::to_string(c.zeros) +
                  " level " + std::to_string(c.level) + " k " + std::to_string(c.tiles_to_prune) + " w " +
                  to_string(c.wdt) + " mask " + to_string(c.mdt) + (c.mask_weights ? " masked" : " premasked") +
                  (c.norm == Norm::L1 ? " L1" : " L2") + " source " + std::to_string(c.source);
  return s;
}

// Weights of `dtype`: special bit patterns, or values from a few distinct ones (ties inside and across tiles).
std::vector<uint8_t> norm_weights(DType dtype, size_t n, int source, uint64_t seed) {
  const size_t es = size_of(dtype);
  std::vector<uint8_t> w = special_bytes(n * es + es, es, seed);
  if (source == 1) {
    const auto tied = tied_scores<double>(n, seed);
    for (size_t i = 0; i < n; ++i) {
      const double v = tied[i];
      if (dtype == DType::f32) {
        const float f = static_cast<float>(v);
        std::memcpy(w.data() + 4 * i, &f, 4);
      } else if (dtype == DType::f64) {
        std::memcpy(w.data() + 8 * i, &v, 8);
      } else {
        const uint16_t h = dtype == DType::f16 ? Half::from_float(static_cast<float>(v))
                                               : BFloat16::from_float(static_cast<float>(v));
        std::memcpy(w.data() + 2 * i, &h, 2);
      }
    }
  }
  return w;
}

// A mask of `dtype`, about a third of it zero (-0.0 included for floats), the rest 1 or other non-zero values.
std::vector<uint8_t> norm_start_mask(DType dtype, size_t n, uint64_t seed) {
  const size_t es = size_of(dtype);
  std::vector<uint8_t> m(n * es + es);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = rng() % 9;
    uint64_t v = 0;
    if (dtype == DType::f32) v = r < 2 ? 0 : r == 2 ? 0x80000000u : r == 3 ? 0x7fc00000u : 0x3f800000u;
    if (dtype == DType::f64) v = r < 2 ? 0 : r == 2 ? 0x8000000000000000ull : 0x3ff0000000000000ull;
    if (dtype == DType::f16) v = r < 2 ? 0 : r == 2 ? 0x8000u : 0x3c00u;
    if (dtype == DType::bf16) v = r < 2 ? 0 : r == 2 ? 0x8000u : 0x3f80u;
    if (!is_floating(dtype)) v = r < 3 ? 0 : r == 3 ? 7 : 1;
    std::memcpy(m.data() + i * es, &v, es);
  }
  return m;
}

// norm_mask() on the table's ISA with 1 and 2 threads against norm_mask_reference(); returns "" or what differs.
std::string run_norm_case(Isa isa, const NormCase& c, const ElementScore* score = nullptr) {
  const size_t n = static_cast<size_t>(c.batch * c.rows * c.cols);
  const uint64_t seed = n * 31 + static_cast<uint64_t>(c.br * 7 + c.bc + c.zeros * 3 + c.source);
  const std::vector<uint8_t> w = norm_weights(c.wdt, n, c.source, seed);
  const std::vector<uint8_t> start = norm_start_mask(c.mdt, n, seed + 1);
  NormMaskArgs a;
  a.weight_dtype = c.wdt;
  a.weight = w.data();
  a.mask_dtype = c.mdt;
  a.mask_weights = c.mask_weights;
  a.batch = c.batch;
  a.rows = c.rows;
  a.cols = c.cols;
  a.block_rows = c.br;
  a.block_cols = c.bc;
  a.zeros_per_block = c.zeros;
  a.sparsity_level = c.level;
  a.tiles_to_prune = c.tiles_to_prune;
  a.norm = c.norm;
  a.score = score;
  std::vector<uint8_t> want = start;
  a.mask = want.data();
  norm_mask_reference(a);
  ScopedIsaOverride force(isa);
  const int saved = num_threads();
  std::string problem;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    std::vector<uint8_t> got = start;
    a.mask = got.data();
    norm_mask(a);
    if (got != want) {
      size_t first = 0;
      while (got[first] == want[first]) ++first;
      problem = describe(c) + ": threads " + std::to_string(threads) + ", first difference at byte " +
                std::to_string(first);
      break;
    }
  }
  set_num_threads(saved);
  return problem;
}

void check_norm_mask(const KernelTable& t) {
  check_norm_primitives(t);
  const Isa isa = t.isa;
  const int64_t l = static_cast<int64_t>(lanes(isa));
  struct Geometry {
    int64_t batch, rows, cols;
  };
  const Geometry shapes[] = {{1, 1, 1},     {1, 1, l - 1}, {1, 3, l + 1}, {1, 7, 2 * l + 3}, {1, 33, 64},
                             {1, 12, 20},   {3, 5, 9},     {2, 6, 4},     {4, 3, 1},         {1, 64, 1},
                             {1, 130, 257}, {5, 7, 3}};
  struct Block {
    int64_t br, bc;
  };
  const Block blocks[] = {{1, 1}, {1, 2}, {1, 4}, {1, 8}, {1, 16}, {2, 2}, {3, 5}, {4, 1}, {8, 8}, {1, 3}, {2, 4}};
  const DType wdts[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
  int counter = 0;
  for (const Geometry& g : shapes) {
    for (const Block& b : blocks) {
      const int64_t vpb = b.br * b.bc;
      for (int64_t zeros : {vpb, vpb - 1, vpb / 2, int64_t{1}}) {
        if (zeros < 1) continue;
        ++counter;
        // Every combination would take too long: the dtypes, masks, levels and norms rotate with the case.
        const DType wdt = wdts[counter % 4];
        const DType mdts[] = {wdt, DType::u8, DType::bool_, DType::f32, DType::f64};
        const DType mdt = mdts[(counter / 4) % 5];
        const double levels[] = {0.3, 0.5, 0.9, 1.0};
        const double level = zeros == vpb && levels[counter % 4] >= 1.0 ? 0.7 : levels[counter % 4];
        const Norm norm = counter % 3 == 0 ? Norm::L1 : Norm::L2;
        const NormCase c{g.batch, g.rows, g.cols, b.br, b.bc, zeros, level, -1, wdt, mdt, counter % 5 != 0, norm,
                         counter % 2};
        EXPECT_EQ(run_norm_case(isa, c), "");
        // The flat-tile path: f32 weights with f32 and u8 masks of the same problem.
        if (b.br == 1 && flat_tiles_supported(b.bc) && g.cols % b.bc == 0) {
          for (DType flat_mdt : {DType::f32, DType::u8}) {
            NormCase f = c;
            f.wdt = DType::f32;
            f.mdt = flat_mdt;
            f.mask_weights = true;
            EXPECT_EQ(run_norm_case(isa, f), "");
          }
        }
        // A global ranking's share: a given number of tiles.
        NormCase k = c;
        k.tiles_to_prune = counter % 7;
        EXPECT_EQ(run_norm_case(isa, k), "");
      }
    }
  }
  // Large enough for several chunks and both threads, through both paths.
  for (const NormCase& c : {NormCase{1, 301, 517, 3, 5, 15, 0.45, -1, DType::f32, DType::f32, true, Norm::L2, 0},
                            NormCase{1, 300, 512, 1, 4, 2, 0.6, -1, DType::f32, DType::f32, true, Norm::L2, 1},
                            NormCase{1, 256, 1024, 1, 8, 3, 0.3, -1, DType::f32, DType::u8, true, Norm::L1, 0},
                            NormCase{3, 70, 600, 2, 4, 3, 0.7, -1, DType::f64, DType::f64, true, Norm::L1, 1},
                            NormCase{7, 33, 300, 4, 2, 8, 0.5, -1, DType::bf16, DType::bool_, false, Norm::L2, 0},
                            NormCase{1, 1024, 256, 1, 1, 1, 0.5, 40000, DType::f32, DType::u8, true, Norm::L1, 0},
                            // Flat tiles large enough for flat_threshold's sampled bracket: a third of the
                            // tiles score 0 (the start mask), so level 0.3 cuts inside that tie.
                            NormCase{1, 512, 512, 1, 4, 2, 0.5, -1, DType::f32, DType::f32, true, Norm::L2, 0},
                            NormCase{1, 512, 512, 1, 1, 1, 0.3, -1, DType::f32, DType::u8, true, Norm::L2, 0},
                            NormCase{1, 512, 512, 1, 1, 1, 0.5, -1, DType::f32, DType::bool_, true, Norm::L1, 1},
                            NormCase{1, 256, 1024, 1, 2, 2, 0.7, -1, DType::f32, DType::f32, true, Norm::L1, 1},
                            NormCase{1, 128, 4096, 1, 8, 5, 0.45, -1, DType::f32, DType::u8, true, Norm::L2, 0},
                            // 2^20 and 2^19 tiles: the sample is taken while the keys are made.
                            NormCase{1, 1024, 1024, 1, 1, 1, 0.3, -1, DType::f32, DType::f32, true, Norm::L2, 0},
                            NormCase{1, 1024, 1024, 1, 2, 1, 0.6, -1, DType::f32, DType::u8, true, Norm::L1, 1}}) {
    EXPECT_EQ(run_norm_case(isa, c), "");
  }
  // A custom element score (serial path), f32 and f16 weights.
  const ElementScore negate = [](double x) { return -x; };
  for (const NormCase& c : {NormCase{1, 9, 14, 2, 3, 6, 0.5, -1, DType::f32, DType::f32, true, Norm::L2, 0},
                            NormCase{2, 8, 12, 1, 4, 2, 0.5, -1, DType::f16, DType::u8, true, Norm::L2, 1},
                            NormCase{1, 5, 8, 1, 1, 1, 0.5, -1, DType::f64, DType::f64, false, Norm::L2, 0}}) {
    EXPECT_EQ(run_norm_case(isa, c, &negate), "");
  }
}

// One test per registry line: SPARSITY_KERNEL(family, isa) -> KernelConformance.<family>_<isa>.
#define SPARSITY_KERNEL(family, isa)                                                   \
  TEST(KernelConformance, family##_##isa) {                                            \
    if (!isa_available(Isa::isa)) GTEST_SKIP() << "CPU lacks " #isa;                   \
    check_##family(table_for(Isa::isa));                                               \
  }
#include "kernels/registry.inc"
#undef SPARSITY_KERNEL

// ---- hand-derived cases for the reference ------------------------------------------------------------

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(KernelReference, ApplyMaskSelectsAndWritesPositiveZero) {
  const KernelTable& ref = reference_table();
  const float w[] = {1.5f, -2.0f, kNaN, kInf, -kInf, -0.0f};
  const uint8_t bytes[] = {1, 0, 0, 7, 0, 1};
  float out[6];
  ref.apply_bytes[kW32](w, bytes, out, 6, false);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(bits_of(out[1]), 0u);  // +0.0, not -0.0
  EXPECT_EQ(bits_of(out[2]), 0u);  // a pruned NaN becomes +0
  EXPECT_EQ(out[3], kInf);
  EXPECT_EQ(bits_of(out[4]), 0u);
  EXPECT_EQ(bits_of(out[5]), 0x80000000u);  // kept -0.0 stays -0.0
  const uint8_t bits[] = {0x05};            // elements 0 and 2
  ref.apply_bits[kW32](w, bits, out, 6, false);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(bits_of(out[1]), 0u);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_EQ(bits_of(out[3]), 0u);
  const float fmask[] = {-0.0f, kNaN, 1e-45f, 0.0f, -1.0f, 2.0f};  // -0.0 prunes, NaN and denormals keep
  ref.apply_float[kW32](w, fmask, out, 6, false);
  EXPECT_EQ(bits_of(out[0]), 0u);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_EQ(bits_of(out[3]), 0u);
  EXPECT_EQ(out[4], -kInf);
  EXPECT_EQ(bits_of(out[5]), 0x80000000u);
}

TEST(KernelReference, BlockScoresAverageEdgeTilesOverInRangeElements) {
  const KernelTable& ref = reference_table();
  // 3 x 5, blocks 2 x 2: tiles [[1.5, 3.5, 5], [6.5, 8.5, 10]] for L1 (worked by hand).
  const float w[] = {1, -2, 3, -4, 5, -1, 2, -3, 4, -5, 6, 7, 8, 9, 10};
  float s[6];
  ref.block_scores[0](w, 3, 5, 5, 2, 2, Norm::L1, s, 0, 2);
  const float l1[] = {1.5f, 3.5f, 5.0f, 6.5f, 8.5f, 10.0f};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(s[i], l1[i]) << i;
  ref.block_scores[0](w, 3, 5, 5, 2, 2, Norm::L2, s, 0, 2);
  const float l2[] = {2.5f, 12.5f, 25.0f, 42.5f, 72.5f, 100.0f};  // (1+4+1+4)/4, (9+16+9+16)/4, ...
  for (int i = 0; i < 6; ++i) EXPECT_EQ(s[i], l2[i]) << i;
  const double wd[] = {1, -2, 3, -4, 5, -1, 2, -3, 4, -5, 6, 7, 8, 9, 10};
  double sd[6];
  ref.block_scores[1](wd, 3, 5, 5, 2, 2, Norm::L1, sd, 0, 2);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(sd[i], static_cast<double>(l1[i])) << i;
}

TEST(KernelReference, BlockScoresRoundHalfPrecisionLikeTorch) {
  const KernelTable& ref = reference_table();
  // (1 + 2^-10)^2 = 1 + 2^-9 + 2^-20: f16 keeps 10 fraction bits, so the element score is 1 + 2^-9.
  const uint16_t w16[] = {0x3c01};
  float s;
  ref.block_scores[2](w16, 1, 1, 1, 1, 1, Norm::L2, &s, 0, 1);
  EXPECT_EQ(s, 1.001953125f);
  // Mean of {1, 1, 2} = 4/3: f16 rounds it to 1 + 341/1024, bf16 to 1 + 43/128.
  const uint16_t h[] = {0x3c00, 0x3c00, 0x4000};
  ref.block_scores[2](h, 1, 3, 3, 1, 3, Norm::L1, &s, 0, 1);
  EXPECT_EQ(s, 1.3330078125f);
  const uint16_t b[] = {0x3f80, 0x3f80, 0x4000};
  ref.block_scores[3](b, 1, 3, 3, 1, 3, Norm::L1, &s, 0, 1);
  EXPECT_EQ(s, 1.3359375f);
}

TEST(KernelReference, SelectRanksNaNLastAndTiesByIndex) {
  const KernelTable& ref = reference_table();
  const float s[] = {3, 1, kNaN, 1, -0.0f, 0.0f, kInf, -kInf};
  uint8_t sel[8];
  ref.select_f32(s, 8, 4, sel);  // -inf, -0, +0, then the first 1
  const uint8_t want4[] = {0, 1, 0, 0, 1, 1, 0, 1};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(sel[i], want4[i]) << i;
  ref.select_f32(s, 8, 3, sel);  // -0.0 == +0.0: both zeros before any 1
  const uint8_t want3[] = {0, 0, 0, 0, 1, 1, 0, 1};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(sel[i], want3[i]) << i;
  ref.select_f32(s, 8, 7, sel);  // everything but the NaN
  for (int i = 0; i < 8; ++i) EXPECT_EQ(sel[i], i == 2 ? 0 : 1) << i;
  const float z[] = {0.0f, -0.0f, 0.0f};
  ref.select_f32(z, 3, 1, sel);  // all equal: lowest index
  EXPECT_EQ(sel[0], 1);
  EXPECT_EQ(sel[1], 0);
  EXPECT_EQ(sel[2], 0);
}

TEST(KernelReference, TileSmallestNofMAndEdgeTiles) {
  const KernelTable& ref = reference_table();
  // One row, 2:4 along it: {5 1 1 3 | 2 NaN 0 2 | 7 7 (2 positions out of range)}.
  const float s[] = {5, 1, 1, 3, 2, kNaN, 0, 2, 7, 7};
  uint8_t p[10];
  ref.tile_smallest[0](s, 1, 10, 10, 1, 4, 2, p, 0, 1);
  const uint8_t want[] = {0, 1, 1, 0, 1, 0, 1, 0, 1, 1};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p[i], want[i]) << i;
  // Edge tile {NaN, 1, out, out}, zeros 2: the 1, then the real NaN before the out-of-range ones.
  const float e[] = {0, 0, 0, 0, kNaN, 1};
  ref.tile_smallest[0](e, 1, 6, 6, 1, 4, 2, p, 0, 1);
  EXPECT_EQ(p[4], 1);
  EXPECT_EQ(p[5], 1);
  // 3 x 3 with 2 x 2 tiles, one zero per tile: tile (0,0) {4 3; 2 2} -> position (1,0).
  const float m[] = {4, 3, 9, 2, 2, 8, 1, 6, 5};
  uint8_t q[9];
  ref.tile_smallest[0](m, 3, 3, 3, 2, 2, 1, q, 0, 2);
  // Tiles: {4 3; 2 2} -> (1,0); {9 .; 8 .} -> (1,2); {1 6; . .} -> (2,0); {5 .; . .} -> (2,2).
  const uint8_t fixed[] = {0, 0, 0, 1, 0, 1, 1, 0, 1};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(q[i], fixed[i]) << i;
}

TEST(KernelReference, CountsAndConversions) {
  const KernelTable& ref = reference_table();
  const uint8_t bytes[] = {1, 0, 0, 5, 0, 0, 0, 0, 255};
  EXPECT_EQ(ref.count_bytes(bytes, 9), 3);
  uint8_t bits[2];
  ref.bytes_to_bits(bytes, 9, bits);
  EXPECT_EQ(bits[0], 0x09);
  EXPECT_EQ(bits[1], 0x01);
  EXPECT_EQ(ref.count_bits(bits, 9), 3);
  EXPECT_EQ(ref.count_bits(bits, 8), 2);
  uint8_t back[9];
  ref.bits_to_bytes(bits, 9, back);
  const uint8_t want[] = {1, 0, 0, 1, 0, 0, 0, 0, 1};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(back[i], want[i]) << i;
  const float m[] = {-0.0f, kNaN, 0.0f, 1e-45f};
  uint8_t nz[4];
  ref.mask_to_bytes[2](m, 4, 0x7fffffffu, nz);
  EXPECT_EQ(nz[0], 0);
  EXPECT_EQ(nz[1], 1);
  EXPECT_EQ(nz[2], 0);
  EXPECT_EQ(nz[3], 1);
  // bits 0x09, 0x01 -> f32 mask {1, 0, 0, 1, 0, 0, 0, 0, 1}
  float fm[9];
  ref.bits_to_mask[2](bits, 9, 0x3f800000u, fm);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(fm[i], want[i] ? 1.0f : 0.0f) << i;
}

// The public entry point: every dtype's 1, element-misaligned outputs, and more than one thread's piece.
TEST(KernelEntryPoints, BitsToMaskEveryDtypeAndAlignment) {
  const size_t n = 200003;
  std::vector<uint8_t> bits((n + 7) / 8);
  std::mt19937 rng(3);
  for (auto& b : bits) b = static_cast<uint8_t>(rng());
  auto bit = [&](size_t i) { return ((bits[i / 8] >> (i % 8)) & 1u) != 0; };
  set_num_threads(2);
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::u8, DType::bool_}) {
    const size_t es = size_of(dt);
    std::vector<uint8_t> out(n * es + 1);
    bits_to_mask(bits.data(), n, dt, out.data() + 1);  // misaligned for every multi-byte dtype
    std::vector<uint8_t> aligned(n * es);
    bits_to_mask(bits.data(), n, dt, aligned.data());
    EXPECT_EQ(std::memcmp(out.data() + 1, aligned.data(), n * es), 0) << to_string(dt);
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) {
      double v = 0;
      switch (dt) {
        case DType::f32: { float f; std::memcpy(&f, &aligned[i * 4], 4); v = f; break; }
        case DType::f64: std::memcpy(&v, &aligned[i * 8], 8); break;
        case DType::f16: { uint16_t h; std::memcpy(&h, &aligned[i * 2], 2); v = h == 0x3c00 ? 1 : h == 0 ? 0 : -1; break; }
        case DType::bf16: { uint16_t h; std::memcpy(&h, &aligned[i * 2], 2); v = h == 0x3f80 ? 1 : h == 0 ? 0 : -1; break; }
        default: v = aligned[i]; break;
      }
      wrong += v != (bit(i) ? 1.0 : 0.0);
    }
    EXPECT_EQ(wrong, 0u) << to_string(dt);
  }
  set_num_threads(1);
}

// One csr row with terms 1e8, 1, -1e8, 1 (x = 1): in f32, batch 1 sums partials 0..3 pairwise
// ((1e8 + -1e8) + (1 + 1) = 2), a batch of two sums in order (((1e8 + 1) - 1e8) + 1 = 1, since 1e8 + 1
// rounds to 1e8). An 8x1 bsr block row (P = 4) with 5 blocks: row 0 gets partial 0 = blocks 0 and 4.
TEST(KernelReference, SparseLinearSumsInTheDocumentedOrder) {
  const KernelTable& ref = reference_table();
  const float vals[] = {1e8f, 1.0f, -1e8f, 1.0f};
  const int32_t cols[] = {0, 1, 2, 3}, rowptr[] = {0, 4};
  SparseWeight w;
  w.layout = SparseLayout::csr;
  w.rows = 1;
  w.cols = 4;
  w.nnz = 4;
  w.values = vals;
  w.indices = cols;
  w.indices_dtype = DType::i32;
  w.offsets = rowptr;
  w.offsets_dtype = DType::i32;
  const float x[] = {1, 1, 1, 1};
  const float bias[] = {0.5f};
  float y = 0;
  float scratch[2048];
  ref.sparse_matvec[static_cast<int>(SparseLayout::csr)][0](w, x, bias, &y, 0, 1, scratch);
  EXPECT_EQ(y, 2.5f);
  alignas(64) float xt[4 * 16];
  for (int c = 0; c < 4; ++c) {
    for (int b = 0; b < 16; ++b) xt[c * 16 + b] = b < 2 ? 1.0f : 0.0f;
  }
  float y2[2] = {};
  ref.sparse_matmul[static_cast<int>(SparseLayout::csr)][0](w, xt, 16, 2, bias, y2, 1, 0, 1, scratch);
  EXPECT_EQ(y2[0], 1.5f);
  EXPECT_EQ(y2[1], 1.5f);
  // 8x1 blocks, 5 blocks in block row 0 at block columns 0..4; row 0 values 1e8, 1, 1, 1, -1e8.
  std::vector<float> bv(40, 0.0f);
  const float row0[] = {1e8f, 1.0f, 1.0f, 1.0f, -1e8f};
  for (int k = 0; k < 5; ++k) bv[static_cast<size_t>(k * 8)] = row0[k];
  const int16_t bcols[] = {0, 1, 2, 3, 4}, bptr[] = {0, 5};
  SparseWeight b;
  b.layout = SparseLayout::bsr;
  b.rows = 8;
  b.cols = 5;
  b.block_rows = 8;
  b.block_cols = 1;
  b.nnz = 40;
  b.values = bv.data();
  b.indices = bcols;
  b.indices_dtype = DType::i16;
  b.offsets = bptr;
  b.offsets_dtype = DType::i16;
  const float bx[] = {1, 1, 1, 1, 1};
  float by[8];
  ref.sparse_matvec[static_cast<int>(SparseLayout::bsr)][0](b, bx, nullptr, by, 0, 8, scratch);
  // P = max(1, 32 / 8) = 4: p0 = 1e8 + -1e8 = 0, p1 = p2 = p3 = 1 -> (0 + 1) + (1 + 1) = 3.
  EXPECT_EQ(by[0], 3.0f);
  for (int i = 1; i < 8; ++i) EXPECT_EQ(bits_of(by[i]), 0u) << i;  // +0 sums of +0 products
  // bitmask sums by column: 1e8 at column 0 and 1 at columns 32, 64, ..., 512 all go to partial 0, in
  // order, and every +1 rounds away (the f32 spacing at 1e8 is 8): 1e8. (By position in the row they
  // would fall in partials 0..16 and the pairwise halving would reach 1e8 + 8.) The same row as csr
  // sums by position: 100000008.
  std::vector<uint8_t> mbits(65, 0);
  std::vector<float> mvals{1e8f};
  for (int c = 0; c <= 512; c += 32) {
    mbits[static_cast<size_t>(c / 8)] |= static_cast<uint8_t>(1u << (c % 8));
    if (c > 0) mvals.push_back(1.0f);
  }
  const int64_t moff[] = {0};
  SparseWeight m;
  m.layout = SparseLayout::bitmask;
  m.rows = 1;
  m.cols = 520;
  m.nnz = 17;
  m.values = mvals.data();
  m.bitmask = mbits.data();
  m.offsets = moff;
  m.offsets_dtype = DType::i64;
  std::vector<float> mx(520, 1.0f);
  float my = 0;
  ref.sparse_matvec[static_cast<int>(SparseLayout::bitmask)][0](m, mx.data(), nullptr, &my, 0, 1, scratch);
  EXPECT_EQ(my, 1e8f);
  std::vector<int16_t> mcols;
  for (int c = 0; c <= 512; c += 32) mcols.push_back(static_cast<int16_t>(c));
  const int16_t mptr[] = {0, 17};
  SparseWeight mc = m;
  mc.layout = SparseLayout::csr;
  mc.indices = mcols.data();
  mc.indices_dtype = DType::i16;
  mc.offsets = mptr;
  mc.offsets_dtype = DType::i16;
  ref.sparse_matvec[static_cast<int>(SparseLayout::csr)][0](mc, mx.data(), nullptr, &my, 0, 1, scratch);
  EXPECT_EQ(my, 100000008.0f);
}

// Two tiles of four, L1, two zeros per tile, f32 mask with a pruned element and a -0.0 (pruned too):
//   tile 0: e = {1, 2, 0, NaN}: the mean is NaN (largest key); the two smallest are positions 2 and 0;
//   tile 1: e = {0.5, 0.5, 0.5, 0}: mean 0.375; 0 at position 3, then the lowest of the tied 0.5s.
TEST(KernelReference, FlatScoresMaskNormMeanAndInTileRanks) {
  const KernelTable& ref = reference_table();
  const float w[] = {1.f, -2.f, 3.f, kNaN, 0.5f, 0.5f, -0.5f, 4.f};
  const float mask[] = {1.f, 1.f, 0.f, 1.f, 1.f, 1.f, 1.f, -0.0f};
  uint32_t keys[2];
  uint8_t old_bits = 0, pruned = 0;
  ref.flat_scores[0](w, mask, 8, 4, Norm::L1, 2, keys, &old_bits, &pruned);
  EXPECT_EQ(keys[0], 0xffffffffu);
  EXPECT_EQ(keys[1], bits_of(0.375f) | 0x80000000u);
  EXPECT_EQ(old_bits, 0x7b);  // kept: 0, 1, 3 | 4, 5, 6
  EXPECT_EQ(pruned, 0x95);    // pruned in tile: 0, 2 | 4, 7
  // The same mask as bytes.
  const uint8_t bytes[] = {1, 9, 0, 1, 1, 1, 1, 0};
  uint32_t keys_b[2];
  uint8_t old_b = 0, pruned_b = 0;
  ref.flat_scores[1](w, bytes, 8, 4, Norm::L1, 2, keys_b, &old_b, &pruned_b);
  EXPECT_EQ(keys_b[0], keys[0]);
  EXPECT_EQ(keys_b[1], keys[1]);
  EXPECT_EQ(old_b, 0x7b);
  EXPECT_EQ(pruned_b, 0x95);
}

// keys {5, 3, 3, 9}, tiles of 2, threshold 3 with cut 2: only tile 1 is selected (tile 2 ties after the cut);
// inside it element 2 is pruned and element 3 kept; without an in-tile choice both go.
TEST(KernelReference, FlatMaskSelectsBelowThresholdAndTiesBeforeCut) {
  const KernelTable& ref = reference_table();
  const uint32_t keys[] = {5, 3, 3, 9};
  const uint8_t pruned = 0x66;  // elements 1, 2, 5, 6
  uint8_t bits = 0;
  ref.flat_mask(keys, 8, 2, 3, 2, &pruned, &bits);
  EXPECT_EQ(bits, 0xfb);
  ref.flat_mask(keys, 8, 2, 3, 2, nullptr, &bits);
  EXPECT_EQ(bits, 0xf3);
}

}  // namespace
}  // namespace sparsity::kernels

namespace sparsity::kernels {
namespace {

// The dense matrix a TestSparse stands for, in f64 (from the same parts the kernels read).
std::vector<double> dense_of(const TestSparse& s) {
  const SparseWeight& w = s.w;
  std::vector<double> d(static_cast<size_t>(w.rows * w.cols), 0.0);
  auto value = [&](int64_t k) -> double {
    const auto* p = static_cast<const uint8_t*>(w.values);
    if (w.dtype == DType::f32) {
      float f;
      std::memcpy(&f, p + 4 * k, 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, p + 2 * k, 2);
    return w.dtype == DType::f16 ? Half::to_float(h) : BFloat16::to_float(h);
  };
  auto index = [](const void* p, DType dt, int64_t k) -> int64_t {
    const auto* b = static_cast<const uint8_t*>(p);
    if (dt == DType::u8) return b[k];
    if (dt == DType::i16) {
      int16_t v;
      std::memcpy(&v, b + 2 * k, 2);
      return v;
    }
    if (dt == DType::i32) {
      int32_t v;
      std::memcpy(&v, b + 4 * k, 4);
      return v;
    }
    int64_t v;
    std::memcpy(&v, b + 8 * k, 8);
    return v;
  };
  const int64_t row_bytes = (w.cols + 7) / 8;
  int64_t k = 0;
  for (int64_t i = 0; i < w.rows; ++i) {
    if (w.layout == SparseLayout::nm || w.layout == SparseLayout::bitmask) {
      for (int64_t c = 0; c < w.cols; ++c) {
        if ((w.bitmask[i * row_bytes + c / 8] >> (c % 8)) & 1u) d[static_cast<size_t>(i * w.cols + c)] = value(k++);
      }
    } else if (w.layout == SparseLayout::csr) {
      for (int64_t q = index(w.offsets, w.offsets_dtype, i); q < index(w.offsets, w.offsets_dtype, i + 1); ++q) {
        d[static_cast<size_t>(i * w.cols + index(w.indices, w.indices_dtype, q))] = value(q);
      }
    }
  }
  if (w.layout == SparseLayout::bsr) {
    const int64_t r = w.block_rows, c = w.block_cols;
    for (int64_t br = 0; br < w.rows / r; ++br) {
      for (int64_t q = index(w.offsets, w.offsets_dtype, br); q < index(w.offsets, w.offsets_dtype, br + 1); ++q) {
        const int64_t bc = index(w.indices, w.indices_dtype, q);
        for (int64_t f = 0; f < r * c; ++f) {
          d[static_cast<size_t>((br * r + f / c) * w.cols + bc * c + f % c)] = value(q * r * c + f);
        }
      }
    }
  }
  return d;
}

// Bench-like shapes through the public entry point: every ISA and 1 or 2 threads give the same bits as the
// scalar reference, and every output is within 1e-5 (|W| |x|) of the f64 dense product.
TEST(SparseLinearEntry, SameBitsForEveryIsaAndThreadCountAndCloseToTheDenseProduct) {
  const SparseCase cases[] = {{SparseLayout::nm, 96, 512, 2, 4},
                              {SparseLayout::nm, 64, 512, 3, 8},
                              {SparseLayout::bitmask, 96, 517, 0, 0, 0.5},
                              {SparseLayout::csr, 96, 517, 0, 0, 0.1, DType::i16, DType::i32},
                              {SparseLayout::bsr, 96, 512, 1, 8, 0.1, DType::i16, DType::i32},
                              {SparseLayout::bsr, 96, 512, 8, 1, 0.1, DType::i16, DType::i32},
                              {SparseLayout::bsr, 96, 512, 4, 4, 0.3, DType::u8, DType::i16},
                              {SparseLayout::csr, 8, 4096, 0, 0, 0.7, DType::i16, DType::i16},
                              {SparseLayout::nm, 8, 4096, 2, 4}};
  uint64_t seed = 100;
  for (const SparseCase& sc : cases) {
    for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
      const TestSparse s = make_sparse(sc, dtype, ++seed, /*specials=*/false, 0);
      const std::vector<double> dense = dense_of(s);
      for (int64_t batch : {1, 7, 8, 64}) {
        const int64_t ldx = s.w.cols + 5, ldy = s.w.rows + 2;
        std::vector<float> x = random_floats(static_cast<size_t>(batch * ldx), seed + batch, false);
        for (auto& v : x) v = std::fabs(v) < 1e-30f ? 0.25f : v;  // no -0.0 inputs: the sums below are exact
        const std::vector<float> bias = random_floats(static_cast<size_t>(s.w.rows), seed * 3, false);
        std::vector<float> want;
        {
          ScopedIsaOverride scalar(Isa::scalar);
          want.assign(static_cast<size_t>(batch * ldy), -1.0f);
          sparse_linear(s.w, x.data(), batch, ldx, bias.data(), want.data(), ldy);
        }
        for (Isa isa : available_isas()) {
          ScopedIsaOverride force(isa);
          for (int threads : {1, 2}) {
            set_num_threads(threads);
            std::vector<float> got(static_cast<size_t>(batch * ldy), -1.0f);
            sparse_linear(s.w, x.data(), batch, ldx, bias.data(), got.data(), ldy);
            set_num_threads(1);
            EXPECT_FLOATS_SAME(got, want, describe(sc, dtype) << " batch " << batch << " isa " << to_string(isa)
                                                                << " threads " << threads);
          }
        }
        double worst = 0;
        for (int64_t b = 0; b < batch; ++b) {
          for (int64_t i = 0; i < s.w.rows; ++i) {
            double exact = bias[static_cast<size_t>(i)], scale = 0;
            for (int64_t c = 0; c < s.w.cols; ++c) {
              const double wv = dense[static_cast<size_t>(i * s.w.cols + c)], xv = x[static_cast<size_t>(b * ldx + c)];
              exact += wv * xv;
              scale += std::fabs(wv * xv);
            }
            const double err = std::fabs(want[static_cast<size_t>(b * ldy + i)] - exact);
            worst = std::max(worst, err / (scale + std::fabs(bias[static_cast<size_t>(i)]) + 1e-30));
          }
        }
        EXPECT_LE(worst, 1e-5) << describe(sc, dtype) << " batch " << batch;
      }
    }
  }
}

// Corrupt offsets and indices are clamped, never followed outside the parts (checked under ASan too).
TEST(SparseLinearEntry, CorruptIndicesNeverLeaveTheParts) {
  SparseCase sc{SparseLayout::csr, 4, 40, 0, 0, 0.5, DType::i16, DType::i32};
  TestSparse s = make_sparse(sc, DType::f32, 5, false, 0);
  for (size_t i = 0; i < s.indices.size(); i += 2) {
    const int16_t bad = i % 4 ? int16_t{-7} : int16_t{30000};
    std::memcpy(&s.indices[i], &bad, 2);
  }
  const int32_t offs[] = {-5, 3, 1, 1000000, 7};
  std::memcpy(s.offsets.data(), offs, sizeof offs);
  std::vector<float> x(80, 1.0f), y(8, 0.0f);
  for (Isa isa : available_isas()) {
    ScopedIsaOverride force(isa);
    sparse_linear(s.w, x.data(), 1, 40, nullptr, y.data(), 4);
    sparse_linear(s.w, x.data(), 2, 40, nullptr, y.data(), 4);
  }
  SparseCase bm{SparseLayout::bitmask, 3, 33, 0, 0, 0.5};
  TestSparse b = make_sparse(bm, DType::bf16, 6, false, 0);
  const int64_t boffs[] = {-100, 1 << 30, 2};
  std::memcpy(b.offsets.data(), boffs, sizeof boffs);
  std::fill(b.bitmask.begin(), b.bitmask.end(), uint8_t{0xff});  // more bits than values, padding bits set
  std::vector<float> bx(66, 1.0f), by(6, 0.0f);
  for (Isa isa : available_isas()) {
    ScopedIsaOverride force(isa);
    sparse_linear(b.w, bx.data(), 1, 33, nullptr, by.data(), 3);
    sparse_linear(b.w, bx.data(), 2, 33, nullptr, by.data(), 3);
  }
}

TEST(SparseLinearEntry, MisuseErrorsNameTheProblem) {
  TestSparse s = make_sparse({SparseLayout::nm, 4, 16, 2, 4}, DType::f32, 3, false, 0);
  float x[32] = {}, y[8] = {};
  SparseWeight w = s.w;
  w.dtype = DType::f64;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 16, nullptr, y, 4), InvalidArgument, "f64");
  w = s.w;
  w.m = 5;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 16, nullptr, y, 4), InvalidArgument, "2:5");
  w = s.w;
  w.nnz = 31;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 16, nullptr, y, 4), InvalidArgument, "nnz 31");
  w = s.w;
  w.bitmask = nullptr;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 16, nullptr, y, 4), InvalidArgument, "null bitmask");
  EXPECT_SPARSITY_ERROR(sparse_linear(s.w, x, 2, 15, nullptr, y, 4), InvalidArgument, "input row stride 15");
  EXPECT_SPARSITY_ERROR(sparse_linear(s.w, x, 2, 16, nullptr, y, 3), InvalidArgument, "output row stride 3");
  EXPECT_SPARSITY_ERROR(sparse_linear(s.w, x, -1, 16, nullptr, y, 4), InvalidArgument, "negative batch");
  EXPECT_SPARSITY_ERROR(sparse_linear(s.w, nullptr, 1, 16, nullptr, y, 4), InvalidArgument, "null input");
  TestSparse b = make_sparse({SparseLayout::bsr, 8, 16, 4, 4, 0.5, DType::i32, DType::i32}, DType::f32, 4, false, 0);
  w = b.w;
  w.block_cols = 3;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 16, nullptr, y, 8), InvalidArgument, "block 4x3");
  w = b.w;
  w.rows = 6;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 16, nullptr, y, 8), InvalidArgument, "do not tile 6x16");
  w = b.w;
  w.indices_dtype = DType::i64;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 16, nullptr, y, 8), InvalidArgument, "column indices", "i64");
  w = b.w;
  w.offsets_dtype = DType::f32;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 16, nullptr, y, 8), InvalidArgument, "row offsets", "f32");
  TestSparse m = make_sparse({SparseLayout::bitmask, 2, 8}, DType::f32, 5, false, 0);
  w = m.w;
  w.offsets_dtype = DType::i32;
  EXPECT_SPARSITY_ERROR(sparse_linear(w, x, 1, 8, nullptr, y, 2), InvalidArgument, "bitmask", "i64");
}

// GlobalNormMask writes each tensor's share exactly as norm_mask() would prune that many tiles of it (the
// oracle), whether it writes from what scoring kept (flat tiles) or scores again (the general path), over
// two steps (sticky masks, many equal zero scores), on every ISA and with 1 and 2 threads.
TEST(GlobalNormMask, EachShareEqualsTheOracle) {
  struct Tensor1 {
    int64_t rows, cols, br, bc, zeros;
    DType mdt;
    int source;
  };
  const std::vector<Tensor1> tensors{{64, 256, 1, 4, 4, DType::f32, 0},   {32, 512, 1, 4, 2, DType::u8, 1},
                                     {48, 128, 1, 1, 1, DType::f32, 0},   {20, 100, 2, 2, 4, DType::f32, 1},
                                     {16, 1024, 1, 16, 9, DType::bool_, 0}, {8, 64, 1, 8, 8, DType::f32, 1}};
  for (Isa isa : available_isas()) {
    ScopedIsaOverride force(isa);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (double level : {0.35, 0.6, -1.0}) {
        // -1: level 0.5 with bounds that bind (those shares are pruned by scoring again).
        const bool bounded = level < 0;
        if (bounded) level = 0.5;
        std::vector<std::vector<uint8_t>> weights, masks;
        std::vector<NormMaskArgs> args(tensors.size());
        std::vector<GlobalTensor> specs;
        uint64_t all = 0;
        for (size_t t = 0; t < tensors.size(); ++t) {
          const Tensor1& x = tensors[t];
          const size_t n = static_cast<size_t>(x.rows * x.cols);
          weights.push_back(norm_weights(DType::f32, n, x.source, 100 + t));
          std::vector<uint8_t> m(n * size_of(x.mdt));
          const uint64_t one = x.mdt == DType::f32 ? 0x3f800000u : 1u;
          for (size_t i = 0; i < n; ++i) std::memcpy(m.data() + i * size_of(x.mdt), &one, size_of(x.mdt));
          masks.push_back(std::move(m));
        }
        for (size_t t = 0; t < tensors.size(); ++t) {
          const Tensor1& x = tensors[t];
          NormMaskArgs& a = args[t];
          a.weight = weights[t].data();
          a.mask_dtype = x.mdt;
          a.mask = masks[t].data();
          a.rows = x.rows;
          a.cols = x.cols;
          a.block_rows = x.br;
          a.block_cols = x.bc;
          a.zeros_per_block = x.zeros;
          a.norm = t % 2 ? Norm::L1 : Norm::L2;
          specs.push_back({norm_mask_tiles(a), bounded && t == 1 ? uint64_t{10} : 0,
                           bounded && t == 2 ? uint64_t{1000} : ~uint64_t{0}});
          all += specs.back().tiles;
        }
        for (int step = 0; step < 2; ++step) {
          GlobalNormMask g(specs, static_cast<uint64_t>(std::nearbyint(level * static_cast<double>(all))));
          for (size_t t = 0; t < tensors.size(); ++t) g.sample(t, args[t], 512);
          do {
            for (size_t t = 0; t < tensors.size(); ++t) g.score(t, args[t]);
          } while (!g.finish());
          uint64_t sum = 0;
          for (size_t t = 0; t < tensors.size(); ++t) {
            std::vector<uint8_t> want = masks[t];
            NormMaskArgs r = args[t];
            r.mask = want.data();
            r.tiles_to_prune = static_cast<int64_t>(g.tiles_to_prune(t));
            sum += g.tiles_to_prune(t);
            norm_mask_reference(r);
            g.apply(t, args[t]);
            EXPECT_EQ(masks[t], want) << "tensor " << t << " step " << step << " level " << level << " isa "
                                      << to_string(isa) << " threads " << threads;
          }
          EXPECT_EQ(sum, static_cast<uint64_t>(std::nearbyint(level * static_cast<double>(all))));
        }
      }
    }
  }
  set_num_threads(1);
}

}  // namespace
}  // namespace sparsity::kernels
