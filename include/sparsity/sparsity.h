/* The C API of sparsity: the pruning lifecycle over the caller's buffers, and checkpoint pruning.
 *
 * C99, usable from any language with a C FFI. Every object is an opaque handle; every call returns a
 * sparsity_status and never lets an exception or an abort through: on an error, sparsity_last_error()
 * gives a one-line message naming the offending argument, key, tensor or byte offset. Handles are not
 * synchronised: calls on one handle, or on handles sharing a model, come from one thread at a time.
 *
 *   float w[2 * 4] = {...};                         // the caller's weights, (out, in) = (2, 4)
 *   int64_t shape[2] = {2, 4};
 *   sparsity_tensor* t;  sparsity_model* m;  sparsity_sparsifier* s;
 *   sparsity_tensor_create(w, SPARSITY_DTYPE_F32, shape, 2, &t);
 *   sparsity_model_create(&m);
 *   sparsity_model_add_tensor(m, "fc.weight", t);
 *   sparsity_sparsifier_create("WeightNormSparsifier",
 *       "{\"sparsity_level\": 1.0, \"sparse_block_shape\": [1, 4], \"zeros_per_block\": 2}", &s);
 *   sparsity_sparsifier_prepare(s, m, NULL);       // every 2-D float `weight`: here fc.weight
 *   sparsity_sparsifier_step(s);
 *   uint8_t mask[8];
 *   sparsity_sparsifier_mask_bytes(s, "fc.weight", mask, sizeof mask);
 *   sparsity_sparsifier_squash(s);                 // w now holds the pruned weights
 *   sparsity_sparsifier_destroy(s); sparsity_model_destroy(m); sparsity_tensor_destroy(t);
 */
#ifndef SPARSITY_SPARSITY_H_
#define SPARSITY_SPARSITY_H_

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define SPARSITY_C_API __attribute__((visibility("default")))
#else
#define SPARSITY_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ---------------------------------------------------------------------------- */

/** What a call returned. The non-zero codes follow sparsity::ErrorCode (abseil's names). */
typedef enum sparsity_status {
  SPARSITY_OK = 0,
  SPARSITY_INVALID_ARGUMENT = 1,    /**< a value is malformed: null pointer, bad JSON, wrong dtype or size */
  SPARSITY_NOT_FOUND = 2,           /**< a named tensor, sparsifier or file does not exist */
  SPARSITY_FAILED_PRECONDITION = 3, /**< not valid now: prepare twice, step before prepare, ... */
  SPARSITY_OUT_OF_RANGE = 4,        /**< an index, offset or size lies outside its bounds */
  SPARSITY_IO = 5,                  /**< reading or writing a file failed */
  SPARSITY_INTERNAL = 6,            /**< a broken invariant inside the library */
  SPARSITY_NO_MEMORY = 7            /**< an allocation failed */
} sparsity_status;

/** The message of the last call on this thread that failed in the library ("" after a success).
 *  Valid until the next sparsity_* call on the same thread; never NULL. */
SPARSITY_C_API const char* sparsity_last_error(void);

/** A short name of a status ("ok", "invalid argument", ...); never NULL. */
SPARSITY_C_API const char* sparsity_status_string(sparsity_status status);

/** The version of the library linked against, "MAJOR.MINOR.PATCH"; never NULL. */
SPARSITY_C_API const char* sparsity_version(void);

/* ---- tensors: views over the caller's memory -------------------------------------------------------- */

/** Element types (the numbering of sparsity::DType). */
typedef enum sparsity_dtype {
  SPARSITY_DTYPE_F32 = 0,
  SPARSITY_DTYPE_F64 = 1,
  SPARSITY_DTYPE_F16 = 2,  /**< IEEE binary16 bits in a uint16_t */
  SPARSITY_DTYPE_BF16 = 3, /**< bfloat16 bits in a uint16_t */
  SPARSITY_DTYPE_BOOL = 4,
  SPARSITY_DTYPE_U8 = 5,
  SPARSITY_DTYPE_I8 = 6,
  SPARSITY_DTYPE_I32 = 7,
  SPARSITY_DTYPE_I64 = 8,
  SPARSITY_DTYPE_I16 = 9
} sparsity_dtype;

