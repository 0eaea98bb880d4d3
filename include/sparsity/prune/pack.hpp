// Packed checkpoints: a safetensors file's pruned weights stored as PackedTensor parts, and back.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sparsity/core/packed.hpp"
#include "sparsity/core/tensor.hpp"
#include "sparsity/io/tensor_file.hpp"

namespace sparsity::prune {

/// The __metadata__ key of a packed file. Its value is JSON text in the shape of compressed-tensors'
/// sparsity_config: {"format": F, "tensors": {"a.b.weight": F1, ...}}, each packed weight with its
/// PackFormat name, F the one they share or "mixed". The file's other metadata is the input's.
inline constexpr const char* kPackedMetadataKey = "sparsity.packed";

/// What pack_file does. Empty paths are not read.
struct PackOptions {
  std::string model;   ///< a .safetensors file (not a sharded index)
  std::string output;  ///< the packed .safetensors file; may be `model` (replaced when complete)
  /// The layout of every packed weight, or `auto`: per weight the one with the fewest bytes.
  PackFormat format = PackFormat::automatic();
  /// Masks deciding what is kept (the U8 masks `sparsity prune --masks` writes, any dtype, same names
  /// and shapes): a weight with a mask keeps what its mask keeps, the others every element whose bits
  /// are not +0.0.
  std::string masks;
  /// Weights left dense whatever they hold (the config's `ignore` syntax: names, module names, "re:").
  std::vector<std::string> ignore;
  int threads = 0;      ///< 0: every core; the output never depends on it
  bool durable = true;  ///< fsync the output before it appears
  /// Called from worker threads (serialised) with the bytes done and the total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

/// One weight of a pack_file run (a 2-D F32, F16 or BF16 tensor named "*.weight"): packed, or left
/// dense and why.
struct PackedWeightReport {
  std::string name;
  std::string dtype;     ///< the file's dtype name ("BF16")
  Shape shape;           ///< dense shape
  std::string format;    ///< the layout it was packed in; empty when left dense
  std::string reason;    ///< why it was left dense; empty when packed
  bool ignored = false;  ///< named by `ignore`: neither read nor packed
  uint64_t kept = 0;     ///< elements kept (stored unless padding), out of rows x cols; 0 when ignored
  uint64_t dense_bytes = 0;
  uint64_t packed_bytes = 0;  ///< bytes of its parts (dense_bytes when left dense)
};

struct PackReport {
  std::vector<PackedWeightReport> weights;  ///< every such weight (ignored ones too), in file order
  uint64_t packed = 0;                      ///< weights packed
  uint64_t other_tensors = 0;               ///< the tensors that are not in `weights` (copied as they are)
  uint64_t input_bytes = 0;                 ///< file sizes
  uint64_t output_bytes = 0;
};

/// Packs the pruned weights of a safetensors file out of core (the engine of `sparsity pack`).
///
/// Candidates are the 2-D F32, F16 and BF16 tensors whose name ends in ".weight" and that `ignore`
/// does not name. A candidate is packed when it drops something (an element that is +0.0, or that
/// its mask prunes) and its packed parts take fewer bytes than its dense data; it is left dense when
/// it drops nothing or would not shrink. With an explicit format a candidate that drops something
/// must fit the format: one that does not is an error naming the tensor and the first offending row
/// and column (auto always fits). Every other tensor is copied byte for byte, in place.
///
/// Weight `a.b.weight` becomes `a.b.<part>` for each part of its PackedTensor (shape, compressed,
/// bitmask, row_offsets, col_indices, crow_indices: compressed-tensors' names), at the weight's place
/// in the file; __metadata__ gains kPackedMetadataKey. Errors before anything is written: an output
/// that is not a regular file or is the masks file; an input that is not safetensors or is packed
/// already; a candidate whose part name the file already uses (naming both tensors); a mask of
/// another shape. The weights are read twice, first to choose layouts and size the output (every
/// error but I/O surfaces there, before the output file exists), then to write; memory holds one
/// weight's dense data and parts per worker. On any error nothing is written and the input is
/// untouched.
///
///   sparsity::prune::PackOptions o;
///   o.model = "pruned.safetensors";
///   o.output = "packed.safetensors";
///   o.format = sparsity::PackFormat::from_string("sparse-24-bitmask");
///   sparsity::prune::PackReport r = sparsity::prune::pack_file(o);
PackReport pack_file(const PackOptions& options);

/// What unpack_file does.
struct UnpackOptions {
  std::string packed;  ///< a file pack_file wrote (or any safetensors file with kPackedMetadataKey)
  std::string output;  ///< the dense .safetensors file; may be `packed`
  int threads = 0;
  bool durable = true;
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct UnpackReport {
  uint64_t weights = 0;        ///< packed weights restored
  uint64_t other_tensors = 0;  ///< tensors copied as they are
  uint64_t input_bytes = 0;
  uint64_t output_bytes = 0;
};

/// Restores the dense file: each packed weight, checked in full by PackedTensor::from_parts, is
/// unpacked at the place of its first part, every other tensor copied byte for byte, and __metadata__
/// loses kPackedMetadataKey. unpack_file(pack_file(x)) holds x's tensors bit for bit, in x's order, with
/// x's metadata (weights packed by a mask hold +0.0 where the mask prunes). Errors name the file, the
/// weight and the part; nothing is written then.
UnpackReport unpack_file(const UnpackOptions& options);

/// One packed weight of a file and the file's tensors that hold its parts.
struct PackedWeight {
  std::string name;  ///< "a.b.weight"
  PackFormat format = PackFormat::csr();
  /// (part name, entry) for every tensor `a.b.<part>` with a part name of any layout, in file order.
  std::vector<std::pair<std::string, const io::TensorInfo*>> parts;
};

/// The packed weights listed in a file's __metadata__ (none when it has no kPackedMetadataKey), in
/// file order of their first part. InvalidArgument located at the file and the key or tensor: text
/// that is not the JSON described at kPackedMetadataKey, a name not ending in ".weight", an unknown
/// format or `auto`, a weight the file also holds as a tensor, a weight without any part.
std::vector<PackedWeight> packed_weights(const io::TensorFile& file);

/// One packed weight read from its file: zero-copy views of its parts (copies where a part is not
/// aligned to its element size) checked by PackedTensor::from_parts. Errors are located at the file
/// and the weight and name the part: a missing part (NotFound), a part of another layout, a dtype no
/// part uses, and every from_parts refusal.
PackedTensor read_packed(const io::TensorFile& file, const PackedWeight& weight,
                         PackedTensor::Check check = PackedTensor::Check::full);

}  // namespace sparsity::prune
