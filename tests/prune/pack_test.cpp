// pack_file / unpack_file / packed_weights / read_packed: round trips in every layout and float dtype,
// the layouts `auto` picks (sizes derived by hand), what is left dense, and every refusal located.
#include "sparsity/prune/pack.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "sparsity/io/safetensors.hpp"
#include "sparsity/prune/inspect.hpp"
#include "temp_dir.hpp"
#include "test_util.hpp"

namespace sparsity::prune {
namespace {

using sparsity::testing::random_tensor;

using sparsity::testing::file_bytes;
using sparsity::testing::write_bytes;

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Which elements of a rows x cols weight a pattern keeps (1) or zeroes (0).
using Keep = std::vector<uint8_t>;

// Exactly n kept per group of m along each row, at positions that move from row to row and group to group.
Keep nm_keep(int64_t rows, int64_t cols, int64_t n, int64_t m) {
  Keep k(static_cast<size_t>(rows * cols), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < cols / m; ++g) {
      for (int64_t j = 0; j < n; ++j) k[static_cast<size_t>(r * cols + g * m + (r * 3 + g * 5 + j) % m)] = 1;
    }
  }
  return k;
}
// Whole br x bc blocks, about a third of them kept (block (0, 0) is, block (0, 1) is not).
Keep block_keep(int64_t rows, int64_t cols, int64_t br, int64_t bc) {
  Keep k(static_cast<size_t>(rows * cols), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      k[static_cast<size_t>(r * cols + c)] = ((r / br) * 7 + (c / bc) * 5) % 3 == 0;
  }
  return k;
}
// Scattered elements, 3 in 10 kept.
Keep scattered_keep(int64_t rows, int64_t cols) {
  Keep k(static_cast<size_t>(rows * cols), 0);
  for (size_t i = 0; i < k.size(); ++i) k[i] = (i * 7919) % 10 < 3;
  return k;
}

// Random values where `keep` says, +0.0 elsewhere; the first two kept elements are -0.0 and NaN (kept:
// their bits are not +0.0).
Tensor weight_with(const Keep& keep, const Shape& shape, DType dtype, uint64_t seed) {
  Tensor w = random_tensor(shape, seed, dtype);
  int special = 0;
  for (size_t i = 0; i < keep.size(); ++i) {
    if (!keep[i]) {
      w.set_flat(static_cast<int64_t>(i), 0.0);
    } else if (special < 2) {
      w.set_flat(static_cast<int64_t>(i), special++ == 0 ? -0.0 : std::numeric_limits<double>::quiet_NaN());
    } else if (w.get_flat(static_cast<int64_t>(i)) == 0.0) {
      w.set_flat(static_cast<int64_t>(i), 0.5);
    }
  }
  return w;
}

int64_t count(const Keep& k) {
  int64_t n = 0;
  for (uint8_t v : k) n += v;
  return n;
}

// A model around one weight "fc.weight": tensors before and after it, one of a dtype no Tensor holds.
std::string write_model(const std::string& dir, const Tensor& weight) {
  const std::string path = dir + "/model.safetensors";
  std::vector<io::TensorSpec> specs = {
      {"emb.bias", "F32", {4}},
      {"fc.weight", io::dtype_to_safetensors(weight.dtype()), weight.shape()},
      {"fc.bias", "F32", {weight.size(0)}},
      {"ids", "I64", {3}},
      {"raw", "U16", {5}}};
  io::SafetensorsWriter w(path, specs, {{"format", "pt"}, {"note", "kept as is"}});
  const Tensor emb = Tensor::from_values({1, -0.0, 3, 0});
  const Tensor bias = random_tensor({weight.size(0)}, 99);
  const Tensor ids = Tensor::from_values({7, 8, 9}, DType::i64);
  const uint8_t raw[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  w.write(0, 0, emb.data_ptr(), emb.nbytes());
  w.write(1, 0, weight.data_ptr(), weight.nbytes());
  w.write(2, 0, bias.data_ptr(), bias.nbytes());
  w.write(3, 0, ids.data_ptr(), ids.nbytes());
  w.write(4, 0, raw, sizeof raw);
  w.commit();
  return path;
}

PackReport pack_with(const std::string& model, const std::string& out, const std::string& format,
                     const std::vector<std::string>& ignore = {}, const std::string& masks = "",
                     int threads = 0) {
  PackOptions o;
  o.model = model;
  o.output = out;
  o.format = PackFormat::from_string(format);
  o.ignore = ignore;
  o.masks = masks;
  o.threads = threads;
  o.durable = false;
  return pack_file(o);
}

UnpackReport unpack_with(const std::string& packed, const std::string& out) {
  UnpackOptions o;
  o.packed = packed;
  o.output = out;
  o.durable = false;
  return unpack_file(o);
}

std::vector<std::string> names_of(const io::TensorFile& f) {
  std::vector<std::string> n;
  for (const auto& t : f.tensors()) n.push_back(t.name);
  return n;
}

struct LayoutCase {
  std::string format;
  Keep keep;
  std::vector<std::string> parts;                     // hand-written: the layout's part names
  std::vector<std::pair<std::string, Shape>> shapes;  // and their shapes
  std::vector<std::string> dtypes;                    // "" = the weight's dtype
};

// rows x cols = 16 x 32 in every case.
std::vector<LayoutCase> layout_cases() {
  const int64_t R = 16, C = 32;
  std::vector<LayoutCase> out;
  auto nm = [&](const std::string& name, int64_t n, int64_t m) {
    out.push_back({name,
                   nm_keep(R, C, n, m),
                   {"shape", "compressed", "bitmask"},
                   {{"shape", {2, 1}}, {"compressed", {R, C / m * n}}, {"bitmask", {R, 4}}},
                   {"I64", "", "U8"}});
  };
  nm("sparse-24-bitmask", 2, 4);
  nm("nm1of4", 1, 4);
  nm("nm4of8", 4, 8);
  nm("nm3of16", 3, 16);
  const Keep scattered = scattered_keep(R, C);
  const int64_t nnz = count(scattered);
  out.push_back({"sparse-bitmask",
                 scattered,
                 {"shape", "compressed", "bitmask", "row_offsets"},
                 {{"shape", {2}}, {"compressed", {nnz}}, {"bitmask", {R, 4}}, {"row_offsets", {R}}},
                 {"I64", "", "U8", "I64"}});
  // nnz < 256 and 32 columns: both index parts fit in U8.
  out.push_back({"csr",
                 scattered,
                 {"shape", "compressed", "col_indices", "crow_indices"},
                 {{"shape", {2}}, {"compressed", {nnz}}, {"col_indices", {nnz}}, {"crow_indices", {R + 1}}},
                 {"I64", "", "U8", "U8"}});
  for (auto [br, bc] : std::vector<std::pair<int64_t, int64_t>>{{1, 4}, {2, 2}, {4, 1}, {16, 16}, {1, 16}}) {
    const Keep k = block_keep(R, C, br, bc);
    const int64_t blocks = count(k) / (br * bc);
    out.push_back({"bsr" + std::to_string(br) + "x" + std::to_string(bc),
                   k,
                   {"shape", "compressed", "col_indices", "crow_indices"},
                   {{"shape", {2}},
                    {"compressed", {blocks, br, bc}},
                    {"col_indices", {blocks}},
                    {"crow_indices", {R / br + 1}}},
                   {"I64", "", "U8", "U8"}});
  }
  return out;
}

TEST(PackFile, EveryLayoutAndFloatDtypeRoundTripsBitForBit) {
  for (const auto& lc : layout_cases()) {
    for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
      SCOPED_TRACE(lc.format + " " + to_string(dt));
      const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_pack_");
      const Tensor w = weight_with(lc.keep, {16, 32}, dt, 7);
      const std::string model = write_model(dir, w);
      const std::string before = file_bytes(model);
      const PackReport r = pack_with(model, dir + "/packed.safetensors", lc.format);
      EXPECT_EQ(file_bytes(model), before);
      ASSERT_EQ(r.weights.size(), 1u);
      EXPECT_EQ(r.packed, 1u);
      EXPECT_EQ(r.other_tensors, 4u);
      EXPECT_EQ(r.weights[0].format, lc.format);
      EXPECT_EQ(r.weights[0].kept, static_cast<uint64_t>(count(lc.keep)));
      EXPECT_LT(r.weights[0].packed_bytes, r.weights[0].dense_bytes);

      auto packed = io::SafetensorsFile::open(dir + "/packed.safetensors");
      // The parts take the weight's place; every other tensor keeps its own, and its bytes.
      std::vector<std::string> want = {"emb.bias"};
      for (const auto& p : lc.parts) want.push_back("fc." + p);
      for (const char* n : {"fc.bias", "ids", "raw"}) want.push_back(n);
      EXPECT_EQ(names_of(*packed), want);
      for (size_t k = 0; k < lc.parts.size(); ++k) {
        const auto& info = packed->info("fc." + lc.parts[k]);
        EXPECT_EQ(info.shape, lc.shapes[k].second) << lc.parts[k];
        EXPECT_EQ(info.dtype_name, lc.dtypes[k].empty() ? io::dtype_to_safetensors(dt) : lc.dtypes[k])
            << lc.parts[k];
      }
      auto model_file = io::SafetensorsFile::open(model);
      for (const char* n : {"emb.bias", "fc.bias", "ids", "raw"}) {
        const auto& a = model_file->info(n);
        const auto& b = packed->info(n);
        ASSERT_EQ(a.nbytes(), b.nbytes());
        EXPECT_EQ(std::memcmp(model_file->bytes(a), packed->bytes(b), a.nbytes()), 0) << n;
      }
      EXPECT_EQ(packed->metadata().at("format"), "pt");
      EXPECT_EQ(packed->metadata().at("note"), "kept as is");
      EXPECT_EQ(packed->metadata().at(kPackedMetadataKey),
                "{\"format\":\"" + lc.format + "\",\"tensors\":{\"fc.weight\":\"" + lc.format + "\"}}");

      const auto weights = packed_weights(*packed);
      ASSERT_EQ(weights.size(), 1u);
      EXPECT_EQ(weights[0].name, "fc.weight");
      EXPECT_EQ(weights[0].format.to_string(), lc.format);
      EXPECT_TRUE(bitwise_equal(read_packed(*packed, weights[0]).unpack(), w));

      // Unpacked: the very bytes of the model (same tensors, order and metadata through the same writer).
      const UnpackReport u = unpack_with(dir + "/packed.safetensors", dir + "/dense.safetensors");
      EXPECT_EQ(u.weights, 1u);
      EXPECT_EQ(u.other_tensors, 4u);
      EXPECT_EQ(file_bytes(dir + "/dense.safetensors"), before);
    }
  }
}

// 16 x 32 f32 weights whose `auto` layout and size follow by hand (bytes() formulas of packed.hpp):
//   a: 2:4, even rows keep columns 0 and 2 of each group, odd rows 1 and 3. N:M 2:4 = 16 + 16*16*4 +
//      16*4 = 1104 (4:8 and 8:16 tie, the smaller M comes first); sparse-bitmask 16 + 256*4 + 64 + 128 =
//      1232; csr 16 + 256*5 + 17*2 = 1330; every 1x2 and 2x1 block holds a kept element, so BSR stores
//      all 2048 bytes of values at least.
//   b: row r keeps the 8 columns of block column r % 4. bsr1x8 = 16 + 16*8*4 + 16 + 17 = 561; next are
//      bsr1x4 577, bsr1x2 609, csr 16 + 128*5 + 17 = 673, sparse-bitmask 720, N:M 8:16 1104.
//   c: element i kept when i % 10 == 3 (51 of 512). csr = 16 + 51*5 + 17 = 288; then N:M 1:8 = 336,
//      sparse-bitmask 412, bsr2x1 484.
//   d: no zeros: dense. e: a single +0.0: the smallest layout is bsr16x16 (two blocks) = 16 + 2048 +
//      2 + 2 = 2068 bytes, more than its 2048 dense bytes: dense.
TEST(PackFile, AutoPicksTheSmallestLayoutPerWeight) {
  const int64_t R = 16, C = 32;
  Keep a(R * C), b(R * C), c(R * C), e(R * C, 1), d(R * C, 1);
  for (int64_t i = 0; i < R * C; ++i) {
    const int64_t r = i / C, col = i % C;
    a[static_cast<size_t>(i)] = (col % 4) % 2 == r % 2;
    b[static_cast<size_t>(i)] = col / 8 == r % 4;
    c[static_cast<size_t>(i)] = i % 10 == 3;
  }
  e[77] = 0;
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_pack_auto_");
  const std::string model = dir + "/m.safetensors";
  const NamedList<Tensor> tensors = {{"a.weight", weight_with(a, {R, C}, DType::f32, 1)},
                                     {"b.weight", weight_with(b, {R, C}, DType::f32, 2)},
                                     {"c.weight", weight_with(c, {R, C}, DType::f32, 3)},
                                     {"d.weight", random_tensor({R, C}, 4)},
                                     {"e.weight", weight_with(e, {R, C}, DType::f32, 5)},
                                     {"skip.weight", weight_with(a, {R, C}, DType::f32, 6)},
                                     {"v.weight", Tensor::from_values({0, 1, 0, 2})},     // 1-D
                                     {"i.weight", Tensor::zeros({4, 4}, DType::i32)},     // not float
                                     {"f64.weight", Tensor::zeros({4, 4}, DType::f64)}};  // not packable
  io::save_safetensors(model, tensors);
  const PackReport r = pack_with(model, dir + "/p.safetensors", "auto", {"skip"});
  ASSERT_EQ(r.weights.size(), 6u);
  const std::vector<std::string> formats = {"sparse-24-bitmask", "bsr1x8", "csr", "", "", ""};
  const std::vector<uint64_t> sizes = {1104, 561, 288, 2048, 2048, 2048};
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(r.weights[i].name, tensors[i].first);
    EXPECT_EQ(r.weights[i].format, formats[i]) << tensors[i].first;
    EXPECT_EQ(r.weights[i].packed_bytes, sizes[i]) << tensors[i].first;
    EXPECT_EQ(r.weights[i].dense_bytes, 2048u);
  }
  EXPECT_EQ(r.weights[3].reason, "no element is +0.0");
  EXPECT_EQ(r.weights[4].reason, "as bsr16x16 it would take 2068 bytes, its dense data 2048");
  EXPECT_EQ(r.weights[5].reason, "ignored");
  EXPECT_TRUE(r.weights[5].ignored);
  EXPECT_EQ(r.weights[2].kept, 51u);
  EXPECT_EQ(r.packed, 3u);
  EXPECT_EQ(r.other_tensors, 3u);

