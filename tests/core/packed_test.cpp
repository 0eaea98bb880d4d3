// PackedTensor: round trips for every layout and dtype, the compressed-tensors layouts against hand-derived
// bytes, the layout `auto` picks, index dtypes, and every refusal naming its row, column or part.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "sparsity/core/packed.hpp"
#include "test_util.hpp"

namespace sparsity {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<uint8_t> bytes_of(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  return std::vector<uint8_t>(p, p + t.nbytes());
}

template <class T>
std::vector<uint8_t> le_bytes(std::initializer_list<T> values) {
  std::vector<uint8_t> out;
  for (T v : values) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // the test machine is little-endian, as the layouts are
    out.insert(out.end(), b, b + sizeof(T));
  }
  return out;
}

std::vector<uint8_t> bf16_bytes(std::initializer_list<uint16_t> bits) { return le_bytes<uint16_t>(bits); }

// A rows x cols weight of `dtype` whose element (r, c) is non-zero iff keep(r, c); the kept values are
// random with NaN, +-inf and -0.0 among them (every one of them kept: only +0.0 is "zero").
template <class Keep>
Tensor make_weight(int64_t rows, int64_t cols, DType dtype, uint64_t seed, Keep keep) {
  std::mt19937_64 rng(seed);
  Tensor t = Tensor::zeros({rows, cols}, dtype);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (!keep(r, c)) continue;
      const uint64_t u = rng();
      double v = static_cast<double>(u >> 11) * 0x1.0p-53 * 2.0 - 1.0;
      if (u % 17 == 0) v = -0.0;
      if (u % 29 == 0) v = kNaN;
      if (u % 31 == 0) v = (u & 64) ? kInf : -kInf;
      if (v == 0.0 && !std::signbit(v)) v = 0.5;
      t.set({r, c}, v);
    }
  }
  return t;
}

// Bit patterns of a 2-D tensor's elements (so NaN and -0.0 compare exactly).
bool same_bits(const Tensor& a, const Tensor& b) { return bitwise_equal(a, b); }

struct Pattern {
  PackFormat format;
  int64_t rows, cols;
};

// Random kept patterns that fit each layout.
Tensor weight_for(const PackFormat& f, int64_t rows, int64_t cols, DType dtype, uint64_t seed) {
  std::mt19937_64 rng(seed * 977);
  switch (f.layout()) {
    case kernels::SparseLayout::nm: {
      // At most n kept per group, some groups with fewer (padding), one group empty.
      std::vector<uint8_t> keep(static_cast<size_t>(rows * cols), 0);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t g = 0; g < cols; g += f.m()) {
          const int64_t want = (r + g / f.m()) % 3 == 0 ? f.n() : static_cast<int64_t>(rng() % (f.n() + 1));
          for (int64_t k = 0; k < want;) {
            const int64_t c = g + static_cast<int64_t>(rng() % static_cast<uint64_t>(f.m()));
            if (!keep[static_cast<size_t>(r * cols + c)]) {
              keep[static_cast<size_t>(r * cols + c)] = 1;
              ++k;
            }
          }
        }
      }
      return make_weight(rows, cols, dtype, seed, [&](int64_t r, int64_t c) { return keep[static_cast<size_t>(r * cols + c)] != 0; });
    }
    case kernels::SparseLayout::bsr: {
      std::vector<uint8_t> blocks(static_cast<size_t>(rows * cols), 0);
      for (auto& b : blocks) b = rng() % 3 == 0;
      const int64_t br = f.block_rows(), bc = f.block_cols();
      // Inside a kept block only some elements are non-zero (the rest are stored as +0.0).
      return make_weight(rows, cols, dtype, seed, [&](int64_t r, int64_t c) {
        return blocks[static_cast<size_t>((r / br) * cols + c / bc)] && (r * 7 + c * 3) % 4 != 0;
      });
    }
    default:
      return make_weight(rows, cols, dtype, seed, [&](int64_t, int64_t) { return rng() % 4 == 0; });
  }
}

TEST(PackFormat, NamesRoundTripAndAliases) {
  const PackFormat all[] = {PackFormat::nm(2, 4),   PackFormat::nm(1, 4),  PackFormat::nm(3, 8), PackFormat::nm(15, 16),
                            PackFormat::bsr(1, 8),  PackFormat::bsr(8, 1), PackFormat::bsr(16, 16),
                            PackFormat::bitmask(),  PackFormat::csr(),     PackFormat::automatic()};
  for (const PackFormat& f : all) EXPECT_EQ(PackFormat::from_string(f.to_string()), f) << f.to_string();
  EXPECT_EQ(PackFormat::nm(2, 4).to_string(), "sparse-24-bitmask");
  EXPECT_EQ(PackFormat::nm(4, 8).to_string(), "nm4of8");
  EXPECT_EQ(PackFormat::bsr(8, 1).to_string(), "bsr8x1");
  EXPECT_EQ(PackFormat::bitmask().to_string(), "sparse-bitmask");
  EXPECT_EQ(PackFormat::from_string("nm2of4"), PackFormat::nm(2, 4));
  EXPECT_EQ(PackFormat::from_string("bitmask"), PackFormat::bitmask());
  EXPECT_TRUE(PackFormat::from_string("auto").is_auto());
  EXPECT_NE(PackFormat::bsr(1, 8), PackFormat::bsr(8, 1));
}

