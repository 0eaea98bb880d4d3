// Tensor and Storage.
#include "sparsity/core/tensor.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <ostream>
#include <sstream>

#include "base/scratch.hpp"

namespace sparsity {

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    SPARSITY_CHECK(d >= 0, OutOfRange, "negative size in shape ", shape_to_string(shape));
    SPARSITY_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d, OutOfRange,
                   "element count of shape ", shape_to_string(shape), " overflows int64");
    n *= d;
  }
  return n;
}

// ---- Storage ------------------------------------------------------------------------------------

std::shared_ptr<Storage> Storage::allocate(size_t nbytes) {
  std::shared_ptr<Storage> s(new Storage());
  const size_t rounded = (nbytes + 63) / 64 * 64;
#ifdef __linux__
  // Large buffers come straight from mmap: already zero (no memset pass), and on transparent huge
  // pages, so first touch costs one fault per 2 MiB instead of per 4 KiB.
  constexpr size_t kMapBytes = size_t{4} << 20;
  if (rounded >= kMapBytes) {
    const detail::HugeMapping m = detail::map_huge(rounded);
    SPARSITY_CHECK(m.data != nullptr, OutOfRange, "cannot allocate ", nbytes, " bytes");
    s->data_ = m.data;
    s->owner_ = std::shared_ptr<void>(m.data, [m](void*) { detail::unmap_huge(m); });
    s->nbytes_ = nbytes;
    s->owned_ = true;
    return s;
  }
#endif
  if (rounded > 0) {
    s->data_ = std::aligned_alloc(64, rounded);
    SPARSITY_CHECK(s->data_ != nullptr, OutOfRange, "cannot allocate ", nbytes, " bytes");
    std::memset(s->data_, 0, rounded);
  }
  s->nbytes_ = nbytes;
  s->owned_ = true;
  return s;
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, std::shared_ptr<void> owner,
                                       bool read_only) {
  SPARSITY_CHECK(data != nullptr || nbytes == 0, InvalidArgument, "cannot wrap a null pointer of ",
                 nbytes, " bytes");
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->nbytes_ = nbytes;
  s->owner_ = std::move(owner);
  s->read_only_ = read_only;
  return s;
}

Storage::~Storage() {
  if (owned_ && !owner_) std::free(data_);  // a mapped buffer is unmapped by its owner_
}

// ---- Tensor -------------------------------------------------------------------------------------

struct Tensor::Impl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;
  DType dtype = DType::f32;
};

namespace {

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return st;
}

int64_t wrap_dim(int64_t d, int64_t ndim) {
  const int64_t w = d < 0 ? d + ndim : d;
  SPARSITY_CHECK(w >= 0 && w < ndim, OutOfRange, "dimension ", d, " out of range for a ", ndim,
                 "-d tensor");
  return w;
}

template <class T>
double load_as_double(const void* base, int64_t idx) {
  return to_double(static_cast<const T*>(base)[idx]);
}

double load(DType t, const void* base, int64_t idx) {
  return visit_dtype(t, [&](auto tag) { return load_as_double<decltype(tag)>(base, idx); });
}

void store(DType t, void* base, int64_t idx, double v) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    static_cast<T*>(base)[idx] = from_double<T>(v);
  });
}

}  // namespace

