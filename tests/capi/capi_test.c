/* The C API from C99, against the installed library: the whole lifecycle on buffers this program owns,
 * with masks and values derived by hand, a checkpoint pruned through sparsity_prune_checkpoint (then
 * packed and unpacked), and every misuse answered with an error code and a message.
 *
 *   capi_test DIR     (a writable directory for the checkpoint files)
 */
#include <sparsity/sparsity.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      ++failures;                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

/* A call that must succeed. */
#define OK(call)                                                                                       \
  do {                                                                                                 \
    sparsity_status st_ = (call);                                                                      \
    if (st_ != SPARSITY_OK) {                                                                          \
      ++failures;                                                                                      \
      fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call, sparsity_status_string(st_), \
              sparsity_last_error());                                                                  \
    }                                                                                                  \
  } while (0)

/* A call that must fail with `code` and a non-empty one-line message. */
static void expect_error(sparsity_status got, sparsity_status code, const char* call, int line) {
  const char* msg = sparsity_last_error();
  if (got != code || msg == NULL || msg[0] == '\0' || strchr(msg, '\n') != NULL) {
    ++failures;
    fprintf(stderr, "capi_test.c:%d: %s -> %s (expected %s), message '%s'\n", line, call,
            sparsity_status_string(got), sparsity_status_string(code), msg ? msg : "(null)");
  }
}
#define FAILS(code, call) expect_error((call), (code), #call, __LINE__)

static int bytes_equal(const uint8_t* a, const uint8_t* b, size_t n) { return memcmp(a, b, n) == 0; }

/* ---- the lifecycle ----------------------------------------------------------------------------------- */

/* fc.weight (2 x 8, f32): 2:4 along rows keeps the two largest magnitudes of every 4. */
static float fc_w[16] = {0.1f, -0.9f, 0.3f,  0.5f, -0.2f, 0.8f, -0.05f, 0.6f,
                         1.0f, 2.0f,  -3.0f, 4.0f, -5.0f, 6.0f, 7.0f,   -8.0f};
static const uint8_t fc_mask[16] = {0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1};
static const uint8_t fc_bits[2] = {0xAA, 0xCC}; /* element i = bit i % 8 of byte i / 8 */
static const float fc_pruned[16] = {0.0f, -0.9f, 0.0f,  0.5f, 0.0f, 0.8f, 0.0f, 0.6f,
                                    0.0f, 0.0f,  -3.0f, 4.0f, 0.0f, 0.0f, 7.0f, -8.0f};
/* fc.bias: not a weight, never prepared. */
static float fc_b[2] = {0.5f, -0.5f};
/* proj.weight (2 x 4, f16 bits of 1, -2, 3, -4, 5, -6, 7, -8): half of the elements, unstructured. */
static uint16_t proj_w[8] = {0x3C00, 0xC000, 0x4200, 0xC400, 0x4500, 0xC600, 0x4700, 0xC800};
static const uint8_t proj_mask[8] = {0, 0, 0, 0, 1, 1, 1, 1};
static const uint16_t proj_pruned[8] = {0, 0, 0, 0, 0x4500, 0xC600, 0x4700, 0xC800};