TEST(PackFormat, MisuseErrorsNameTheProblem) {
  EXPECT_SPARSITY_ERROR(PackFormat::nm(4, 4), InvalidArgument, "4:4");
  EXPECT_SPARSITY_ERROR(PackFormat::nm(1, 6), InvalidArgument, "1:6");
  EXPECT_SPARSITY_ERROR(PackFormat::bsr(3, 8), InvalidArgument, "3x8");
  EXPECT_SPARSITY_ERROR(PackFormat::from_string("nm5of4"), InvalidArgument, "'nm5of4'", "5:4");
  EXPECT_SPARSITY_ERROR(PackFormat::from_string("bsr1x32"), InvalidArgument, "'bsr1x32'");
  EXPECT_SPARSITY_ERROR(PackFormat::from_string("coo"), InvalidArgument, "'coo'", "sparse-bitmask");
  EXPECT_SPARSITY_ERROR(PackFormat::from_string("bsr1x8 "), InvalidArgument, "'bsr1x8 '");
  EXPECT_SPARSITY_ERROR(PackFormat::automatic().layout(), FailedPrecondition, "auto");
}

// Every layout and value dtype, at shapes M and the blocks do not divide (refused there), packed from
// zeros and from a mask; -0.0, NaN and +-inf values are kept and come back bit for bit.
TEST(PackedTensor, RoundTripsEveryLayoutAndDtype) {
  const PackFormat formats[] = {PackFormat::nm(2, 4), PackFormat::nm(1, 4), PackFormat::nm(3, 4), PackFormat::nm(4, 8),
                                PackFormat::nm(5, 16), PackFormat::bsr(1, 4), PackFormat::bsr(1, 8),
                                PackFormat::bsr(1, 16), PackFormat::bsr(4, 1), PackFormat::bsr(8, 1),
                                PackFormat::bsr(16, 1), PackFormat::bsr(2, 2), PackFormat::bsr(4, 4),
                                PackFormat::bitmask(), PackFormat::csr()};
  const std::pair<int64_t, int64_t> shapes[] = {{16, 48}, {3, 16}, {7, 20}, {1, 1021}, {32, 64}, {17, 33}};
  uint64_t seed = 1;
  for (const PackFormat& f : formats) {
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      for (auto [rows, cols] : shapes) {
        ++seed;
        const bool fits_nm = f.layout() != kernels::SparseLayout::nm || cols % f.m() == 0;
        const bool fits_bsr = f.layout() != kernels::SparseLayout::bsr ||
                              (rows % f.block_rows() == 0 && cols % f.block_cols() == 0);
        const std::string what = f.to_string() + " " + to_string(dtype) + " [" + std::to_string(rows) + ", " +
                                 std::to_string(cols) + "]";
        if (!fits_nm || !fits_bsr) {
          const Tensor w = make_weight(rows, cols, dtype, seed, [](int64_t, int64_t) { return false; });
          EXPECT_SPARSITY_ERROR(pack(w, f), InvalidArgument, f.to_string(), fits_nm ? "do not tile" : "not a multiple");
          continue;
        }
        const Tensor w = weight_for(f, rows, cols, dtype, seed);
        const PackedTensor p = pack(w, f);
        EXPECT_EQ(p.format(), f) << what;
        EXPECT_EQ(p.shape(), (Shape{rows, cols})) << what;
        EXPECT_EQ(p.dtype(), dtype) << what;
        EXPECT_TRUE(same_bits(p.unpack(), w)) << what;
        int64_t sum = 0;
        for (const auto& [name, t] : p.parts()) sum += static_cast<int64_t>(t.nbytes());
        EXPECT_EQ(p.bytes(), sum) << what;
        // Rebuilt from its parts (checked): the same tensor.
        const PackedTensor q = PackedTensor::from_parts(f, p.parts());
        EXPECT_TRUE(same_bits(q.unpack(), w)) << what;
        EXPECT_EQ(q.bytes(), p.bytes()) << what;
        // From a mask (a sub-pattern of w's, so that it fits the layout; the mask alone decides what is
        // stored): the elements it keeps; the others unpack as +0.0.
        Tensor mask = Tensor::zeros({rows, cols}, DType::u8);
        Tensor want = Tensor::zeros({rows, cols}, dtype);
        for (int64_t i = 0; i < rows * cols; ++i) {
          uint32_t b = 0;
          std::memcpy(&b, static_cast<const char*>(w.data_ptr()) + i * w.element_size(), w.element_size());
          if (b != 0 && (i * 5) % 7 < 5) {
            mask.set_flat(i, 1.0);
            std::memcpy(static_cast<char*>(want.mutable_data_ptr()) + i * w.element_size(),
                        static_cast<const char*>(w.data_ptr()) + i * w.element_size(), w.element_size());
          }
        }
        const PackedTensor pm = pack(w, f, mask);
        EXPECT_TRUE(same_bits(pm.unpack(), want)) << what << " (mask)";
      }
    }
  }
}

