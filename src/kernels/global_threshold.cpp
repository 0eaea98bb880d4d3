// GlobalThreshold: streaming rounds (a window of candidate keys around a sampled estimate, histogram
// rounds when it misses), then the walk that splits the total among tensors under their bounds.
#include "sparsity/kernels/global_threshold.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "base/scratch.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/fused.hpp"
#include "kernels/reference.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity::kernels {

namespace {

constexpr uint64_t kMax = ~uint64_t{0};
constexpr int kHistogramBits = 16;

// Order keys of f64 values (every score is compared as a double: f32 scores convert exactly).
uint64_t key_of(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return order_key_f64(b);
}

uint64_t widen_key(uint32_t k) { return widen_key_f32(k); }
uint64_t first_key32_at_least(uint64_t v) { return first_key_f32_at_least(v); }

// clamp(c, lo, hi) grows by one from c to c + 1 iff lo <= c < hi.
uint64_t clamp_count(uint64_t c, uint64_t lo, uint64_t hi) { return std::min(std::max(c, lo), hi); }

}  // namespace

struct GlobalThreshold::State {
  enum class Phase { collect, histogram };
  struct Tensor {
    GlobalTensor spec;
    std::vector<uint64_t> sample;
    uint64_t seen = 0, below = 0, heavy = 0;
    // The window's keys: those of f32 scores as 32-bit keys (the usual case: a radix select finds the
    // threshold among them), the others as 64-bit keys.
    std::vector<uint32_t> candidates32;
    std::vector<uint64_t> candidates;
    std::vector<uint64_t> histogram;
  };
  std::vector<Tensor> tensors;
  uint64_t total = 0, budget = 0;
  bool bounded = false;
  // The round: collect keys in [lo, hi] (counting those equal to `heavy`), or count them per bucket of
  // 2^shift keys from lo.
  Phase phase = Phase::collect;
  uint64_t lo = 0, hi = kMax;
  bool has_heavy = false;
  uint64_t heavy = 0;
  int shift = 0;
  bool started = false, overflow = false, finished = false;
  uint64_t collected = 0;
  int rounds = 0;
  detail::Scratch<uint32_t> scratch;  // the bracket kernel's copies of 32-bit candidate keys
  std::vector<uint64_t> result;
  // When every share is "keys below `threshold` and the first ties[t] equal to it" (no bound binds).
  bool shared = false;
  uint64_t threshold = 0;
  std::vector<uint64_t> ties;

  Tensor& at(size_t t, const char* what) {
    SPARSITY_CHECK(t < tensors.size(), OutOfRange, "GlobalThreshold::", what, ": tensor ", t, " of ",
                   tensors.size());
    SPARSITY_CHECK(!finished, FailedPrecondition, "GlobalThreshold::", what, ": the split is already known");
    return tensors[t];
  }

  void start() {
    if (started) return;
    started = true;
    window_from_samples();
  }

  // The first window: where the sampled estimate of the pruned count crosses `total`, widened by six
  // standard deviations of that estimate; the sampled key held by most samples inside it, when it holds
  // more than 1/64 of them, is counted rather than collected.
  void window_from_samples() {
    std::vector<std::pair<uint64_t, uint32_t>> all;  // (key, tensor)
    double variance = 0;
    for (size_t t = 0; t < tensors.size(); ++t) {
      const Tensor& x = tensors[t];
      if (x.sample.empty()) {
        if (x.spec.tiles > 0) return;  // a tensor without a sample: no estimate, collect everything
        continue;
      }
      const double n = static_cast<double>(x.spec.tiles), s = static_cast<double>(x.sample.size());
      variance += n * n * 0.25 / s;
      for (uint64_t k : x.sample) all.push_back({k, static_cast<uint32_t>(t)});
    }
    if (all.empty()) return;
    std::sort(all.begin(), all.end());
    const double spread = 6.0 * std::sqrt(variance) + 16.0;
    const double target_lo = static_cast<double>(total) - spread, target_hi = static_cast<double>(total) + spread;
    // The estimated pruned count below each sampled key: every sample stands for tiles / samples tiles
    // of its tensor, clamped by the tensor's bounds (kept up to date one tensor at a time).
    std::vector<double> estimate(tensors.size(), 0.0);
    auto clamped = [&](size_t t) {
      const GlobalTensor& g = tensors[t].spec;
      return std::min(std::max(estimate[t], static_cast<double>(g.min_pruned)), static_cast<double>(g.max_pruned));
    };
    double f = 0;
    for (size_t t = 0; t < tensors.size(); ++t) f += clamped(t);
    uint64_t new_lo = 0, new_hi = kMax;
    bool lo_set = f >= target_lo;
    for (size_t i = 0; i < all.size(); ++i) {
      const size_t t = all[i].second;
      const Tensor& x = tensors[t];
      f -= clamped(t);
      estimate[t] += static_cast<double>(x.spec.tiles) / static_cast<double>(x.sample.size());
      f += clamped(t);
      if (!lo_set && f >= target_lo) {
        new_lo = all[i].first;
        lo_set = true;
      }
      if (f >= target_hi) {
        new_hi = all[i].first;
        break;
      }
    }
    lo = new_lo;
    hi = new_hi;
    // The heaviest sampled key inside the window.
    size_t best = 0;
    for (size_t i = 0; i < all.size();) {
      size_t j = i;
      while (j < all.size() && all[j].first == all[i].first) ++j;
      if (all[i].first >= lo && all[i].first <= hi && j - i > best) {
        best = j - i;
        heavy = all[i].first;
      }
      i = j;
    }
    has_heavy = best * 64 >= all.size();
  }

