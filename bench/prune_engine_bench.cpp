// The prune engine on a file (six 4096 x 4096 f32 Linear layers with biases, 403 MB, page cache warm,
// no fsync): BM_PruneGlobal/<threads> (one ranking over the six) against BM_PrunePerTensor/<threads> in
// the same run; WeightNorm (1, 4) blocks at level 0.5.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>
#include <unistd.h>

#include "sparsity/io/safetensors.hpp"
#include "sparsity/prune/engine.hpp"
#include "sparsity/prune/registry.hpp"

namespace {

constexpr int kLayers = 6;
constexpr int64_t kSide = 4096;

// Written once per process, removed at exit.
struct ModelFile {
  std::string dir, path;
  ModelFile() {
    char tmpl[] = "/tmp/sparsity_prune_bench_XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = dir + "/model.safetensors";
    sparsity::NamedList<sparsity::Tensor> tensors;
    std::mt19937 gen(7);
    std::normal_distribution<float> dist(0.f, 1.f);
    for (int l = 0; l < kLayers; ++l) {
      auto w = sparsity::Tensor::empty({kSide, kSide}, sparsity::DType::f32);
      float* p = w.mutable_data<float>();
      const float scale = 0.5f + 0.25f * static_cast<float>(l);
      for (int64_t i = 0; i < kSide * kSide; ++i) p[i] = dist(gen) * scale;
      tensors.emplace_back("layers." + std::to_string(l) + ".weight", w);
      tensors.emplace_back("layers." + std::to_string(l) + ".bias", sparsity::Tensor::zeros({kSide}, sparsity::DType::f32));
    }
    sparsity::io::save_safetensors(path, tensors);
  }
  ~ModelFile() {
    std::remove((dir + "/out.safetensors").c_str());
    std::remove(path.c_str());
    ::rmdir(dir.c_str());
  }
};

const ModelFile& model() {
  static ModelFile m;
  return m;
}

void run(benchmark::State& state, const char* config) {
  sparsity::prune::Options o;
  o.model = model().path;
  o.config = sparsity::parse_prune_config(config, "bench");
  o.output = model().dir + "/out.safetensors";
  o.threads = static_cast<int>(state.range(0));
  o.durable = false;
  for (auto _ : state) sparsity::prune::run(o);
  state.counters["bytes"] = benchmark::Counter(static_cast<double>(kLayers * (kSide * kSide + kSide) * 4) *
                                                   static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
}

void BM_PrunePerTensor(benchmark::State& state) {
  run(state, R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": 0.5, "sparse_block_shape": [1, 4]}})");
}
void BM_PruneGlobal(benchmark::State& state) {
  run(state, R"({"sparsifier": "WeightNormSparsifier", "scope": "global",
                 "defaults": {"sparsity_level": 0.5, "sparse_block_shape": [1, 4]}})");
}

}  // namespace

BENCHMARK(BM_PrunePerTensor)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PruneGlobal)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