  auto packed = io::SafetensorsFile::open(dir + "/p.safetensors");
  EXPECT_EQ(
      packed->metadata().at(kPackedMetadataKey),
      R"({"format":"mixed","tensors":{"a.weight":"sparse-24-bitmask","b.weight":"bsr1x8","c.weight":"csr"}})");
  const std::vector<std::string> names = {
      "a.shape",        "a.compressed", "a.bitmask",    "b.shape",       "b.compressed",   "b.col_indices",
      "b.crow_indices", "c.shape",      "c.compressed", "c.col_indices", "c.crow_indices", "d.weight",
      "e.weight",       "skip.weight",  "v.weight",     "i.weight",      "f64.weight"};
  EXPECT_EQ(names_of(*packed), names);
  EXPECT_EQ(r.output_bytes, packed->file_size());

  // inspect reads each packed weight as one tensor: its layout, its parts' bytes, the dense weight's
  // zeros and pattern.
  const CheckpointStats st = inspect_checkpoint(dir + "/p.safetensors");
  EXPECT_EQ(st.packed, 3u);
  ASSERT_EQ(st.tensors.size(), tensors.size());
  EXPECT_EQ(st.tensors[0].name, "a.weight");
  EXPECT_EQ(st.tensors[0].format, "sparse-24-bitmask");
  EXPECT_EQ(st.tensors[0].bytes, 1104u);
  EXPECT_EQ(st.tensors[0].dense_bytes, 2048u);
  EXPECT_EQ(st.tensors[0].shape, (Shape{16, 32}));
  EXPECT_EQ(st.tensors[0].dtype, "F32");
  EXPECT_EQ(st.tensors[0].zeros, 256u + 1u);  // the pruned half and the kept -0.0
  EXPECT_EQ(st.tensors[1].pattern, "8:32");   // 8 kept of each row's 32 columns
  EXPECT_EQ(st.tensors[2].zeros, 512u - 51u + 1u);
  EXPECT_EQ(st.tensors[3].format, "");
  EXPECT_EQ(st.tensors[3].bytes, 2048u);
  EXPECT_EQ(st.bytes, 1104u + 561u + 288u + 3 * 2048u + 16u + 64u + 128u);
  EXPECT_EQ(st.dense_bytes, 6 * 2048u + 16u + 64u + 128u);

