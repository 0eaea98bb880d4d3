// The `sparsity` executable: argument parsing, progress and reporting around the io:: engine.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/text.hpp"
#include "io/small_file.hpp"
#include "sparsity/base/version.hpp"
#include "sparsity/io/atomic_file.hpp"
#include "sparsity/io/safetensors.hpp"
#include "sparsity/prune/engine.hpp"
#include "sparsity/prune/inspect.hpp"
#include "sparsity/prune/pack.hpp"
#include "sparsity/prune/registry.hpp"

namespace {

using sparsity::Json;
using sparsity::detail::printable;

// Exit statuses: 1 = bad input or failure, 2 = usage error.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- progress bar (stderr, only on a terminal, only after ~1 s) -----------------------------------
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled && ::isatty(2)), start_(std::chrono::steady_clock::now()) {}
  void update(uint64_t done, uint64_t total) {
    if (!enabled_) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (elapsed < 1.0 && done < total) return;
    if (elapsed < 1.0 && !drawn_) return;
    const int width = 30;
    const int filled = total ? static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total)) : width;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, ' ');
    std::fprintf(stderr, "\r[%s] %3d%% %.0f/%.0f MB %.1fs", bar.c_str(),
                 total ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)) : 100,
                 static_cast<double>(done) / 1e6, static_cast<double>(total) / 1e6, elapsed);
    std::fflush(stderr);
    drawn_ = true;
  }
  /// Removes the bar so that the next stderr line starts clean.
  void clear() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

Progress* g_progress = nullptr;

std::string shape_str(const sparsity::Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out.empty() ? "scalar" : out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Left-aligned table printer.
void print_table(std::ostream& os, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);  // no trailing blanks after empty last cells
    os << line << "\n";
  }
}

void print_layers(const sparsity::prune::Report& report, bool per_step) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = {"tensor", "dtype", "shape"};
  size_t steps = 0;
  for (const auto& l : report.layers) steps = std::max(steps, l.sparsity_per_step.size());
  if (per_step) {
    for (size_t s = 0; s < steps; ++s) head.push_back("step " + std::to_string(s + 1));
  } else {
    head.push_back("sparsity");
  }
  head.push_back("time");
  rows.push_back(head);
  for (const auto& l : report.layers) {
    std::vector<std::string> r = {printable(l.fqn), l.dtype, shape_str(l.shape)};
    if (per_step) {
      for (size_t s = 0; s < steps; ++s) {
        r.push_back(s < l.sparsity_per_step.size() ? fmt("%.3f", l.sparsity_per_step[s]) : "");
      }
    } else {
      r.push_back(l.sparsity_per_step.empty() ? "0.000" : fmt("%.3f", l.sparsity_per_step.back()));
    }
    r.push_back(fmt("%.1f ms", l.seconds * 1e3));
    rows.push_back(r);
  }
  print_table(std::cout, rows);
}

// Runs `work` with a progress bar (unless quiet) that is cleared however it ends.
template <class F>
auto with_progress(bool quiet, F&& work) {
  Progress progress(!quiet);
  struct Unset {
    Progress& p;
    ~Unset() {
      p.clear();
      g_progress = nullptr;
    }
  } unset{progress};
  g_progress = &progress;
  return work([&](uint64_t done, uint64_t total) { progress.update(done, total); });
}

// ---- prune --------------------------------------------------------------------------------------------
struct PruneArgs {
  std::string model, config, output, masks, state, resume, activations;
  int threads = 0;
  bool quiet = false;
  bool no_sync = false;
  // Quick flags: a WeightNorm config without a file (or overrides of the file's defaults).
  std::optional<double> sparsity;
  std::string block, nm;
  bool global = false;
};

// "RxC" or "N:M" as two positive integers; UsageError naming the flag otherwise.
std::pair<int64_t, int64_t> two_ints(const std::string& text, char sep, const char* flag) {
  const size_t p = text.find(sep);
  try {
    size_t used_a = 0, used_b = 0;
    if (p == std::string::npos) throw std::invalid_argument(flag);
    const long long a = std::stoll(text.substr(0, p), &used_a), b = std::stoll(text.substr(p + 1), &used_b);
    if (used_a != p || used_b != text.size() - p - 1 || a <= 0 || b <= 0 || a > 65536 || b > 65536) {
      throw std::invalid_argument(flag);
    }
    return {a, b};
  } catch (const std::logic_error&) {
    throw UsageError(std::string(flag) + " expects " +
                     (sep == 'x' ? "ROWSxCOLS, e.g. 1x4" : "N:M, e.g. 2:4") + ", got " + printable(text));
  }
}

