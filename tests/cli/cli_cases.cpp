// Tests of the `sparsity` command line: they run the built binary on files made here.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sparsity/io/safetensors.hpp"
#include "temp_dir.hpp"

namespace {

using sparsity::DType;
using sparsity::Shape;
using sparsity::Tensor;
namespace io = sparsity::io;
using Json = nlohmann::ordered_json;

struct CliRun {
  int status = -1;
  bool signaled = false;
  std::string out, err;
  long peak_rss_kb = 0;  ///< the child's ru_maxrss
};

// How run() starts the CLI: a signal after a delay, extra environment variables.
struct RunOptions {
  int kill_after_ms = -1;
  int signal = SIGKILL;
  std::vector<std::pair<std::string, std::string>> env;
};

using sparsity::testing::file_bytes;
using sparsity::testing::write_bytes;

std::string fresh_dir() { return sparsity::testing::fresh_temp_dir("sparsity_cli_"); }

std::set<std::string> list_dir(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (auto* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.insert(n);
    }
    ::closedir(d);
  }
  return names;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Runs the CLI; with kill_after_ms >= 0 it is sent `signal` after that delay.
CliRun run(const std::vector<std::string>& args, const RunOptions& options) {
  static int counter = 0;
  const std::string base = testing::TempDir() + "/sparsity_cli_run_" + std::to_string(::getpid()) + "_" +
                           std::to_string(counter++);
  const std::string out_path = base + ".out", err_path = base + ".err";
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    FILE* o = std::freopen(out_path.c_str(), "w", stdout);
    FILE* e = std::freopen(err_path.c_str(), "w", stderr);
    if (!o || !e) _exit(127);
    for (const auto& [k, v] : options.env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    std::string prog = SPARSITY_CLI_PATH;
    argv.push_back(prog.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(prog.c_str(), argv.data());
    _exit(127);
  }
  if (options.kill_after_ms >= 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(options.kill_after_ms));
    ::kill(pid, options.signal);
  }
  int st = 0;
  struct rusage usage {};
  ::wait4(pid, &st, 0, &usage);
  CliRun r;
  r.peak_rss_kb = usage.ru_maxrss;
  r.signaled = WIFSIGNALED(st);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = file_bytes(out_path);
  r.err = file_bytes(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  return r;
}

CliRun run(const std::vector<std::string>& args, int kill_after_ms = -1) {
  RunOptions o;
  o.kill_after_ms = kill_after_ms;
  return run(args, o);
}

// The values of the hand-derived case: |w| = 1 8 3 2 / 5 0.5 7 4; at sparsity 0.5 with 1x1 blocks the
// four smallest magnitudes (0.5, 1, 2, 3) are pruned.
const std::vector<double> kValues = {1, -8, 3, -2, 5, 0.5, -7, 4};
const std::vector<uint8_t> kMask = {0, 1, 0, 0, 1, 0, 1, 1};

std::string unstructured_config(const std::vector<std::string>& fqns, double level = 0.5) {
  Json c = {{"sparsifier", "WeightNormSparsifier"},
            {"defaults", {{"sparsity_level", level}, {"sparse_block_shape", {1, 1}}}}};
  c["config"] = Json::array();
  for (const auto& f : fqns) c["config"].push_back({{"tensor_fqn", f}});
  return c.dump();
}

// Pseudo-random but fixed values (distinct magnitudes) for larger matrices.
Tensor wave(int64_t rows, int64_t cols, double phase) {
  std::vector<double> v(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * static_cast<double>(i) + phase) * (1.0 + 1e-4 * static_cast<double>(i));
  return Tensor::from_values(v, {rows, cols}, DType::f32);
}

// Stderr is exactly one line "sparsity: error: ...fragment...".
void expect_one_error_line(const CliRun& r, int status, const std::string& fragment) {
  EXPECT_FALSE(r.signaled);
  EXPECT_EQ(r.status, status) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind("sparsity: error: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << "missing '" << fragment << "' in: " << r.err;
}

// A directory with a valid model and config; each error case runs against a copy of it.
struct Fixture {
  std::string dir, model, config;
  Fixture() {
    dir = fresh_dir();
    model = dir + "/model.safetensors";
    config = dir + "/config.json";
    io::save_safetensors(model, {{"proj.weight", Tensor::from_values(kValues, {2, 4}, DType::f32)},
                                 {"proj.bias", Tensor::from_values({1, 2}, DType::f32)},
                                 {"ids", Tensor::from_values({1, 2, 3}, DType::i64)}});
    write_bytes(config, unstructured_config({"proj.weight"}));
  }
  // Runs prune with `config_text` (or the valid config) on `model_path` (or the valid model) and checks
  // the error contract: status, one line naming `fragment`, no new file, inputs unchanged.
  void expect_error(int status, const std::string& fragment, std::vector<std::string> args) {
    const auto before = list_dir(dir);
    const std::string model_bytes = file_bytes(model);
    const CliRun r = run(args);
    expect_one_error_line(r, status, fragment);
    EXPECT_EQ(list_dir(dir), before);
    EXPECT_EQ(file_bytes(model), model_bytes);
  }
  void expect_config_error(const std::string& config_text, const std::string& fragment) {
    const std::string path = dir + "/bad_config.json";
    write_bytes(path, config_text);
    expect_error(1, fragment, {"prune", model, "--config", path, "--output", dir + "/out.safetensors", "--masks",
                               dir + "/masks.safetensors", "--state", dir + "/state.safetensors"});
    ::unlink(path.c_str());
  }
  void expect_model_error(const std::string& bytes, const std::string& fragment) {
    const std::string path = dir + "/bad.safetensors";
    write_bytes(path, bytes);
    expect_error(1, fragment, {"prune", path, "--config", config, "--output", dir + "/out.safetensors"});
    ::unlink(path.c_str());
  }
};

std::string raw_model(const std::string& header, const std::string& data, int64_t length = -1) {
  std::string out(8, '\0');
  const uint64_t n = length >= 0 ? static_cast<uint64_t>(length) : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// ---- basics -----------------------------------------------------------------------------------------

TEST(Cli, VersionAndHelp) {
  CliRun v = run({"--version"});
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(v.out.rfind("sparsity 0.1", 0), 0u) << v.out;
  for (const char* sub : {"prune", "pack", "unpack", "inspect", "demo"}) {
    CliRun h = run({sub, "--help"});
    EXPECT_EQ(h.status, 0) << sub;
    EXPECT_NE(h.out.find("Usage"), std::string::npos) << h.out;
    EXPECT_TRUE(h.err.empty());
  }
  CliRun h = run({"--help"});
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("prune"), std::string::npos);
  EXPECT_EQ(h.out.find("make-model"), std::string::npos);  // hidden helper
}

TEST(Cli, PruneHandDerivedMaskInEveryFloatDtypeAndPassThroughOthers) {
  const std::string dir = fresh_dir();
  const std::string model = dir + "/m.safetensors";
  std::vector<io::TensorSpec> specs;
  std::vector<std::string> pruned;
  for (const char* dt : {"F32", "F64", "F16", "BF16"}) {
    specs.push_back({std::string("l_") + dt + ".weight", dt, {2, 4}});
    pruned.push_back(specs.back().name);
  }
  const std::vector<std::string> raw = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F8_E4M3", "F8_E5M2"};
  for (const auto& dt : raw) specs.push_back({"raw_" + dt, dt, {3}});
  {
    io::SafetensorsWriter w(model, specs, {{"format", "pt"}, {"note", "kept"}});
    for (size_t i = 0; i < 4; ++i) {
      const DType t = *io::safetensors_to_dtype(specs[i].dtype_name);
      Tensor v = Tensor::from_values(kValues, {2, 4}, t);
      w.write(i, 0, v.data_ptr(), v.nbytes());
    }
    for (size_t i = 4; i < specs.size(); ++i) {
      std::string bytes(w.entries()[i].nbytes(), '\0');
      for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<char>(j % 2 ? 0 : 0x11 * (j + 1));
      w.write(i, 0, bytes.data(), bytes.size());
    }
    w.commit();
  }
  write_bytes(dir + "/c.json", unstructured_config(pruned));
  const CliRun r = run({"prune", model, "--config", dir + "/c.json", "--output", dir + "/out.safetensors", "--masks",
                     dir + "/masks.safetensors", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty());
  EXPECT_TRUE(r.out.empty());  // --quiet

  auto in = io::SafetensorsFile::open(model);
  auto out = io::SafetensorsFile::open(dir + "/out.safetensors");
  auto masks = io::SafetensorsFile::open(dir + "/masks.safetensors");
  EXPECT_EQ(out->metadata(), in->metadata());
  ASSERT_EQ(out->tensors().size(), in->tensors().size());
  for (const auto& info : in->tensors()) {
    const auto& o = out->info(info.name);
    EXPECT_EQ(o.dtype_name, info.dtype_name);
    EXPECT_EQ(o.shape, info.shape);
    ASSERT_EQ(o.nbytes(), info.nbytes());
    const bool is_pruned = info.name.rfind("l_", 0) == 0;
    if (!is_pruned) {
      EXPECT_EQ(std::memcmp(out->bytes(o), in->bytes(info), info.nbytes()), 0) << info.name;
      continue;
    }
    const auto& m = masks->info(info.name);
    EXPECT_EQ(m.dtype_name, "U8");
    EXPECT_EQ(m.shape, (Shape{2, 4}));
    const size_t es = info.nbytes() / 8;
    for (size_t i = 0; i < 8; ++i) {
      EXPECT_EQ(masks->bytes(m)[i], kMask[i]) << info.name << " " << i;
      const uint8_t* ob = out->bytes(o) + i * es;
      if (kMask[i]) {
        EXPECT_EQ(std::memcmp(ob, in->bytes(info) + i * es, es), 0) << info.name << " " << i;
      } else {
        for (size_t b = 0; b < es; ++b) EXPECT_EQ(ob[b], 0) << info.name << " " << i;  // +0.0
      }
    }
  }
  EXPECT_EQ(masks->tensors().size(), 4u);
}

TEST(Cli, AutoConfigPrunesTwoDimensionalFloatWeightsOnly) {
  const std::string dir = fresh_dir();
  io::save_safetensors(dir + "/m.safetensors",
                       {{"a.weight", Tensor::from_values(kValues, {2, 4}, DType::f32)},
                        {"a.bias", Tensor::from_values({1, 2}, DType::f32)},
                        {"b.c.weight", Tensor::from_values(kValues, {4, 2}, DType::f32)},
                        {"norm.weight", Tensor::from_values({1, 2, 3}, DType::f32)},
                        {"q.weight", Tensor::from_values(kValues, {2, 4}, DType::i8)},
                        {"weight", Tensor::from_values(kValues, {2, 4}, DType::f32)}});
  write_bytes(dir + "/c.json", R"({"sparsifier": "WeightNormSparsifier", "config": null,
      "defaults": {"sparsity_level": 0.5, "sparse_block_shape": [1, 1]}})");
  const CliRun r = run({"prune", dir + "/m.safetensors", "--config", dir + "/c.json", "--output", dir + "/o.safetensors",
                     "--masks", dir + "/k.safetensors"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto masks = io::SafetensorsFile::open(dir + "/k.safetensors");
  std::vector<std::string> names;
  for (const auto& t : masks->tensors()) names.push_back(t.name);
  // LIFO order of make_config_from_model: children a, b, norm, q; `b` is pushed and visited last.
  EXPECT_EQ(names, (std::vector<std::string>{"a.weight", "b.c.weight"}));
  EXPECT_NE(r.out.find("a.weight"), std::string::npos);  // summary table on stdout
}

TEST(Cli, ShardedCheckpointMatchesSingleFile) {
  const std::string dir = fresh_dir();
  Tensor w0 = wave(8, 16, 0.1), w1 = wave(16, 8, 0.7);
  io::save_safetensors(dir + "/single.safetensors", {{"l0.weight", w0}, {"l0.bias", Tensor::ones({8})}, {"l1.weight", w1}});
  io::save_safetensors(dir + "/model-00001-of-00002.safetensors", {{"l0.weight", w0}, {"l0.bias", Tensor::ones({8})}},
                       {{"format", "pt"}});
  io::save_safetensors(dir + "/model-00002-of-00002.safetensors", {{"l1.weight", w1}}, {{"format", "pt"}});
  const std::string index = R"({"metadata": {"total_size": 1056}, "weight_map": {"l0.weight": "model-00001-of-00002.safetensors",
    "l0.bias": "model-00001-of-00002.safetensors", "l1.weight": "model-00002-of-00002.safetensors"}})";
  write_bytes(dir + "/model.safetensors.index.json", index);
  write_bytes(dir + "/c.json", R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": 0.5, "sparse_block_shape": [1, 4]}})");
  ::mkdir((dir + "/out").c_str(), 0755);
  CliRun a = run({"prune", dir + "/model.safetensors.index.json", "--config", dir + "/c.json", "--output",
               dir + "/out/model.safetensors.index.json", "--masks", dir + "/sharded_masks.safetensors"});
  ASSERT_EQ(a.status, 0) << a.err;
  CliRun b = run({"prune", dir + "/single.safetensors", "--config", dir + "/c.json", "--output", dir + "/single_out.safetensors",
               "--masks", dir + "/single_masks.safetensors"});
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(list_dir(dir + "/out"), (std::set<std::string>{"model.safetensors.index.json", "model-00001-of-00002.safetensors",
                                                            "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(file_bytes(dir + "/out/model.safetensors.index.json"), index);
  auto single = io::load_safetensors(dir + "/single_out.safetensors");
  std::map<std::string, Tensor> sharded;
  for (const char* s : {"/out/model-00001-of-00002.safetensors", "/out/model-00002-of-00002.safetensors"}) {
    std::map<std::string, std::string> meta;
    for (auto& [n, t] : io::load_safetensors(dir + s, &meta)) sharded[n] = t;
    EXPECT_EQ(meta.at("format"), "pt");
  }
  ASSERT_EQ(sharded.size(), single.size());
  for (auto& [n, t] : single) EXPECT_TRUE(sparsity::bitwise_equal(t, sharded.at(n))) << n;
  EXPECT_EQ(file_bytes(dir + "/sharded_masks.safetensors"), file_bytes(dir + "/single_masks.safetensors"));
  // Half of each weight is pruned.
  EXPECT_EQ(sparsity::count_nonzero(sharded.at("l0.weight")), 64);

  // A sharded model cannot go to a single-file output.
  Fixture f;
  f.expect_error(1, "sharded", {"prune", dir + "/model.safetensors.index.json", "--config", dir + "/c.json", "--output",
                                f.dir + "/x.safetensors"});
}

TEST(Cli, ResumeTwoPlusOneStepsEqualsThreeSteps) {
  const std::string dir = fresh_dir();
  io::save_safetensors(dir + "/m.safetensors", {{"x.weight", wave(16, 32, 0.3)}, {"y.weight", wave(32, 16, 1.1)}});
  auto config = [&](int steps) {
    Json c = {{"sparsifier", "WeightNormSparsifier"},
              {"defaults", {{"sparsity_level", 0.8}, {"sparse_block_shape", {1, 2}}}},
              {"scheduler", {{"type", "CubicSL"}, {"init_sl", 0.1}, {"delta_t", 1}, {"total_t", 3}}},
              {"steps", steps}};
    const std::string p = dir + "/c" + std::to_string(steps) + ".json";
    write_bytes(p, c.dump());
    return p;
  };
  const std::string m = dir + "/m.safetensors";
  CliRun three = run({"prune", m, "--config", config(3), "--output", dir + "/o3.safetensors", "--masks", dir + "/k3.safetensors",
                   "--state", dir + "/s3.safetensors"});
  ASSERT_EQ(three.status, 0) << three.err;
  CliRun two = run({"prune", m, "--config", config(2), "--output", dir + "/o2.safetensors", "--masks", dir + "/k2.safetensors",
                 "--state", dir + "/s2.safetensors"});
  ASSERT_EQ(two.status, 0) << two.err;
  CliRun one = run({"prune", m, "--config", config(1), "--output", dir + "/o21.safetensors", "--masks", dir + "/k21.safetensors",
                 "--resume", dir + "/s2.safetensors", "--state", dir + "/s21.safetensors"});
  ASSERT_EQ(one.status, 0) << one.err;
  EXPECT_EQ(file_bytes(dir + "/k21.safetensors"), file_bytes(dir + "/k3.safetensors"));
  EXPECT_EQ(file_bytes(dir + "/o21.safetensors"), file_bytes(dir + "/o3.safetensors"));
  EXPECT_EQ(file_bytes(dir + "/s21.safetensors"), file_bytes(dir + "/s3.safetensors"));
  // The ramp really moved between step 2 and 3: the masks differ.
  EXPECT_NE(file_bytes(dir + "/k2.safetensors"), file_bytes(dir + "/k3.safetensors"));
  // The state records the steps done and the scheduler.
  auto s = io::SafetensorsFile::open(dir + "/s21.safetensors");
  EXPECT_EQ(s->metadata().at("steps"), "3");
  EXPECT_EQ(Json::parse(s->metadata().at("scheduler"))["last_epoch"], 3);
  EXPECT_EQ(s->metadata().at("sparsifier"), "WeightNormSparsifier");
}

uint64_t checksum(const std::string& path) {
  const std::string b = file_bytes(path);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : b) h = (h ^ c) * 1099511628211ull;
  return h ^ b.size();
}

TEST(Cli, KilledRunLeavesNoOutputAndKeepsTheModel) {
  const std::string dir = fresh_dir();
  const std::string model = dir + "/model.safetensors";
  ASSERT_EQ(run({"make-model", model, "--layers", "4", "--dim", "2048"}).status, 0);
  write_bytes(dir + "/c.json", R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": 0.5}, "steps": 2})");
  const uint64_t sum = checksum(model);
  const std::string original = file_bytes(model);
  const std::set<std::string> before = list_dir(dir);
  const std::set<std::string> complete = {"c.json", "model.safetensors", "out.safetensors", "masks.safetensors",
                                          "state.safetensors"};
  int killed = 0;
  for (int delay = 10; delay <= 400; delay += 30) {
    // Alternate between a separate output and overwriting the model in place.
    const bool in_place = delay % 60 == 10;
    const std::string out = in_place ? model : dir + "/out.safetensors";
    const CliRun r = run({"prune", model, "--config", dir + "/c.json", "--output", out, "--masks", dir + "/masks.safetensors",
                          "--state", dir + "/state.safetensors", "--threads", "1"},
                         delay);
    if (!r.signaled) {
      ASSERT_EQ(r.status, 0) << r.err;  // finished before the signal
      break;
    }
    const auto now = list_dir(dir);
    // The signal may land after the last rename: then every output is there and whole. Otherwise
    // nothing may have appeared and the model must be intact.
    std::set<std::string> expect_complete = complete;
    if (in_place) expect_complete.erase("out.safetensors");
    if (now == expect_complete) {
      for (const char* f : {"/masks.safetensors", "/state.safetensors"}) EXPECT_NO_THROW(io::SafetensorsFile::open(dir + f));
      ::unlink((dir + "/out.safetensors").c_str());
      ::unlink((dir + "/masks.safetensors").c_str());
      ::unlink((dir + "/state.safetensors").c_str());
      write_bytes(model, original);
      continue;
    }
    ++killed;
    EXPECT_EQ(now, before) << "delay " << delay;
    EXPECT_EQ(checksum(model), sum) << "delay " << delay;
  }
  EXPECT_GE(killed, 3) << "the runs finished too fast for the kill test to land";
}

TEST(Cli, InspectReportsZerosAndPatterns) {
  const std::string dir = fresh_dir();
  // 2:4 along rows (zeros move inside the groups), 1x4 blocks, 2x2 blocks, unstructured, dense,
  // all zero; each irregular enough to have a single reading.
  std::vector<double> nm, blocks14, blocks22, unstr;
  const std::set<int> zero14 = {4, 6, 9, 10, 15, 17, 20, 23, 26, 28, 31};  // tile r*4+c of 8x16
  const std::set<int> zero22 = {1, 2, 4, 7, 10, 11, 13};                   // tile r*4+c of 8x8
  const std::set<int> zero_un = {0, 1, 2, 3, 10, 17, 30, 45, 46, 60};
  for (int i = 0; i < 64; ++i) {
    const int g = i / 4, p = i % 4;
    nm.push_back(p == g % 4 || p == (g + 1) % 4 ? 0.0 : 1.0 + i);
    const int r = i / 8, c = i % 8;
    blocks22.push_back(zero22.count((r / 2) * 4 + c / 2) ? -0.0 : 2.0);
    unstr.push_back(zero_un.count(i) ? 0.0 : 1.0);
  }
  for (int i = 0; i < 128; ++i) blocks14.push_back(zero14.count((i / 16) * 4 + (i % 16) / 4) ? 0.0 : 1.0 + i);
  io::save_safetensors(dir + "/m.safetensors", {{"nm", Tensor::from_values(nm, {8, 8})},
                                                {"b14", Tensor::from_values(blocks14, {8, 16})},
                                                {"b22", Tensor::from_values(blocks22, {8, 8}, DType::bf16)},
                                                {"un", Tensor::from_values(unstr, {8, 8})},
                                                {"dense", Tensor::ones({3, 3})},
                                                {"zero", Tensor::zeros({4}, DType::i32)}});
  CliRun t = run({"inspect", dir + "/m.safetensors"});
  ASSERT_EQ(t.status, 0) << t.err;
  for (const char* s : {"2:4", "1x4 blocks", "2x2 blocks", "unstructured", "dense", "all zero", "50.0%", "total: 6 tensors"}) {
    EXPECT_NE(t.out.find(s), std::string::npos) << s << " in\n" << t.out;
  }
  CliRun j = run({"inspect", dir + "/m.safetensors", "--json"});
  ASSERT_EQ(j.status, 0) << j.err;
  const Json doc = Json::parse(j.out);
  std::map<std::string, Json> by_name;
  for (const auto& e : doc["tensors"]) by_name[e["name"]] = e;
  EXPECT_EQ(by_name["nm"]["pattern"], "2:4");
  EXPECT_EQ(by_name["nm"]["zeros"], 32);
  EXPECT_EQ(by_name["b14"]["pattern"], "1x4 blocks");
  EXPECT_EQ(by_name["b22"]["pattern"], "2x2 blocks");
  EXPECT_EQ(by_name["b14"]["zeros"], 44);
  EXPECT_EQ(by_name["b22"]["zeros"], 28);  // -0.0 counts as zero
  EXPECT_EQ(by_name["un"]["pattern"], "unstructured");
  EXPECT_EQ(by_name["un"]["zeros"], 10);
  EXPECT_EQ(by_name["dense"]["pattern"], "dense");
  EXPECT_EQ(by_name["zero"]["pattern"], "all zero");
  EXPECT_EQ(by_name["nm"]["shape"], Json::array({8, 8}));
  EXPECT_EQ(doc["total"]["numel"], 64 + 128 + 64 + 64 + 9 + 4);
  EXPECT_EQ(doc["total"]["zeros"], 32 + 44 + 28 + 10 + 0 + 4);
}

TEST(Cli, DemoWritesAPrunedModel) {
  const std::string dir = fresh_dir() + "/demo";
  const CliRun r = run({"demo", "--out", dir});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(list_dir(dir), (std::set<std::string>{"config.json", "dense.safetensors", "pruned.safetensors",
                                                   "masks.safetensors", "state.safetensors"}));
  EXPECT_NE(r.out.find("step 5"), std::string::npos);
  EXPECT_NE(r.out.find("0.750"), std::string::npos);
  CliRun j = run({"inspect", dir + "/pruned.safetensors", "--json"});
  ASSERT_EQ(j.status, 0);
  const Json doc = Json::parse(j.out);
  for (const auto& t : doc["tensors"]) {
    const std::string name = t["name"];
    if (t["shape"].size() == 2) {
      EXPECT_DOUBLE_EQ(t["sparsity"].get<double>(), 0.75) << name;
      EXPECT_EQ(t["pattern"], "1x4 blocks") << name;
    } else {
      EXPECT_EQ(t["zeros"], 0) << name;
    }
  }
  // The written config reproduces the run through `prune`.
  CliRun p = run({"prune", dir + "/dense.safetensors", "--config", dir + "/config.json", "--output", dir + "/again.safetensors",
               "--quiet"});
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(file_bytes(dir + "/again.safetensors"), file_bytes(dir + "/pruned.safetensors"));
}

// ---- bad input: exit 1, one line, no output, input untouched -------------------------------------------

const std::string kHeader = R"({"proj.weight":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}})";

TEST(CliErrors, ModelHeaderLengthBeyondFile) {
  Fixture().expect_model_error(raw_model(kHeader, std::string(32, '\0'), 5000), "exceeds the file size");
}
TEST(CliErrors, ModelHeaderLengthBeyondLimit) {
  Fixture().expect_model_error(raw_model(kHeader, "", int64_t{1} << 50), "100 MB");
}
TEST(CliErrors, ModelTooShort) { Fixture().expect_model_error("abc", "too short"); }
TEST(CliErrors, ModelInvalidJson) { Fixture().expect_model_error(raw_model("{\"a\":", ""), "not valid JSON"); }
TEST(CliErrors, ModelHeaderNotObject) { Fixture().expect_model_error(raw_model("[]", ""), "not a JSON object"); }
TEST(CliErrors, ModelUnknownDtype) {
  Fixture().expect_model_error(raw_model(R"({"w":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", "abcd"),
                               "unknown dtype 'F31'");
}
TEST(CliErrors, ModelOffsetsOutOfRange) {
  Fixture().expect_model_error(raw_model(kHeader, std::string(16, '\0')), "past the data buffer");
}
TEST(CliErrors, ModelOffsetsOverlap) {
  Fixture().expect_model_error(raw_model(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                         std::string(12, '\0')),
                               "overlap");
}
TEST(CliErrors, ModelDataNotCovered) {
  Fixture().expect_model_error(raw_model(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(12, '\0')),
                               "belong to no tensor");
}
TEST(CliErrors, ModelSizeMismatch) {
  Fixture().expect_model_error(raw_model(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
                               "size mismatch");
}
TEST(CliErrors, ModelShapeOverflow) {
  Fixture().expect_model_error(
      raw_model(R"({"a":{"dtype":"F64","shape":[9223372036854775807,3],"data_offsets":[0,8]}})", std::string(8, '\0')),
      "overflows");
}
TEST(CliErrors, ModelDuplicateNames) {
  Fixture().expect_model_error(raw_model(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                         R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                         "xy"),
                               "duplicate key 'a'");
}
TEST(CliErrors, ModelMissingOrNotAFile) {
  Fixture f;
  f.expect_error(1, "cannot open", {"prune", f.dir + "/nope.safetensors", "--config", f.config, "--output", f.dir + "/o.safetensors"});
  f.expect_error(1, "not a regular file", {"prune", f.dir, "--config", f.config, "--output", f.dir + "/o.safetensors"});
  f.expect_error(1, "cannot open", {"inspect", f.dir + "/nope.safetensors"});
}
TEST(CliErrors, ShardedIndexProblems) {
  Fixture f;
  write_bytes(f.dir + "/i.json", R"({"weight_map": {"proj.weight": "missing.safetensors"}})");
  f.expect_error(1, "missing.safetensors", {"prune", f.dir + "/i.json", "--config", f.config, "--output", f.dir + "/o.json"});
  write_bytes(f.dir + "/i.json", R"({"weight_map": {"proj.weight": "../model.safetensors"}})");
  f.expect_error(1, "plain file name", {"prune", f.dir + "/i.json", "--config", f.config, "--output", f.dir + "/o.json"});
  write_bytes(f.dir + "/i.json", R"({"weight_map": {"proj.weight": "model.safetensors"}})");
  f.expect_error(1, "not mapped to this shard", {"prune", f.dir + "/i.json", "--config", f.config, "--output", f.dir + "/o.json"});
  ::unlink((f.dir + "/i.json").c_str());
}

TEST(CliErrors, ConfigInvalidJson) { Fixture().expect_config_error("{\"sparsifier\": ", "not valid JSON"); }
TEST(CliErrors, ConfigMissing) {
  Fixture f;
  f.expect_error(1, "cannot open", {"prune", f.model, "--config", f.dir + "/none.json", "--output", f.dir + "/o.safetensors"});
}
TEST(CliErrors, ConfigUnknownSparsifier) {
  Fixture().expect_config_error(R"({"sparsifier": "Magic"})", "unknown sparsifier 'Magic'");
  Fixture().expect_config_error(R"({"sparsifier": "Magic"})", "bad_config.json, key sparsifier)");
}
TEST(CliErrors, ConfigUnknownTopLevelKey) {
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "stepz": 3})", "key stepz");
}
TEST(CliErrors, ConfigWrongType) {
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": "high"}})",
                                "key defaults.sparsity_level");
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparse_block_shape": [1]}})",
                                "key defaults.sparse_block_shape");
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "defaults": {"norm": "L3"}})", "key defaults.norm");
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "steps": -1})", "key steps");
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "config": {"tensor_fqn": "x"}})", "key config");
}
TEST(CliErrors, ConfigUnknownEntryKey) {
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "proj.weight", "level": 1}]})",
                                "key config[0].level");
}
TEST(CliErrors, ConfigUnknownTensorFqn) {
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "proj.weight"}, {"tensor_fqn": "nope.weight"}]})",
                                "'nope.weight' is not a tensor");
}
TEST(CliErrors, ConfigTensorNotPrunable) {
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "ids"}]})",
                                "dtype I64");
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "proj.bias"}]})",
                                "only weights of rank 2 or more");
}
TEST(CliErrors, ConfigDuplicateTensorFqnAndKeys) {
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "config": [{"tensor_fqn": "proj.weight"}, {"tensor_fqn": "proj.weight"}]})",
                                "appears twice");
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "sparsifier": "NearlyDiagonalSparsifier"})",
                                "duplicate key 'sparsifier'");
}
TEST(CliErrors, ConfigSchedulerProblems) {
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "scheduler": {"type": "LambdaSL"}})",
                                "unknown scheduler type 'LambdaSL'");
  Fixture().expect_config_error(R"({"sparsifier": "WeightNormSparsifier", "scheduler": {"type": "CubicSL", "delta_t": 0}})",
                                "key scheduler.delta_t");
  Fixture().expect_config_error(R"({"sparsifier": "NearlyDiagonalSparsifier", "scheduler": {"type": "CubicSL"}})",
                                "key scheduler");
}
TEST(CliErrors, ConfigValuesTheSparsifierRejects) {
  Fixture().expect_config_error(R"({"sparsifier": "NearlyDiagonalSparsifier", "defaults": {"nearliness": 2}})",
                                "odd");
  // Known only once the block is known: zeros_per_block larger than the 1x2 block.
  Fixture().expect_config_error(
      R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparse_block_shape": [1, 2], "zeros_per_block": 3}})",
      "zeros_per_block");
  // nearliness 9 cannot fit a 2x4 tensor: reported with the tensor's name.
  Fixture().expect_config_error(R"({"sparsifier": "NearlyDiagonalSparsifier", "defaults": {"nearliness": 9}})",
                                "proj.weight");
}
TEST(CliErrors, ResumeProblems) {
  Fixture f;
  f.expect_error(1, "not a sparsity state file",
                 {"prune", f.model, "--config", f.config, "--output", f.dir + "/o.safetensors", "--resume", f.model});
  // A state written for another sparsifier.
  const std::string nd = f.dir + "/nd.json";
  write_bytes(nd, R"({"sparsifier": "NearlyDiagonalSparsifier", "defaults": {"nearliness": 1}, "config": [{"tensor_fqn": "proj.weight"}]})");
  ASSERT_EQ(run({"prune", f.model, "--config", nd, "--output", f.dir + "/o.safetensors", "--state", f.dir + "/s.safetensors"}).status, 0);
  ::unlink((f.dir + "/o.safetensors").c_str());
  f.expect_error(1, "NearlyDiagonalSparsifier",
                 {"prune", f.model, "--config", f.config, "--output", f.dir + "/o.safetensors", "--resume", f.dir + "/s.safetensors"});
}