/** A contiguous row-major view of memory the caller owns and keeps alive (and unmoved) as long as a
 *  model or sparsifier using it exists. Writes by the library (squash) go to that memory. */
typedef struct sparsity_tensor sparsity_tensor;

/** A view of `ndim` (at most 8) dimensions `shape` over `data`; `data` may be NULL only for a tensor of
 *  no elements. */
SPARSITY_C_API sparsity_status sparsity_tensor_create(void* data, sparsity_dtype dtype, const int64_t* shape,
                                                      size_t ndim, sparsity_tensor** out);
/** Releases the handle (not the memory). NULL is accepted. */
SPARSITY_C_API sparsity_status sparsity_tensor_destroy(sparsity_tensor* tensor);
/** Element count. */
SPARSITY_C_API sparsity_status sparsity_tensor_numel(const sparsity_tensor* tensor, int64_t* numel);

/* ---- models: named tensors ----------------------------------------------------------------------- */

/** A set of named tensors ("layers.0.weight") describing a module tree by their dotted names, as a
 *  checkpoint's names do: a module whose `weight` is a 2-D floating tensor is a Linear. */
typedef struct sparsity_model sparsity_model;

SPARSITY_C_API sparsity_status sparsity_model_create(sparsity_model** out);
/** Adds a tensor under a dotted name (the model keeps its own reference to the view).
 *  INVALID_ARGUMENT for an empty part or a name already given; FAILED_PRECONDITION once a sparsifier
 *  has prepared the model. */
SPARSITY_C_API sparsity_status sparsity_model_add_tensor(sparsity_model* model, const char* name,
                                                         const sparsity_tensor* tensor);
/** NULL is accepted. Sparsifiers prepared on the model keep what they need. */
SPARSITY_C_API sparsity_status sparsity_model_destroy(sparsity_model* model);

/* ---- sparsifiers ------------------------------------------------------------------------------------ */

typedef struct sparsity_sparsifier sparsity_sparsifier;

/** A registered sparsifier ("WeightNormSparsifier", "NearlyDiagonalSparsifier", ...) with its defaults
 *  as a JSON object (NULL or "" for none), validated as the "defaults" of a pruning configuration.
 *  NOT_FOUND for an unknown name. */
SPARSITY_C_API sparsity_status sparsity_sparsifier_create(const char* name, const char* defaults_json,
                                                          sparsity_sparsifier** out);
/** Prepares the tensors of `model`: `config_json` is a JSON array of entries, each naming a tensor
 *  with "tensor_fqn" and optionally overriding the defaults (as the "config" of a pruning
 *  configuration), e.g. [{"tensor_fqn": "fc.weight", "sparsity_level": 0.25}]; NULL prepares every
 *  2-D floating `weight` of the model. FAILED_PRECONDITION when already prepared; NOT_FOUND for a
 *  tensor_fqn the model lacks. */
SPARSITY_C_API sparsity_status sparsity_sparsifier_prepare(sparsity_sparsifier* sparsifier,
                                                           sparsity_model* model, const char* config_json);
/** Recomputes every prepared tensor's mask. FAILED_PRECONDITION before prepare or after squash. */
SPARSITY_C_API sparsity_status sparsity_sparsifier_step(sparsity_sparsifier* sparsifier);
/** Element count of the mask of a prepared tensor. */
SPARSITY_C_API sparsity_status sparsity_sparsifier_mask_numel(const sparsity_sparsifier* sparsifier,
                                                              const char* tensor_fqn, int64_t* numel);
/** The mask of a prepared tensor as bytes, 1 kept / 0 pruned: `size` must be its element count. */
SPARSITY_C_API sparsity_status sparsity_sparsifier_mask_bytes(const sparsity_sparsifier* sparsifier,
                                                              const char* tensor_fqn, uint8_t* out,
                                                              size_t size);