  void begin_round(Phase p) {
    phase = p;
    overflow = false;
    collected = 0;
    for (Tensor& x : tensors) {
      x.seen = x.below = x.heavy = 0;
      x.candidates.clear();
      x.candidates.shrink_to_fit();
      x.candidates32.clear();
      x.candidates32.shrink_to_fit();
      x.histogram.clear();
      x.histogram.shrink_to_fit();
    }
  }

  // ---- feeding ------------------------------------------------------------------------------------

  void add_key(Tensor& x, uint64_t k) {
    if (k < lo) {
      ++x.below;
    } else if (k <= hi) {
      if (phase == Phase::histogram) {
        if (x.histogram.empty()) x.histogram.assign(size_t{1} << kHistogramBits, 0);
        ++x.histogram[static_cast<size_t>((k - lo) >> shift)];
      } else if (has_heavy && k == heavy) {
        ++x.heavy;
      } else if (!overflow) {
        if (collected == budget) {
          overflow = true;
        } else {
          x.candidates.push_back(k);
          ++collected;
        }
      }
    }
  }

  // A collecting round over its budget only counts the scores (the next round is a histogram one).
  bool skipping() const { return phase == Phase::collect && overflow; }

  void add_keys32(Tensor& x, const uint32_t* keys, size_t n) {
    if (skipping()) return;
    if (phase == Phase::histogram) {
      for (size_t i = 0; i < n; ++i) add_key(x, widen_key(keys[i]));
      return;
    }
    // The window in the 32-bit key space (exact: widening keeps the order); one SIMD pass counts the keys
    // below it and the heavy key, and copies the few inside.
    const uint64_t lo32 = first_key32_at_least(lo);
    const uint64_t end32 = hi == kMax ? uint64_t{1} << 32 : first_key32_at_least(hi + 1);
    if (lo32 >= end32) {  // no 32-bit key inside the window: only the count below it
      if (lo32 >= (uint64_t{1} << 32)) {
        x.below += n;
      } else {
        for (size_t i = 0; i < n; ++i) x.below += keys[i] < lo32;
      }
      return;
    }
    // The heavy key, when it is an f32 score's key.
    const uint64_t heavy_at = has_heavy ? first_key32_at_least(heavy) : end32;
    const uint32_t heavy32 = static_cast<uint32_t>(heavy_at);
    const bool heavy_here = heavy_at < end32 && widen_key(heavy32) == heavy;
    const size_t room = static_cast<size_t>(std::min<uint64_t>(budget - collected, n));
    uint32_t* out = scratch.get(room + 1);
    size_t below = 0, equal = 0;
    const size_t m = active_table().flat_bracket(keys, n, static_cast<uint32_t>(lo32), static_cast<uint32_t>(end32 - 1),
                                                 heavy_here ? &heavy32 : nullptr, out, room, &below, &equal);
    if (m > room) {
      // Over the budget: the counts of this call are incomplete, but an overflowing round only leads to a
      // histogram round, which needs none of them.
      overflow = true;
      return;
    }
    x.below += below;
    x.heavy += equal;
    x.candidates32.insert(x.candidates32.end(), out, out + m);
    collected += m;
  }

