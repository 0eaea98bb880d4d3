// Element types of a Tensor, and the 16-bit float storage types f16 and bf16 with exact conversions.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace sparsity {

/// Element type of a Tensor.
enum class DType : uint8_t { f32, f64, f16, bf16, bool_, u8, i8, i16, i32, i64 };

/// Bytes per element.
constexpr size_t size_of(DType t) noexcept {
  switch (t) {
    case DType::f64:
    case DType::i64: return 8;
    case DType::f32:
    case DType::i32: return 4;
    case DType::f16:
    case DType::bf16:
    case DType::i16: return 2;
    case DType::bool_:
    case DType::u8:
    case DType::i8: return 1;
  }
  return 0;
}

/// True for f32, f64, f16 and bf16.
constexpr bool is_floating(DType t) noexcept {
  return t == DType::f32 || t == DType::f64 || t == DType::f16 || t == DType::bf16;
}

/// "f32", "f64", "f16", "bf16", "bool", "u8", "i8", "i16", "i32", "i64".
const char* to_string(DType t) noexcept;

/// Inverse of to_string; throws sparsity::Error(InvalidArgument) naming the text on an unknown name.
DType dtype_from_string(std::string_view name);

namespace detail {
inline uint32_t f32_bits(float f) noexcept {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace detail

/// IEEE 754 binary16 storage. Conversions are exact to float and round-to-nearest-even from float.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  static constexpr Half from_bits(uint16_t b) noexcept {
    Half h;
    h.bits = b;
    return h;
  }
  explicit Half(float f) noexcept : bits(from_float(f)) {}
  explicit operator float() const noexcept { return to_float(bits); }

  static uint16_t from_float(float f) noexcept {
    const uint32_t x = detail::f32_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // inf or nan: keep a quiet nan payload bit
      return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u));
    }
    if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
    if (abs < 0x38800000u) {  // subnormal half (or zero): add the magic constant to round
      const float mag = detail::bits_f32(abs) + 0.5f;
      return static_cast<uint16_t>(sign | (detail::f32_bits(mag) - 0x3f000000u));
    }
    const uint32_t mant_odd = (abs >> 13) & 1u;
    const uint32_t r = abs + 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  static float to_float(uint16_t h) noexcept {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0x1fu) return detail::bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
      const float m = static_cast<float>(mant) * (1.0f / 16777216.0f);  // mant * 2^-24
      return sign ? -m : m;
    }
    return detail::bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
  }
};

/// bfloat16 storage: the high half of an f32. From float rounds to nearest even; NaN stays NaN.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  static constexpr BFloat16 from_bits(uint16_t b) noexcept {
    BFloat16 h;
    h.bits = b;
    return h;
  }
  explicit BFloat16(float f) noexcept : bits(from_float(f)) {}
  explicit operator float() const noexcept { return to_float(bits); }

  static uint16_t from_float(float f) noexcept {
    const uint32_t x = detail::f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
  }
  static float to_float(uint16_t b) noexcept { return detail::bits_f32(static_cast<uint32_t>(b) << 16); }
};

/// Maps a C++ element type to its DType: dtype_of<float>::value == DType::f32.
template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::bool_; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::i8; };
template <> struct dtype_of<int16_t> { static constexpr DType value = DType::i16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };

/// Calls `f(T{})` with the C++ element type of `t` (Half/BFloat16 for f16/bf16, bool for bool_).
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::f16: return f(Half{});
    case DType::bf16: return f(BFloat16{});
    case DType::bool_: return f(bool{});
    case DType::u8: return f(uint8_t{});
    case DType::i8: return f(int8_t{});
    case DType::i16: return f(int16_t{});
    case DType::i32: return f(int32_t{});
    case DType::i64: return f(int64_t{});
  }
  return f(float{});
}

/// Element value as double (exact for every dtype but i64 beyond 2^53).
template <class T>
inline double to_double(T v) noexcept {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    return static_cast<double>(static_cast<float>(v));
  } else {
    return static_cast<double>(v);
  }
}

/// Double converted to element type T (round to nearest for floats, C++ conversion for integers,
/// v != 0 for bool).
template <class T>
inline T from_double(double v) noexcept {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    return T(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    return v != 0.0;
  } else {
    return static_cast<T>(v);
  }
}

}  // namespace sparsity
