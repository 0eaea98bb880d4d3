// Dispatch: ISA names, availability, forcing and restoring an ISA, thread count, and identical masks for
// every ISA and thread count on a WeightNorm-style selection.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <random>
#include <vector>

#include "kernels/dispatch.hpp"
#include "sparsity/kernels/kernels.hpp"
#include "test_util.hpp"

namespace sparsity::kernels {
namespace {

TEST(Dispatch, NamesRoundTrip) {
  for (Isa isa : {Isa::scalar, Isa::sse2, Isa::avx2, Isa::avx512}) EXPECT_EQ(isa_from_string(to_string(isa)), isa);
  EXPECT_STREQ(to_string(Isa::avx512), "avx512");
  EXPECT_SPARSITY_ERROR(isa_from_string("neon"), InvalidArgument, "neon");
}

TEST(Dispatch, ScalarFirstAndDefaultIsBest) {
  const std::vector<Isa> isas = available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::scalar);
  for (size_t i = 1; i < isas.size(); ++i) EXPECT_LT(static_cast<int>(isas[i - 1]), static_cast<int>(isas[i]));
  for (Isa isa : isas) EXPECT_TRUE(isa_available(isa));
  reset_isa();
  if (std::getenv("SPARSITY_ISA") == nullptr) EXPECT_EQ(active_isa(), isas.back());
  EXPECT_EQ(active_table().isa, active_isa());
}

// Also run by ctest with SPARSITY_ISA=scalar, =sse2 and =bogus (tests/kernels_env.cmake).
TEST(Dispatch, ActiveIsaFollowsEnvironment) {
  reset_isa();
  const char* env = std::getenv("SPARSITY_ISA");
  if (env == nullptr || *env == '\0') {
    EXPECT_EQ(active_isa(), available_isas().back());
    return;
  }
  const std::string name(env);
  if (name == "scalar" || name == "sse2" || name == "avx2" || name == "avx512") {
    const Isa wanted = isa_from_string(name);
    if (isa_available(wanted)) {
      EXPECT_EQ(active_isa(), wanted);
      ScopedIsaOverride force(Isa::scalar);  // set_isa still wins over the environment
      EXPECT_EQ(active_isa(), Isa::scalar);
    } else {
      EXPECT_SPARSITY_ERROR(active_isa(), FailedPrecondition, name);
    }
  } else {
    EXPECT_SPARSITY_ERROR(active_isa(), InvalidArgument, "SPARSITY_ISA", name);
  }
}

TEST(Dispatch, EveryTableIsComplete) {
  for (Isa isa : available_isas()) {
    const KernelTable& t = table_for(isa);
    EXPECT_EQ(t.isa, isa);
    for (int i = 0; i < 3; ++i) {
      EXPECT_NE(t.apply_bytes[i], nullptr);
      EXPECT_NE(t.apply_bits[i], nullptr);
      EXPECT_NE(t.apply_float[i], nullptr);
    }
    for (int i = 0; i < 4; ++i) {
      EXPECT_NE(t.block_scores[i], nullptr);
      EXPECT_NE(t.bytes_to_mask[i], nullptr);
      EXPECT_NE(t.mask_to_bytes[i], nullptr);
    }
    EXPECT_NE(t.select_f32, nullptr);
    EXPECT_NE(t.select_f64, nullptr);
    EXPECT_NE(t.tile_smallest[0], nullptr);
    EXPECT_NE(t.tile_smallest[1], nullptr);
    EXPECT_NE(t.count_bytes, nullptr);
    EXPECT_NE(t.count_bits, nullptr);
    EXPECT_NE(t.bytes_to_bits, nullptr);
    EXPECT_NE(t.bits_to_bytes, nullptr);
  }
}

TEST(Dispatch, ScopedOverrideForcesAndRestores) {
  reset_isa();
  const Isa before = active_isa();
  {
    ScopedIsaOverride outer(Isa::scalar);
    EXPECT_EQ(active_isa(), Isa::scalar);
    EXPECT_EQ(active_table().isa, Isa::scalar);
    {
      ScopedIsaOverride inner(available_isas().back());
      EXPECT_EQ(active_isa(), available_isas().back());
    }
    EXPECT_EQ(active_isa(), Isa::scalar);
  }
  EXPECT_EQ(active_isa(), before);
  set_isa(Isa::scalar);
  EXPECT_EQ(active_isa(), Isa::scalar);
  reset_isa();
  EXPECT_EQ(active_isa(), before);
}

TEST(Dispatch, SetIsaFollowsAvailability) {
  for (Isa isa : {Isa::scalar, Isa::sse2, Isa::avx2, Isa::avx512}) {
    if (isa_available(isa)) {
      ScopedIsaOverride force(isa);
      EXPECT_EQ(active_isa(), isa);
    } else {
      EXPECT_SPARSITY_ERROR(set_isa(isa), FailedPrecondition, to_string(isa));
      EXPECT_SPARSITY_ERROR(table_for(isa), FailedPrecondition, to_string(isa));
    }
  }
  EXPECT_TRUE(isa_available(Isa::scalar));
  EXPECT_FALSE(isa_available(static_cast<Isa>(7)));
}

TEST(Dispatch, ThreadCount) {
  const int saved = num_threads();
  EXPECT_GE(saved, 1);
  set_num_threads(2);
#ifdef _OPENMP  // the library links OpenMP publicly, so its flags reach this file too
  EXPECT_EQ(num_threads(), 2);
#else
  EXPECT_EQ(num_threads(), 1);
#endif
  EXPECT_SPARSITY_ERROR(set_num_threads(0), InvalidArgument, "0");
  set_num_threads(saved);
}

// WeightNorm-style pipeline on 1000 x 1000: 1 x 4 block L2 scores -> prune half the blocks -> 2:4 inside
// pruned blocks; plus 8 x 8 L1 blocks. Heavy ties (quantised weights) and a few NaNs.
std::vector<uint8_t> weight_norm_masks() {
  const int64_t rows = 1000, cols = 1000;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  std::mt19937_64 rng(2024);
  for (auto& v : w) {
    const uint64_t r = rng();
    v = (r % 1000 == 0) ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(static_cast<int>(r % 17) - 8) / 4;
  }
  std::vector<uint8_t> out;
  for (auto [br, bc, norm] : {std::tuple<int64_t, int64_t, Norm>{1, 4, Norm::L2}, {8, 8, Norm::L1}}) {
    const int64_t tr = (rows + br - 1) / br, tc = (cols + bc - 1) / bc;
    std::vector<float> scores(static_cast<size_t>(tr * tc));
    block_scores(DType::f32, w.data(), rows, cols, cols, br, bc, norm, scores.data());
    std::vector<uint8_t> selected(scores.size());
    select_k_smallest_f32(scores.data(), scores.size(), scores.size() / 2, selected.data());
    std::vector<float> elem(w.size());
    for (size_t i = 0; i < w.size(); ++i) elem[i] = w[i] * w[i];
    std::vector<uint8_t> pruned(w.size());
    tile_smallest(elem.data(), /*f64=*/false, rows, cols, cols, br, bc, br * bc / 2, pruned.data());
    std::vector<uint8_t> keep(w.size());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const size_t i = static_cast<size_t>(r * cols + c);
        keep[i] = !(selected[static_cast<size_t>((r / br) * tc + c / bc)] && pruned[i]);
      }
    }
    std::vector<uint8_t> bits((keep.size() + 7) / 8);
    bytes_to_bits(keep.data(), keep.size(), bits.data());
    std::vector<float> applied(w.size());
    apply_mask_bits(DType::f32, w.data(), bits.data(), applied.data(), w.size());
    out.insert(out.end(), keep.begin(), keep.end());
    const auto* ab = reinterpret_cast<const uint8_t*>(applied.data());
    out.insert(out.end(), ab, ab + applied.size() * 4);
    out.push_back(static_cast<uint8_t>(count_kept_bytes(keep.data(), keep.size()) & 0xff));
  }
  return out;
}