const Tensor::Impl& Tensor::impl() const {
  SPARSITY_CHECK(impl_ != nullptr, FailedPrecondition, "operation on an undefined tensor");
  return *impl_;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, const Shape& shape, const Shape& strides,
                            int64_t offset, DType dtype) {
  SPARSITY_CHECK(storage != nullptr, InvalidArgument, "null storage");
  SPARSITY_CHECK(shape.size() == strides.size(), InvalidArgument, "shape ", shape_to_string(shape),
                 " and strides ", shape_to_string(strides), " differ in rank");
  const int64_t n = shape_numel(shape);
  if (n > 0) {
    int64_t last = offset;
    for (size_t i = 0; i < shape.size(); ++i) {
      SPARSITY_CHECK(strides[i] >= 0, InvalidArgument, "negative stride in ", shape_to_string(strides));
      last += (shape[i] - 1) * strides[i];
    }
    SPARSITY_CHECK(offset >= 0 && static_cast<uint64_t>(last + 1) * size_of(dtype) <= storage->nbytes(),
                   OutOfRange, "view of shape ", shape_to_string(shape), " at offset ", offset,
                   " exceeds its storage of ", storage->nbytes(), " bytes");
  }
  auto impl = std::make_shared<Impl>();
  impl->storage = std::move(storage);
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const int64_t n = shape_numel(shape);
  return from_storage(Storage::allocate(static_cast<size_t>(n) * size_of(dtype)), shape,
                      contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) { return empty(shape, dtype); }
Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  if (value != 0.0 || std::signbit(value)) t.fill_(value);
  return t;
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  for (int64_t i = 0; i < n; ++i) t.set_flat(i, static_cast<double>(i));
  return t;
}

