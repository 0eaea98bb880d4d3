// Tensor: a typed, shaped, strided view over shared storage that is either owned or borrowed (zero-copy).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sparsity/base/dtype.hpp"
#include "sparsity/base/error.hpp"

namespace sparsity {

using Shape = std::vector<int64_t>;

/// Insertion-ordered (name, value) list, as torch's OrderedDict.
template <class V>
using NamedList = std::vector<std::pair<std::string, V>>;

/// "[2, 3]".
std::string shape_to_string(const Shape& shape);
/// Product of the sizes; throws OutOfRange on negative sizes or overflow of int64.
int64_t shape_numel(const Shape& shape);

/// Bytes behind one or more tensors: owned (64-byte aligned, zero-filled) or borrowed from the caller.
class Storage {
 public:
  /// Owned, zero-filled, 64-byte aligned buffer of `nbytes` bytes.
  static std::shared_ptr<Storage> allocate(size_t nbytes);
  /// Borrowed memory: the caller keeps it alive (or hands `owner`, which the storage holds on to).
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, std::shared_ptr<void> owner = {},
                                       bool read_only = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const noexcept { return data_; }
  size_t nbytes() const noexcept { return nbytes_; }
  bool owns_memory() const noexcept { return owned_; }
  bool read_only() const noexcept { return read_only_; }

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  bool owned_ = false;
  bool read_only_ = false;
  std::shared_ptr<void> owner_;
};

/// A tensor with reference semantics, like torch: copying a Tensor copies a handle, so both copies
/// are the same tensor (`is_same`) and see every in-place change, including `set_`. `clone()` makes a
/// deep, contiguous copy.
///
///   auto w = sparsity::Tensor::zeros({4, 8}, sparsity::DType::f32);
///   w.set({0, 1}, 2.5);
///   float* buf = engine_weights();                       // memory the caller owns
///   auto v = sparsity::Tensor::from_blob(buf, {4, 8}, sparsity::DType::f32);  // zero copy
class Tensor {
 public:
  /// An undefined tensor (`defined() == false`).
  Tensor() = default;

  // ---- factories ---------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);  ///< zero-filled in fact
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  /// 0, 1, ..., n-1 as a 1-D tensor.
  static Tensor arange(int64_t n, DType dtype = DType::f32);
  /// Identity matrix rows x cols.
  static Tensor eye(int64_t rows, int64_t cols, DType dtype = DType::f32);
  /// Zero-copy view over caller memory (contiguous, row-major). `owner` is kept alive with the view.
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner = {});
  /// Read-only zero-copy view (e.g. a memory-mapped file); writes through it throw FailedPrecondition.
  static Tensor from_blob(const void* data, const Shape& shape, DType dtype,
                          std::shared_ptr<void> owner = {});
  /// View with explicit element strides and offset over a storage (advanced use).
  static Tensor from_storage(std::shared_ptr<Storage> storage, const Shape& shape, const Shape& strides,
                             int64_t offset, DType dtype);
  /// Owned tensor holding `values` (converted to `dtype`), shaped `shape` (default: 1-D).
  static Tensor from_values(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32);
  static Tensor from_values(const std::vector<double>& values, DType dtype = DType::f32) {
    return from_values(values, {static_cast<int64_t>(values.size())}, dtype);
  }

  // ---- metadata ----------------------------------------------------------------------------
  bool defined() const noexcept { return impl_ != nullptr; }
  DType dtype() const;
  const Shape& shape() const;
  const Shape& strides() const;  ///< in elements
  int64_t offset() const;        ///< in elements, into the storage
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  ///< negative d counts from the end
  int64_t numel() const;
  size_t element_size() const { return size_of(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  bool is_contiguous() const;
  bool is_read_only() const;
  const std::shared_ptr<Storage>& storage() const;

  /// True iff both handles denote the same tensor (torch's `a is b`).
  bool is_same(const Tensor& other) const noexcept { return impl_ == other.impl_; }
  /// True iff both tensors view the same storage.
  bool shares_storage(const Tensor& other) const;

  // ---- raw data ------------------------------------------------------------------------------
  /// Address of element 0 (the view's offset applied).
  const void* data_ptr() const;
  /// Same, for writing; throws FailedPrecondition on a read-only view.
  void* mutable_data_ptr() const;
  template <class T>
  const T* data() const {
    check_type(dtype_of<T>::value);
    return static_cast<const T*>(data_ptr());
  }
  template <class T>
  T* mutable_data() const {
    check_type(dtype_of<T>::value);
    return static_cast<T*>(mutable_data_ptr());
  }

  // ---- element access (converted through double) ---------------------------------------------
  double get(std::initializer_list<int64_t> index) const;
  void set(std::initializer_list<int64_t> index, double value) const;
  /// Element at row-major logical position i (works for any strides).
  double get_flat(int64_t i) const;
  void set_flat(int64_t i, double value) const;
  /// The single element of a one-element tensor.
  double item() const;
  /// All elements in row-major logical order.
  std::vector<double> to_vector() const;

  // ---- views (share storage) -----------------------------------------------------------------
  /// Same elements, new shape (one size may be -1); needs a contiguous tensor.
  Tensor view(const Shape& shape) const;
  /// view() when contiguous, else a reshaped contiguous copy.
  Tensor reshape(const Shape& shape) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t d, int64_t start, int64_t length) const;
  /// Index `index` along `d`, dropping the dimension.
  Tensor select(int64_t d, int64_t index) const;

  // ---- copies --------------------------------------------------------------------------------
  /// Deep, contiguous, owned copy.
  Tensor clone() const;
  /// This tensor if already contiguous, else clone().
  Tensor contiguous() const;
  /// Converted copy (a clone when `dtype` is already the tensor's).
  Tensor to(DType dtype) const;

  // ---- in place (visible through every handle) ------------------------------------------------
  const Tensor& fill_(double value) const;
  const Tensor& zero_() const { return fill_(0.0); }
  /// Element-wise copy with dtype conversion; shapes must match exactly.
  const Tensor& copy_(const Tensor& src) const;
  /// Make this tensor *become* `other` (storage, shape, strides, dtype) while keeping its identity:
  /// torch's `t.data = other`.
  const Tensor& set_(const Tensor& other) const;

  std::string to_string() const;

 private:
  struct Impl;
  explicit Tensor(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  void check_type(DType expected) const;
  int64_t storage_index(std::initializer_list<int64_t> index) const;
  int64_t storage_index_flat(int64_t i) const;
  const Impl& impl() const;
  std::shared_ptr<Impl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);

/// Same shape and every element equal (NaN != NaN, as torch.equal); dtypes may differ.
bool equal(const Tensor& a, const Tensor& b);
/// Same shape and |a-b| <= atol + rtol*|b| elementwise; NaNs match only with equal_nan.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8, bool equal_nan = false);
/// Same shape, dtype and bytes (bit-exact).
bool bitwise_equal(const Tensor& a, const Tensor& b);
/// Number of non-zero elements.
int64_t count_nonzero(const Tensor& t);

}  // namespace sparsity