  // ---- ending a round -----------------------------------------------------------------------------

  void check_counts() const {
    for (size_t t = 0; t < tensors.size(); ++t) {
      SPARSITY_CHECK(tensors[t].seen == tensors[t].spec.tiles, InvalidArgument, "GlobalThreshold::finish: tensor ",
                     t, " got ", tensors[t].seen, " scores in this round but has ", tensors[t].spec.tiles, " tiles");
    }
  }

  uint64_t pruned_at(const std::vector<uint64_t>& c) const {
    uint64_t f = 0;
    for (size_t t = 0; t < tensors.size(); ++t) f += clamp_count(c[t], tensors[t].spec.min_pruned, tensors[t].spec.max_pruned);
    return f;
  }

  void finish_with(const std::vector<uint64_t>& c) {
    result.resize(tensors.size());
    for (size_t t = 0; t < tensors.size(); ++t) {
      result[t] = clamp_count(c[t], tensors[t].spec.min_pruned, tensors[t].spec.max_pruned);
    }
    finished = true;
  }

  // The threshold inside the window without bounds: the r-th smallest of the window's keys (r = total
  // minus the keys below the window), found by a selection; each tensor then takes its keys below it and
  // its ties in tensor order. Returns false when the crossing is outside the window. When the counts
  // respect every tensor's bounds they are also the bounded answer (clamping can only move the crossing
  // to an earlier place with the same clamped counts).
  bool select_collected(std::vector<uint64_t>* counts, bool* outside_below) {
    uint64_t below = 0, heavy_total = 0;
    bool wide = false;
    for (const Tensor& x : tensors) {
      below += x.below;
      heavy_total += x.heavy;
      wide = wide || !x.candidates.empty();
    }
    *outside_below = below >= total;
    if (*outside_below) return false;
    const uint64_t r = total - below;  // rank of the threshold among the window's keys (1-based)
    uint64_t m = heavy_total;
    for (const Tensor& x : tensors) m += x.candidates.size() + x.candidates32.size();
    if (r > m) return false;
    // The threshold key: the heavy key, or the (r - heavy keys below it)-th of the others.
    uint64_t less_than_heavy = 0;
    if (has_heavy && heavy_total > 0) {
      for (const Tensor& x : tensors) {
        for (uint64_t k : x.candidates) less_than_heavy += k < heavy;
        for (uint32_t k : x.candidates32) less_than_heavy += widen_key(k) < heavy;
      }
    }
    uint64_t threshold;
    if (has_heavy && heavy_total > 0 && r > less_than_heavy && r <= less_than_heavy + heavy_total) {
      threshold = heavy;
    } else {
      const uint64_t rank = has_heavy && heavy_total > 0 && r > less_than_heavy ? r - heavy_total : r;
      if (!wide) {
        std::vector<uint32_t> all;
        for (const Tensor& x : tensors) all.insert(all.end(), x.candidates32.begin(), x.candidates32.end());
        threshold = widen_key(select_threshold_u32(all.data(), all.size(), static_cast<size_t>(rank)).key);
      } else {
        std::vector<uint64_t> all;
        for (const Tensor& x : tensors) {
          all.insert(all.end(), x.candidates.begin(), x.candidates.end());
          for (uint32_t k : x.candidates32) all.push_back(widen_key(k));
        }
        std::nth_element(all.begin(), all.begin() + static_cast<ptrdiff_t>(rank - 1), all.end());
        threshold = all[static_cast<size_t>(rank - 1)];
      }
    }
    // Per tensor: its keys below the threshold, then the ties in tensor order.
    std::vector<uint64_t> less(tensors.size()), ties(tensors.size());
    uint64_t taken = 0;
    // 32-bit keys compare in their own space: the threshold is some key's widening, so the first 32-bit
    // key at or above it splits them exactly.
    const uint64_t at32 = first_key32_at_least(threshold);
    const bool exact32 = at32 < (uint64_t{1} << 32) && widen_key(static_cast<uint32_t>(at32)) == threshold;
    for (size_t t = 0; t < tensors.size(); ++t) {
      const Tensor& x = tensors[t];
      for (uint64_t k : x.candidates) {
        less[t] += k < threshold;
        ties[t] += k == threshold;
      }
      for (uint32_t k : x.candidates32) {
        less[t] += k < at32;
        ties[t] += exact32 && k == at32;
      }
      if (has_heavy) {
        if (heavy < threshold) less[t] += x.heavy;
        if (heavy == threshold) ties[t] += x.heavy;
      }
      taken += x.below + less[t];
    }
    counts->assign(tensors.size(), 0);
    this->ties.assign(tensors.size(), 0);
    for (size_t t = 0; t < tensors.size(); ++t) {
      const uint64_t take = std::min(ties[t], total - taken);
      taken += take;
      (*counts)[t] = tensors[t].below + less[t] + take;
      this->ties[t] = take;
    }
    this->threshold = threshold;
    return true;
  }

