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
    if (map_bytes_ != 0) {
      ::munmap(map_, map_bytes_);
    } else {
      delete[] data_;
    }
#else
    delete[] data_;
#endif
    data_ = nullptr;
    map_ = nullptr;
    map_bytes_ = 0;
    cap_ = 0;
  }

 private:
  void allocate(size_t n) {
#ifdef __linux__
    constexpr size_t kHuge = size_t{2} << 20;
    if (n * sizeof(T) >= kHuge / 2) {
      // Over-map by one huge page so the buffer can start on a 2 MiB boundary.
      const size_t bytes = (n * sizeof(T) + kHuge - 1) / kHuge * kHuge + kHuge;
      void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) throw std::bad_alloc();
      const uintptr_t aligned = (reinterpret_cast<uintptr_t>(m) + kHuge - 1) / kHuge * kHuge;
      (void)::madvise(reinterpret_cast<void*>(aligned), bytes - kHuge, MADV_HUGEPAGE);  // advice only
      map_ = m;
      map_bytes_ = bytes;
      data_ = reinterpret_cast<T*>(aligned);
      cap_ = n;
      return;
    }
#endif
    data_ = new T[n];
    cap_ = n;
  }

  T* data_ = nullptr;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  size_t cap_ = 0;
};

}  // namespace sparsity::detail