// The configuration of a run: the file (if any) with the quick flags laid over its defaults.
sparsity::PruneConfig prune_config(const PruneArgs& a) {
  const bool quick = a.sparsity || !a.block.empty() || !a.nm.empty() || a.global;
  if (a.config.empty() && !quick) throw UsageError("give --config FILE or --sparsity LEVEL (or --nm N:M)");
  Json j = Json{{"sparsifier", "WeightNormSparsifier"}};
  if (!a.config.empty()) {
    const std::string text = sparsity::io::read_small_file(a.config, 16u << 20);
    j = sparsity::parse_prune_config(std::string_view(text), a.config).to_json();
  }
  if (!quick) return sparsity::parse_prune_config(j, a.config);
  if (!a.block.empty() && !a.nm.empty()) throw UsageError("--block and --nm exclude each other");
  Json& d = j["defaults"];
  if (d.is_null()) d = Json::object();
  if (!a.nm.empty()) {
    const auto [n, m] = two_ints(a.nm, ':', "--nm");
    if (n >= m) throw UsageError("--nm N:M needs N < M, got " + printable(a.nm));
    d["sparsity_level"] = 1.0;
    d["sparse_block_shape"] = {1, m};
    d["zeros_per_block"] = m - n;
  }
  if (!a.block.empty()) {
    const auto [r, c] = two_ints(a.block, 'x', "--block");
    d["sparse_block_shape"] = {r, c};
    d["zeros_per_block"] = nullptr;
  }
  if (a.sparsity) d["sparsity_level"] = *a.sparsity;
  if (a.global) j["scope"] = "global";
  return sparsity::parse_prune_config(j, a.config.empty() ? "command line" : a.config);
}

std::string percent(uint64_t part, uint64_t whole) {
  return fmt("%.1f%%", whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0);
}

