// DType names.
#include "sparsity/base/dtype.hpp"

#include "base/text.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity {

const char* to_string(DType t) noexcept {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::bool_: return "bool";
    case DType::u8: return "u8";
    case DType::i8: return "i8";
    case DType::i16: return "i16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
  }
  return "?";
}

DType dtype_from_string(std::string_view name) {
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::bool_, DType::u8, DType::i8,
                  DType::i16, DType::i32, DType::i64}) {
    if (name == to_string(t)) return t;
  }
  SPARSITY_FAIL(InvalidArgument, "unknown dtype ", ::sparsity::detail::quote(name), "");
}

}  // namespace sparsity