static void lifecycle(void) {
  const int64_t fc_shape[2] = {2, 8}, b_shape[1] = {2}, proj_shape[2] = {2, 4};
  sparsity_tensor *fc = NULL, *bias = NULL, *proj = NULL;
  sparsity_model* model = NULL;
  sparsity_sparsifier* sp = NULL;
  sparsity_scheduler* sched = NULL;
  uint8_t mask[16], bits[2];
  double levels[2];
  int64_t numel = 0;
  int i;

  OK(sparsity_tensor_create(fc_w, SPARSITY_DTYPE_F32, fc_shape, 2, &fc));
  OK(sparsity_tensor_create(fc_b, SPARSITY_DTYPE_F32, b_shape, 1, &bias));
  OK(sparsity_tensor_create(proj_w, SPARSITY_DTYPE_F16, proj_shape, 2, &proj));
  OK(sparsity_tensor_numel(fc, &numel));
  CHECK(numel == 16);
  OK(sparsity_model_create(&model));
  OK(sparsity_model_add_tensor(model, "layer.0.fc.weight", fc));
  OK(sparsity_model_add_tensor(model, "layer.0.fc.bias", bias));
  OK(sparsity_model_add_tensor(model, "layer.0.proj.weight", proj));
  /* The model keeps its own references: the handles can go now. */
  OK(sparsity_tensor_destroy(fc));
  OK(sparsity_tensor_destroy(bias));
  OK(sparsity_tensor_destroy(proj));

  OK(sparsity_sparsifier_create(
      "WeightNormSparsifier",
      "{\"sparsity_level\": 1.0, \"sparse_block_shape\": [1, 4], \"zeros_per_block\": 2}", &sp));
  OK(sparsity_sparsifier_prepare(sp, model,
                                 "[{\"tensor_fqn\": \"layer.0.fc.weight\"},"
                                 " {\"tensor_fqn\": \"layer.0.proj.weight\", \"sparsity_level\": 0.5,"
                                 "  \"sparse_block_shape\": [1, 1], \"zeros_per_block\": 1}]"));
  CHECK(sparsity_last_error()[0] == '\0');

  /* CubicSL with delta_t * total_t = 1: level 0 at t = 0, the groups' own levels from t = 1. */
  OK(sparsity_scheduler_create(
      sp, "{\"type\": \"CubicSL\", \"init_sl\": 0.0, \"delta_t\": 1, \"total_t\": 1}", &sched));
  OK(sparsity_scheduler_levels(sched, levels, 2));
  CHECK(levels[0] == 0.0 && levels[1] == 0.0);

  OK(sparsity_sparsifier_step(sp)); /* at level 0 nothing is pruned */
  OK(sparsity_sparsifier_mask_bytes(sp, "layer.0.fc.weight", mask, 16));
  for (i = 0; i < 16; ++i) CHECK(mask[i] == 1);

  OK(sparsity_scheduler_step(sched));
  OK(sparsity_scheduler_levels(sched, levels, 2));
  CHECK(levels[0] == 1.0 && levels[1] == 0.5);

  OK(sparsity_sparsifier_step(sp));
  OK(sparsity_sparsifier_mask_numel(sp, "layer.0.fc.weight", &numel));
  CHECK(numel == 16);
  OK(sparsity_sparsifier_mask_bytes(sp, "layer.0.fc.weight", mask, 16));
  CHECK(bytes_equal(mask, fc_mask, 16));
  OK(sparsity_sparsifier_mask_bits(sp, "layer.0.fc.weight", bits, 2));
  CHECK(bytes_equal(bits, fc_bits, 2));
  OK(sparsity_sparsifier_mask_bytes(sp, "layer.0.proj.weight", mask, 8));
  CHECK(bytes_equal(mask, proj_mask, 8));
  /* Until the squash the caller's buffers hold the dense weights. */
  CHECK(fc_w[0] == 0.1f && proj_w[0] == 0x3C00);

  OK(sparsity_sparsifier_squash(sp));
  CHECK(memcmp(fc_w, fc_pruned, sizeof fc_w) == 0);
  CHECK(memcmp(proj_w, proj_pruned, sizeof proj_w) == 0);
  CHECK(fc_b[0] == 0.5f && fc_b[1] == -0.5f);
  /* The masks stay readable after the squash. */
  OK(sparsity_sparsifier_mask_bits(sp, "layer.0.fc.weight", bits, 2));
  CHECK(bytes_equal(bits, fc_bits, 2));

  /* Wrong order and wrong buffers after the fact. */
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_sparsifier_step(sp));
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_sparsifier_squash(sp));
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_sparsifier_prepare(sp, model, NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_mask_bytes(sp, "layer.0.fc.weight", mask, 15));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_mask_bits(sp, "layer.0.fc.weight", bits, 1));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_mask_bytes(sp, "layer.0.fc.weight", NULL, 16));
  FAILS(SPARSITY_NOT_FOUND, sparsity_sparsifier_mask_bytes(sp, "layer.0.fc.bias", mask, 2));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_mask_bytes(sp, NULL, mask, 2));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_scheduler_levels(sched, levels, 1));
  {
    sparsity_tensor* late = NULL;
    OK(sparsity_tensor_create(fc_b, SPARSITY_DTYPE_F32, b_shape, 1, &late));
    FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_model_add_tensor(model, "late.weight", late));
    OK(sparsity_tensor_destroy(late));
  }

  /* The scheduler keeps the sparsifier alive; destroying in any order is fine. */
  OK(sparsity_sparsifier_destroy(sp));
  OK(sparsity_scheduler_step(sched));
  OK(sparsity_scheduler_destroy(sched));
  OK(sparsity_model_destroy(model));
}