// ---- usage errors: exit 2 --------------------------------------------------------------------------------

TEST(CliErrors, UsageErrors) {
  Fixture f;
  const std::string out = f.dir + "/o.safetensors";
  f.expect_error(2, "subcommand", {});
  f.expect_error(2, "command line", {"frobnicate"});
  f.expect_error(2, "--config", {"prune", f.model, "--output", out});
  f.expect_error(2, "--output", {"prune", f.model, "--config", f.config});
  f.expect_error(2, "command line", {"prune", f.model, "--config", f.config, "--output", out, "--bogus"});
  f.expect_error(2, "threads", {"prune", f.model, "--config", f.config, "--output", out, "--threads", "0"});
  f.expect_error(2, "same file", {"prune", f.model, "--config", f.config, "--output", out, "--masks", out});
  f.expect_error(2, "command line", {"inspect"});
  f.expect_error(1, "not a regular file", {"prune", f.model, "--config", f.config, "--output", f.dir});
  // Writing masks over the model is refused (exit 1: a property of the files, not of the syntax).
  f.expect_error(1, "overwrite the model", {"prune", f.model, "--config", f.config, "--output", out, "--masks", f.model});
}

TEST(Cli, OutputMayReplaceTheModel) {
  Fixture f;
  const CliRun r = run({"prune", f.model, "--config", f.config, "--output", f.model, "--quiet"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto m = io::SafetensorsFile::open(f.model);
  const float* w = reinterpret_cast<const float*>(m->bytes(m->info("proj.weight")));
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(w[i], kMask[i] ? static_cast<float>(kValues[i]) : 0.0f) << i;
  EXPECT_EQ(list_dir(f.dir), (std::set<std::string>{"model.safetensors", "config.json"}));
}

// ---- hostile inputs: the model and every file not named as an output stay untouched ----------------------

TEST(CliHostile, SymlinkedModelIsNeverOverwrittenByAnotherOutput) {
  Fixture f;
  const std::string real = f.dir + "/model.safetensors", link = f.dir + "/m.safetensors";
  ASSERT_EQ(::symlink("model.safetensors", link.c_str()), 0);
  const std::string out = f.dir + "/o.safetensors";
  f.expect_error(1, "would overwrite the model",
                 {"prune", link, "--config", f.config, "--output", out, "--masks", real});
  f.expect_error(1, "would overwrite the model",
                 {"prune", link, "--config", f.config, "--output", out, "--state", real});
  f.expect_error(1, "would overwrite the model",
                 {"prune", real, "--config", f.config, "--output", out, "--masks", link});
  // Two names of one new file: a symlinked directory.
  ASSERT_EQ(::symlink(".", (f.dir + "/same").c_str()), 0);
  f.expect_error(
      1, "name the same file",
      {"prune", real, "--config", f.config, "--output", out, "--masks", f.dir + "/same/o.safetensors"});
}

TEST(CliHostile, ShardedOutputOverTheInputShardsIsRefused) {
  const std::string dir = fresh_dir();
  io::save_safetensors(dir + "/model-00001-of-00002.safetensors", {{"l0.weight", wave(4, 8, 0)}});
  io::save_safetensors(dir + "/model-00002-of-00002.safetensors", {{"l1.weight", wave(4, 8, 1)}});
  write_bytes(
      dir + "/model.safetensors.index.json",
      R"({"metadata": {}, "weight_map": {"l0.weight": "model-00001-of-00002.safetensors", "l1.weight": "model-00002-of-00002.safetensors"}})");
  write_bytes(dir + "/c.json",
             R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": 0.5}})");
  const std::string s1 = file_bytes(dir + "/model-00001-of-00002.safetensors");
  const auto before = list_dir(dir);
  const CliRun r = run({"prune", dir + "/model.safetensors.index.json", "--config", dir + "/c.json",
                        "--output", dir + "/pruned.index.json"});
  expect_one_error_line(r, 1, "would overwrite the model's file");
  EXPECT_EQ(list_dir(dir), before);
  EXPECT_EQ(file_bytes(dir + "/model-00001-of-00002.safetensors"), s1);
  // The model's own index as OUT replaces the model, shards included.
  const CliRun in_place = run({"prune", dir + "/model.safetensors.index.json", "--config", dir + "/c.json",
                               "--output", dir + "/model.safetensors.index.json", "--quiet"});
  ASSERT_EQ(in_place.status, 0) << in_place.err;
  EXPECT_NE(file_bytes(dir + "/model-00001-of-00002.safetensors"), s1);
  EXPECT_EQ(list_dir(dir), before);
}

TEST(CliHostile, EmptyPathsAreUsageErrors) {
  Fixture f;
  for (const std::string flag : {"--output", "--masks", "--state", "--resume", "--config"}) {
    std::vector<std::string> args = {"prune", f.model};
    if (flag != "--config") args.insert(args.end(), {"--config", f.config});
    if (flag != "--output") args.insert(args.end(), {"--output", f.dir + "/o.safetensors"});
    args.push_back(flag);
    args.push_back("");
    f.expect_error(2, std::string(flag) + " is empty", args);
  }
}

TEST(CliHostile, ControlBytesAndHugeNamesStayOnePrintableLine) {
  Fixture f;
  const std::string bad_model = f.dir + "/esc.safetensors";
  const std::string esc_name = std::string("fc\x1b[2J") + ".weight";
  io::save_safetensors(bad_model, {{esc_name, Tensor::from_values(kValues, {2, 4}, DType::f32)}});
  const std::string cfg = f.dir + "/esc.json";
  Json c = {{"sparsifier", "WeightNormSparsifier"},
            {"defaults", {{"sparsity_level", 0.5}, {"sparse_block_shape", {1, 4}}}},
            {"config", Json::array({{{"tensor_fqn", esc_name}, {"zeros_per_block", 9}}})}};
  write_bytes(cfg, c.dump());
  f.expect_error(1, "fc\\x1b[2J.weight",
                 {"prune", bad_model, "--config", cfg, "--output", f.dir + "/o.safetensors"});
  // The summary of a good run escapes the name too.
  c["config"][0].erase("zeros_per_block");
  write_bytes(cfg, c.dump());
  const CliRun ok = run({"prune", bad_model, "--config", cfg, "--output", f.dir + "/o.safetensors"});
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.out.find('\x1b'), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("fc\\x1b[2J.weight"), std::string::npos) << ok.out;
  ::unlink((f.dir + "/o.safetensors").c_str());
  ::unlink(bad_model.c_str());
  ::unlink(cfg.c_str());
  // A NUL inside a name neither cuts the line nor loses the reason; a megabyte name is cut.
  const std::string nul_name = std::string("a\0b", 3) + ".weight";
  const std::string huge_name = std::string(1 << 20, 'x') + ".weight";
  for (const std::string& name : {nul_name, huge_name}) {
    Json cfg_json = {{"sparsifier", "WeightNormSparsifier"},
                     {"config", Json::array({{{"tensor_fqn", name}}})}};
    write_bytes(cfg, cfg_json.dump());
    const CliRun r = run({"prune", f.model, "--config", cfg, "--output", f.dir + "/o.safetensors"});
    expect_one_error_line(r, 1, "is not a tensor of");
    EXPECT_LT(r.err.size(), 5000u);
    EXPECT_EQ(r.err.find('\0'), std::string::npos);
  }
  ::unlink(cfg.c_str());
}

TEST(CliHostile, StateWithAnAbsurdStepCountIsRefused) {
  Fixture f;
  const std::string state = f.dir + "/s.safetensors";
  ASSERT_EQ(run({"prune", f.model, "--config", f.config, "--output", f.dir + "/o.safetensors", "--state",
                 state, "--quiet"})
                .status,
            0);
  ::unlink((f.dir + "/o.safetensors").c_str());
  auto file = io::SafetensorsFile::open(state);
  std::map<std::string, std::string> meta = file->metadata();
  meta["steps"] = "9223372036854775807";
  sparsity::NamedList<Tensor> tensors = io::load_safetensors(state);
  file.reset();
  io::save_safetensors(state, tensors, meta);
  f.expect_error(
      1, "steps must be an integer in [0, 2147483647]",
      {"prune", f.model, "--config", f.config, "--output", f.dir + "/o.safetensors", "--resume", state});
}

TEST(CliHostile, InterruptedRunWithNamedTemporariesLeavesNoDebris) {
  const std::string dir = fresh_dir();
  const std::string model = dir + "/model.safetensors";
  ASSERT_EQ(run({"make-model", model, "--layers", "4", "--dim", "2048"}).status, 0);
  write_bytes(dir + "/c.json",
             R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": 0.5}, "steps": 3})");
  const std::set<std::string> before = list_dir(dir);
  const std::vector<std::string> args = {"prune",     model,
                                         "--config",  dir + "/c.json",
                                         "--output",  dir + "/out.safetensors",
                                         "--masks",   dir + "/masks.safetensors",
                                         "--threads", "1"};
  RunOptions term;
  term.env = {{"SPARSITY_NO_O_TMPFILE", "1"}};
  term.signal = SIGTERM;
  int interrupted = 0;
  std::set<std::string> complete = before;
  complete.insert({"out.safetensors", "masks.safetensors"});
  for (int delay = 20; delay <= 200; delay += 45) {
    term.kill_after_ms = delay;
    const CliRun r = run(args, term);
    if (!r.signaled) break;
    // The signal may land after the last publication: then every output is there and whole.
    if (list_dir(dir) == complete) {
      ::unlink((dir + "/out.safetensors").c_str());
      ::unlink((dir + "/masks.safetensors").c_str());
      continue;
    }
    ++interrupted;
    EXPECT_EQ(list_dir(dir), before) << "SIGTERM after " << delay << " ms";
  }
  EXPECT_GE(interrupted, 2);
  // SIGKILL cannot be handled: the hidden file stays until the next run for the same output removes it.
  RunOptions kill = term;
  kill.signal = SIGKILL;
  kill.kill_after_ms = 60;
  const CliRun killed = run(args, kill);
  ASSERT_TRUE(killed.signaled);
  ::unlink((dir + "/out.safetensors").c_str());
  ::unlink((dir + "/masks.safetensors").c_str());
  const CliRun again = run({"prune", model, "--config", dir + "/c.json", "--output", dir + "/out.safetensors",
                            "--masks", dir + "/masks.safetensors", "--quiet"},
                           RunOptions{-1, SIGKILL, {{"SPARSITY_NO_O_TMPFILE", "1"}}});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(list_dir(dir), complete);
}

TEST(CliHostile, PeakMemoryStaysBelowTheModelSizeAtAnyThreadCount) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine count in the resident set";
#endif
  const std::string dir = fresh_dir();
  const std::string model = dir + "/model.safetensors";
  ASSERT_EQ(run({"make-model", model, "--layers", "6", "--dim", "2048"}).status, 0);  // 100 MB
  write_bytes(dir + "/c.json",
             R"({"sparsifier": "WeightNormSparsifier", "defaults": {"sparsity_level": 0.5}})");
  struct stat st {};
  ASSERT_EQ(::stat(model.c_str(), &st), 0);
  const double model_kb = static_cast<double>(st.st_size) / 1024.0;
  for (const char* threads : {"1", "2", "16"}) {
    const CliRun r =
        run({"prune", model, "--config", dir + "/c.json", "--output", dir + "/out.safetensors", "--masks",
             dir + "/masks.safetensors", "--threads", threads, "--quiet", "--no-sync"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_LE(static_cast<double>(r.peak_rss_kb), 1.2 * model_kb) << "--threads " << threads;
  }
  // A global ranking holds its window of candidate scores and one tensor at a time on top.
  const CliRun g = run({"prune", model, "--sparsity", "0.5", "--global", "--output", dir + "/out.safetensors",
                        "--threads", "16", "--quiet", "--no-sync"});
  ASSERT_EQ(g.status, 0) << g.err;
  EXPECT_LE(static_cast<double>(g.peak_rss_kb), 1.2 * model_kb) << "--global";
}

TEST(CliHostile, HeaderWithAMillionTensorsOpensInLinearTime) {
  const std::string dir = fresh_dir();
  std::string header = "{";
  const int n = 1000000;
  header.reserve(static_cast<size_t>(n) * 64);
  for (int i = 0; i < n; ++i) {
    header += (i ? ",\"t" : "\"t") + std::to_string(i) +
              "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[" + std::to_string(i) + "," +
              std::to_string(i + 1) + "]}";
  }
  // One prunable layer after them: 4 x 8 F32 of 1..32, the 16 smallest of which WeightNorm's 1 x 4 blocks
  // of 0.5 remove by rows 0..1 (block norms grow with the values).
  header += ",\"a.weight\":{\"dtype\":\"F32\",\"shape\":[4,8],\"data_offsets\":[" + std::to_string(n) + "," +
            std::to_string(n + 128) + "]}}";
  std::string data(static_cast<size_t>(n), '\1');
  for (int i = 0; i < 32; ++i) {
    const float v = static_cast<float>(i + 1);
    data.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  write_bytes(dir + "/big.safetensors", raw_model(header, data));
  const CliRun r = run({"inspect", dir + "/big.safetensors"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("total: 1000001 tensors"), std::string::npos) << r.out;
  // The prune engine's module tree and job list are linear too (a million tensors copied, one pruned).
  write_bytes(dir + "/auto.json", R"({"sparsifier": "WeightNormSparsifier"})");
  const CliRun p = run({"prune", dir + "/big.safetensors", "--config", dir + "/auto.json", "--output",
                        dir + "/copy.safetensors", "--quiet", "--no-sync"});
  ASSERT_EQ(p.status, 0) << p.err;
  {
    // The output keeps the input's header and layout: everything but the last 128 bytes (a.weight) is the
    // input's, byte for byte (read as bytes: a million Tensors in this process would inflate the peak RSS
    // that later tests measure of the children it forks).
    const std::string in = file_bytes(dir + "/big.safetensors"), out = file_bytes(dir + "/copy.safetensors");
    ASSERT_EQ(out.size(), in.size());
    EXPECT_EQ(out.compare(0, out.size() - 128, in, 0, in.size() - 128), 0);
    float a[32];
    std::memcpy(a, out.data() + out.size() - 128, sizeof a);
    for (int i = 0; i < 32; ++i) EXPECT_EQ(a[i], i < 16 ? 0.0f : static_cast<float>(i + 1)) << i;
  }
  // A config of a million keys fails at the first unknown one.
  std::string cfg = "{\"sparsifier\": \"WeightNormSparsifier\"";
  for (int i = 0; i < n; ++i) cfg += ",\"k" + std::to_string(i) + "\":0";
  cfg += "}";
  write_bytes(dir + "/c.json", cfg);
  io::save_safetensors(dir + "/m.safetensors", {{"a.weight", wave(4, 8, 0)}});
  const CliRun c =
      run({"prune", dir + "/m.safetensors", "--config", dir + "/c.json", "--output", dir + "/o.safetensors"});
  expect_one_error_line(c, 1, "unknown key 'k0'");
}

// ---- activation-aware pruning ------------------------------------------------------------------------
// W = [[1 2 3 4] [4 3 2 1]], input norms [4 1 1 1], level 0.5 per row (k = 2): scores [[4 2 3 4] [16 3 2 1]]
// keep columns {0, 3} of row 0 and {0, 1} of row 1 (magnitude alone would keep {2, 3} and {0, 1}).
struct WandaCase {
  std::string dir = fresh_dir();
  std::string model = dir + "/m.safetensors", config = dir + "/c.json", norms = dir + "/n.safetensors";
  WandaCase() {
    io::save_safetensors(model, {{"fc.weight", Tensor::from_values({1, 2, 3, 4, 4, 3, 2, 1}, {2, 4}, DType::f32)}});
    write_bytes(config, R"({"sparsifier": "WandaSparsifier", "defaults": {"sparsity_level": 0.5}})");
  }
  void write_norms(const Tensor& t, const std::string& name = "fc.weight") {
    io::save_safetensors(norms, {{name, t}, {"other.weight", Tensor::from_values({1, 2}, DType::f32)}});
  }
};

TEST(CliWanda, ActivationNormsDecideWhichWeightsStay) {
  WandaCase w;
  w.write_norms(Tensor::from_values({4, 1, 1, 1}, {4}, DType::f32));
  const CliRun r = run({"prune", w.model, "--config", w.config, "--activations", w.norms, "--output",
                        w.dir + "/out.safetensors", "--masks", w.dir + "/masks.safetensors", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto masks = io::load_safetensors(w.dir + "/masks.safetensors");
  ASSERT_EQ(masks.size(), 1u);
  const std::vector<uint8_t> expected = {1, 0, 0, 1, 1, 1, 0, 0};
  EXPECT_EQ(std::vector<uint8_t>(masks[0].second.data<uint8_t>(), masks[0].second.data<uint8_t>() + 8), expected);
  const auto out = io::load_safetensors(w.dir + "/out.safetensors");
  const std::vector<float> weights = {1, 0, 0, 4, 4, 3, 0, 0};
  EXPECT_EQ(std::vector<float>(out[0].second.data<float>(), out[0].second.data<float>() + 8), weights);
}

TEST(CliWanda, MissingOrMisshapenNormsAreNamed) {
  WandaCase w;
  const std::vector<std::string> base = {"prune", w.model, "--config", w.config, "--output", w.dir + "/o.safetensors"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  expect_one_error_line(run(base), 1, "--activations");
  w.write_norms(Tensor::from_values({1, 1, 1}, {3}, DType::f32));
  expect_one_error_line(run(with({"--activations", w.norms})), 1, "must be F32 [4], got F32 [3]");
  w.write_norms(Tensor::from_values({1, 1, 1, 1}, {4}, DType::f32), "fc2.weight");
  expect_one_error_line(run(with({"--activations", w.norms})), 1, "no activation norms for tensor 'fc.weight'");
  w.write_norms(Tensor::from_values({1, -1, 1, 1}, {4}, DType::f32));
  expect_one_error_line(run(with({"--activations", w.norms})), 1, "fc.weight");
  EXPECT_NE(::access((w.dir + "/o.safetensors").c_str(), F_OK), 0);
  // Norms are WandaSparsifier's only.
  write_bytes(w.config, R"({"sparsifier": "WeightNormSparsifier"})");
  expect_one_error_line(run(with({"--activations", w.norms})), 1, "read by WandaSparsifier only");
}

// ---- selection without a file, honest reporting ------------------------------------------------------

TEST(CliSelection, QuickFlagsNeedNoConfigFile) {
  Fixture f;
  const std::string out = f.dir + "/o.safetensors";
  const CliRun r = run({"prune", f.model, "--sparsity", "0.5", "--block", "1x1", "--output", out});
  ASSERT_EQ(r.status, 0) << r.err;
  auto m = io::SafetensorsFile::open(out);
  const float* w = reinterpret_cast<const float*>(m->bytes(m->info("proj.weight")));
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(w[i], kMask[i] ? static_cast<float>(kValues[i]) : 0.0f) << i;
  // The summary says what was left alone and the whole model's sparsity.
  EXPECT_NE(r.out.find("skipped 1 tensor (3 parameters): not floating point"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("skipped 1 tensor (2 parameters): not a weight (rank 1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model: 10 floating-point parameters, sparsity 0.0% -> 40.0%"), std::string::npos)
      << r.out;
  ::unlink(out.c_str());
  // 2:4 from the command line: every group of 4 keeps its 2 largest magnitudes.
  const CliRun nm = run({"prune", f.model, "--nm", "2:4", "--output", out, "--quiet"});
  ASSERT_EQ(nm.status, 0) << nm.err;
  m = io::SafetensorsFile::open(out);
  const float* v = reinterpret_cast<const float*>(m->bytes(m->info("proj.weight")));
  const std::vector<float> expect = {0, -8, 3, 0, 5, 0, -7, 0};  // |1 8 3 2| -> 8 3; |5 .5 7 4| -> 5 7
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(v[i], expect[i]) << i;
  f.expect_error(2, "--block and --nm exclude each other",
                 {"prune", f.model, "--nm", "2:4", "--block", "1x4", "--output", out});
  f.expect_error(2, "--nm expects N:M", {"prune", f.model, "--nm", "2/4", "--output", out});
  f.expect_error(2, "N < M", {"prune", f.model, "--nm", "4:4", "--output", out});
  f.expect_error(2, "give --config FILE or --sparsity", {"prune", f.model, "--output", out});
}

TEST(CliSelection, AMissedTargetIsAWarningAndNothingSelectedIsAnError) {
  Fixture f;
  const std::string model = f.dir + "/head.safetensors";
  io::save_safetensors(model, {{"head.weight", wave(200, 2, 0)}, {"body.weight", wave(8, 8, 1)}});
  const std::string cfg = f.dir + "/c.json";
  // Named explicitly, a 200x2 head under 2:4 keeps torch's semantics: whole rows fall, and a warning says so.
  write_bytes(cfg, R"({"sparsifier": "WeightNormSparsifier", "targets": ["head"],
                      "defaults": {"sparsity_level": 1.0, "sparse_block_shape": [1, 4], "zeros_per_block": 2}})");
  const CliRun r = run({"prune", model, "--config", cfg, "--output", f.dir + "/o.safetensors", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(
      r.err.find(
          "sparsity: warning: 'head.weight' of shape 200x2 is 100.0% sparse, its settings ask for 50.0%"),
      std::string::npos)
      << r.err;
  // Auto-config leaves it out (its width 2 is not a multiple of 4) and says so.
  write_bytes(cfg, R"({"sparsifier": "WeightNormSparsifier",
                      "defaults": {"sparsity_level": 1.0, "sparse_block_shape": [1, 4], "zeros_per_block": 2}})");
  const CliRun a = run({"prune", model, "--config", cfg, "--output", f.dir + "/o.safetensors"});
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.err, "");
  EXPECT_NE(a.out.find("skipped 1 tensor (400 parameters): N:M group width does not divide the input width"),
            std::string::npos)
      << a.out;
  ::unlink((f.dir + "/o.safetensors").c_str());
  write_bytes(cfg, R"({"sparsifier": "WeightNormSparsifier", "config": []})");
  f.expect_error(1, "the configuration selects no tensor to prune",
                 {"prune", model, "--config", cfg, "--output", f.dir + "/o.safetensors"});
}

TEST(CliInspect, ColumnNMAndStateFiles) {
  const std::string dir = fresh_dir();
  // 2:4 down the columns, as ONNX and Keras store (in, out) weights: in every column, each group of 4
  // rows has two zeros, at positions that change from column to column, so the rows hold no N:M.
  const int pairs[8][2] = {{0, 1}, {2, 3}, {0, 2}, {1, 3}, {0, 3}, {1, 2}, {0, 1}, {0, 1}};
  std::vector<double> col(64);
  for (int r = 0; r < 8; ++r) {
    for (int c = 0; c < 8; ++c) {
      const int p = r % 4;
      col[static_cast<size_t>(r * 8 + c)] = (p == pairs[c][0] || p == pairs[c][1]) ? 0.0 : 1.0 + r * 8 + c;
    }
  }
  io::save_safetensors(dir + "/m.safetensors", {{"colnm", Tensor::from_values(col, {8, 8})},
                                                {"proj.weight", Tensor::from_values(kValues, {2, 4})}});
  const CliRun t = run({"inspect", dir + "/m.safetensors", "--json"});
  ASSERT_EQ(t.status, 0) << t.err;
  const Json doc = Json::parse(t.out);
  EXPECT_EQ(doc["tensors"][0]["pattern"], "2:4 along columns");
  // A state file is read as masks and groups, not as packed bytes.
  write_bytes(dir + "/c.json", unstructured_config({"proj.weight"}));
  ASSERT_EQ(run({"prune", dir + "/m.safetensors", "--config", dir + "/c.json", "--output",
                 dir + "/o.safetensors", "--state", dir + "/s.safetensors", "--quiet"})
                .status,
            0);
  const CliRun st = run({"inspect", dir + "/s.safetensors"});
  ASSERT_EQ(st.status, 0) << st.err;
  EXPECT_NE(st.out.find("sparsifier state: WeightNormSparsifier, 1 step(s), 1 group(s)"), std::string::npos)
      << st.out;
  EXPECT_NE(st.out.find("proj.weight  mask  2x4"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("50.0%"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\"sparsity_level\":0.5"), std::string::npos) << st.out;
  const CliRun sj = run({"inspect", dir + "/s.safetensors", "--json"});
  const Json sdoc = Json::parse(sj.out);
  EXPECT_EQ(sdoc["state"]["groups"][0]["zeros"], 4);
  // kMask is 0 1 0 0 / 1 0 1 1: every column keeps one of its two rows.
  EXPECT_EQ(sdoc["state"]["groups"][0]["pattern"], "1:2 along columns");
  EXPECT_EQ(sdoc["state"]["steps"], 1);
}

// ---- pack / unpack ----------------------------------------------------------------------------------------

// Bytes from hex digits; spaces are ignored.
std::string hex(const std::string& text) {
  std::string out, digits;
  for (char c : text) {
    if (c != ' ') digits.push_back(c);
  }
  for (size_t i = 0; i + 1 < digits.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

// A safetensors file laid out by hand: the header padded with spaces to a multiple of 8 bytes (the data
// buffer 8-byte aligned, as sparsity writes files) and the data.
std::string padded_file(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return raw_model(header, data);
}

// The input of the hand-derived cases: fc.weight F32 [2, 8] (given as hex) and fc.bias F32 [2] = 0.5, -1.
std::string hand_model(const std::string& weight_hex) {
  return padded_file(
      R"({"__metadata__":{"format":"pt"},"fc.weight":{"dtype":"F32","shape":[2,8],"data_offsets":[0,64]},)"
      R"("fc.bias":{"dtype":"F32","shape":[2],"data_offsets":[64,72]}})",
      hex(weight_hex + "0000003f 000080bf"));
}

TEST(CliPack, HandDerivedSparseBitmaskFileByteByByte) {
  const std::string dir = fresh_dir();
  // Row 0: 1.5 0 0 -2 0 0 0 0.25 keeps columns 0, 3, 7: bitmask byte 0b10001001 = 0x89.
  // Row 1: 0 0 0 0 4 0 -0.0 0 keeps columns 4 and 6 (-0.0 is kept): 0b01010000 = 0x50.
  // compressed = 1.5 -2 0.25 4 -0.0 (5 values), row_offsets = 0 3. 16 + 20 + 2 + 16 = 54 bytes < 64.
  const std::string model = hand_model(
      "0000c03f 00000000 00000000 000000c0 00000000 00000000 00000000 0000803e"
      "00000000 00000000 00000000 00000000 00008040 00000000 00000080 00000000");
  write_bytes(dir + "/m.safetensors", model);
  const CliRun r =
      run({"pack", dir + "/m.safetensors", "--output", dir + "/p.safetensors", "--format", "sparse-bitmask"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("fc.weight  F32    2x8    sparse-bitmask  68.8%     54 B  64 B"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("packed 1 of 1 weights (64 B -> 54 B), copied 1 other tensor;"), std::string::npos)
      << r.out;
  const std::string expected = padded_file(
      R"({"__metadata__":{"format":"pt","sparsity.packed":"{\"format\":\"sparse-bitmask\",\"tensors\":{\"fc.weight\":\"sparse-bitmask\"}}"},)"
      R"("fc.shape":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
      R"("fc.compressed":{"dtype":"F32","shape":[5],"data_offsets":[16,36]},)"
      R"("fc.bitmask":{"dtype":"U8","shape":[2,1],"data_offsets":[36,38]},)"
      R"("fc.row_offsets":{"dtype":"I64","shape":[2],"data_offsets":[38,54]},)"
      R"("fc.bias":{"dtype":"F32","shape":[2],"data_offsets":[54,62]}})",
      hex("0200000000000000 0800000000000000"             // shape
          "0000c03f 000000c0 0000803e 00008040 00000080"  // compressed
          "89 50"                                         // bitmask
          "0000000000000000 0300000000000000"             // row_offsets
          "0000003f 000080bf"));                          // fc.bias
  EXPECT_EQ(file_bytes(dir + "/p.safetensors"), expected);
  const CliRun u = run({"unpack", dir + "/p.safetensors", "--output", dir + "/u.safetensors", "--quiet"});
  ASSERT_EQ(u.status, 0) << u.err;
  EXPECT_TRUE(u.out.empty());
  EXPECT_EQ(file_bytes(dir + "/u.safetensors"), model);
}

TEST(CliPack, HandDerivedSparse24BitmaskFileByteByByte) {
  const std::string dir = fresh_dir();
  // Row 0: 0 1 0 2 | 3 0 0 0. Group 0 keeps columns 1 and 3; group 1 keeps column 4 only and is padded
  // with its first unkept column, 5 (stored +0.0): bits 1 3 4 5 = 0x3a, values 1 2 3 +0.0.
  // Row 1: -0.0 0 5 0 | 0 6 0 -7 keeps columns 0 2 | 5 7: bits 0x05 | 0xa0 = 0xa5, values -0.0 5 6 -7.
  const std::string model = hand_model(
      "00000000 0000803f 00000000 00000040 00004040 00000000 00000000 00000000"
      "00000080 00000000 0000a040 00000000 00000000 0000c040 00000000 0000e0c0");
  write_bytes(dir + "/m.safetensors", model);
  const CliRun r = run({"pack", dir + "/m.safetensors", "--output", dir + "/p.safetensors", "--format",
                        "sparse-24-bitmask", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  const std::string expected = padded_file(
      R"({"__metadata__":{"format":"pt","sparsity.packed":"{\"format\":\"sparse-24-bitmask\",\"tensors\":{\"fc.weight\":\"sparse-24-bitmask\"}}"},)"
      R"("fc.shape":{"dtype":"I64","shape":[2,1],"data_offsets":[0,16]},)"
      R"("fc.compressed":{"dtype":"F32","shape":[2,4],"data_offsets":[16,48]},)"
      R"("fc.bitmask":{"dtype":"U8","shape":[2,1],"data_offsets":[48,50]},)"
      R"("fc.bias":{"dtype":"F32","shape":[2],"data_offsets":[50,58]}})",
      hex("0200000000000000 0800000000000000"                                        // shape
          "0000803f 00000040 00004040 00000000 00000080 0000a040 0000c040 0000e0c0"  // compressed
          "3a a5"                                                                    // bitmask
          "0000003f 000080bf"));                                                     // fc.bias
  const std::string packed = file_bytes(dir + "/p.safetensors");
  EXPECT_EQ(packed, expected);
  ASSERT_EQ(run({"unpack", dir + "/p.safetensors", "--output", dir + "/u.safetensors", "--quiet"}).status, 0);
  EXPECT_EQ(file_bytes(dir + "/u.safetensors"), model);

  // inspect: one row for the packed weight (not its parts), with its layout and sizes.
  const CliRun t = run({"inspect", dir + "/p.safetensors"});
  ASSERT_EQ(t.status, 0) << t.err;
  // Zeros of the dense weight: 5 per row (-0.0 counts); its rows keep 3 of 8 (inspect's reading).
  EXPECT_NE(t.out.find("tensor     dtype  shape  zeros  pattern  format             size  dense size\n"
                       "fc.weight  F32    2x8    62.5%  3:8      sparse-24-bitmask  50 B  64 B\n"
                       "fc.bias    F32    2      0.0%   dense    -                  8 B   8 B\n"
                       "total: 2 tensors, 18 elements, 10 zeros (55.6%); 1 packed weight, 58 B of tensor "
                       "data (72 B dense)\n"),
            std::string::npos)
      << t.out;
  EXPECT_EQ(t.out.find("fc.compressed"), std::string::npos);
  const Json j = Json::parse(run({"inspect", dir + "/p.safetensors", "--json"}).out);
  EXPECT_EQ(j["tensors"][0]["name"], "fc.weight");
  EXPECT_EQ(j["tensors"][0]["format"], "sparse-24-bitmask");
  EXPECT_EQ(j["tensors"][0]["bytes"], 50);
  EXPECT_EQ(j["tensors"][0]["dense_bytes"], 64);
  EXPECT_EQ(j["tensors"][0]["zeros"], 10);
  EXPECT_EQ(j["tensors"][0]["shape"], Json::array({2, 8}));
  EXPECT_EQ(j["total"]["packed"], 1);

  // Corrupt parts are named: a third bit in row 0's first group; the bitmask lies at data offset 48.
  Fixture f;  // for its error contract over a directory
  std::string bad = packed;
  const size_t data_begin = packed.size() - 58;
  ASSERT_EQ(static_cast<uint8_t>(bad[data_begin + 48]), 0x3a);
  bad[data_begin + 48] = 0x3b;
  write_bytes(f.dir + "/bad.safetensors", bad);
  f.expect_error(1, "part 'bitmask'",
                 {"unpack", f.dir + "/bad.safetensors", "--output", f.dir + "/u.safetensors"});
  f.expect_error(1, "tensor 'fc.weight'",
                 {"unpack", f.dir + "/bad.safetensors", "--output", f.dir + "/u.safetensors"});
  f.expect_error(1, "row 0, columns 0..3 hold 3 set bits", {"inspect", f.dir + "/bad.safetensors"});
}

// A 16 x 32 weight that `format` fits, values random where kept (the first kept one -0.0).
Tensor weight_for(const std::string& format, DType dtype) {
  std::vector<double> v(16 * 32);
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 32; ++c) {
      bool keep;
      int n = 0, m = 0, br = 0, bc = 0;
      if (std::sscanf(format.c_str(), "nm%dof%d", &n, &m) == 2 || format == "sparse-24-bitmask") {
        if (m == 0) n = 2, m = 4;
        keep = (c % m - (r + c / m) % m + m) % m < n;
      } else if (std::sscanf(format.c_str(), "bsr%dx%d", &br, &bc) == 2) {
        keep = ((r / br) * 7 + (c / bc) * 5) % 3 == 0;
      } else {
        keep = (r * 32 + c) * 7919 % 10 < 3;
      }
      v[static_cast<size_t>(r * 32 + c)] = keep ? std::sin(r * 32.0 + c) + 2.0 * (c % 2) - 1.0 : 0.0;
    }
  }
  for (auto& x : v) {
    if (x != 0.0) {
      x = -0.0;
      break;
    }
  }
  return Tensor::from_values(v, {16, 32}, dtype);
}

TEST(CliPack, EveryFormatAndFloatDtypeRoundTrips) {
  const std::string dir = fresh_dir();
  for (const char* format : {"sparse-bitmask", "sparse-24-bitmask", "nm1of4", "nm6of8", "nm3of16", "bsr1x8",
                             "bsr2x2", "bsr8x1", "bsr16x16", "csr"}) {
    for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
      SCOPED_TRACE(std::string(format) + " " + sparsity::to_string(dt));
      const std::string model = dir + "/m.safetensors";
      io::save_safetensors(model,
                           {{"a.norm.weight", Tensor::ones({32})},
                            {"a.proj.weight", weight_for(format, dt)},
                            {"a.proj.bias", Tensor::zeros({16})},
                            {"step", Tensor::from_values({3}, DType::i64)}},
                           {{"format", "pt"}});
      const CliRun p = run(
          {"pack", model, "--output", dir + "/p.safetensors", "--format", format, "--quiet", "--no-sync"});
      ASSERT_EQ(p.status, 0) << p.err;
      auto packed = io::SafetensorsFile::open(dir + "/p.safetensors");
      EXPECT_TRUE(packed->contains("a.proj.compressed"));
      EXPECT_FALSE(packed->contains("a.proj.weight"));
      EXPECT_TRUE(packed->contains("a.norm.weight"));  // 1-D: not a packable weight
      uint64_t part_bytes = 0;
      for (const auto& t : packed->tensors()) {
        if (t.name.rfind("a.proj.", 0) == 0 && t.name != "a.proj.bias") part_bytes += t.nbytes();
      }
      EXPECT_LT(part_bytes, 16 * 32 * sparsity::size_of(dt));
      const CliRun u =
          run({"unpack", dir + "/p.safetensors", "--output", dir + "/u.safetensors", "--quiet", "--no-sync"});
      ASSERT_EQ(u.status, 0) << u.err;
      EXPECT_EQ(file_bytes(dir + "/u.safetensors"), file_bytes(model));
    }
  }
}

TEST(CliPack, AutoPacksEachWeightItsOwnWayAndCopiesTheRest) {
  const std::string dir = fresh_dir();
  const std::string model = dir + "/m.safetensors";
  io::save_safetensors(model, {{"l0.weight", weight_for("sparse-24-bitmask", DType::bf16)},
                               {"l0.bias", Tensor::ones({16})},
                               {"l1.weight", weight_for("bsr16x16", DType::f32)},
                               {"l2.weight", wave(16, 32, 0.5)},  // no zeros: dense
                               {"emb.weight", weight_for("csr", DType::f16)},
                               {"ids", Tensor::from_values({1, 2, 3}, DType::i64)}});
  const CliRun p =
      run({"pack", model, "--output", dir + "/p.safetensors", "--ignore", "emb", "--threads", "2"});
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_NE(p.out.find("l2.weight   F32    16x32  dense"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("left dense: no element is +0.0"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("left dense: ignored"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("packed 2 of 4 weights"), std::string::npos) << p.out;
  const Json j = Json::parse(run({"inspect", dir + "/p.safetensors", "--json"}).out);
  std::vector<std::string> names, formats;
  for (const auto& t : j["tensors"]) {
    names.push_back(t["name"]);
    formats.push_back(t.value("format", ""));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"l0.weight", "l0.bias", "l1.weight", "l2.weight", "emb.weight",
                                             "ids"}));
  // l0: 2:4 in bf16; l1: one of its two 16x16 blocks.
  EXPECT_EQ(formats, (std::vector<std::string>{"sparse-24-bitmask", "", "bsr16x16", "", "", ""}));
  ASSERT_EQ(run({"unpack", dir + "/p.safetensors", "--output", dir + "/u.safetensors", "--quiet"}).status, 0);
  EXPECT_EQ(file_bytes(dir + "/u.safetensors"), file_bytes(model));
}

TEST(CliPack, ErrorsAreOneLineAndLeaveNothing) {
  Fixture f;  // proj.weight = 1 -8 3 -2 / 5 0.5 -7 4: no zeros
  const std::string out = f.dir + "/p.safetensors";
  io::save_safetensors(f.model, {{"proj.weight", Tensor::from_values({1, 0, 3, -2, 0, 0.5, -7, 4}, {2, 4})},
                                 {"proj.bias", Tensor::from_values({1, 2})}});
  // Row 0 keeps 1 3 -2: the third kept element of columns 0..3 is at column 3.
  f.expect_error(1, "row 0, column 3", {"pack", f.model, "--output", out, "--format", "sparse-24-bitmask"});
  f.expect_error(1, "tensor 'proj.weight'",
                 {"pack", f.model, "--output", out, "--format", "sparse-24-bitmask"});
  f.expect_error(1, "rows 0..1 are a partial block row",
                 {"pack", f.model, "--output", out, "--format", "bsr4x1"});
  f.expect_error(2, "--format", {"pack", f.model, "--output", out, "--format", "nm5of4"});
  f.expect_error(2, "--format", {"pack", f.model, "--output", out, "--format", "coo"});
  f.expect_error(2, "--output", {"pack", f.model});
  f.expect_error(2, "--output is empty", {"pack", f.model, "--output", ""});
  f.expect_error(1, "invalid pattern", {"pack", f.model, "--output", out, "--ignore", "re:("});
  f.expect_error(1, "not a packed file", {"unpack", f.model, "--output", out});
  f.expect_error(1, "not a regular file", {"pack", f.model, "--output", f.dir});
  f.expect_error(1, "cannot open", {"pack", f.dir + "/nope.safetensors", "--output", out});
  // A name the packed weight's parts would take.
  io::save_safetensors(f.model, {{"proj.weight", Tensor::from_values({1, 0, 3, 0}, {1, 4})},
                                 {"proj.shape", Tensor::from_values({1, 4}, DType::i64)}});
  f.expect_error(1, "'proj.shape'", {"pack", f.model, "--output", out});
  f.expect_error(1, "'proj.weight'", {"pack", f.model, "--output", out});
}

TEST(CliPack, PeakMemoryStaysBelowTheModelSize) {
  const std::string dir = fresh_dir();
  const std::string model = dir + "/model.safetensors";
  ASSERT_EQ(run({"make-model", model, "--layers", "4", "--dim", "2048"}).status, 0);  // 67 MB
  ASSERT_EQ(run({"prune", model, "--sparsity", "0.5", "--output", dir + "/pruned.safetensors", "--quiet",
                 "--no-sync"})
                .status,
            0);
  struct stat st {};
  ASSERT_EQ(::stat(model.c_str(), &st), 0);
#if defined(__SANITIZE_ADDRESS__)
  // Under AddressSanitizer the resident set holds its shadow memory and freed-block quarantine too (of
  // the order of the model here): the runs and their results are checked, their memory is not.
  const double model_kb = 1e12;
#else
  const double model_kb = static_cast<double>(st.st_size) / 1024.0;
#endif
  for (const char* threads : {"1", "16"}) {
    const CliRun p = run({"pack", dir + "/pruned.safetensors", "--output", dir + "/p.safetensors",
                          "--threads", threads, "--quiet", "--no-sync"});
    ASSERT_EQ(p.status, 0) << p.err;
    EXPECT_LE(static_cast<double>(p.peak_rss_kb), model_kb) << "pack --threads " << threads;
    const CliRun u = run({"unpack", dir + "/p.safetensors", "--output", dir + "/u.safetensors", "--threads",
                          threads, "--quiet", "--no-sync"});
    ASSERT_EQ(u.status, 0) << u.err;
    EXPECT_LE(static_cast<double>(u.peak_rss_kb), model_kb) << "unpack --threads " << threads;
  }
  EXPECT_EQ(file_bytes(dir + "/u.safetensors"), file_bytes(dir + "/pruned.safetensors"));
}

}  // namespace