// "812 B", "139.3 kB", "7.1 MB", "14.5 GB" (powers of 1000, as the progress bar).
std::string size_text(uint64_t bytes) {
  if (bytes < 1000) return std::to_string(bytes) + " B";
  const char* units[] = {"kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes) / 1000.0;
  size_t u = 0;
  while (v >= 999.95 && u + 1 < 4) {
    v /= 1000.0;
    ++u;
  }
  return fmt("%.1f ", v) + units[u];
}

// What was left alone and why, and the whole model's sparsity before and after.
void print_summary(const sparsity::prune::Report& report) {
  for (const auto& s : report.skipped) {
    std::cout << "skipped " << s.tensors << " tensor" << (s.tensors == 1 ? "" : "s") << " (" << s.parameters
              << " parameters): " << s.reason << "\n";
  }
  std::cout << "model: " << report.parameters << " floating-point parameters, sparsity "
            << percent(report.zeros_before, report.parameters) << " -> "
            << percent(report.zeros_after, report.parameters) << "\n";
}

// A warning line per tensor whose sparsity misses what its settings ask for by more than a point.
void warn_on_misses(const sparsity::prune::Report& report) {
  for (const auto& l : report.layers) {
    if (!l.expected_sparsity || l.sparsity_per_step.empty()) continue;
    const double got = l.sparsity_per_step.back();
    if (std::fabs(got - *l.expected_sparsity) <= 0.01) continue;
    const std::string line =
        "sparsity: warning: " + sparsity::detail::quote(l.fqn) + " of shape " + shape_str(l.shape) + " is " +
        fmt("%.1f%%", 100 * got) + " sparse, its settings ask for " +
        fmt("%.1f%%", 100 * *l.expected_sparsity) +
        " (the blocks do not fit its shape, or the level does not round to whole blocks)\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
}

int run_prune(const PruneArgs& a) {
  if (!a.state.empty() && a.state == a.output) throw UsageError("--state and --output name the same file");
  if (!a.masks.empty() && (a.masks == a.output || a.masks == a.state)) {
    throw UsageError("--masks and " + std::string(a.masks == a.output ? "--output" : "--state") + " name the same file");
  }
  sparsity::prune::Options o;
  o.model = a.model;
  o.config = prune_config(a);
  o.config_where = a.config.empty() ? "command line" : a.config;
  o.output = a.output;
  o.masks = a.masks;
  o.state = a.state;
  o.resume = a.resume;
  o.activations = a.activations;
  o.threads = a.threads;
  o.durable = !a.no_sync;
  const auto report = with_progress(a.quiet, [&](auto update) {
    o.progress = update;
    return sparsity::prune::run(o);
  });
  warn_on_misses(report);
  if (!a.quiet) {
    print_layers(report, /*per_step=*/false);
    print_summary(report);
    std::cout << "pruned " << report.layers.size() << " tensors in " << o.config.steps << " step(s) ("
              << report.steps_done << " in total); wrote " << printable(a.output)
              << (a.masks.empty() ? "" : ", " + printable(a.masks))
              << (a.state.empty() ? "" : ", " + printable(a.state)) << "\n";
  }
  return 0;
}

// ---- pack / unpack ------------------------------------------------------------------------------------
struct PackArgs {
  std::string model, output, format = "auto", masks;
  std::vector<std::string> ignore;
  int threads = 0;
  bool quiet = false;
  bool no_sync = false;
};


int run_pack(const PackArgs& a) {
  sparsity::prune::PackOptions o;
  o.model = a.model;
  o.output = a.output;
  try {
    o.format = sparsity::PackFormat::from_string(a.format);
  } catch (const sparsity::Error& e) {
    throw UsageError(std::string("--format: ") + e.what());
  }
  o.masks = a.masks;
  o.ignore = a.ignore;
  o.threads = a.threads;
  o.durable = !a.no_sync;
  const auto report = with_progress(a.quiet, [&](auto progress) {
    o.progress = progress;
    return sparsity::prune::pack_file(o);
  });
  if (a.quiet) return 0;
  // One row per candidate weight; a last column says why a weight was left dense, when one was.
  const bool notes = std::any_of(report.weights.begin(), report.weights.end(),
                                 [](const auto& w) { return !w.reason.empty(); });
  std::vector<std::vector<std::string>> rows = {
      {"tensor", "dtype", "shape", "format", "sparsity", "size", "dense size"}};
  if (notes) rows[0].push_back("note");
  uint64_t packed_bytes = 0, dense_bytes = 0;
  for (const auto& w : report.weights) {
    const uint64_t numel = static_cast<uint64_t>(sparsity::shape_numel(w.shape));
    rows.push_back({printable(w.name), w.dtype, shape_str(w.shape), w.format.empty() ? "dense" : w.format,
                    w.ignored ? "-" : percent(numel - w.kept, numel), size_text(w.packed_bytes),
                    size_text(w.dense_bytes)});
    if (notes) rows.back().push_back(w.reason.empty() ? "" : "left dense: " + w.reason);
    packed_bytes += w.packed_bytes;
    dense_bytes += w.dense_bytes;
  }
  if (rows.size() > 1) print_table(std::cout, rows);
  std::cout << "packed " << report.packed << " of " << report.weights.size() << " weights ("
            << size_text(dense_bytes) << " -> " << size_text(packed_bytes) << "), copied "
            << report.other_tensors << " other tensor" << (report.other_tensors == 1 ? "" : "s") << "; file "
            << size_text(report.input_bytes) << " -> " << size_text(report.output_bytes) << "; wrote "
            << printable(a.output) << "\n";
  return 0;
}

int run_unpack(const std::string& packed, const std::string& output, int threads, bool quiet, bool no_sync) {
  sparsity::prune::UnpackOptions o;
  o.packed = packed;
  o.output = output;
  o.threads = threads;
  o.durable = !no_sync;
  const auto report = with_progress(quiet, [&](auto progress) {
    o.progress = progress;
    return sparsity::prune::unpack_file(o);
  });
  if (quiet) return 0;
  std::cout << "unpacked " << report.weights << " weight" << (report.weights == 1 ? "" : "s") << ", copied "
            << report.other_tensors << " other tensor" << (report.other_tensors == 1 ? "" : "s") << "; file "
            << size_text(report.input_bytes) << " -> " << size_text(report.output_bytes) << "; wrote "
            << printable(output) << "\n";
  return 0;
}

// ---- inspect ------------------------------------------------------------------------------------------
Json stats_json(const sparsity::prune::TensorStats& t) {
  Json j = {{"name", t.name},
            {"dtype", t.dtype},
            {"shape", t.shape},
            {"numel", t.numel},
            {"zeros", t.zeros},
            {"sparsity", t.numel ? static_cast<double>(t.zeros) / static_cast<double>(t.numel) : 0.0},
            {"pattern", t.pattern}};
  if (!t.torch_pattern.empty()) j["torch_pattern"] = t.torch_pattern;
  j["bytes"] = t.bytes;
  if (!t.format.empty()) {
    j["format"] = t.format;
    j["dense_bytes"] = t.dense_bytes;
  }
  if (!t.inspected) {
    j.erase("zeros");
    j.erase("sparsity");
  }
  return j;
}

std::vector<std::string> stats_row(const sparsity::prune::TensorStats& t) {
  std::string pattern = t.pattern;
  if (!t.torch_pattern.empty()) pattern += " (torch's (out, in): " + t.torch_pattern + ")";
  return {printable(t.name), t.dtype, shape_str(t.shape), t.inspected ? percent(t.zeros, t.numel) : "-",
          pattern};
}

int run_inspect(const std::string& model, bool json) {
  const auto stats = sparsity::prune::inspect_checkpoint(model);
  if (json) {
    Json j = Json::object();
    j["model"] = model;
    j["tensors"] = Json::array();
    for (const auto& t : stats.tensors) j["tensors"].push_back(stats_json(t));
    j["total"] = {
        {"tensors", stats.tensors.size()},
        {"numel", stats.numel},
        {"zeros", stats.zeros},
        {"sparsity", stats.numel ? static_cast<double>(stats.zeros) / static_cast<double>(stats.numel) : 0.0},
        {"packed", stats.packed},
        {"bytes", stats.bytes},
        {"dense_bytes", stats.dense_bytes}};
    if (stats.state) {
      Json groups = Json::array();
      for (const auto& g : stats.state->groups) {
        Json e = stats_json(g.mask);
        e["group"] = g.settings;
        groups.push_back(std::move(e));
      }
      j["state"] = {{"sparsifier", stats.state->sparsifier},
                    {"steps", stats.state->steps},
                    {"scheduler", stats.state->scheduler},
                    {"groups", std::move(groups)}};
    }
    std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (stats.state) {
    // A state file: its masks (1 kept, 0 pruned) and the groups' settings, not the packed bytes.
    const auto& st = *stats.state;
    std::cout << "sparsifier state: " << printable(st.sparsifier) << ", " << st.steps << " step(s), "
              << st.groups.size() << " group(s)" << (st.scheduler ? ", with a scheduler" : "") << "\n";
    std::vector<std::vector<std::string>> rows = {
        {"tensor", "mask", "shape", "pruned", "pattern", "settings"}};
    for (const auto& g : st.groups) {
      auto r = stats_row(g.mask);
      Json settings = g.settings;
      settings.erase("tensor_fqn");
      r.push_back(printable(settings.dump()));
      rows.push_back(std::move(r));
    }
    print_table(std::cout, rows);
    return 0;
  }
  // A packed file: each packed weight is one row (not its parts), with its layout and sizes.
  const bool packed = stats.packed > 0;
  std::vector<std::vector<std::string>> rows = {{"tensor", "dtype", "shape", "zeros", "pattern"}};
  if (packed) rows[0].insert(rows[0].end(), {"format", "size", "dense size"});
  for (const auto& t : stats.tensors) {
    rows.push_back(stats_row(t));
    if (packed) {
      rows.back().insert(rows.back().end(),
                         {t.format.empty() ? "-" : t.format, size_text(t.bytes), size_text(t.dense_bytes)});
    }
  }
  print_table(std::cout, rows);
  std::cout << "total: " << stats.tensors.size() << " tensors, " << stats.numel << " elements, "
            << stats.zeros << " zeros (" << percent(stats.zeros, stats.numel) << ")";
  if (packed) {
    std::cout << "; " << stats.packed << " packed weight" << (stats.packed == 1 ? "" : "s") << ", "
              << size_text(stats.bytes) << " of tensor data (" << size_text(stats.dense_bytes) << " dense)";
  }
  std::cout << "\n";
  return 0;
}

// ---- synthetic models (demo and the hidden make-model helper) --------------------------------------------
struct Spec {
  std::string name;
  sparsity::Shape shape;
};

// Deterministic values: a fixed-seed generator, scaled like a Linear's default init.
void write_model(const std::string& path, const std::vector<Spec>& specs, uint64_t seed) {
  std::vector<sparsity::io::TensorSpec> ts;
  for (const auto& s : specs) ts.push_back({s.name, "F32", s.shape});
  sparsity::io::SafetensorsWriter w(path, ts, {{"format", "pt"}, {"generator", "sparsity"}});
  std::mt19937_64 rng(seed);
  std::vector<float> buf;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int64_t n = sparsity::shape_numel(specs[i].shape);
    const double fan_in = specs[i].shape.size() == 2 ? static_cast<double>(specs[i].shape[1]) : 1.0;
    const float scale = static_cast<float>(1.0 / std::sqrt(fan_in));
    const int64_t chunk = 1 << 20;
    for (int64_t off = 0; off < n; off += chunk) {
      const int64_t cnt = std::min(chunk, n - off);
      buf.resize(static_cast<size_t>(cnt));
      for (auto& v : buf) {
        // Uniform in [-scale, scale) from the top 24 bits.
        v = scale * (static_cast<float>(rng() >> 40) / 8388608.0f - 1.0f);
      }
      w.write(i, static_cast<uint64_t>(off) * 4, buf.data(), buf.size() * 4);
    }
  }
  w.commit();
}

std::vector<Spec> demo_specs() {
  const int64_t d = 256, ff = 1024, vocab = 2048, layers = 4;
  std::vector<Spec> s = {{"embed_tokens.weight", {vocab, d}}};
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    s.push_back({p + "input_norm.weight", {d}});
    for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      s.push_back({p + "attn." + n + ".weight", {d, d}});
      s.push_back({p + "attn." + n + ".bias", {d}});
    }
    s.push_back({p + "post_norm.weight", {d}});
    s.push_back({p + "mlp.up_proj.weight", {ff, d}});
    s.push_back({p + "mlp.up_proj.bias", {ff}});
    s.push_back({p + "mlp.down_proj.weight", {d, ff}});
    s.push_back({p + "mlp.down_proj.bias", {d}});
  }
  s.push_back({"norm.weight", {d}});
  return s;
}