/* Without a config every 2-D floating `weight` is prepared, nothing else. */
static void auto_config(void) {
  float w[8] = {1, -2, 3, -4, 5, -6, 7, -8}, b[2] = {1, 2}, v[4] = {1, 2, 3, 4};
  int32_t ids[4] = {1, 2, 3, 4};
  const int64_t s2[2] = {2, 4}, s1[1] = {2}, s22[2] = {2, 2};
  sparsity_tensor *tw, *tb, *tv, *ti;
  sparsity_model* m;
  sparsity_sparsifier* sp;
  uint8_t mask[8];
  const uint8_t expected[8] = {0, 0, 1, 1, 0, 0, 1, 1};
  int64_t n = 0;
  OK(sparsity_tensor_create(w, SPARSITY_DTYPE_F32, s2, 2, &tw));
  OK(sparsity_tensor_create(b, SPARSITY_DTYPE_F32, s1, 1, &tb));
  OK(sparsity_tensor_create(v, SPARSITY_DTYPE_F32, s22, 2, &tv));
  OK(sparsity_tensor_create(ids, SPARSITY_DTYPE_I32, s22, 2, &ti));
  OK(sparsity_model_create(&m));
  OK(sparsity_model_add_tensor(m, "fc.bias", tb)); /* the bias first: the module is still a Linear */
  OK(sparsity_model_add_tensor(m, "fc.weight", tw));
  OK(sparsity_model_add_tensor(m, "norm.scale", tv)); /* 2-D but not a weight */
  OK(sparsity_model_add_tensor(m, "emb.weight", ti)); /* a weight, not floating */
  OK(sparsity_sparsifier_create(
      "WeightNormSparsifier",
      "{\"sparsity_level\": 1.0, \"sparse_block_shape\": [1, 4], \"zeros_per_block\": 2}", &sp));
  /* Integer tensors cannot be named either. */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_prepare(sp, m, "[{\"tensor_fqn\": \"emb.weight\"}]"));
  OK(sparsity_sparsifier_prepare(sp, m, NULL));
  OK(sparsity_sparsifier_mask_numel(sp, "fc.weight", &n));
  CHECK(n == 8);
  FAILS(SPARSITY_NOT_FOUND, sparsity_sparsifier_mask_numel(sp, "norm.scale", &n));
  FAILS(SPARSITY_NOT_FOUND, sparsity_sparsifier_mask_numel(sp, "emb.weight", &n));
  FAILS(SPARSITY_NOT_FOUND, sparsity_sparsifier_mask_numel(sp, "fc.bias", &n));
  OK(sparsity_sparsifier_step(sp));
  OK(sparsity_sparsifier_mask_bytes(sp, "fc.weight", mask, 8));
  CHECK(bytes_equal(mask, expected, 8));
  OK(sparsity_sparsifier_destroy(sp));
  OK(sparsity_model_destroy(m));
  OK(sparsity_tensor_destroy(tw));
  OK(sparsity_tensor_destroy(tb));
  OK(sparsity_tensor_destroy(tv));
  OK(sparsity_tensor_destroy(ti));
}