Tensor Tensor::eye(int64_t rows, int64_t cols, DType dtype) {
  Tensor t = zeros({rows, cols}, dtype);
  for (int64_t i = 0; i < std::min(rows, cols); ++i) t.set({i, i}, 1.0);
  return t;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner) {
  const int64_t n = shape_numel(shape);
  return from_storage(Storage::wrap(data, static_cast<size_t>(n) * size_of(dtype), std::move(owner)),
                      shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::from_blob(const void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner) {
  const int64_t n = shape_numel(shape);
  return from_storage(Storage::wrap(const_cast<void*>(data), static_cast<size_t>(n) * size_of(dtype),
                                    std::move(owner), /*read_only=*/true),
                      shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::from_values(const std::vector<double>& values, const Shape& shape, DType dtype) {
  const int64_t n = shape_numel(shape);
  SPARSITY_CHECK(n == static_cast<int64_t>(values.size()), InvalidArgument, values.size(),
                 " values do not fill shape ", shape_to_string(shape));
  Tensor t = empty(shape, dtype);
  void* base = t.mutable_data_ptr();
  for (int64_t i = 0; i < n; ++i) store(dtype, base, i, values[static_cast<size_t>(i)]);
  return t;
}

DType Tensor::dtype() const { return impl().dtype; }
const Shape& Tensor::shape() const { return impl().shape; }
const Shape& Tensor::strides() const { return impl().strides; }
int64_t Tensor::offset() const { return impl().offset; }
const std::shared_ptr<Storage>& Tensor::storage() const { return impl().storage; }
int64_t Tensor::size(int64_t d) const { return shape()[static_cast<size_t>(wrap_dim(d, dim()))]; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
bool Tensor::is_read_only() const { return impl().storage->read_only(); }

bool Tensor::is_contiguous() const {
  const Impl& m = impl();
  int64_t expected = 1;
  for (size_t i = m.shape.size(); i-- > 0;) {
    if (m.shape[i] == 1) continue;
    if (m.strides[i] != expected) return false;
    expected *= m.shape[i];
  }
  return true;
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

const void* Tensor::data_ptr() const {
  const Impl& m = impl();
  return static_cast<const char*>(m.storage->data()) + m.offset * static_cast<int64_t>(size_of(m.dtype));
}

void* Tensor::mutable_data_ptr() const {
  SPARSITY_CHECK(!is_read_only(), FailedPrecondition, "cannot write to a read-only tensor of shape ",
                 shape_to_string(shape()));
  return const_cast<void*>(data_ptr());
}

void Tensor::check_type(DType expected) const {
  SPARSITY_CHECK(dtype() == expected, InvalidArgument, "tensor has dtype ", sparsity::to_string(dtype()),
                 ", accessed as ", sparsity::to_string(expected));
}

int64_t Tensor::storage_index(std::initializer_list<int64_t> index) const {
  const Impl& m = impl();
  SPARSITY_CHECK(index.size() == m.shape.size(), InvalidArgument, "index of rank ", index.size(),
                 " for a tensor of shape ", shape_to_string(m.shape));
  int64_t off = 0;
  size_t d = 0;
  for (int64_t i : index) {
    SPARSITY_CHECK(i >= 0 && i < m.shape[d], OutOfRange, "index ", i, " out of range for dimension ", d,
                   " of shape ", shape_to_string(m.shape));
    off += i * m.strides[d++];
  }
  return off;
}

int64_t Tensor::storage_index_flat(int64_t i) const {
  const Impl& m = impl();
  const int64_t n = numel();
  SPARSITY_CHECK(i >= 0 && i < n, OutOfRange, "flat index ", i, " out of range for ", n, " elements");
  int64_t off = 0;
  for (size_t d = m.shape.size(); d-- > 0;) {
    off += (i % m.shape[d]) * m.strides[d];
    i /= m.shape[d];
  }
  return off;
}

double Tensor::get(std::initializer_list<int64_t> index) const {
  return load(dtype(), data_ptr(), storage_index(index));
}
void Tensor::set(std::initializer_list<int64_t> index, double value) const {
  store(dtype(), mutable_data_ptr(), storage_index(index), value);
}
double Tensor::get_flat(int64_t i) const { return load(dtype(), data_ptr(), storage_index_flat(i)); }
void Tensor::set_flat(int64_t i, double value) const {
  store(dtype(), mutable_data_ptr(), storage_index_flat(i), value);
}
double Tensor::item() const {
  SPARSITY_CHECK(numel() == 1, InvalidArgument, "item() on a tensor of shape ", shape_to_string(shape()));
  return get_flat(0);
}

std::vector<double> Tensor::to_vector() const {
  const int64_t n = numel();
  std::vector<double> out(static_cast<size_t>(n));
  if (is_contiguous()) {
    const void* base = data_ptr();
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = load(dtype(), base, i);
  } else {
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = get_flat(i);
  }
  return out;
}

Tensor Tensor::view(const Shape& new_shape) const {
  SPARSITY_CHECK(is_contiguous(), InvalidArgument, "view() needs a contiguous tensor, got shape ",
                 shape_to_string(shape()), " with strides ", shape_to_string(strides()));
  Shape s = new_shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      SPARSITY_CHECK(infer < 0, InvalidArgument, "more than one -1 in shape ", shape_to_string(new_shape));
      infer = static_cast<int>(i);
    } else {
      SPARSITY_CHECK(s[i] >= 0, InvalidArgument, "negative size in shape ", shape_to_string(new_shape));
      known *= s[i];
    }
  }
  const int64_t n = numel();
  if (infer >= 0) {
    SPARSITY_CHECK(known > 0 && n % known == 0, InvalidArgument, "shape ", shape_to_string(new_shape),
                   " is invalid for ", n, " elements");
    s[static_cast<size_t>(infer)] = n / known;
  }
  SPARSITY_CHECK(shape_numel(s) == n, InvalidArgument, "shape ", shape_to_string(new_shape),
                 " is invalid for ", n, " elements");
  return from_storage(storage(), s, contiguous_strides(s), offset(), dtype());
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  return is_contiguous() ? view(new_shape) : clone().view(new_shape);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  const int64_t a = wrap_dim(d0, dim()), b = wrap_dim(d1, dim());
  Shape sh = shape(), st = strides();
  std::swap(sh[static_cast<size_t>(a)], sh[static_cast<size_t>(b)]);
  std::swap(st[static_cast<size_t>(a)], st[static_cast<size_t>(b)]);
  return from_storage(storage(), sh, st, offset(), dtype());
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  const int64_t w = wrap_dim(d, dim());
  const int64_t size_d = shape()[static_cast<size_t>(w)];
  SPARSITY_CHECK(start >= 0 && length >= 0 && start + length <= size_d, OutOfRange, "narrow(", d, ", ",
                 start, ", ", length, ") out of range for shape ", shape_to_string(shape()));
  Shape sh = shape();
  sh[static_cast<size_t>(w)] = length;
  return from_storage(storage(), sh, strides(), offset() + start * strides()[static_cast<size_t>(w)], dtype());
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  const int64_t w = wrap_dim(d, dim());
  Tensor n = narrow(w, index, 1);
  Shape sh = n.shape(), st = n.strides();
  sh.erase(sh.begin() + w);
  st.erase(st.begin() + w);
  return from_storage(storage(), sh, st, n.offset(), dtype());
}

Tensor Tensor::clone() const { return to(dtype()); }

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType target) const {
  Tensor out = empty(shape(), target);
  out.copy_(*this);
  return out;
}

const Tensor& Tensor::fill_(double value) const {
  const int64_t n = numel();
  void* base = mutable_data_ptr();
  if (is_contiguous()) {
    visit_dtype(dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T v = from_double<T>(value);
      T* p = static_cast<T*>(base);
      for (int64_t i = 0; i < n; ++i) p[i] = v;
    });
  } else {
    for (int64_t i = 0; i < n; ++i) store(dtype(), base, storage_index_flat(i), value);
  }
  return *this;
}

const Tensor& Tensor::copy_(const Tensor& src) const {
  SPARSITY_CHECK(src.shape() == shape(), InvalidArgument, "copy_ from shape ", shape_to_string(src.shape()),
                 " into shape ", shape_to_string(shape()));
  const int64_t n = numel();
  void* dst = mutable_data_ptr();
  if (n == 0) return *this;
  if (src.dtype() == dtype() && src.is_contiguous() && is_contiguous()) {
    std::memmove(dst, src.data_ptr(), nbytes());
    return *this;
  }
  // Through a temporary when the two views overlap in one storage.
  const Tensor source = shares_storage(src) ? src.clone() : src;
  const void* s = source.data_ptr();
  const bool fast = source.is_contiguous() && is_contiguous();
  for (int64_t i = 0; i < n; ++i) {
    const double v = load(source.dtype(), s, fast ? i : source.storage_index_flat(i));
    store(dtype(), dst, fast ? i : storage_index_flat(i), v);
  }
  return *this;
}

const Tensor& Tensor::set_(const Tensor& other) const {
  SPARSITY_CHECK(defined() && other.defined(), FailedPrecondition, "set_ on an undefined tensor");
  if (impl_ == other.impl_) return *this;
  *impl_ = *other.impl_;
  return *this;
}

std::string Tensor::to_string() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(" << sparsity::to_string(dtype()) << ", " << shape_to_string(shape());
  const int64_t n = numel();
  os << ", [";
  for (int64_t i = 0; i < std::min<int64_t>(n, 16); ++i) os << (i ? ", " : "") << get_flat(i);
  if (n > 16) os << ", ...";
  os << "])";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype()); }
Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return Tensor::ones(t.shape(), t.dtype()); }
Tensor full_like(const Tensor& t, double value) { return Tensor::full(t.shape(), value, t.dtype()); }

bool equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const auto va = a.to_vector(), vb = b.to_vector();
  return va == vb;  // NaN compares unequal, as torch.equal
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  if (a.shape() != b.shape()) return false;
  const auto va = a.to_vector(), vb = b.to_vector();
  for (size_t i = 0; i < va.size(); ++i) {
    const double x = va[i], y = vb[i];
    if (std::isnan(x) || std::isnan(y)) {
      if (!(equal_nan && std::isnan(x) && std::isnan(y))) return false;
      continue;
    }
    if (x == y) continue;
    if (!(std::fabs(x - y) <= atol + rtol * std::fabs(y))) return false;
  }
  return true;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return a.numel() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

int64_t count_nonzero(const Tensor& t) {
  int64_t c = 0;
  for (double v : t.to_vector()) c += (v != 0.0);
  return c;
}

}  // namespace sparsity
