// ISA detection and the kernel tables: built once, best ISA first, overridable by set_isa() and SPARSITY_ISA.
#include "kernels/dispatch.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <xsimd/xsimd.hpp>

#include "base/text.hpp"
#include "kernels/reference.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity::kernels {

namespace {

constexpr Isa kAllIsas[] = {Isa::scalar, Isa::sse2, Isa::avx2, Isa::avx512};

bool compiled_in(Isa isa) {
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::sse2: return true;
#ifdef SPARSITY_HAVE_AVX2
    case Isa::avx2: return true;
#endif
#ifdef SPARSITY_HAVE_AVX512
    case Isa::avx512: return true;
#endif
    default: return false;
  }
}

bool cpu_supports(Isa isa) {
  static const auto arch = xsimd::available_architectures();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::sse2: return arch.sse2;
    case Isa::avx2: return arch.avx2 && arch.fma3_avx2;
    case Isa::avx512:
      // xsimd reports F/CD/DQ/BW; the kernels are also compiled with VL.
      return arch.avx512f && arch.avx512bw && arch.avx512dq && __builtin_cpu_supports("avx512vl");
  }
  return false;
}

struct Tables {
  KernelTable by_isa[4];
  Tables() {
    for (Isa isa : kAllIsas) {
      KernelTable& t = by_isa[static_cast<int>(isa)];
      fill_reference(t);
      t.isa = isa;
    }
#define SPARSITY_KERNEL(family, isa) fill_##family##_##isa(by_isa[static_cast<int>(Isa::isa)]);
#include "kernels/registry.inc"
#undef SPARSITY_KERNEL
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

Isa best_isa() {
  Isa best = Isa::scalar;
  for (Isa isa : kAllIsas) {
    if (isa_available(isa)) best = isa;
  }
  return best;
}

// The ISA chosen without set_isa(): SPARSITY_ISA if set, else the best available.
Isa default_isa() {
  static const Isa isa = [] {
    const char* env = std::getenv("SPARSITY_ISA");
    if (env == nullptr || *env == '\0') return best_isa();
    Isa chosen;
    try {
      chosen = isa_from_string(env);
    } catch (const Error&) {
      SPARSITY_FAIL(InvalidArgument, "environment variable SPARSITY_ISA=", ::sparsity::detail::quote(env),
                    " is not one of scalar, sse2, avx2, avx512");
    }
    SPARSITY_CHECK(isa_available(chosen), FailedPrecondition, "SPARSITY_ISA=", ::sparsity::detail::quote(env),
                   " is not available on this CPU or build");
    return chosen;
  }();
  return isa;
}

std::atomic<int> g_forced{-1};  // -1: not forced, else static_cast<int>(Isa)
std::atomic<int> g_threads{1};

}  // namespace

const char* to_string(Isa isa) noexcept {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::sse2: return "sse2";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa isa_from_string(std::string_view name) {
  for (Isa isa : kAllIsas) {
    if (name == to_string(isa)) return isa;
  }
  SPARSITY_FAIL(InvalidArgument, "unknown ISA ", ::sparsity::detail::quote(name),
                " (expected scalar, sse2, avx2 or avx512)");
}

bool isa_available(Isa isa) noexcept {
  const int i = static_cast<int>(isa);
  if (i < 0 || i > 3) return false;
  return compiled_in(isa) && cpu_supports(isa);
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas) {
    if (isa_available(isa)) out.push_back(isa);
  }
  return out;
}

Isa active_isa() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  return forced >= 0 ? static_cast<Isa>(forced) : default_isa();
}

void set_isa(Isa isa) {
  SPARSITY_CHECK(isa_available(isa), FailedPrecondition, "ISA ", ::sparsity::detail::quote(to_string(isa)),
                 " is not available on this CPU or build");
  g_forced.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void reset_isa() { g_forced.store(-1, std::memory_order_relaxed); }

ScopedIsaOverride::ScopedIsaOverride(Isa isa)
    : previous_(static_cast<Isa>(std::max(g_forced.load(), 0))), was_forced_(g_forced.load() >= 0) {
  set_isa(isa);
}

ScopedIsaOverride::~ScopedIsaOverride() {
  if (was_forced_) {
    g_forced.store(static_cast<int>(previous_));
  } else {
    reset_isa();
  }
}

void set_num_threads(int threads) {
  SPARSITY_CHECK(threads >= 1, InvalidArgument, "thread count must be at least 1, got ", threads);
#ifdef SPARSITY_HAVE_OPENMP
  g_threads.store(threads, std::memory_order_relaxed);
#endif
}

int num_threads() noexcept { return g_threads.load(std::memory_order_relaxed); }

const KernelTable& table_for(Isa isa) {
  SPARSITY_CHECK(isa_available(isa), FailedPrecondition, "ISA ", ::sparsity::detail::quote(to_string(isa)),
                 " is not available on this CPU or build");
  return tables().by_isa[static_cast<int>(isa)];
}

const KernelTable& active_table() { return tables().by_isa[static_cast<int>(active_isa())]; }

}  // namespace sparsity::kernels
