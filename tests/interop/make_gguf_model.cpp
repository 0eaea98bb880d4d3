// Writes the GGUF interop fixture: a llama.cpp-like model (F32, F16, BF16 weights, quantized tensors of
// random bytes, metadata of every value type) and the pruning configuration gguf_check.mjs expects.
//
//   make_gguf_model DIR   ->  DIR/model.gguf, DIR/config.json
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "sparsity/io/gguf.hpp"

namespace io = sparsity::io;
using io::GgufValue;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_gguf_model DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  // Keep in step with gguf_check.mjs, which checks these values as @huggingface/gguf reads them.
  const io::GgufMetadata metadata = {
      {"general.architecture", GgufValue::of("llama")},
      {"general.name", GgufValue::of("tiny interop \xc3\xa9\xe2\x82\xac")},
      {"general.alignment", GgufValue::of(uint32_t{64})},
      {"general.file_type", GgufValue::of(uint32_t{1})},
      {"llama.block_count", GgufValue::of(uint32_t{1})},
      {"llama.context_length", GgufValue::of(uint64_t{4096})},
      {"llama.embedding_length", GgufValue::of(uint16_t{32})},
      {"llama.rope.freq_base", GgufValue::of(10000.0f)},
      {"llama.attention.layer_norm_rms_epsilon", GgufValue::of(1e-5f)},
      {"test.i8", GgufValue::of(int8_t{-7})},
      {"test.u8", GgufValue::of(uint8_t{250})},
      {"test.i16", GgufValue::of(int16_t{-1234})},
      {"test.i32", GgufValue::of(int32_t{-123456})},
      {"test.i64", GgufValue::of(int64_t{-9007199254740993})},
      {"test.u64", GgufValue::of(uint64_t{18446744073709551615u})},
      {"test.f64", GgufValue::of(0.1)},
      {"test.bool", GgufValue::of(true)},
      {"tokenizer.ggml.model", GgufValue::of("llama")},
      {"tokenizer.ggml.tokens", GgufValue::array(std::vector<std::string>{
                                    "<unk>", "<s>", "</s>", "\xe2\x96\x81the", "", "\xf0\x9f\x98\x80"})},
      {"tokenizer.ggml.scores",
       GgufValue::array(std::vector<float>{0.0f, -1.0f, -1.0f, -2.5f, -3.25f, -1000.0f})},
      {"tokenizer.ggml.token_type", GgufValue::array(std::vector<int32_t>{2, 3, 3, 1, 1, 1})},
      {"tokenizer.ggml.add_bos_token", GgufValue::of(false)},
      {"test.nested", GgufValue::array({GgufValue::array(std::vector<uint8_t>{1, 2, 3}),
                                        GgufValue::array(std::vector<uint8_t>{}),
                                        GgufValue::array(std::vector<uint8_t>{255})})},
      {"test.empty", GgufValue::empty_array(io::GgufType::f64)},
  };
  // Shapes in torch order (GGUF stores them reversed: token_embd.weight has ne = [32, 12]).
  const std::vector<io::GgufTensorSpec> tensors = {
      {"token_embd.weight", "F32", {12, 32}},     {"blk.0.attn_norm.weight", "F32", {32}},
      {"blk.0.attn_q.weight", "Q8_0", {32, 32}},  {"blk.0.attn_k.weight", "Q4_K", {8, 256}},
      {"blk.0.ffn_up.weight", "F32", {64, 32}},   {"blk.0.ffn_gate.weight", "BF16", {64, 32}},
      {"blk.0.ffn_down.weight", "F16", {32, 64}}, {"blk.0.layer_index", "I32", {2, 4}},
      {"output_norm.weight", "F32", {32}},        {"output.weight", "F16", {12, 32}},
  };
  try {
    io::GgufWriter w(dir + "/model.gguf", tensors, metadata);
    std::mt19937 rng(2024);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (size_t k = 0; k < w.entries().size(); ++k) {
      const io::TensorInfo& e = w.entries()[k];
      std::string bytes;
      for (uint64_t i = 0; i < (e.dtype ? e.numel() : e.nbytes()); ++i) {
        const float x = uniform(rng);
        if (e.dtype_name == "F32") {
          bytes.append(reinterpret_cast<const char*>(&x), 4);
        } else if (e.dtype_name == "F16" || e.dtype_name == "BF16") {
          const uint16_t h =
              e.dtype_name == "F16" ? sparsity::Half::from_float(x) : sparsity::BFloat16::from_float(x);
          bytes.append(reinterpret_cast<const char*>(&h), 2);
        } else {
          bytes.push_back(static_cast<char>(rng() & 0xff));  // quantized and integer tensors: random bytes
        }
      }
      w.write(k, 0, bytes.data(), bytes.size());
    }
    w.commit();
  } catch (const sparsity::Error& e) {
    std::fprintf(stderr, "make_gguf_model: %s\n", e.what());
    return 1;
  }
  // 2:4 along ne[0] for the feed-forward weights, half of the elements for output.weight (unstructured);
  // the token embedding is not listed, so it is left alone.
  std::ofstream(dir + "/config.json") << R"({
  "sparsifier": "WeightNormSparsifier",
  "defaults": {"sparsity_level": 1.0, "sparse_block_shape": [1, 4], "zeros_per_block": 2},
  "config": [
    {"tensor_fqn": "blk.0.ffn_up.weight"},
    {"tensor_fqn": "blk.0.ffn_gate.weight"},
    {"tensor_fqn": "blk.0.ffn_down.weight"},
    {"tensor_fqn": "output.weight", "sparsity_level": 0.5, "sparse_block_shape": [1, 1], "zeros_per_block": 1}
  ]
}
)";
  return 0;
}