TEST(PackedTensor, AllZeroAndFullyDenseWeights) {
  for (DType dtype : {DType::f32, DType::bf16}) {
    const Tensor zero = Tensor::zeros({8, 16}, dtype);
    for (const PackFormat& f : {PackFormat::nm(1, 4), PackFormat::bsr(1, 8), PackFormat::bsr(8, 1), PackFormat::bitmask(),
                                PackFormat::csr()}) {
      const PackedTensor p = pack(zero, f);
      EXPECT_TRUE(bitwise_equal(p.unpack(), zero)) << f.to_string();
      EXPECT_EQ(p.nnz(), f.layout() == kernels::SparseLayout::nm ? 8 * 4 : 0) << f.to_string();
    }
    const Tensor ones = Tensor::ones({8, 16}, dtype);
    for (const PackFormat& f : {PackFormat::bsr(1, 8), PackFormat::bsr(8, 1), PackFormat::bitmask(), PackFormat::csr()}) {
      const PackedTensor p = pack(ones, f);
      EXPECT_TRUE(bitwise_equal(p.unpack(), ones)) << f.to_string();
      EXPECT_EQ(p.nnz(), 128) << f.to_string();
      EXPECT_EQ(p.sparsity(), 0.0);
    }
    // A dense group has 4 kept elements: the third is the first that 2:4 cannot hold.
    EXPECT_SPARSITY_ERROR(pack(ones, PackFormat::nm(2, 4)), InvalidArgument, "row 0, column 2", "3rd",
                          "columns 0..3");
    EXPECT_SPARSITY_ERROR(pack(ones, PackFormat::nm(15, 16)), InvalidArgument, "row 0, column 15", "16th");
  }
  // An all-zero weight packs smallest as the first layout with 2 one-byte pointers and nothing else:
  // bsr8x16, 16 + 2 bytes.
  const PackedTensor a = pack(Tensor::zeros({8, 16}), PackFormat::automatic());
  EXPECT_EQ(a.format(), PackFormat::bsr(8, 16));
  EXPECT_EQ(a.bytes(), 18);
  EXPECT_EQ(a.nnz(), 0);
  EXPECT_TRUE(bitwise_equal(a.unpack(), Tensor::zeros({8, 16})));
}

// compressed-tensors' sparse-bitmask, worked by hand: 3 x 10 f32,
//   row 0: 1.5 at column 1, 2.0 at column 8         -> bitmask bytes 0x02 0x01
//   row 1: nothing                                  -> 0x00 0x00
//   row 2: -0.0 at 0 (kept), 3.0 at 3, 4.0 at 9     -> 0x09 0x02
TEST(PackedTensor, SparseBitmaskMatchesTheHandDerivedLayout) {
  Tensor w = Tensor::zeros({3, 10});
  w.set({0, 1}, 1.5);
  w.set({0, 8}, 2.0);
  w.set({2, 0}, -0.0);
  w.set({2, 3}, 3.0);
  w.set({2, 9}, 4.0);
  const PackedTensor p = pack(w, PackFormat::from_string("sparse-bitmask"));
  const NamedList<Tensor> parts = p.parts();
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[0].first, "shape");
  EXPECT_EQ(parts[1].first, "compressed");
  EXPECT_EQ(parts[2].first, "bitmask");
  EXPECT_EQ(parts[3].first, "row_offsets");
  EXPECT_EQ(parts[0].second.dtype(), DType::i64);
  EXPECT_EQ(parts[0].second.shape(), Shape{2});
  EXPECT_EQ(bytes_of(parts[0].second), le_bytes<int64_t>({3, 10}));
  EXPECT_EQ(parts[1].second.dtype(), DType::f32);
  EXPECT_EQ(parts[1].second.shape(), Shape{5});
  EXPECT_EQ(bytes_of(parts[1].second),
            le_bytes<uint32_t>({0x3fc00000u, 0x40000000u, 0x80000000u, 0x40400000u, 0x40800000u}));
  EXPECT_EQ(parts[2].second.dtype(), DType::u8);
  EXPECT_EQ(parts[2].second.shape(), (Shape{3, 2}));
  EXPECT_EQ(bytes_of(parts[2].second), (std::vector<uint8_t>{0x02, 0x01, 0x00, 0x00, 0x09, 0x02}));
  EXPECT_EQ(parts[3].second.dtype(), DType::i64);
  EXPECT_EQ(bytes_of(parts[3].second), le_bytes<int64_t>({0, 2, 2}));
  EXPECT_EQ(p.bytes(), 16 + 5 * 4 + 6 + 3 * 8);
  EXPECT_EQ(p.to_string(), "PackedTensor(sparse-bitmask, [3, 10], f32, 5 values, 66 bytes)");
  EXPECT_TRUE(bitwise_equal(p.unpack(), w));
}

