// apply-mask family: out = keep ? w : +0 as a bit select on 16/32/64-bit lanes, written once for every ISA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "kernels/dispatch.hpp"
#include "kernels/simd_util.hpp"

namespace sparsity::kernels {

/// Apply-mask kernels of one ISA. Byte and bit masks become 64-bit keep words (one per 64 elements);
/// each word is broadcast and tested lane by lane, so no cross-lane shuffles are needed. The weights are
/// handled as u32 lanes (an f64 spans two lanes, two f16/bf16 share one); float masks use lanes of the
/// weight's own width. Large out-of-place outputs on 64-byte aligned memory use non-temporal stores.
template <class Arch>
struct ApplyMask {
  using B32 = xsimd::batch<uint32_t, Arch>;
  static constexpr size_t kLanes = B32::size;
  // Software prefetch distance: masked loads do not always train the hardware prefetcher.
  static constexpr size_t kPrefetchBytes = 2048;

  /// Sets the apply_bytes / apply_bits / apply_float entries of `table`.
  static void fill(KernelTable& table);

  template <class U>
  static void bytes(const void* w, const uint8_t* mask, void* out, size_t n, bool stream) {
    const size_t done = n / kMaskBatch * kMaskBatch;
    if (stream && aligned64(out)) {
      byte_groups<U, true>(static_cast<const char*>(w), mask, static_cast<char*>(out), done);
      simd::stream_fence<Arch>();
    } else {
      byte_groups<U, false>(static_cast<const char*>(w), mask, static_cast<char*>(out), done);
    }
    for (size_t i = done; i < n; ++i) copy_or_zero<U>(w, out, i, mask[i] != 0);
  }

  template <class U>
  static void bits(const void* w, const uint8_t* bits, void* out, size_t n, bool stream) {
    auto word = [bits](size_t g) { return simd::bits64_at<Arch>(bits, 64 * g); };
    run<U>(w, out, n, stream, word);
    for (size_t i = n / 64 * 64; i < n; ++i) copy_or_zero<U>(w, out, i, (bits[i / 8] >> (i % 8)) & 1u);
  }

  template <class U>
  static void floats(const void* w, const void* mask, void* out, size_t n, bool stream) {
    if (stream && aligned64(out)) {
      floats_loop<U, true>(w, mask, out, n);
      simd::stream_fence<Arch>();
    } else {
      floats_loop<U, false>(w, mask, out, n);
    }
  }

 private:
  static bool aligned64(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 63u) == 0; }

  template <class U>
  static void copy_or_zero(const void* w, void* out, size_t i, bool keep) {
    const U v = keep ? simd::load_scalar<Arch, U>(static_cast<const char*>(w) + i * sizeof(U)) : U{0};
    simd::store_scalar<Arch, U>(static_cast<char*>(out) + i * sizeof(U), v);
  }

  // Full groups of 64 elements; the caller finishes the tail.
  template <class U, class Word>
  static void run(const void* w, void* out, size_t n, bool stream, Word word) {
    if (stream && aligned64(out)) {
      groups<U, true>(static_cast<const char*>(w), static_cast<char*>(out), n / 64, word);
      simd::stream_fence<Arch>();
    } else {
      groups<U, false>(static_cast<const char*>(w), static_cast<char*>(out), n / 64, word);
    }
  }

  // Elements covered by one batch of mask bytes (4 per u32 lane).
  static constexpr size_t kMaskBatch = 4 * kLanes;

  // Lane j of data batch B (u32 lanes) of a mask batch finds its mask byte(s) in mask lane get(j).
  template <class U, size_t B>
  struct MaskLane {
    static constexpr uint32_t get(size_t j, size_t lanes) {
      return static_cast<uint32_t>(sizeof(U) == 4   ? (B * lanes + j) / 4
                                   : sizeof(U) == 8 ? (B * lanes / 2 + j / 2) / 4
                                                    : (B * lanes + j) / 2);
    }
  };

  // Byte masks: each batch of 4L mask bytes is spread over the data batches it covers with a constant
  // lane shuffle, then every lane tests its own byte.
  template <class U, bool Stream>
  static void byte_groups(const char* w, const uint8_t* mask, char* out, size_t n) {
    constexpr size_t kBatches = kMaskBatch * sizeof(U) / sizeof(B32);
    // c0[b][j] (c1: high f16 half) selects the byte of lane j of data batch b inside its mask lane.
    alignas(64) uint32_t c0[kBatches][kLanes], c1[kBatches][kLanes];
    for (size_t b = 0; b < kBatches; ++b) {
      for (size_t j = 0; j < kLanes; ++j) {
        if constexpr (sizeof(U) == 2) {
          c0[b][j] = 0xffu << (16 * (j % 2));
          c1[b][j] = 0xff00u << (16 * (j % 2));
        } else if constexpr (sizeof(U) == 4) {
          c0[b][j] = c1[b][j] = 0xffu << (8 * (j % 4));
        } else {
          c0[b][j] = c1[b][j] = 0xffu << (8 * ((b * kLanes / 2 + j / 2) % 4));
        }
      }
    }
    for (size_t i = 0; i < n; i += kMaskBatch) {
      const B32 m = B32::load_unaligned(reinterpret_cast<const uint32_t*>(mask + i));
      const char* src = w + i * sizeof(U);
      char* dst = out + i * sizeof(U);
      for (size_t line = 0; line < kMaskBatch * sizeof(U); line += 64) __builtin_prefetch(src + kPrefetchBytes + line);
      byte_batches<U, Stream>(m, src, dst, &c0[0][0], &c1[0][0], std::make_index_sequence<kBatches>{});
    }
  }

