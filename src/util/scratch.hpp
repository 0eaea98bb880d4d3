// Grow-only scratch buffers: repeated calls reuse memory (no zero fill, no page faults after the first).
#pragma once

#include <cstddef>
#include <memory>

namespace sparsity::detail {

/// At least `n` elements of `buf`, reallocated (uninitialised) only when `cap` is smaller.
template <class T>
T* grow_scratch(std::unique_ptr<T[]>& buf, size_t& cap, size_t n) {
  if (n > cap) {
    buf.reset(new T[n]);
    cap = n;
  }
  return buf.get();
}

}  // namespace sparsity::detail