void write_text(const std::string& path, const std::string& text) {
  sparsity::io::AtomicFile f(path);
  f.write(text.data(), text.size(), 0);
  f.commit();
}

int run_demo(std::string dir, int threads) {
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/sparsity-demo-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
      throw sparsity::Error(sparsity::ErrorCode::Io, std::string("cannot create a directory: ") + std::strerror(errno) + " (" + templ + ")");
    }
    dir = buf.data();
  } else if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    throw sparsity::Error(sparsity::ErrorCode::Io, std::string("cannot create the directory: ") + std::strerror(errno) + " (" + printable(dir) + ")");
  }
  const std::string dense = dir + "/dense.safetensors";
  const std::string config_path = dir + "/config.json";
  const auto specs = demo_specs();
  write_model(dense, specs, 2024);
  const Json config = {
      {"sparsifier", "WeightNormSparsifier"},
      {"defaults", {{"sparsity_level", 0.75}, {"sparse_block_shape", {1, 4}}, {"norm", "L2"}}},
      {"config", nullptr},
      {"scheduler", {{"type", "CubicSL"}, {"init_sl", 0.0}, {"init_t", 0}, {"delta_t", 1}, {"total_t", 4}}},
      {"steps", 5}};
  write_text(config_path, config.dump(2) + "\n");

  sparsity::prune::Options o;
  o.model = dense;
  o.config = sparsity::parse_prune_config(config, config_path);
  o.config_where = config_path;
  o.output = dir + "/pruned.safetensors";
  o.masks = dir + "/masks.safetensors";
  o.state = dir + "/state.safetensors";
  o.threads = threads;
  int64_t params = 0;
  for (const auto& s : specs) params += sparsity::shape_numel(s.shape);
  std::cout << "demo model: " << specs.size() << " tensors, " << params
            << " parameters (4 transformer blocks, d=256, ffn=1024, vocab=2048), f32\n"
            << "sparsifier: WeightNormSparsifier, 1x4 blocks, L2; CubicSL ramp 0 -> 0.75 over 5 steps\n\n";
  const auto t0 = std::chrono::steady_clock::now();
  const auto report = sparsity::prune::run(o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "sparsity of each pruned tensor after each step:\n";
  print_layers(report, /*per_step=*/true);
  std::cout << "\npruned " << report.layers.size() << " tensors in " << fmt("%.3f", secs) << " s\n"
            << "wrote " << dir << "/{dense,pruned,masks,state}.safetensors and config.json\n"
            << "next: sparsity inspect " << o.output << "\n";
  return 0;
}

