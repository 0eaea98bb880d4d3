// ONNX orientation: torch-oriented blocks and N:M apply along the input of a MatMul weight stored (in, out).
#ifdef SPARSITY_HAVE_ONNX
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "onnx/onnx_pb.h"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/prune/engine.hpp"
#include "sparsity/prune/inspect.hpp"
#include "temp_dir.hpp"
#include "test_util.hpp"

namespace sparsity::prune {
namespace {

TEST(PruneOnnx, TorchOrientedTwoFourRunsAlongTheInputOfAnInOutWeight) {
  const int64_t in = 8, out = 4;
  const Tensor w = sparsity::testing::random_tensor({in, out}, 7);  // MatMul's B: (in, out)
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  auto* t = g->add_initializer();
  t->set_name("fc.weight");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(in);
  t->add_dims(out);
  t->set_raw_data(std::string(static_cast<const char*>(w.data_ptr()), w.nbytes()));
  auto* n = g->add_node();
  n->set_op_type("MatMul");
  n->add_input("X");
  n->add_input("fc.weight");
  n->add_output("Y");
  const std::string dir = sparsity::testing::fresh_temp_dir("onnx_orient_");
  std::ofstream(dir + "/m.onnx", std::ios::binary) << m.SerializeAsString();

  Options o;
  o.model = dir + "/m.onnx";
  o.config = parse_prune_config(std::string_view(R"({"sparsifier": "WeightNormSparsifier",
      "defaults": {"sparsity_level": 1.0, "sparse_block_shape": [1, 4], "zeros_per_block": 2}})"),
                                "inline");
  o.output = dir + "/p.onnx";
  o.masks = dir + "/masks.safetensors";
  run(o);

  // The mask keeps its stored shape; in every output column each group of 4 consecutive inputs has
  // exactly its 2 smallest |w| pruned.
  const Tensor mask = io::load_safetensors(o.masks).at(0).second;
  ASSERT_EQ(mask.shape(), (Shape{in, out}));
  for (int64_t j = 0; j < out; ++j) {
    for (int64_t g0 = 0; g0 < in; g0 += 4) {
      std::vector<int64_t> rows = {g0, g0 + 1, g0 + 2, g0 + 3};
      std::sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) {
        return std::fabs(w.get({a, j})) < std::fabs(w.get({b, j}));
      });
      EXPECT_EQ(mask.get({rows[0], j}), 0) << "column " << j << " group " << g0;
      EXPECT_EQ(mask.get({rows[1], j}), 0) << "column " << j << " group " << g0;
      EXPECT_EQ(mask.get({rows[2], j}), 1) << "column " << j << " group " << g0;
      EXPECT_EQ(mask.get({rows[3], j}), 1) << "column " << j << " group " << g0;
    }
  }
  // inspect: both orientations.
  const CheckpointStats s = inspect_checkpoint(o.output);
  ASSERT_EQ(s.tensors.size(), 1u);
  EXPECT_EQ(s.tensors[0].pattern, "2:4 along columns");  // the stored (in, out) layout
  EXPECT_EQ(s.tensors[0].torch_pattern, "2:4");          // torch's (out, in)
}

}  // namespace
}  // namespace sparsity::prune
#endif  // SPARSITY_HAVE_ONNX
