// Grow-only scratch buffers: repeated calls reuse memory (no zero fill, no page faults after the first);
// large ones come from mmap with transparent huge pages, so their first touch costs a fault per 2 MiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace sparsity::detail {

#ifdef __linux__
/// An anonymous, zero-filled mapping whose usable part starts on a 2 MiB boundary and is advised to use
/// transparent huge pages (first touch: a fault per 2 MiB instead of per 4 KiB). `data` is null when
/// mmap fails. Release with unmap_huge().
struct HugeMapping {
  void* base = nullptr;
  size_t length = 0;
  void* data = nullptr;
};

inline HugeMapping map_huge(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  // Over-map by one huge page so the data can start on a 2 MiB boundary.
  const size_t length = (bytes + kHuge - 1) / kHuge * kHuge + kHuge;
  void* m = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return {};
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(m) + kHuge - 1) / kHuge * kHuge;
  (void)::madvise(reinterpret_cast<void*>(aligned), length - kHuge, MADV_HUGEPAGE);  // advice only
  return {m, length, reinterpret_cast<void*>(aligned)};
}

inline void unmap_huge(const HugeMapping& m) noexcept {
  if (m.base != nullptr) ::munmap(m.base, m.length);
}
#endif

/// At least `n` elements of T, uninitialised, reallocated only when the buffer is too small.
///   thread_local Scratch<float> tmp;  float* p = tmp.get(n);
template <class T>
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(); }

  T* get(size_t n) {
    if (n > cap_) {
      const size_t grown = cap_ + cap_ / 2;  // geometric growth: sizes that creep up reallocate rarely
      release();
      allocate(n > grown ? n : grown);
    }
    return data_;
  }
  /// Elements held now.
  size_t capacity() const noexcept { return cap_; }
  /// Frees the buffer.
  void release() noexcept {
    if (data_ == nullptr) return;
#ifdef __linux__
    if (map_.base != nullptr) {
      unmap_huge(map_);
    } else {
      delete[] data_;
    }
    map_ = {};
#else
    delete[] data_;
#endif
    data_ = nullptr;
    cap_ = 0;
  }

 private:
  void allocate(size_t n) {
#ifdef __linux__
    if (n * sizeof(T) >= (size_t{1} << 20)) {
      map_ = map_huge(n * sizeof(T));
      if (map_.data == nullptr) throw std::bad_alloc();
      data_ = static_cast<T*>(map_.data);
      cap_ = n;
      return;
    }
#endif
    data_ = new T[n];
    cap_ = n;
  }

  T* data_ = nullptr;
#ifdef __linux__
  HugeMapping map_;
#endif
  size_t cap_ = 0;
};

}  // namespace sparsity::detail
