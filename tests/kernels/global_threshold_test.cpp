// Tests of GlobalThreshold: the split of a total among tensors against a plain sort of every score,
// with bounds, ties, NaN and infinities, in any feeding order and chunking, through windows that hold
// the threshold, miss it or overflow their budget.
#include "sparsity/kernels/global_threshold.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/reference.hpp"
#include "sparsity/base/error.hpp"
#include "sparsity/kernels/kernels.hpp"

namespace sparsity::kernels {
namespace {

// The split by definition: every (score, tensor, index) sorted together, then the first prefix whose
// clamped per-tensor counts add up to the total; each tensor prunes its clamped count.
std::vector<uint64_t> plain_split(const std::vector<std::vector<double>>& scores, const std::vector<GlobalTensor>& specs,
                                  uint64_t total) {
  auto key = [](double d) {
    uint64_t b;
    std::memcpy(&b, &d, 8);
    return order_key_f64(b);
  };
  std::vector<std::tuple<uint64_t, size_t, size_t>> all;
  for (size_t t = 0; t < scores.size(); ++t) {
    for (size_t i = 0; i < scores[t].size(); ++i) all.emplace_back(key(scores[t][i]), t, i);
  }
  std::sort(all.begin(), all.end());
  std::vector<uint64_t> c(scores.size(), 0);
  auto clamped = [&](const std::vector<uint64_t>& counts) {
    std::vector<uint64_t> out(counts.size());
    for (size_t t = 0; t < counts.size(); ++t) {
      out[t] = std::min(std::max(counts[t], specs[t].min_pruned), std::min(specs[t].max_pruned, specs[t].tiles));
    }
    return out;
  };
  auto sum = [](const std::vector<uint64_t>& v) {
    uint64_t s = 0;
    for (uint64_t x : v) s += x;
    return s;
  };
  if (sum(clamped(c)) >= total) return clamped(c);
  for (const auto& [k, t, i] : all) {
    ++c[t];
    if (sum(clamped(c)) >= total) return clamped(c);
  }
  return clamped(c);
}

// Scores of `tensors` tensors of different scales; `kind` 0: distinct values, 1: few values (ties),
// 2: with NaN, infinities and both zeros.
std::vector<std::vector<double>> make_scores(const std::vector<size_t>& sizes, int kind, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<std::vector<double>> out;
  for (size_t t = 0; t < sizes.size(); ++t) {
    const double scale = std::pow(3.0, static_cast<double>(t % 3)) / 2;
    std::vector<double> s(sizes[t]);
    for (double& v : s) {
      const double x = normal(rng) * scale;
      if (kind == 0) v = static_cast<float>(x * x);  // f32 values, so add_keys sees the same scores
      if (kind == 1) v = static_cast<double>(rng() % 7) * 0.25;
      if (kind == 2) {
        const double pool[] = {std::numeric_limits<double>::quiet_NaN(), INFINITY, -0.0, 0.0, -INFINITY};
        v = rng() % 5 == 0 ? pool[rng() % 5] : static_cast<float>(x);
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<uint32_t> keys32(const std::vector<double>& s) {
  std::vector<uint32_t> k(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const float f = static_cast<float>(s[i]);
    uint32_t b;
    std::memcpy(&b, &f, 4);
    k[i] = order_key_f32(b);
  }
  return k;
}

struct Outcome {
  std::vector<uint64_t> split;
  int rounds;
};

// Feeds every round: `how` 0: f64 scores whole, 1: f32 keys in chunks (tensors interleaved), 2: f32 scores
// in reverse tensor order.
Outcome run(const std::vector<std::vector<double>>& scores, const std::vector<GlobalTensor>& specs, uint64_t total,
        int how, bool with_sample, uint64_t budget) {
  GlobalThreshold g(specs, total, budget);
  if (with_sample) {
    for (size_t t = 0; t < scores.size(); ++t) {
      std::vector<double> sample;
      for (size_t i = 0; i < scores[t].size(); i += 7) sample.push_back(scores[t][i]);
      g.sample(t, sample.data(), sample.size());
    }
  }
  while (!g.done()) {
    if (how == 0) {
      for (size_t t = 0; t < scores.size(); ++t) g.add(t, scores[t].data(), scores[t].size());
    } else if (how == 1) {
      std::vector<std::vector<uint32_t>> k;
      for (const auto& s : scores) k.push_back(keys32(s));
      for (size_t off = 0;; off += 1000) {
        bool any = false;
        for (size_t t = 0; t < k.size(); ++t) {
          if (off >= k[t].size()) continue;
          any = true;
          g.add_keys(t, k[t].data() + off, std::min<size_t>(1000, k[t].size() - off));
        }
        if (!any) break;
      }
    } else {
      for (size_t t = scores.size(); t-- > 0;) {
        std::vector<float> f(scores[t].begin(), scores[t].end());
        g.add(t, f.data(), f.size());
      }
    }
    if (g.finish()) break;
    if (g.rounds() > 8) break;
  }
  Outcome r{{}, g.rounds()};
  if (!g.done()) return r;  // no split after 8 rounds: the comparison fails
  for (size_t t = 0; t < scores.size(); ++t) r.split.push_back(g.tiles_to_prune(t));
  return r;
}

TEST(GlobalThreshold, EqualsSortingEveryScoreTogether) {
  const std::vector<size_t> sizes{5000, 1200, 9000, 1};
  for (int kind = 0; kind < 3; ++kind) {
    const auto scores = make_scores(sizes, kind, 11 + static_cast<uint64_t>(kind));
    std::vector<GlobalTensor> specs;
    uint64_t all = 0;
    for (size_t n : sizes) {
      specs.push_back({n});
      all += n;
    }
    for (double level : {0.0, 0.001, 0.3, 0.5, 0.77, 0.999, 1.0}) {
      const uint64_t total = static_cast<uint64_t>(std::nearbyint(level * static_cast<double>(all)));
      const auto want = plain_split(scores, specs, total);
      for (int how = 0; how < 3; ++how) {
        for (bool sample : {true, false}) {
          for (uint64_t budget : {uint64_t{0}, uint64_t{300}}) {
            const Outcome r = run(scores, specs, total, how, sample, budget);
            EXPECT_EQ(r.split, want) << "kind " << kind << " level " << level << " how " << how << " sample "
                                     << sample << " budget " << budget << " rounds " << r.rounds;
          }
        }
      }
    }
  }
}

// A sample that describes the scores: one round. Without one, or with a small budget, more rounds.
TEST(GlobalThreshold, OneRoundWithASample) {
  const auto scores = make_scores({20000, 30000, 10000}, 0, 5);
  const std::vector<GlobalTensor> specs{{20000}, {30000}, {10000}};
  EXPECT_EQ(run(scores, specs, 30000, 1, /*with_sample=*/true, 0).rounds, 1);
  const Outcome blind = run(scores, specs, 30000, 1, /*with_sample=*/false, 1000);
  EXPECT_GT(blind.rounds, 1);
  EXPECT_EQ(blind.split, plain_split(scores, specs, 30000));
  // Half the scores equal (a sticky mask's zeros) and the total exactly there: the tie is counted, not kept.
  auto tied = scores;
  for (auto& s : tied) {
    for (size_t i = 0; i < s.size(); i += 2) s[i] = 0.0;
  }
  EXPECT_EQ(run(tied, specs, 30000, 1, true, 0).rounds, 1);
  EXPECT_EQ(run(tied, specs, 30000, 1, true, 0).split, plain_split(tied, specs, 30000));
}

// Bounds: a tensor kept above its floor or below its ceiling passes its share to the others, and the
// total stays the same.
TEST(GlobalThreshold, BoundsMoveTheShareToTheOthers) {
  // Tensor 0 holds the 4 smallest scores; tensor 1 the 4 largest.
  const std::vector<std::vector<double>> scores{{0.1, 0.2, 0.3, 0.4}, {5, 6, 7, 8}};
  EXPECT_EQ(run(scores, {{4}, {4}}, 4, 0, false, 0).split, (std::vector<uint64_t>{4, 0}));
  // At most half of tensor 0: the other two come from tensor 1, its two smallest.
  EXPECT_EQ(run(scores, {{4, 0, 2}, {4}}, 4, 0, false, 0).split, (std::vector<uint64_t>{2, 2}));
  // At least one of tensor 1.
  EXPECT_EQ(run(scores, {{4}, {4, 1}}, 4, 0, false, 0).split, (std::vector<uint64_t>{3, 1}));
  for (int kind = 0; kind < 3; ++kind) {
    const auto s = make_scores({3000, 2000, 4000}, kind, 21);
    const std::vector<GlobalTensor> specs{{3000, 100, 1200}, {2000, 0, 2000}, {4000, 2000, 3000}};
    for (uint64_t total : {uint64_t{2100}, uint64_t{4000}, uint64_t{6000}}) {
      for (int how = 0; how < 3; ++how) {
        EXPECT_EQ(run(s, specs, total, how, how != 1, how == 2 ? 200 : 0).split, plain_split(s, specs, total))
            << "kind " << kind << " total " << total << " how " << how;
      }
    }
  }
}

TEST(GlobalThreshold, Errors) {
  try {
    GlobalThreshold g({{10, 6}, {10, 6}}, 11);
    ADD_FAILURE() << "bounds above the total accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("between 12 and 20"), std::string::npos) << e.what();
  }
  GlobalThreshold g({{3}, {2}}, 2);
  const double s[] = {1, 2, 3};
  g.add(0, s, 3);
  g.add(1, s, 1);  // one score short
  try {
    g.finish();
    ADD_FAILURE() << "a short tensor accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 1 got 1 scores"), std::string::npos) << e.what();
  }
  EXPECT_THROW(g.add(5, s, 1), Error);
  // Bounds alone decide: no round needed.
  GlobalThreshold all_min({{4, 1, 3}, {4, 2, 4}}, 3);
  EXPECT_TRUE(all_min.done());
  EXPECT_EQ(all_min.tiles_to_prune(0), 1u);
  EXPECT_EQ(all_min.tiles_to_prune(1), 2u);
}

}  // namespace
}  // namespace sparsity::kernels