  unpack_with(dir + "/p.safetensors", dir + "/u.safetensors");
  EXPECT_EQ(file_bytes(dir + "/u.safetensors"), file_bytes(model));
}

TEST(PackFile, OutputDoesNotDependOnTheThreadCount) {
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_pack_threads_");
  NamedList<Tensor> tensors;
  for (int i = 0; i < 9; ++i) {
    tensors.emplace_back("l" + std::to_string(i) + ".weight",
                         weight_with(i % 3 == 0 ? nm_keep(24, 48, 2, 4) : scattered_keep(24, 48), {24, 48},
                                     i % 2 ? DType::bf16 : DType::f32, static_cast<uint64_t>(i)));
    tensors.emplace_back("l" + std::to_string(i) + ".bias",
                         random_tensor({24}, 100 + static_cast<uint64_t>(i)));
  }
  io::save_safetensors(dir + "/m.safetensors", tensors);
  pack_with(dir + "/m.safetensors", dir + "/one.safetensors", "auto", {}, "", 1);
  pack_with(dir + "/m.safetensors", dir + "/four.safetensors", "auto", {}, "", 4);
  EXPECT_EQ(file_bytes(dir + "/one.safetensors"), file_bytes(dir + "/four.safetensors"));
  unpack_with(dir + "/four.safetensors", dir + "/u.safetensors");
  EXPECT_EQ(file_bytes(dir + "/u.safetensors"), file_bytes(dir + "/m.safetensors"));
}