/** The mask packed as bits, element i in bit i % 8 of byte i / 8 (1 kept), the unused high bits of the
 *  last byte 0: `size` must be (element count + 7) / 8. */
SPARSITY_C_API sparsity_status sparsity_sparsifier_mask_bits(const sparsity_sparsifier* sparsifier,
                                                             const char* tensor_fqn, uint8_t* out,
                                                             size_t size);
/** Writes every prepared weight times its mask into the weight's own memory (the caller's buffer) and
 *  ends the lifecycle (torch's squash_mask). FAILED_PRECONDITION before prepare or when done already. */
SPARSITY_C_API sparsity_status sparsity_sparsifier_squash(sparsity_sparsifier* sparsifier);
/** NULL is accepted. Schedulers made on the sparsifier keep it alive. */
SPARSITY_C_API sparsity_status sparsity_sparsifier_destroy(sparsity_sparsifier* sparsifier);

/* ---- schedulers ------------------------------------------------------------------------------------ */

typedef struct sparsity_scheduler sparsity_scheduler;

/** A scheduler over a prepared sparsifier from its JSON object, e.g.
 *  {"type": "CubicSL", "init_sl": 0.0, "init_t": 0, "delta_t": 10, "total_t": 100}; like torch, making
 *  it runs its first step. FAILED_PRECONDITION when the sparsifier is not prepared. */
SPARSITY_C_API sparsity_status sparsity_scheduler_create(sparsity_sparsifier* sparsifier, const char* json,
                                                         sparsity_scheduler** out);
/** Sets every group's sparsity_level for the next epoch (call after sparsity_sparsifier_step). */
SPARSITY_C_API sparsity_status sparsity_scheduler_step(sparsity_scheduler* scheduler);
/** The levels the last step set, one per prepared tensor in prepare order: `count` must be their number. */
SPARSITY_C_API sparsity_status sparsity_scheduler_levels(const sparsity_scheduler* scheduler, double* out,
                                                         size_t count);
/** NULL is accepted. */
SPARSITY_C_API sparsity_status sparsity_scheduler_destroy(sparsity_scheduler* scheduler);

/* ---- checkpoints ------------------------------------------------------------------------------------ */

/** Prunes a checkpoint file (safetensors, GGUF, or a sharded .safetensors.index.json) out of core with a
 *  pruning configuration given as JSON text (the CONFIG.json of `sparsity prune`). Output paths that are
 *  NULL are not written: `output` the pruned checkpoint (same format), `masks` the U8 masks
 *  (safetensors), `state` the sparsifier state. `threads` 0 uses every core. Nothing is written when it
 *  fails. */
SPARSITY_C_API sparsity_status sparsity_prune_checkpoint(const char* model_path, const char* config_json,
                                                         const char* output_path, const char* masks_path,
                                                         const char* state_path, int threads);

/** Packs the pruned weights of a .safetensors file into `output_path` (the `sparsity pack` command):
 *  `format` is "auto" (or NULL: per weight the layout with the fewest bytes), "sparse-bitmask",
 *  "sparse-24-bitmask", "nm<N>of<M>", "bsr<R>x<C>" or "csr". Each 2-D F32/F16/BF16 `*.weight` holding
 *  a +0.0 is packed when that shrinks it; one the format does not fit fails (INVALID_ARGUMENT naming
 *  the tensor, row and column). `threads` 0 uses every core. Nothing is written when it fails. */
SPARSITY_C_API sparsity_status sparsity_pack_file(const char* model_path, const char* output_path,
                                                  const char* format, int threads);
/** Restores the dense .safetensors file of a packed one, bit for bit (the `sparsity unpack` command);
 *  corrupt parts fail naming the weight and the part. */
SPARSITY_C_API sparsity_status sparsity_unpack_file(const char* packed_path, const char* output_path,
                                                    int threads);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SPARSITY_SPARSITY_H_ */