/* NearlyDiagonalSparsifier by name: nearliness 1 keeps the diagonal. */
static void nearly_diagonal(void) {
  float w[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const int64_t shape[2] = {3, 3};
  const uint8_t expected[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  const float pruned[9] = {1, 0, 0, 0, 5, 0, 0, 0, 9};
  uint8_t mask[9];
  sparsity_tensor* t;
  sparsity_model* m;
  sparsity_sparsifier* sp;
  sparsity_scheduler* sched = NULL;
  OK(sparsity_tensor_create(w, SPARSITY_DTYPE_F32, shape, 2, &t));
  OK(sparsity_model_create(&m));
  OK(sparsity_model_add_tensor(m, "lin.weight", t));
  OK(sparsity_sparsifier_create("NearlyDiagonalSparsifier", "{\"nearliness\": 1}", &sp));
  OK(sparsity_sparsifier_prepare(sp, m, NULL));
  /* Its groups have no sparsity_level for a scheduler to set. */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_scheduler_create(sp, "{\"type\": \"CubicSL\"}", &sched));
  CHECK(sched == NULL);
  OK(sparsity_sparsifier_step(sp));
  OK(sparsity_sparsifier_mask_bytes(sp, "lin.weight", mask, 9));
  CHECK(bytes_equal(mask, expected, 9));
  OK(sparsity_sparsifier_squash(sp));
  CHECK(memcmp(w, pruned, sizeof w) == 0);
  OK(sparsity_sparsifier_destroy(sp));
  OK(sparsity_model_destroy(m));
  OK(sparsity_tensor_destroy(t));
}

/* ---- checkpoints -------------------------------------------------------------------------------------- */

/* A safetensors file holding fc.weight (2 x 8, f32) as above, written by hand. */
static const char kHeader[] = "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,8],\"data_offsets\":[0,64]}}";

static int write_checkpoint(const char* path, const float* w) {
  const uint64_t n = sizeof kHeader - 1;
  unsigned char len[8];
  int i;
  FILE* f = fopen(path, "wb");
  if (!f) return 0;
  for (i = 0; i < 8; ++i) len[i] = (unsigned char)(n >> (8 * i));
  fwrite(len, 1, 8, f);
  fwrite(kHeader, 1, (size_t)n, f);
  fwrite(w, sizeof(float), 16, f);
  return fclose(f) == 0;
}

static int read_weights(const char* path, float* w) {
  FILE* f = fopen(path, "rb");
  size_t got;
  if (!f) return 0;
  fseek(f, (long)(8 + sizeof kHeader - 1), SEEK_SET);
  got = fread(w, sizeof(float), 16, f);
  fclose(f);
  return got == 16;
}

static long file_size(const char* path) {
  long n;
  FILE* f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fclose(f);
  return n;
}

/* The last n bytes of two files are equal (a single tensor's data; headers may differ in layout). */
static int same_tail(const char* a, const char* b, long n) {
  unsigned char ba[256], bb[256];
  FILE* fa = fopen(a, "rb");
  FILE* fb = fopen(b, "rb");
  int same = fa != NULL && fb != NULL && n <= 256 && fseek(fa, -n, SEEK_END) == 0 &&
             fseek(fb, -n, SEEK_END) == 0 && fread(ba, 1, (size_t)n, fa) == (size_t)n &&
             fread(bb, 1, (size_t)n, fb) == (size_t)n && memcmp(ba, bb, (size_t)n) == 0;
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

static void checkpoint(const char* dir) {
  static const float dense[16] = {0.1f, -0.9f, 0.3f,  0.5f, -0.2f, 0.8f, -0.05f, 0.6f,
                                  1.0f, 2.0f,  -3.0f, 4.0f, -5.0f, 6.0f, 7.0f,   -8.0f};
  const char* config =
      "{\"sparsifier\": \"WeightNormSparsifier\","
      " \"defaults\": {\"sparsity_level\": 1.0, \"sparse_block_shape\": [1, 4], \"zeros_per_block\": 2}}";
  char in[1024], out[1024], masks[1024], missing[1024], packed[1024], unpacked[1024];
  float w[16];
  snprintf(packed, sizeof packed, "%s/packed.safetensors", dir);
  snprintf(unpacked, sizeof unpacked, "%s/unpacked.safetensors", dir);
  snprintf(in, sizeof in, "%s/model.safetensors", dir);
  snprintf(out, sizeof out, "%s/pruned.safetensors", dir);
  snprintf(masks, sizeof masks, "%s/masks.safetensors", dir);
  snprintf(missing, sizeof missing, "%s/missing.safetensors", dir);
  CHECK(write_checkpoint(in, dense));
  OK(sparsity_prune_checkpoint(in, config, out, masks, NULL, 1));
  CHECK(read_weights(out, w) && memcmp(w, fc_pruned, sizeof w) == 0);
  FAILS(SPARSITY_NOT_FOUND, sparsity_prune_checkpoint(missing, config, out, NULL, NULL, 0));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_prune_checkpoint(in, "{\"sparsifier\": 1}", out, NULL, NULL, 0));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_prune_checkpoint(in, "{not json", out, NULL, NULL, 0));
  FAILS(SPARSITY_INVALID_ARGUMENT,
        sparsity_prune_checkpoint(in,
                                  "{\"sparsifier\": \"WeightNormSparsifier\", \"config\": "
                                  "[{\"tensor_fqn\": \"nope.weight\"}]}",
                                  out, NULL, NULL, 0));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_prune_checkpoint(NULL, config, out, NULL, NULL, 0));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_prune_checkpoint(in, NULL, out, NULL, NULL, 0));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_prune_checkpoint(in, config, out, NULL, NULL, -1));
  FAILS(SPARSITY_INVALID_ARGUMENT,
        sparsity_prune_checkpoint(in, config, out, out, NULL, 0)); /* one file twice */

  /* The 2:4 result packed (parts shape 16 + compressed 32 + bitmask 2 bytes) and unpacked gives the
   * pruned weight back, byte for byte. */
  OK(sparsity_pack_file(out, packed, "sparse-24-bitmask", 0));
  CHECK(file_size(packed) > 50 && !same_tail(packed, out, 64));
  OK(sparsity_unpack_file(packed, unpacked, 1));
  CHECK(file_size(unpacked) > 64 && same_tail(unpacked, out, 64));
  OK(sparsity_pack_file(out, packed, NULL, 0)); /* auto */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_pack_file(out, packed, "nm5of4", 0));
  FAILS(SPARSITY_NOT_FOUND, sparsity_pack_file(missing, packed, "auto", 0));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_pack_file(out, NULL, "auto", 0));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_pack_file(out, packed, "auto", -1));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_unpack_file(out, unpacked, 0)); /* not packed */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_unpack_file(NULL, unpacked, 0));
}