TEST(PackFile, MasksDecideWhatIsKept) {
  // A torch-squashed 2:4 weight (mask x weight): -0.0 where negative weights were pruned, so without
  // its mask a group keeps up to 4 elements.
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_pack_masks_");
  const Keep keep = nm_keep(4, 8, 2, 4);
  Tensor w = random_tensor({4, 8}, 11);
  Tensor mask = Tensor::zeros({4, 8}, DType::u8);
  for (int64_t i = 0; i < 32; ++i) {
    const double v = w.get_flat(i);
    if (!keep[static_cast<size_t>(i)]) w.set_flat(i, v < 0 || i == 2 ? -0.0 : 0.0);
    mask.set_flat(i, keep[static_cast<size_t>(i)]);
  }
  ASSERT_FALSE(keep[2]);
  io::save_safetensors(dir + "/m.safetensors", {{"fc.weight", w}});
  io::save_safetensors(dir + "/masks.safetensors", {{"fc.weight", mask}});
  EXPECT_SPARSITY_ERROR(pack_with(dir + "/m.safetensors", dir + "/p.safetensors", "sparse-24-bitmask"),
                        InvalidArgument, "fc.weight", "row ", "column ");
  EXPECT_FALSE(exists(dir + "/p.safetensors"));
  const PackReport r = pack_with(dir + "/m.safetensors", dir + "/p.safetensors", "sparse-24-bitmask", {},
                                 dir + "/masks.safetensors");
  EXPECT_EQ(r.weights[0].format, "sparse-24-bitmask");
  EXPECT_EQ(r.weights[0].kept, 16u);
  unpack_with(dir + "/p.safetensors", dir + "/u.safetensors");
  const Tensor back = io::load_safetensors(dir + "/u.safetensors")[0].second;
  for (int64_t i = 0; i < 32; ++i) {
    uint32_t got, want;
    const float g = static_cast<const float*>(back.data_ptr())[i];
    const float o = static_cast<const float*>(w.data_ptr())[i];
    std::memcpy(&got, &g, 4);
    std::memcpy(&want, &o, 4);
    // Pruned elements come back +0.0; kept ones bit for bit.
    EXPECT_EQ(got, keep[static_cast<size_t>(i)] ? want : 0u) << i;
  }
  // A mask of another shape is refused before any work.
  io::save_safetensors(dir + "/bad_masks.safetensors", {{"fc.weight", Tensor::zeros({4, 4}, DType::u8)}});
  EXPECT_SPARSITY_ERROR(
      pack_with(dir + "/m.safetensors", dir + "/q.safetensors", "auto", {}, dir + "/bad_masks.safetensors"),
      InvalidArgument, "the mask of 'fc.weight' is U8 [4, 4]", "bad_masks.safetensors");
  EXPECT_FALSE(exists(dir + "/q.safetensors"));
}