  bool within_bounds(const std::vector<uint64_t>& c) const {
    for (size_t t = 0; t < tensors.size(); ++t) {
      if (c[t] < tensors[t].spec.min_pruned || c[t] > tensors[t].spec.max_pruned) return false;
    }
    return true;
  }

  // Walks the window's keys in (key, tensor) order; true when the crossing is inside it.
  bool walk_collected() {
    std::vector<uint64_t> c;
    bool outside_below = false;
    if (select_collected(&c, &outside_below) && within_bounds(c)) {
      finish_with(c);
      shared = true;
      return true;
    }
    if (!bounded && outside_below) {
      hi = lo == 0 ? 0 : lo - 1;
      lo = 0;
      return false;
    }
    if (!bounded) {
      lo = hi == kMax ? kMax : hi + 1;
      hi = kMax;
      return false;
    }
    // Bounds in play: the walk itself.
    c.assign(tensors.size(), 0);
    for (size_t t = 0; t < tensors.size(); ++t) c[t] = tensors[t].below;
    uint64_t f = pruned_at(c);
    if (f >= total) {  // the crossing is below the window
      hi = lo == 0 ? 0 : lo - 1;
      lo = 0;
      return false;
    }
    struct Group {
      uint64_t key;
      uint32_t tensor;
      uint64_t count;
    };
    std::vector<Group> groups;
    for (size_t t = 0; t < tensors.size(); ++t) {
      std::vector<uint64_t> cand = tensors[t].candidates;
      for (uint32_t k : tensors[t].candidates32) cand.push_back(widen_key(k));
      std::sort(cand.begin(), cand.end());
      for (size_t i = 0; i < cand.size();) {
        size_t j = i;
        while (j < cand.size() && cand[j] == cand[i]) ++j;
        groups.push_back({cand[i], static_cast<uint32_t>(t), j - i});
        i = j;
      }
      if (tensors[t].heavy > 0) groups.push_back({heavy, static_cast<uint32_t>(t), tensors[t].heavy});
    }
    std::sort(groups.begin(), groups.end(),
              [](const Group& a, const Group& b) { return a.key != b.key ? a.key < b.key : a.tensor < b.tensor; });
    for (const Group& g : groups) {
      const GlobalTensor& spec = tensors[g.tensor].spec;
      const uint64_t from = std::max(c[g.tensor], spec.min_pruned);
      const uint64_t to = std::min(c[g.tensor] + g.count, spec.max_pruned);
      const uint64_t grows = to > from ? to - from : 0;
      if (f + grows >= total) {
        // The crossing: this tensor takes the ties of this group up to the one that completes the total.
        c[g.tensor] = from + (total - f);
        finish_with(c);
        return true;
      }
      f += grows;
      c[g.tensor] += g.count;
    }
    // The crossing is above the window.
    lo = hi == kMax ? kMax : hi + 1;
    hi = kMax;
    return false;
  }