// compressed-tensors' sparse-24-bitmask, worked by hand: 2 x 8 bf16,
//   row 0: 1 at 0, 2 at 3 | nothing      -> group 0 bits 1001, group 1 padded at columns 4, 5: byte 0x39,
//                                           values 1, 2, +0, +0 (bf16 3f80 4000 0000 0000)
//   row 1: -3 at 1 | 5 at 5, 6 at 6      -> group 0 padded at column 0: bits 0011, group 1 bits 0110:
//                                           byte 0x63, values +0, -3, 5, 6 (0000 c040 40a0 40c0)
TEST(PackedTensor, Sparse24BitmaskMatchesTheHandDerivedLayout) {
  Tensor w = Tensor::zeros({2, 8}, DType::bf16);
  w.set({0, 0}, 1.0);
  w.set({0, 3}, 2.0);
  w.set({1, 1}, -3.0);
  w.set({1, 5}, 5.0);
  w.set({1, 6}, 6.0);
  const PackedTensor p = pack(w, PackFormat::from_string("sparse-24-bitmask"));
  const NamedList<Tensor> parts = p.parts();
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].first, "shape");
  EXPECT_EQ(parts[0].second.shape(), (Shape{2, 1}));
  EXPECT_EQ(bytes_of(parts[0].second), le_bytes<int64_t>({2, 8}));
  EXPECT_EQ(parts[1].first, "compressed");
  EXPECT_EQ(parts[1].second.shape(), (Shape{2, 4}));
  EXPECT_EQ(parts[1].second.dtype(), DType::bf16);
  EXPECT_EQ(bytes_of(parts[1].second), bf16_bytes({0x3f80, 0x4000, 0x0000, 0x0000, 0x0000, 0xc040, 0x40a0, 0x40c0}));
  EXPECT_EQ(parts[2].first, "bitmask");
  EXPECT_EQ(parts[2].second.shape(), (Shape{2, 1}));
  EXPECT_EQ(bytes_of(parts[2].second), (std::vector<uint8_t>{0x39, 0x63}));
  EXPECT_EQ(p.bytes(), 16 + 16 + 2);
  EXPECT_TRUE(bitwise_equal(p.unpack(), w));
}