TEST(Dispatch, EveryIsaAndThreadCountGivesIdenticalMasks) {
  const int saved = num_threads();
  std::vector<uint8_t> expected;
  {
    ScopedIsaOverride scalar(Isa::scalar);
    set_num_threads(1);
    expected = weight_norm_masks();
  }
  // The selection must prune something and keep something.
  size_t kept = 0;
  for (size_t i = 0; i < 1000 * 1000; ++i) kept += expected[i];
  EXPECT_GT(kept, 500000u);
  EXPECT_LT(kept, 1000000u);
  for (Isa isa : available_isas()) {
    for (int threads : {1, 2}) {
      ScopedIsaOverride force(isa);
      set_num_threads(threads);
      const std::vector<uint8_t> got = weight_norm_masks();
      EXPECT_TRUE(got == expected) << "ISA " << to_string(isa) << ", " << threads << " threads";
    }
  }
  set_num_threads(saved);
}

TEST(Dispatch, PublicEntryPointsRejectMisuse) {
  float w[4] = {1, 2, 3, 4};
  uint8_t m[4] = {1, 0, 1, 0};
  EXPECT_SPARSITY_ERROR(apply_mask_bytes(DType::i32, w, m, w, 4), InvalidArgument, "i32");
  EXPECT_SPARSITY_ERROR(apply_mask_bytes(DType::f32, nullptr, m, w, 4), InvalidArgument, "w");
  EXPECT_SPARSITY_ERROR(block_scores(DType::f32, w, 2, 2, 1, 1, 1, Norm::L1, w), InvalidArgument, "row stride");
  EXPECT_SPARSITY_ERROR(block_scores(DType::f32, w, 2, 2, 2, 0, 1, Norm::L1, w), InvalidArgument, "block");
  EXPECT_SPARSITY_ERROR(tile_smallest(w, false, 2, 2, 2, 1, 2, 3, m), InvalidArgument, "zeros 3");
  EXPECT_SPARSITY_ERROR(count_kept_tiles(m, 2, 2, 0, 1, nullptr), InvalidArgument, "block");
}

}  // namespace
}  // namespace sparsity::kernels