  // Finds the bucket of the crossing and sets up the next round: collect that bucket when it is small
  // enough (or a single key, which is only counted), else count it per finer bucket. A crossing outside
  // the counted range (after a window that overflowed) moves the range there.
  void walk_histogram() {
    const size_t buckets = size_t{1} << kHistogramBits;
    std::vector<uint64_t> c(tensors.size());
    for (size_t t = 0; t < tensors.size(); ++t) c[t] = tensors[t].below;
    uint64_t f = pruned_at(c);
    if (f >= total) {
      hi = lo - 1;  // lo > 0: with nothing below it, f would be the minimum sum, below the total
      lo = 0;
      set_histogram_range();
      return;
    }
    for (size_t b = 0; b < buckets; ++b) {
      uint64_t in_bucket = 0;
      for (size_t t = 0; t < tensors.size(); ++t) {
        if (tensors[t].histogram.empty() || tensors[t].histogram[b] == 0) continue;
        const GlobalTensor& spec = tensors[t].spec;
        const uint64_t before = clamp_count(c[t], spec.min_pruned, spec.max_pruned);
        c[t] += tensors[t].histogram[b];
        in_bucket += tensors[t].histogram[b];
        f += clamp_count(c[t], spec.min_pruned, spec.max_pruned) - before;
      }
      if (f >= total) {
        const uint64_t start = lo + (static_cast<uint64_t>(b) << shift);
        const uint64_t last = start + ((uint64_t{1} << shift) - 1);  // shift < 64: at most 2^48 buckets wide
        lo = start;
        hi = std::min(hi, last);
        if (lo == hi || in_bucket <= budget) {
          has_heavy = lo == hi;
          heavy = lo;
          begin_round(Phase::collect);
        } else {
          set_histogram_range();
        }
        return;
      }
    }
    lo = hi + 1;  // hi < kMax: every key up to kMax would make the maximum sum, at least the total
    hi = kMax;
    set_histogram_range();
  }

  void set_histogram_range() {
    const uint64_t span = hi - lo;  // keys in the range - 1
    shift = 0;
    while (shift < 64 && (span >> shift) >= (uint64_t{1} << kHistogramBits)) ++shift;
    has_heavy = false;
    begin_round(Phase::histogram);
  }

  bool finish_round() {
    start();
    check_counts();
    ++rounds;
    // Every tensor at its minimum already makes the total: nothing below any threshold is needed.
    std::vector<uint64_t> none(tensors.size(), 0);
    if (pruned_at(none) >= total) {
      finish_with(none);
      return true;
    }
    if (phase == Phase::collect) {
      if (!overflow && walk_collected()) return true;
      // Missed (the window moved to the side of the crossing) or overflowed (the window stays): count
      // that range per bucket.
      set_histogram_range();
      return false;
    }
    walk_histogram();
    return false;
  }
};

GlobalThreshold::GlobalThreshold(std::vector<GlobalTensor> tensors, uint64_t total, uint64_t budget)
    : s_(std::make_unique<State>()) {
  uint64_t min_sum = 0, max_sum = 0, largest = 0;
  for (GlobalTensor& g : tensors) {
    g.max_pruned = std::min(g.max_pruned, g.tiles);
    SPARSITY_CHECK(g.min_pruned <= g.max_pruned, InvalidArgument, "GlobalThreshold: a tensor of ", g.tiles,
                   " tiles must prune at least ", g.min_pruned, " and at most ", g.max_pruned);
    min_sum += g.min_pruned;
    max_sum += g.max_pruned;
    largest = std::max(largest, g.tiles);
    s_->bounded = s_->bounded || g.min_pruned > 0 || g.max_pruned < g.tiles;
    State::Tensor x;
    x.spec = g;
    s_->tensors.push_back(std::move(x));
  }
  SPARSITY_CHECK(total >= min_sum && total <= max_sum, InvalidArgument, "GlobalThreshold: ", total,
                 " tiles to prune, but the tensors' bounds allow between ", min_sum, " and ", max_sum);
  s_->total = total;
  s_->budget = budget == 0 ? std::max<uint64_t>(largest, 1) : budget;
  // Every tensor at its minimum, or every one at its maximum: no score decides anything.
  if (total == min_sum || total == max_sum) {
    s_->result.clear();
    for (const State::Tensor& x : s_->tensors) s_->result.push_back(total == min_sum ? x.spec.min_pruned : x.spec.max_pruned);
    s_->finished = true;
  }
}

GlobalThreshold::~GlobalThreshold() = default;
GlobalThreshold::GlobalThreshold(GlobalThreshold&&) noexcept = default;
GlobalThreshold& GlobalThreshold::operator=(GlobalThreshold&&) noexcept = default;