int run_make_model(const std::string& out, int64_t layers, int64_t dim) {
  std::vector<Spec> specs;
  for (int64_t l = 0; l < layers; ++l) {
    specs.push_back({"layers." + std::to_string(l) + ".weight", {dim, dim}});
    specs.push_back({"layers." + std::to_string(l) + ".bias", {dim}});
  }
  write_model(out, specs, 7);
  return 0;
}

int fail(int status, const std::string& message) {
  if (g_progress) g_progress->clear();
  std::cout.flush();
  // One printable line whatever the message holds (NUL, escape sequences, megabytes of name).
  const std::string line = "sparsity: error: " + sparsity::detail::one_line(message) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  sparsity::io::install_cleanup_handlers();  // SIGINT/SIGTERM/SIGHUP remove hidden temporaries
  CLI::App app{"sparsity: prune safetensors, GGUF and ONNX models with torch.ao.pruning's sparsifiers", "sparsity"};
  app.set_version_flag("--version", std::string("sparsity ") + sparsity::version_string());
  app.require_subcommand(1);

  PruneArgs pa;
  auto* prune = app.add_subcommand("prune", "Prune a checkpoint: prepare, steps x (step, scheduler step), squash");
  prune->add_option("MODEL", pa.model, "Input model: .safetensors (or a sharded model.safetensors.index.json), .gguf or .onnx")->required();
  prune->add_option("--config", pa.config, "Pruning configuration (JSON); or the quick flags below");
  prune->add_option("--output", pa.output, "Pruned checkpoint (may be MODEL; an index .json for sharded models)")->required();
  prune->add_option("--masks", pa.masks, "Write the masks (U8, 1 kept / 0 pruned) to this .safetensors file");
  prune->add_option("--state", pa.state, "Write the sparsifier state (to continue with --resume)");
  prune->add_option("--resume", pa.resume, "Continue from a state file written by --state");
  prune->add_option("--activations", pa.activations,
                    "WandaSparsifier: per-input L2 norms of calibration activations, one 1-D F32 tensor per weight");
  prune->add_option("--threads", pa.threads, "Worker threads (default: every core)")->check(CLI::Range(1, 1024));
  prune
      ->add_option("--sparsity", pa.sparsity,
                   "Quick config: WeightNorm at this level (over --config's defaults)")
      ->check(CLI::Range(0.0, 1.0));
  prune->add_option("--block", pa.block, "Quick config: block shape ROWSxCOLS, e.g. 1x4");
  prune->add_option("--nm", pa.nm, "Quick config: N:M along the input dimension, e.g. 2:4");
  prune->add_flag("--global", pa.global, "Quick config: one threshold over every selected tensor");
  prune->add_flag("--quiet", pa.quiet, "No progress bar and no summary");
  prune->add_flag("--no-sync", pa.no_sync,
                  "Skip fsync (faster; outputs still appear whole or not at all if the process dies, "
                  "but not across a power loss)");

  PackArgs ka;
  auto* pack = app.add_subcommand(
      "pack", "Store the pruned weights of a checkpoint packed (sparse-bitmask, 2:4, N:M, BSR, CSR)");
  pack->add_option("MODEL", ka.model, "Input .safetensors file")->required();
  pack->add_option("--output", ka.output, "Packed .safetensors file (may be MODEL)")->required();
  pack->add_option("--format", ka.format,
                   "auto (default: the fewest bytes per weight), sparse-bitmask, sparse-24-bitmask, "
                   "nm<N>of<M>, bsr<R>x<C> or csr");
  pack->add_option("--masks", ka.masks,
                   "Masks deciding what is kept (e.g. prune --masks output), for weights whose pruned "
                   "elements are not all +0.0");
  pack->add_option("--ignore", ka.ignore,
                   "Leave this weight dense: a tensor or module name, or re:PATTERN (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  pack->add_option("--threads", ka.threads, "Worker threads (default: every core)")
      ->check(CLI::Range(1, 1024));
  pack->add_flag("--quiet", ka.quiet, "No progress bar and no summary");
  pack->add_flag("--no-sync", ka.no_sync, "Skip fsync (see prune --no-sync)");

  std::string up_packed, up_output;
  int up_threads = 0;
  bool up_quiet = false, up_no_sync = false;
  auto* unpack = app.add_subcommand("unpack", "Restore the dense checkpoint of a packed one, bit for bit");
  unpack->add_option("PACKED", up_packed, "A file written by sparsity pack")->required();
  unpack->add_option("--output", up_output, "Dense .safetensors file (may be PACKED)")->required();
  unpack->add_option("--threads", up_threads, "Worker threads (default: every core)")
      ->check(CLI::Range(1, 1024));
  unpack->add_flag("--quiet", up_quiet, "No progress bar and no summary");
  unpack->add_flag("--no-sync", up_no_sync, "Skip fsync (see prune --no-sync)");

  std::string inspect_model;
  bool inspect_json = false;
  auto* inspect = app.add_subcommand(
      "inspect",
      "Per-tensor dtype, shape, zeros and sparsity pattern (and format and sizes of packed weights)");
  inspect->add_option("MODEL", inspect_model, "A .safetensors file (or a sharded index .json), .gguf or .onnx")
      ->required();
  inspect->add_flag("--json", inspect_json, "Machine-readable output");

  std::string demo_dir;
  int demo_threads = 0;
  auto* demo = app.add_subcommand("demo", "Build a small transformer-like model, prune it over 5 steps, show the ramp");
  demo->add_option("--out", demo_dir, "Directory for the files (default: a new directory under $TMPDIR or /tmp)");
  demo->add_option("--threads", demo_threads, "Worker threads (default: every core)")->check(CLI::Range(1, 1024));

  // Hidden helper (empty group): a synthetic model of `layers` dim x dim Linear layers with biases.
  std::string mm_out;
  int64_t mm_layers = 6, mm_dim = 4096;
  auto* make_model = app.add_subcommand("make-model", "")->group("");
  make_model->add_option("OUT", mm_out)->required();
  make_model->add_option("--layers", mm_layers)->check(CLI::Range(int64_t{1}, int64_t{1000}));
  make_model->add_option("--dim", mm_dim)->check(CLI::Range(int64_t{1}, int64_t{65536}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return fail(2, std::string(e.what()) + " (command line; see sparsity --help)");
  }
  try {
    // An option given an empty value names no file: a mistake, never "do not write it".
    for (const CLI::App* sub : {prune, pack, unpack, inspect, demo}) {
      for (const CLI::Option* opt : sub->get_options()) {
        if (opt->count() > 0 && opt->get_expected_min() > 0) {
          for (const auto& v : opt->results()) {
            if (v.empty()) throw UsageError(opt->get_name() + " is empty");
          }
        }
      }
    }
    if (*prune) return run_prune(pa);
    if (*pack) return run_pack(ka);
    if (*unpack) return run_unpack(up_packed, up_output, up_threads, up_quiet, up_no_sync);
    if (*inspect) return run_inspect(inspect_model, inspect_json);
    if (*demo) return run_demo(demo_dir, demo_threads);
    if (*make_model) return run_make_model(mm_out, mm_layers, mm_dim);
  } catch (const UsageError& e) {
    return fail(2, std::string(e.what()) + " (command line)");
  } catch (const sparsity::Error& e) {
    return fail(1, e.what());
  } catch (const std::bad_alloc&) {
    return fail(1, "out of memory (allocation failed)");
  } catch (const std::exception& e) {
    return fail(1, std::string("internal error: ") + e.what() + " (please report)");
  }
  return 0;
}