  template <class U, bool Stream, size_t... Bs>
  static void byte_batches(const B32& m, const char* src, char* dst, const uint32_t* c0, const uint32_t* c1,
                           std::index_sequence<Bs...>) {
    (byte_batch<U, Stream, Bs>(m, src, dst, c0 + Bs * B32::size, c1 + Bs * B32::size), ...);
  }

  template <class U, bool Stream, size_t B>
  static void byte_batch(const B32& m, const char* src, char* dst, const uint32_t* c0, const uint32_t* c1) {
    const B32 spread = xsimd::swizzle(m, xsimd::make_batch_constant<B32, MaskLane<U, B>>());
    const B32 zero(0u);
    const B32 v = B32::load_unaligned(reinterpret_cast<const uint32_t*>(src + B * sizeof(B32)));
    B32 r;
    if constexpr (sizeof(U) == 2) {
      r = v & (xsimd::select((spread & B32::load_aligned(c0)) != zero, B32(0x0000ffffu), zero) |
               xsimd::select((spread & B32::load_aligned(c1)) != zero, B32(0xffff0000u), zero));
    } else {
      r = xsimd::select((spread & B32::load_aligned(c0)) != zero, v, zero);
    }
    simd::store<Stream>(reinterpret_cast<uint32_t*>(dst + B * sizeof(B32)), r);
  }

  template <class U, bool Stream, class Word>
  static void groups(const char* w, char* out, size_t count, Word word) {
    constexpr size_t kGroupBytes = 64 * sizeof(U);
    constexpr size_t kBatches = kGroupBytes / sizeof(B32);
    constexpr size_t kElemsPerBatch = 64 / kBatches;
    // Lane j of batch b keeps its (part of an) element when bit c0[j] (c1[j] for the high f16 half) of
    // the batch's slice of the keep word is set.
    alignas(64) uint32_t c0[kLanes], c1[kLanes];
    for (size_t j = 0; j < kLanes; ++j) {
      if constexpr (sizeof(U) == 2) {
        c0[j] = 1u << (2 * j);
        c1[j] = 1u << (2 * j + 1);
      } else if constexpr (sizeof(U) == 4) {
        c0[j] = c1[j] = 1u << j;
      } else {
        c0[j] = c1[j] = 1u << (j / 2);
      }
    }
    const B32 k0 = B32::load_aligned(c0), k1 = B32::load_aligned(c1);
    const B32 zero(0u), low_half(0x0000ffffu), high_half(0xffff0000u);
    for (size_t g = 0; g < count; ++g) {
      const uint64_t keep = word(g);
      const char* src = w + g * kGroupBytes;
      char* dst = out + g * kGroupBytes;
      for (size_t line = 0; line < kGroupBytes; line += 64) __builtin_prefetch(src + kPrefetchBytes + line);
      for (size_t b = 0; b < kBatches; ++b) {
        const B32 slice(static_cast<uint32_t>(keep >> (b * kElemsPerBatch)));
        const B32 v = B32::load_unaligned(reinterpret_cast<const uint32_t*>(src + b * sizeof(B32)));
        B32 r;
        if constexpr (sizeof(U) == 2) {
          r = v & (xsimd::select((slice & k0) != zero, low_half, zero) |
                   xsimd::select((slice & k1) != zero, high_half, zero));
        } else {
          r = xsimd::select((slice & k0) != zero, v, zero);
        }
        simd::store<Stream>(reinterpret_cast<uint32_t*>(dst + b * sizeof(B32)), r);
      }
    }
  }

  template <class U, bool Stream>
  static void floats_loop(const void* w, const void* mask, void* out, size_t n) {
    using B = xsimd::batch<U, Arch>;
    constexpr size_t L = B::size;
    const U* pw = static_cast<const U*>(w);
    const U* pm = static_cast<const U*>(mask);
    U* po = static_cast<U*>(out);
    const B magnitude(static_cast<U>(~U{0} >> 1)), zero(U{0});
    size_t i = 0;
    for (; i + L <= n; i += L) {
      if ((i * sizeof(U)) % 64 == 0) {
        __builtin_prefetch(reinterpret_cast<const char*>(pw + i) + kPrefetchBytes);
        __builtin_prefetch(reinterpret_cast<const char*>(pm + i) + kPrefetchBytes);
      }
      const B m = B::load_unaligned(pm + i);
      const B v = B::load_unaligned(pw + i);
      simd::store<Stream>(po + i, xsimd::select((m & magnitude) != zero, v, zero));
    }
    for (; i < n; ++i) {
      const U m = simd::load_scalar<Arch, U>(pm + i);
      copy_or_zero<U>(w, out, i, (m & static_cast<U>(~U{0} >> 1)) != 0);
    }
  }
};

template <class Arch>
void ApplyMask<Arch>::fill(KernelTable& t) {
  t.apply_bytes[kW16] = &ApplyMask::bytes<uint16_t>;
  t.apply_bytes[kW32] = &ApplyMask::bytes<uint32_t>;
  t.apply_bytes[kW64] = &ApplyMask::bytes<uint64_t>;
  t.apply_bits[kW16] = &ApplyMask::bits<uint16_t>;
  t.apply_bits[kW32] = &ApplyMask::bits<uint32_t>;
  t.apply_bits[kW64] = &ApplyMask::bits<uint64_t>;
  t.apply_float[kW16] = &ApplyMask::floats<uint16_t>;
  t.apply_float[kW32] = &ApplyMask::floats<uint32_t>;
  t.apply_float[kW64] = &ApplyMask::floats<uint64_t>;
}

SPARSITY_EXTERN_KERNEL_FAMILY(ApplyMask)

}  // namespace sparsity::kernels