// ---- refusals ------------------------------------------------------------------------------------------

struct Refusals : ::testing::Test {
  std::string dir = sparsity::testing::fresh_temp_dir("sparsity_pack_err_");
  std::string model = dir + "/m.safetensors";
  void SetUp() override {
    // fc.weight: rows 0 keeps 2 of each group, row 1 keeps 3 of columns 4..7 (columns 4, 5, 6).
    io::save_safetensors(model, {{"fc.weight", Tensor::from_values({1, 0, 2, 0, 3, 4, 5, 0,  //
                                                                    0, 6, 0, 7, 0, 0, 8, 9},
                                                                   {2, 8})},
                                 {"fc.bias", Tensor::from_values({1, 2})}});
  }
  // The error, then: no file added, the model untouched.
  template <class F>
  void expect_refused(F&& f, ErrorCode code, std::initializer_list<std::string> fragments) {
    const std::string before = file_bytes(model);
    bool thrown = false;
    try {
      f();
    } catch (const Error& e) {
      thrown = true;
      EXPECT_EQ(e.code(), code) << e.what();
      for (const auto& frag : fragments)
        EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
    EXPECT_TRUE(thrown);
    EXPECT_EQ(file_bytes(model), before);
    EXPECT_FALSE(exists(dir + "/out.safetensors"));
  }
};

TEST_F(Refusals, AWeightTheFormatDoesNotFitIsNamedWithItsRowAndColumn) {
  // Row 0: columns 0 2 | 4 5 6; the second group holds 3 kept elements, the third at column 6.
  io::save_safetensors(model, {{"fc.weight", Tensor::from_values({1, 0, 2, 0, 3, 4, 5, 0,  //
                                                                  0, 6, 0, 7, 0, 0, 8, 9},
                                                                 {2, 8})}});
  expect_refused([&] { pack_with(model, dir + "/out.safetensors", "sparse-24-bitmask"); },
                 ErrorCode::InvalidArgument, {"tensor 'fc.weight'", "row 0, column 6", "m.safetensors"});
  expect_refused([&] { pack_with(model, dir + "/out.safetensors", "bsr4x4"); }, ErrorCode::InvalidArgument,
                 {"tensor 'fc.weight'", "row 0, column 0", "partial block row"});
  expect_refused([&] { pack_with(model, dir + "/out.safetensors", "nm2of16"); }, ErrorCode::InvalidArgument,
                 {"tensor 'fc.weight'", "8 columns are not a multiple of 16"});
  // A weight without a +0.0 is left dense whatever the format; --ignore leaves any weight dense.
  io::save_safetensors(model, {{"fc.weight", Tensor::from_values({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4})},
                               {"g.weight", Tensor::from_values({1, 0, 2, 0, 3, 4, 5, 0}, {2, 4})}});
  const PackReport r = pack_with(model, dir + "/ok.safetensors", "sparse-24-bitmask", {"g"});
  EXPECT_EQ(r.packed, 0u);
  EXPECT_EQ(r.weights[0].reason, "no element is +0.0");
  EXPECT_EQ(r.weights[1].reason, "ignored");
  auto ok = io::SafetensorsFile::open(dir + "/ok.safetensors");
  EXPECT_EQ(ok->metadata().at(kPackedMetadataKey), R"({"format":"dense","tensors":{}})");
}

TEST_F(Refusals, PartNamesTheFileUsesAlready) {
  io::save_safetensors(model, {{"fc.weight", Tensor::from_values({1, 0, 2, 0}, {1, 4})},
                               {"fc.bitmask", Tensor::zeros({3}, DType::u8)}});
  expect_refused([&] { pack_with(model, dir + "/out.safetensors", "csr"); }, ErrorCode::InvalidArgument,
                 {"'fc.weight'", "'fc.bitmask'", "part 'bitmask'"});
  // Ignored, the weight stays dense and nothing collides.
  EXPECT_EQ(pack_with(model, dir + "/ok.safetensors", "csr", {"fc.weight"}).packed, 0u);
}

TEST_F(Refusals, OutputsInputsAndOptions) {
  expect_refused([&] { pack_with(model, dir, "auto"); }, ErrorCode::InvalidArgument, {"not a regular file"});
  write_bytes(dir + "/masks.safetensors", file_bytes(model));
  expect_refused(
      [&] { pack_with(model, dir + "/masks.safetensors", "auto", {}, dir + "/masks.safetensors"); },
      ErrorCode::InvalidArgument, {"would overwrite the masks file"});
  expect_refused([&] { pack_with(model, dir + "/out.safetensors", "auto", {"re:("}); },
                 ErrorCode::InvalidArgument, {"invalid pattern '('"});
  expect_refused([&] { pack_with(dir + "/index.json", dir + "/out.safetensors", "auto"); },
                 ErrorCode::InvalidArgument, {"sharded"});
  expect_refused([&] { pack_with(dir + "/missing.safetensors", dir + "/out.safetensors", "auto"); },
                 ErrorCode::NotFound, {"missing.safetensors"});
  expect_refused([&] { unpack_with(model, dir + "/out.safetensors"); }, ErrorCode::InvalidArgument,
                 {"not a packed file", "'sparsity.packed'"});
  // Packing a packed file.
  pack_with(model, dir + "/p.safetensors", "auto");
  expect_refused([&] { pack_with(dir + "/p.safetensors", dir + "/out.safetensors", "auto"); },
                 ErrorCode::InvalidArgument, {"packed already", "p.safetensors"});
  // The output may replace its input: it appears complete, by rename.
  write_bytes(dir + "/r.safetensors", file_bytes(model));
  EXPECT_EQ(pack_with(dir + "/r.safetensors", dir + "/r.safetensors", "auto").packed, 1u);
  EXPECT_EQ(file_bytes(dir + "/r.safetensors"), file_bytes(dir + "/p.safetensors"));
}

// ---- corrupt packed files ----------------------------------------------------------------------------

// A packed file written by hand: metadata and tensors (dtype name, shape, raw bytes).
struct RawTensor {
  std::string name, dtype;
  Shape shape;
  std::string bytes;
};
std::string le(std::initializer_list<int64_t> values, size_t width) {
  std::string s;
  for (int64_t v : values) {
    for (size_t b = 0; b < width; ++b)
      s.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * b)) & 0xff));
  }
  return s;
}
std::string f32s(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) s.append(reinterpret_cast<const char*>(&v), 4);
  return s;
}
void write_raw(const std::string& path, const std::vector<RawTensor>& tensors, const std::string& manifest) {
  std::vector<io::TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  io::SafetensorsWriter w(path, specs, {{kPackedMetadataKey, manifest}});
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].bytes.empty()) w.write(i, 0, tensors[i].bytes.data(), tensors[i].bytes.size());
  }
  w.commit();
}