void GlobalThreshold::sample(size_t tensor, const double* scores, size_t count) {
  if (s_->finished) return;  // decided by the bounds: nothing to steer
  State::Tensor& x = s_->at(tensor, "sample");
  SPARSITY_CHECK(!s_->started, FailedPrecondition, "GlobalThreshold::sample: the first round has started");
  for (size_t i = 0; i < count; ++i) x.sample.push_back(key_of(scores[i]));
}

void GlobalThreshold::add(size_t tensor, const float* scores, size_t n) {
  State::Tensor& x = s_->at(tensor, "add");
  s_->start();
  x.seen += n;
  if (s_->skipping()) return;
  for (size_t i = 0; i < n; ++i) s_->add_key(x, key_of(static_cast<double>(scores[i])));
}

void GlobalThreshold::add(size_t tensor, const double* scores, size_t n) {
  State::Tensor& x = s_->at(tensor, "add");
  s_->start();
  x.seen += n;
  if (s_->skipping()) return;
  for (size_t i = 0; i < n; ++i) s_->add_key(x, key_of(scores[i]));
}

void GlobalThreshold::add_keys(size_t tensor, const uint32_t* keys, size_t n) {
  State::Tensor& x = s_->at(tensor, "add_keys");
  s_->start();
  x.seen += n;
  s_->add_keys32(x, keys, n);
}

bool GlobalThreshold::finish() {
  SPARSITY_CHECK(!s_->finished, FailedPrecondition, "GlobalThreshold::finish: the split is already known");
  return s_->finish_round();
}

bool GlobalThreshold::done() const noexcept { return s_->finished; }

uint64_t GlobalThreshold::tiles_to_prune(size_t tensor) const {
  SPARSITY_CHECK(s_->finished, FailedPrecondition, "GlobalThreshold::tiles_to_prune before the split is known");
  SPARSITY_CHECK(tensor < s_->result.size(), OutOfRange, "GlobalThreshold::tiles_to_prune: tensor ", tensor, " of ",
                 s_->result.size());
  return s_->result[tensor];
}

bool GlobalThreshold::share(size_t tensor, uint64_t* key, uint64_t* ties) const {
  SPARSITY_CHECK(s_->finished, FailedPrecondition, "GlobalThreshold::share before the split is known");
  SPARSITY_CHECK(tensor < s_->tensors.size(), OutOfRange, "GlobalThreshold::share: tensor ", tensor, " of ",
                 s_->tensors.size());
  if (!s_->shared) return false;
  *key = s_->threshold;
  *ties = s_->ties[tensor];
  return true;
}

bool GlobalThreshold::window32(uint32_t* lo, uint64_t* end, bool* has_heavy, uint32_t* heavy) const {
  if (s_->finished || s_->phase != State::Phase::collect || s_->overflow) return false;
  s_->start();
  const uint64_t lo32 = first_key32_at_least(s_->lo);
  const uint64_t end32 = s_->hi == kMax ? uint64_t{1} << 32 : first_key32_at_least(s_->hi + 1);
  if (lo32 >= end32) return false;  // no 32-bit key inside: add_keys handles it
  const uint64_t heavy_at = s_->has_heavy ? first_key32_at_least(s_->heavy) : end32;
  *lo = static_cast<uint32_t>(lo32);
  *end = end32;
  *has_heavy = heavy_at < end32 && widen_key(static_cast<uint32_t>(heavy_at)) == s_->heavy;
  *heavy = static_cast<uint32_t>(heavy_at);
  return true;
}

void GlobalThreshold::add_split(size_t tensor, uint64_t n, uint64_t below, uint64_t heavy, const uint32_t* window,
                                size_t m) {
  State::Tensor& x = s_->at(tensor, "add_split");
  s_->start();
  x.seen += n;
  if (s_->skipping()) return;
  SPARSITY_CHECK(s_->phase == State::Phase::collect, FailedPrecondition,
                 "GlobalThreshold::add_split in a round that counts per bucket");
  if (m > s_->budget - s_->collected) {
    s_->overflow = true;
    return;
  }
  x.below += below;
  x.heavy += heavy;
  x.candidates32.insert(x.candidates32.end(), window, window + m);
  s_->collected += m;
}

int GlobalThreshold::rounds() const noexcept { return s_->rounds; }

size_t GlobalThreshold::size() const noexcept { return s_->tensors.size(); }

}  // namespace sparsity::kernels
