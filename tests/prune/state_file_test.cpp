// Tests of sparsifier state files: bit packing, round trips and validation.
#include "sparsity/prune/state_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "sparsity/nn/linear.hpp"
#include "sparsity/sparsifier/weight_norm_sparsifier.hpp"
#include "temp_dir.hpp"

namespace sparsity::prune {
namespace {

std::string temp_path(const std::string& name) {
  return sparsity::testing::fresh_temp_dir("sparsity_state_") + "/" + name;
}

TEST(StateFile, PacksBitsLittleEndianWithinBytes) {
  // Elements 0, 2, 3 and 8 kept: byte 0 = 0b00001101, byte 1 = 0b00000001.
  const Tensor mask = Tensor::from_values({1, 0, 1, 1, 0, 0, 0, 0, 1}, {3, 3}, DType::f32);
  const PackedMask p = pack_mask(mask);
  EXPECT_EQ(p.shape, (Shape{3, 3}));
  EXPECT_EQ(p.bits, (std::vector<uint8_t>{0x0D, 0x01}));
  const Tensor back = unpack_mask(p);
  EXPECT_EQ(back.dtype(), DType::u8);
  EXPECT_EQ(back.to_vector(), (std::vector<double>{1, 0, 1, 1, 0, 0, 0, 0, 1}));
  // u8 masks with values other than 1 count as kept; -0.0 and 0 as pruned.
  EXPECT_EQ(pack_mask(Tensor::from_values({7, 0, 255}, DType::u8)).bits, (std::vector<uint8_t>{0x05}));
  EXPECT_EQ(pack_mask(Tensor::from_values({-0.0, 2.0}, DType::f64)).bits, (std::vector<uint8_t>{0x02}));
  EXPECT_THROW(unpack_mask(PackedMask{{3, 3}, {0x0D}}), Error);
}

TEST(StateFile, RoundTripKeepsEverything) {
  SparsifierCheckpoint c;
  c.sparsifier = "WeightNormSparsifier";
  c.defaults = {{"sparsity_level", 0.5}, {"sparse_block_shape", {1, 4}}, {"zeros_per_block", nullptr}};
  c.groups = {Json{{"tensor_fqn", "a.weight"}, {"sparsity_level", 0.25}}, Json{{"tensor_fqn", "b.weight"}}};
  c.masks.emplace_back("a.weight", PackedMask{{2, 5}, {0xff, 0x02}});
  c.masks.emplace_back("b.weight", PackedMask{{0, 3}, {}});
  c.values["a.weight"] = {{"step_count", 3}};
  c.scheduler = {{"last_epoch", 2}, {"base_sl", {0.5, 0.5}}};
  c.steps = 7;
  const std::string path = temp_path("s.safetensors");
  save_checkpoint(path, c);
  const SparsifierCheckpoint d = load_checkpoint(path);
  EXPECT_EQ(d.sparsifier, c.sparsifier);
  EXPECT_EQ(d.defaults, c.defaults);
  EXPECT_EQ(d.groups, c.groups);
  ASSERT_EQ(d.masks.size(), 2u);
  EXPECT_EQ(d.masks[0].first, "a.weight");
  EXPECT_EQ(d.masks[0].second.shape, (Shape{2, 5}));
  EXPECT_EQ(d.masks[0].second.bits, (std::vector<uint8_t>{0xff, 0x02}));
  EXPECT_EQ(d.masks[1].second.shape, (Shape{0, 3}));
  EXPECT_EQ(d.values, c.values);
  EXPECT_EQ(d.scheduler, c.scheduler);
  EXPECT_EQ(d.steps, 7);
  const SparsifierStateDict sd = to_state_dict(d);
  ASSERT_EQ(sd.state.size(), 2u);
  EXPECT_EQ(sd.state[0].second.mask.to_vector(), (std::vector<double>{1, 1, 1, 1, 1, 1, 1, 1, 0, 1}));
  EXPECT_EQ(sd.state[0].second.values, c.values["a.weight"]);
  // The file is a plain safetensors file: one U8 tensor of ceil(n / 8) bytes per mask.
  auto f = io::SafetensorsFile::open(path);
  EXPECT_EQ(f->info("a.weight").shape, (Shape{2}));
  EXPECT_EQ(f->metadata().at("sparsity.format"), "sparsity-state/1");
}

TEST(StateFile, SnapshotOfALiveSparsifier) {
  auto model = std::make_shared<Module>("Model");
  auto lin = model->register_module("fc", std::make_shared<nn::Linear>(nn::LinearOptions(4, 2).bias(false)));
  lin->parameter("weight").copy_(Tensor::from_values({1, -8, 3, -2, 5, 0.5, -7, 4}, {2, 4}));
  WeightNormSparsifier sp(0.5, {1, 1});
  sp.prepare(model, std::nullopt);
  sp.step();
  const SparsifierCheckpoint c = checkpoint_of(sp, nullptr, 1);
  EXPECT_EQ(c.sparsifier, "WeightNormSparsifier");
  ASSERT_EQ(c.masks.size(), 1u);
  EXPECT_EQ(c.masks[0].first, "fc.weight");
  // Kept: -8, 5, -7, 4 (elements 1, 4, 6, 7) -> 0b11010010.
  EXPECT_EQ(c.masks[0].second.bits, (std::vector<uint8_t>{0xD2}));
  ASSERT_EQ(c.groups.size(), 1u);
  EXPECT_EQ(c.groups[0]["tensor_fqn"], "fc.weight");
  EXPECT_TRUE(c.scheduler.is_null());
}

void expect_load_error(const std::map<std::string, std::string>& meta, const NamedList<Tensor>& tensors,
                       const std::string& fragment) {
  const std::string path = temp_path("bad.safetensors");
  io::save_safetensors(path, tensors, meta);
  try {
    load_checkpoint(path);
    ADD_FAILURE() << "accepted; expected " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

std::map<std::string, std::string> good_meta() {
  return {{"sparsity.format", "sparsity-state/1"}, {"sparsifier", "WeightNormSparsifier"}, {"defaults", "{}"},
          {"groups", R"([{"tensor_fqn": "a"}])"}, {"state", R"({"a": {"shape": [3, 3]}})"}, {"scheduler", "null"},
          {"steps", "1"}};
}

TEST(StateFile, RejectsMalformedFiles) {
  const NamedList<Tensor> bits = {{"a", Tensor::zeros({2}, DType::u8)}};
  EXPECT_NO_THROW({
    io::save_safetensors(temp_path("ok.safetensors"), bits, good_meta());
  });
  auto m = good_meta();
  m.erase("sparsity.format");
  expect_load_error(m, bits, "not a sparsity state file");
  m = good_meta();
  m["sparsity.format"] = "sparsity-state/9";
  expect_load_error(m, bits, "unsupported state format");
  m = good_meta();
  m["groups"] = "[{";
  expect_load_error(m, bits, "key __metadata__.groups");
  m = good_meta();
  m["groups"] = R"([{"tensor_fqn": "a"}, {"tensor_fqn": "a"}])";
  expect_load_error(m, bits, "appears twice");
  m = good_meta();
  m["state"] = R"({"b": {"shape": [1]}})";
  expect_load_error(m, bits, "has no group");
  m = good_meta();
  m["steps"] = "-3";
  expect_load_error(m, bits, "steps");
  expect_load_error(good_meta(), {{"a", Tensor::zeros({3}, DType::u8)}}, "must be U8 [2]");
  expect_load_error(good_meta(), {{"a", Tensor::zeros({2}, DType::u8)}, {"z", Tensor::zeros({1}, DType::u8)}},
                    "'z' is not in the state");
}

}  // namespace
}  // namespace sparsity::prune