TEST(PackedFileErrors, CorruptPartsAndListsAreNamed) {
  const std::string dir = sparsity::testing::fresh_temp_dir("sparsity_pack_corrupt_");
  // fc.weight = [[1, 0, 2, 0], [0, 3, 0, 4]] as sparse-24-bitmask: bitmask rows 0b0101, 0b1010.
  const std::string mf = R"({"format":"sparse-24-bitmask","tensors":{"fc.weight":"sparse-24-bitmask"}})";
  auto good = [&] {
    return std::vector<RawTensor>{{"fc.shape", "I64", {2, 1}, le({2, 4}, 8)},
                                  {"fc.compressed", "F32", {2, 2}, f32s({1, 2, 3, 4})},
                                  {"fc.bitmask", "U8", {2, 1}, le({0x05, 0x0a}, 1)},
                                  {"fc.bias", "F32", {2}, f32s({0.5f, -0.5f})}};
  };
  write_raw(dir + "/good.safetensors", good(), mf);
  unpack_with(dir + "/good.safetensors", dir + "/good_out.safetensors");
  const auto back = io::load_safetensors(dir + "/good_out.safetensors");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].first, "fc.weight");
  EXPECT_TRUE(bitwise_equal(back[0].second, Tensor::from_values({1, 0, 2, 0, 0, 3, 0, 4}, {2, 4})));
  EXPECT_EQ(back[1].first, "fc.bias");

  auto expect_bad = [&](const std::vector<RawTensor>& tensors, const std::string& manifest, ErrorCode code,
                        std::initializer_list<std::string> fragments) {
    const std::string path = dir + "/bad.safetensors";
    write_raw(path, tensors, manifest);
    for (int reader = 0; reader < 2; ++reader) {
      bool thrown = false;
      try {
        if (reader == 0) {
          unpack_with(path, dir + "/out.safetensors");
        } else {
          inspect_checkpoint(path);
        }
      } catch (const Error& e) {
        thrown = true;
        EXPECT_EQ(e.code(), code) << e.what();
        for (const auto& f : fragments)
          EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
      }
      EXPECT_TRUE(thrown) << (reader ? "inspect" : "unpack") << " " << manifest;
    }
    EXPECT_FALSE(exists(dir + "/out.safetensors"));
  };
  auto with = [&](size_t i, RawTensor t) {
    auto v = good();
    v[i] = std::move(t);
    return v;
  };
  // Three bits in the group of row 1.
  expect_bad(with(2, {"fc.bitmask", "U8", {2, 1}, le({0x05, 0x0b}, 1)}), mf, ErrorCode::InvalidArgument,
             {"tensor 'fc.weight'", "part 'bitmask'", "row 1"});
  expect_bad(with(0, {"fc.shape", "F32", {2}, f32s({2, 4})}), mf, ErrorCode::InvalidArgument,
             {"tensor 'fc.weight'", "part 'shape'", "dtype f32"});
  expect_bad(with(1, {"fc.compressed", "F32", {2, 3}, f32s({1, 2, 3, 4, 5, 6})}), mf,
             ErrorCode::InvalidArgument, {"tensor 'fc.weight'", "part 'compressed'", "[2, 3]"});
  expect_bad(with(2, {"fc.bitmask", "U16", {2, 1}, le({5, 10}, 2)}), mf, ErrorCode::InvalidArgument,
             {"tensor 'fc.weight'", "part 'bitmask'", "U16"});
  expect_bad(with(2, {"fc.row_offsets", "I64", {2}, le({0, 2}, 8)}), mf, ErrorCode::InvalidArgument,
             {"tensor 'fc.weight'", "part 'row_offsets'", "not a part of this layout"});
  {
    auto missing = good();
    missing.erase(missing.begin() + 2);
    expect_bad(missing, mf, ErrorCode::NotFound, {"tensor 'fc.weight'", "part 'bitmask'", "missing"});
    expect_bad({{"fc.bias", "F32", {2}, f32s({0.5f, -0.5f})}}, mf, ErrorCode::NotFound,
               {"tensor 'fc.weight'", "part 'shape'", "missing"});
  }
  // csr with a column index past the last column.
  expect_bad({{"fc.shape", "I64", {2}, le({2, 4}, 8)},
              {"fc.compressed", "F32", {4}, f32s({1, 2, 3, 4})},
              {"fc.col_indices", "U8", {4}, le({0, 2, 1, 4}, 1)},
              {"fc.crow_indices", "U8", {3}, le({0, 2, 4}, 1)}},
             R"({"format":"csr","tensors":{"fc.weight":"csr"}})", ErrorCode::InvalidArgument,
             {"tensor 'fc.weight'", "part 'col_indices'", "entry 3 (row 1) is 4, outside [0, 4)"});
  // The list itself.
  const std::string where = "key __metadata__.sparsity.packed";
  expect_bad(good(), "{\"format\":", ErrorCode::InvalidArgument, {"not valid JSON", where});
  expect_bad(good(), "[]", ErrorCode::InvalidArgument, {"not a JSON object", where});
  expect_bad(good(), R"({"format":"csr","tensors":[]})", ErrorCode::InvalidArgument,
             {"\"tensors\" must be", where});
  expect_bad(good(), R"({"tensors":{}})", ErrorCode::InvalidArgument, {"\"format\" must be a string", where});
  expect_bad(good(), R"({"format":"x","tensors":{},"extra":1})", ErrorCode::InvalidArgument,
             {"unknown key 'extra'", where});
  expect_bad(good(), R"({"format":"x","tensors":{"fc.weight":"nm5of4"}})", ErrorCode::InvalidArgument,
             {"'fc.weight'", "nm5of4", where});
  expect_bad(good(), R"({"format":"x","tensors":{"fc.weight":"auto"}})", ErrorCode::InvalidArgument,
             {"'auto' is not a layout", where});
  expect_bad(good(), R"({"format":"x","tensors":{"fc":"csr"}})", ErrorCode::InvalidArgument,
             {"'fc' does not end in '.weight'", where});
  expect_bad(good(), R"({"format":"x","tensors":{"fc.weight":"csr","fc.weight":"csr"}})",
             ErrorCode::InvalidArgument, {"duplicate key 'fc.weight'", where});
  {
    auto twice = good();
    twice.push_back({"fc.weight", "F32", {1}, f32s({1})});
    expect_bad(twice, mf, ErrorCode::InvalidArgument, {"holds a tensor of that name too", where});
  }
}

}  // namespace
}  // namespace sparsity::prune