/* ---- misuse ------------------------------------------------------------------------------------------ */

static void misuse(void) {
  float w[4] = {1, 2, 3, 4};
  const int64_t shape[2] = {2, 2}, negative[2] = {2, -1}, huge[2] = {INT64_MAX, 4};
  sparsity_tensor* t = NULL;
  sparsity_model* m = NULL;
  sparsity_sparsifier* sp = NULL;
  sparsity_scheduler* sched = NULL;
  uint8_t mask[4];
  int64_t n;

  /* tensors */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_tensor_create(w, SPARSITY_DTYPE_F32, shape, 2, NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_tensor_create(NULL, SPARSITY_DTYPE_F32, shape, 2, &t));
  CHECK(t == NULL);
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_tensor_create(w, (sparsity_dtype)99, shape, 2, &t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_tensor_create(w, (sparsity_dtype)-1, shape, 2, &t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_tensor_create(w, SPARSITY_DTYPE_F32, negative, 2, &t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_tensor_create(w, SPARSITY_DTYPE_F32, NULL, 2, &t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_tensor_create(w, SPARSITY_DTYPE_F32, shape, 9, &t));
  FAILS(SPARSITY_OUT_OF_RANGE, sparsity_tensor_create(w, SPARSITY_DTYPE_F32, huge, 2, &t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_tensor_numel(NULL, &n));
  FAILS(SPARSITY_INVALID_ARGUMENT,
        sparsity_tensor_create(NULL, SPARSITY_DTYPE_F32, NULL, 0, &t)); /* a scalar */
  {
    /* A tensor of no elements needs no memory. */
    const int64_t empty[2] = {0, 4};
    OK(sparsity_tensor_create(NULL, SPARSITY_DTYPE_F32, empty, 2, &t));
    OK(sparsity_tensor_numel(t, &n));
    CHECK(n == 0);
    OK(sparsity_tensor_destroy(t));
    t = NULL;
  }
  OK(sparsity_tensor_create(w, SPARSITY_DTYPE_F32, shape, 2, &t));

  /* models */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_create(NULL));
  OK(sparsity_model_create(&m));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_add_tensor(NULL, "a.weight", t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_add_tensor(m, NULL, t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_add_tensor(m, "a.weight", NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_add_tensor(m, "a..weight", t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_add_tensor(m, "", t));
  OK(sparsity_model_add_tensor(m, "a.weight", t));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_add_tensor(m, "a.weight", t));   /* twice */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_add_tensor(m, "a.weight.x", t)); /* inside a tensor */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_model_add_tensor(m, "a", t));          /* a module's name */

  /* sparsifiers */
  FAILS(SPARSITY_NOT_FOUND, sparsity_sparsifier_create("NoSuchSparsifier", NULL, &sp));
  CHECK(sp == NULL);
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_create(NULL, NULL, &sp));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_create("WeightNormSparsifier", NULL, NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT,
        sparsity_sparsifier_create("WeightNormSparsifier", "{\"sparsity_level\": 2}", &sp));
  FAILS(SPARSITY_INVALID_ARGUMENT,
        sparsity_sparsifier_create("WeightNormSparsifier", "{\"level\": 0.5}", &sp));
  FAILS(SPARSITY_INVALID_ARGUMENT,
        sparsity_sparsifier_create("WeightNormSparsifier", "{\"a\": 1, \"a\": 2}", &sp));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_create("WeightNormSparsifier", "[1, 2", &sp));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_create("WeightNormSparsifier", "[1, 2]", &sp));
  CHECK(sp == NULL);
  OK(sparsity_sparsifier_create("WeightNormSparsifier", "", &sp));

  /* call order */
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_sparsifier_step(sp));
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_sparsifier_squash(sp));
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_sparsifier_mask_bytes(sp, "a.weight", mask, 4));
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_scheduler_create(sp, "{\"type\": \"CubicSL\"}", &sched));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_step(NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_prepare(NULL, m, NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_prepare(sp, NULL, NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_prepare(sp, m, "{\"tensor_fqn\": \"a.weight\"}"));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_sparsifier_prepare(sp, m, "[{\"sparsity_level\": 0.5}]"));
  FAILS(SPARSITY_NOT_FOUND, sparsity_sparsifier_prepare(sp, m, "[{\"tensor_fqn\": \"b.weight\"}]"));
  /* A failed prepare leaves the model open and the sparsifier unprepared. */
  OK(sparsity_model_add_tensor(m, "b.weight", t));
  OK(sparsity_sparsifier_prepare(sp, m, "[{\"tensor_fqn\": \"b.weight\"}]"));
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_sparsifier_prepare(sp, m, NULL));
  FAILS(SPARSITY_FAILED_PRECONDITION, sparsity_model_add_tensor(m, "c.weight", t));
  FAILS(SPARSITY_NOT_FOUND, sparsity_sparsifier_mask_bytes(sp, "a.weight", mask, 4));

  /* schedulers */
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_scheduler_create(sp, "{\"type\": \"NoSuchSL\"}", &sched));
  FAILS(SPARSITY_INVALID_ARGUMENT,
        sparsity_scheduler_create(sp, "{\"type\": \"CubicSL\", \"delta_t\": 0}", &sched));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_scheduler_create(sp, NULL, &sched));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_scheduler_create(NULL, "{\"type\": \"CubicSL\"}", &sched));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_scheduler_create(sp, "{\"type\": \"CubicSL\"}", NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_scheduler_step(NULL));
  FAILS(SPARSITY_INVALID_ARGUMENT, sparsity_scheduler_levels(NULL, NULL, 0));
  CHECK(sched == NULL);

  /* destroying nothing is fine; the messages clear on success */
  OK(sparsity_tensor_destroy(NULL));
  OK(sparsity_model_destroy(NULL));
  OK(sparsity_sparsifier_destroy(NULL));
  OK(sparsity_scheduler_destroy(NULL));
  CHECK(sparsity_last_error()[0] == '\0');
  CHECK(strcmp(sparsity_status_string((sparsity_status)42), "unknown status") == 0);
  CHECK(strcmp(sparsity_status_string(SPARSITY_NO_MEMORY), "out of memory") == 0);

  OK(sparsity_sparsifier_destroy(sp));
  OK(sparsity_model_destroy(m));
  OK(sparsity_tensor_destroy(t));
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : ".";
  printf("sparsity %s\n", sparsity_version());
#ifdef SPARSITY_EXPECTED_VERSION
  CHECK(strcmp(sparsity_version(), SPARSITY_EXPECTED_VERSION) == 0);
#endif
  lifecycle();
  auto_config();
  nearly_diagonal();
  checkpoint(dir);
  misuse();
  printf("%s\n", failures == 0 ? "capi_test OK" : "capi_test FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