// csr and bsr by hand: 4 x 8 f32 with 2.5 at (0, 6), -1 at (3, 0), 7 at (3, 1).
//   csr: values 2.5 -1 7, col_indices u8 6 0 1, crow_indices u8 0 1 1 1 3.
//   bsr 2x4: block row 0 has block column 1, block row 1 block column 0:
//            values [[0 0 2.5 0] [0 0 0 0]] [[0 0 0 0] [-1 7 0 0]], col_indices u8 1 0, crow u8 0 1 2.
TEST(PackedTensor, CsrAndBsrMatchTheHandDerivedLayout) {
  Tensor w = Tensor::zeros({4, 8});
  w.set({0, 6}, 2.5);
  w.set({3, 0}, -1.0);
  w.set({3, 1}, 7.0);
  const PackedTensor c = pack(w, PackFormat::csr());
  EXPECT_EQ(c.part("compressed").to_vector(), (std::vector<double>{2.5, -1, 7}));
  EXPECT_EQ(c.part("col_indices").dtype(), DType::u8);
  EXPECT_EQ(bytes_of(c.part("col_indices")), (std::vector<uint8_t>{6, 0, 1}));
  EXPECT_EQ(c.part("crow_indices").dtype(), DType::u8);
  EXPECT_EQ(bytes_of(c.part("crow_indices")), (std::vector<uint8_t>{0, 1, 1, 1, 3}));
  EXPECT_EQ(c.bytes(), 16 + 3 * 4 + 3 + 5);
  const PackedTensor b = pack(w, PackFormat::bsr(2, 4));
  EXPECT_EQ(b.part("compressed").shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(b.part("compressed").to_vector(), (std::vector<double>{0, 0, 2.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 7, 0, 0}));
  EXPECT_EQ(bytes_of(b.part("col_indices")), (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(bytes_of(b.part("crow_indices")), (std::vector<uint8_t>{0, 1, 2}));
  EXPECT_TRUE(bitwise_equal(c.unpack(), w));
  EXPECT_TRUE(bitwise_equal(b.unpack(), w));
  EXPECT_SPARSITY_ERROR(c.part("bitmask"), NotFound, "csr", "'bitmask'");
}

// Index parts take the narrowest type: u8 up to 255, i16 up to 32767, then i32 (and i64 offsets).
TEST(PackedTensor, IndexPartsUseTheNarrowestType) {
  auto csr_dtypes = [](int64_t rows, int64_t cols, int64_t every) {
    const Tensor w = make_weight(rows, cols, DType::bf16, 3, [&](int64_t r, int64_t c) { return (r * cols + c) % every == 0; });
    const PackedTensor p = pack(w, PackFormat::csr());
    EXPECT_TRUE(bitwise_equal(p.unpack(), w));
    return std::make_pair(p.part("col_indices").dtype(), p.part("crow_indices").dtype());
  };
  EXPECT_EQ(csr_dtypes(2, 256, 1), std::make_pair(DType::u8, DType::i16));      // 512 values
  EXPECT_EQ(csr_dtypes(2, 257, 3), std::make_pair(DType::i16, DType::u8));      // column 256, 172 values
  EXPECT_EQ(csr_dtypes(1, 32768, 2), std::make_pair(DType::i16, DType::i16));   // column 32767, 16384 values
  EXPECT_EQ(csr_dtypes(1, 32769, 256), std::make_pair(DType::i32, DType::u8));   // 129 values
  EXPECT_EQ(csr_dtypes(1, 40000, 1), std::make_pair(DType::i32, DType::i32));
  const Tensor w = make_weight(4, 40000, DType::f32, 4, [](int64_t, int64_t c) { return c % 1000 == 0; });
  const PackedTensor b = pack(w, PackFormat::bsr(4, 1));
  EXPECT_EQ(b.part("col_indices").dtype(), DType::i32);
  EXPECT_EQ(b.part("crow_indices").dtype(), DType::u8);
  EXPECT_TRUE(bitwise_equal(b.unpack(), w));
}

// auto: the fewest bytes among the layouts the pattern fits, hand-derived for two weights, and the
// minimum of every explicit packing for random ones.
TEST(PackedTensor, AutoPicksTheSmallestLayoutThePatternFits) {
  // One 8x1 block in a 16 x 16 f32 weight: bsr8x1 = 16 + 8*4 + 1 (u8 column) + 3 (u8 pointers) = 52
  // bytes; bsr4x1 55, bsr2x1 61, csr 16 + 8*(4+1) + 17 = 73, bsr16x1 83, bsr8x2 84, nm1of16 112.
  Tensor block = Tensor::zeros({16, 16});
  for (int64_t r = 0; r < 8; ++r) block.set({r, 3}, 1.0 + static_cast<double>(r));
  const PackedTensor a = pack(block, PackFormat::automatic());
  EXPECT_EQ(a.format(), PackFormat::bsr(8, 1));
  EXPECT_EQ(a.bytes(), 52);
  // A 2:4 pattern (row r keeps positions r and r + 1 mod 4 of every group; the same columns in every
  // row would fit 8x1 blocks better): sparse-24-bitmask 16 + 8*8*4 + 8*2 = 288 bytes,
  // tied with nm4of8 (which comes later), below csr 345, sparse-bitmask 352 and bsr1x2 457.
  Tensor two = make_weight(8, 16, DType::f32, 9, [](int64_t r, int64_t c) { return c % 4 == r % 4 || c % 4 == (r + 1) % 4; });
  const PackedTensor t = pack(two, PackFormat::automatic());
  EXPECT_EQ(t.format(), PackFormat::nm(2, 4));
  EXPECT_EQ(t.bytes(), 288);
  std::vector<PackFormat> all;
  for (int64_t m : {4, 8, 16}) {
    for (int64_t n = 1; n < m; ++n) all.push_back(PackFormat::nm(n, m));
  }
  for (int64_t r : {1, 2, 4, 8, 16}) {
    for (int64_t c : {1, 2, 4, 8, 16}) {
      if (r * c > 1) all.push_back(PackFormat::bsr(r, c));
    }
  }
  all.push_back(PackFormat::bitmask());
  all.push_back(PackFormat::csr());
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const int64_t rows = seed % 2 ? 32 : 24, cols = seed % 3 ? 64 : 48;
    const double density = 0.05 * static_cast<double>(seed * seed);
    std::mt19937_64 rng(seed);
    const Tensor w = make_weight(rows, cols, seed % 2 ? DType::f32 : DType::bf16, seed, [&](int64_t, int64_t) {
      return static_cast<double>(rng() >> 11) * 0x1.0p-53 < density;
    });
    int64_t best = std::numeric_limits<int64_t>::max();
    for (const PackFormat& f : all) {
      try {
        best = std::min(best, pack(w, f).bytes());
      } catch (const Error&) {
        // the pattern does not fit f
      }
    }
    const PackedTensor p = pack(w, PackFormat::automatic());
    EXPECT_EQ(p.bytes(), best) << "seed " << seed << " chose " << p.format().to_string();
    EXPECT_TRUE(bitwise_equal(p.unpack(), w));
  }
}

TEST(PackedTensor, RefusalsNameTheFirstOffendingRowAndColumn) {
  Tensor w = Tensor::zeros({3, 8});
  w.set({1, 4}, 1.0);
  w.set({1, 5}, 2.0);
  w.set({1, 6}, 3.0);
  EXPECT_SPARSITY_ERROR(pack(w, PackFormat::nm(2, 4)), InvalidArgument, "sparse-24-bitmask", "row 1, column 6",
                        "3rd kept element", "columns 4..7");
  // -0.0 counts as kept when packing from zeros.
  Tensor z = Tensor::zeros({2, 4});
  z.set({0, 0}, -0.0);
  z.set({0, 1}, 1.0);
  EXPECT_SPARSITY_ERROR(pack(z, PackFormat::nm(1, 4)), InvalidArgument, "row 0, column 1", "2nd");
  EXPECT_SPARSITY_ERROR(pack(Tensor::zeros({2, 10}), PackFormat::nm(2, 4)), InvalidArgument, "10 columns",
                        "multiple of 4", "row 0, column 8");
  EXPECT_SPARSITY_ERROR(pack(Tensor::zeros({6, 8}), PackFormat::bsr(4, 1)), InvalidArgument, "bsr4x1",
                        "rows 4..5", "row 4, column 0");
  EXPECT_SPARSITY_ERROR(pack(Tensor::zeros({8, 10}), PackFormat::bsr(1, 4)), InvalidArgument, "columns 8..9",
                        "row 0, column 8");
  EXPECT_SPARSITY_ERROR(pack(Tensor::zeros({2, 3, 4}), PackFormat::csr()), InvalidArgument, "2-D", "[2, 3, 4]");
  EXPECT_SPARSITY_ERROR(pack(Tensor::zeros({2, 4}, DType::f64), PackFormat::csr()), InvalidArgument, "f64");
  EXPECT_SPARSITY_ERROR(pack(Tensor(), PackFormat::csr()), InvalidArgument, "undefined");
  EXPECT_SPARSITY_ERROR(pack(Tensor::zeros({2, 4}), PackFormat::csr(), Tensor::ones({4, 2})), InvalidArgument,
                        "mask of shape [4, 2]", "[2, 4]");
  EXPECT_SPARSITY_ERROR(PackedTensor().unpack(), FailedPrecondition, "undefined");
}

// A float mask: -0.0 does not keep, NaN does; the elements outside it unpack as +0.0 and a kept -0.0
// stays -0.0.
TEST(PackedTensor, MaskKeepsNonZeroEntriesAndDropsTheRest) {
  Tensor w = Tensor::from_values({1.0, -2.0, 3.0, -0.0, 5.0, 6.0, 7.0, 8.0}, {2, 4});
  Tensor m = Tensor::from_values({1.0, -0.0, kNaN, 1.0, 0.0, 0.0, 1.0, 2.0}, {2, 4});
  const std::vector<double> want = {1.0, 0.0, 3.0, -0.0, 0.0, 0.0, 7.0, 8.0};
  for (const PackFormat& f : {PackFormat::bitmask(), PackFormat::csr(), PackFormat::bsr(2, 2), PackFormat::nm(3, 4)}) {
    const Tensor back = pack(w, f, m).unpack();
    for (int64_t i = 0; i < 8; ++i) {
      EXPECT_EQ(back.get_flat(i), want[static_cast<size_t>(i)]) << f.to_string() << " " << i;
      EXPECT_EQ(std::signbit(back.get_flat(i)), std::signbit(want[static_cast<size_t>(i)])) << f.to_string() << " " << i;
    }
  }
  // Row 0 keeps columns 0, 2 and 3 (the -0.0): 2:4 overflows at column 3.
  EXPECT_SPARSITY_ERROR(pack(w, PackFormat::nm(2, 4), m), InvalidArgument, "row 0, column 3", "3rd");
  // A bool mask keeping one element per group fits 1:4.
  const Tensor one = Tensor::from_values({0, 1, 0, 0, 0, 0, 0, 1}, {2, 4}, DType::bool_);
  const Tensor b = pack(w, PackFormat::nm(1, 4), one).unpack();
  EXPECT_EQ(b.to_vector(), (std::vector<double>{0, -2, 0, 0, 0, 0, 0, 8}));
}

NamedList<Tensor> replace(NamedList<Tensor> parts, const std::string& name, const Tensor& t) {
  for (auto& [n, v] : parts) {
    if (n == name) v = t;
  }
  return parts;
}

NamedList<Tensor> without(NamedList<Tensor> parts, const std::string& name) {
  NamedList<Tensor> out;
  for (auto& [n, v] : parts) {
    if (n != name) out.emplace_back(n, v);
  }
  return out;
}

TEST(PackedTensor, FromPartsRefusesWhatDoesNotMatchNamingThePart) {
  Tensor w = Tensor::zeros({3, 10});
  w.set({0, 1}, 1.5);
  w.set({2, 3}, 3.0);
  w.set({2, 9}, 4.0);
  const PackFormat bm = PackFormat::bitmask();
  const NamedList<Tensor> parts = pack(w, bm).parts();
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(bm, without(parts, "bitmask")), NotFound, "'bitmask'", "missing");
  NamedList<Tensor> extra = parts;
  extra.emplace_back("mask", Tensor::zeros({1}));
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(bm, extra), InvalidArgument, "'mask'", "row_offsets");
  NamedList<Tensor> twice = parts;
  twice.emplace_back("shape", parts[0].second);
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(bm, twice), InvalidArgument, "'shape'", "twice");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(bm, replace(parts, "compressed", Tensor::zeros({3}, DType::i32))),
                        InvalidArgument, "'compressed'", "i32");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(bm, replace(parts, "bitmask", Tensor::zeros({3, 1}, DType::u8))),
                        InvalidArgument, "'bitmask'", "[3, 1]", "[3, 2]");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(bm, replace(parts, "shape", Tensor::from_values({3, 10}, DType::i32))),
                        InvalidArgument, "'shape'", "i32");
  EXPECT_SPARSITY_ERROR(
      PackedTensor::from_parts(bm, replace(parts, "row_offsets", Tensor::from_values({1, 1, 1}, DType::i64))),
      InvalidArgument, "'row_offsets'", "entry 0 is 1, expected 0");
  EXPECT_SPARSITY_ERROR(
      PackedTensor::from_parts(bm, replace(parts, "row_offsets", Tensor::from_values({0, 1, 3}, DType::i64))),
      InvalidArgument, "'row_offsets'", "entry 2 is 3, expected 1");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(bm, replace(parts, "compressed", Tensor::zeros({4}))),
                        InvalidArgument, "'compressed'", "4 values for 3 set bits");
  Tensor bits = parts[2].second.clone();
  static_cast<uint8_t*>(bits.mutable_data_ptr())[1] |= 0x80;  // row 0, column 15 of 10
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(bm, replace(parts, "bitmask", bits)), InvalidArgument, "'bitmask'",
                        "row 0", "past the last column (9)");
  // The same bytes pass when only shapes are checked.
  EXPECT_NO_THROW(PackedTensor::from_parts(bm, replace(parts, "bitmask", bits), PackedTensor::Check::shapes));
  // N:M: every group exactly n bits.
  Tensor two = Tensor::zeros({2, 8});
  two.set({0, 0}, 1.0);
  const NamedList<Tensor> nm = pack(two, PackFormat::nm(2, 4)).parts();
  Tensor nm_bits = nm[2].second.clone();
  static_cast<uint8_t*>(nm_bits.mutable_data_ptr())[1] = 0x07;  // row 1, group 0: three bits
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(PackFormat::nm(2, 4), replace(nm, "bitmask", nm_bits)),
                        InvalidArgument, "'bitmask'", "row 1, columns 0..3 hold 3 set bits", "exactly 2");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(PackFormat::nm(2, 4), replace(nm, "compressed", Tensor::zeros({2, 3}))),
                        InvalidArgument, "'compressed'", "[2, 4]");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(PackFormat::nm(3, 8), nm), InvalidArgument, "nm3of8", "'compressed'",
                        "[2, 3]");
  // csr: pointers and columns.
  const PackFormat csr = PackFormat::csr();
  const NamedList<Tensor> cp = pack(w, csr).parts();  // values at (0,1), (2,3), (2,9); crow 0 1 1 3
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(csr, replace(cp, "crow_indices", Tensor::from_values({0, 2, 1, 3}, DType::u8))),
                        InvalidArgument, "'crow_indices'", "entry 2 is 1, below entry 1 (2)");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(csr, replace(cp, "crow_indices", Tensor::from_values({1, 1, 1, 3}, DType::u8))),
                        InvalidArgument, "'crow_indices'", "entry 0 is 1, expected 0");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(csr, replace(cp, "crow_indices", Tensor::from_values({0, 1, 1, 2}, DType::u8))),
                        InvalidArgument, "'crow_indices'", "last entry is 2, expected 3");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(csr, replace(cp, "col_indices", Tensor::from_values({1, 3, 10}, DType::u8))),
                        InvalidArgument, "'col_indices'", "entry 2 (row 2) is 10, outside [0, 10)");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(csr, replace(cp, "col_indices", Tensor::from_values({1, 9, 3}, DType::u8))),
                        InvalidArgument, "'col_indices'", "entry 2 (row 2) is 3, not above");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(csr, replace(cp, "col_indices", Tensor::from_values({1, 3, 9}, DType::i64))),
                        InvalidArgument, "'col_indices'", "i64");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(PackFormat::bsr(2, 2), cp), InvalidArgument, "bsr2x2", "'shape'",
                        "do not tile [3, 10]");
  EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(PackFormat::automatic(), cp), InvalidArgument, "auto");
  // Parts checked for shapes only may hold anything: unpack and the kernels clamp every offset and
  // index, so they stay inside the parts (run under ASan by the sanitizer build).
  NamedList<Tensor> bad = replace(cp, "crow_indices", Tensor::from_values({0, 200, 1, 3}, DType::u8));
  bad = replace(bad, "col_indices", Tensor::from_values({250, 3, 9}, DType::u8));
  const PackedTensor loose = PackedTensor::from_parts(csr, bad, PackedTensor::Check::shapes);
  EXPECT_EQ(loose.unpack().shape(), (Shape{3, 10}));
  std::vector<float> x(10, 1.0f), y(3);
  kernels::sparse_linear(loose.kernel_weight(), x.data(), 1, 10, nullptr, y.data(), 3);
  // A weight without columns has no column to clamp an index to: stored values are refused even when
  // only shapes are checked (a fuzzed file once reached a write outside the dense tensor this way).
  for (const PackFormat& f : {PackFormat::csr(), PackFormat::bsr(1, 2)}) {
    const bool bsr = f.layout() == kernels::SparseLayout::bsr;
    const NamedList<Tensor> no_cols = {{"shape", Tensor::from_values({4, 0}, DType::i64)},
                                       {"compressed", bsr ? Tensor::zeros({2, 1, 2}) : Tensor::zeros({2})},
                                       {"col_indices", Tensor::from_values({0, 0}, DType::u8)},
                                       {"crow_indices", Tensor::from_values({0, 1, 1, 2, 2}, DType::u8)}};
    EXPECT_SPARSITY_ERROR(PackedTensor::from_parts(f, no_cols, PackedTensor::Check::shapes), InvalidArgument,
                          "'compressed'", "no columns");
  }
  const NamedList<Tensor> empty = {{"shape", Tensor::from_values({4, 0}, DType::i64)},
                                   {"compressed", Tensor::zeros({0})},
                                   {"col_indices", Tensor::zeros({0}, DType::u8)},
                                   {"crow_indices", Tensor::zeros({5}, DType::u8)}};
  EXPECT_EQ(PackedTensor::from_parts(csr, empty).unpack().shape(), (Shape{4, 0}));
}

// A kept -0.0, NaN and infinities survive every layout, and the dense rows the kernels see through
// kernel_weight() are the packed ones.
TEST(PackedTensor, KernelWeightDescribesTheParts) {
  const Tensor w = weight_for(PackFormat::bsr(4, 4), 8, 16, DType::f16, 5);
  const PackedTensor p = pack(w, PackFormat::bsr(4, 4));
  const kernels::SparseWeight k = p.kernel_weight();
  EXPECT_EQ(k.layout, kernels::SparseLayout::bsr);
  EXPECT_EQ(k.dtype, DType::f16);
  EXPECT_EQ(k.rows, 8);
  EXPECT_EQ(k.cols, 16);
  EXPECT_EQ(k.block_rows, 4);
  EXPECT_EQ(k.block_cols, 4);
  EXPECT_EQ(k.nnz, p.nnz());
  EXPECT_EQ(k.values, p.part("compressed").data_ptr());
  EXPECT_EQ(k.indices, p.part("col_indices").data_ptr());
  EXPECT_EQ(k.indices_dtype, p.part("col_indices").dtype());
  EXPECT_EQ(k.offsets, p.part("crow_indices").data_ptr());
}

}  // namespace
}  // namespace sparsity
