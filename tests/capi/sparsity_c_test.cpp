// Tests of the C API's boundary: every kind of exception becomes its status code and a one-line
// message, the message is per thread, and the status names. (The lifecycle from C: capi_test.c.)
#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "sparsity/sparsity.h"
#include "sparsity/sparsity.hpp"

namespace sparsity {
namespace {

// A sparsifier whose update_mask throws what the test asks for, to reach each mapping from C.
class ThrowingSparsifier : public SparsifierCloneable<ThrowingSparsifier> {
 public:
  explicit ThrowingSparsifier(std::string what)
      : SparsifierCloneable(Json::object()), what_(std::move(what)) {}
  std::string class_name() const override { return "ThrowingSparsifier"; }

 protected:
  void update_mask(Module&, const std::string&, Group&) override {
    if (what_ == "bad_alloc") throw std::bad_alloc();
    if (what_ == "runtime_error") throw std::runtime_error("kaputt\nsecond line");
    if (what_ == "int") throw 42;
    if (what_ == "io") throw Error(ErrorCode::Io, "disk gone");
    if (what_ == "range") throw Error(ErrorCode::OutOfRange, "index 9 past 3");
    if (what_ == "internal") throw Error(ErrorCode::Internal, "broken invariant");
  }

 private:
  std::string what_;
};

// Registers "Throw_<what>" and runs create, prepare and step on a 2 x 4 float weight from C.
sparsity_status step_status(const std::string& what) {
  SparsifierSpec spec;
  spec.make = [what](const Json&) { return std::make_unique<ThrowingSparsifier>(what); };
  register_sparsifier("Throw_" + what, spec);
  static float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const int64_t shape[2] = {2, 4};
  sparsity_tensor* t = nullptr;
  sparsity_model* m = nullptr;
  sparsity_sparsifier* s = nullptr;
  EXPECT_EQ(sparsity_tensor_create(w, SPARSITY_DTYPE_F32, shape, 2, &t), SPARSITY_OK);
  EXPECT_EQ(sparsity_model_create(&m), SPARSITY_OK);
  EXPECT_EQ(sparsity_model_add_tensor(m, "fc.weight", t), SPARSITY_OK);
  EXPECT_EQ(sparsity_sparsifier_create(("Throw_" + what).c_str(), nullptr, &s), SPARSITY_OK)
      << sparsity_last_error();
  EXPECT_EQ(sparsity_sparsifier_prepare(s, m, nullptr), SPARSITY_OK) << sparsity_last_error();
  const sparsity_status st = sparsity_sparsifier_step(s);
  const std::string message = sparsity_last_error();
  EXPECT_EQ(message.empty(), st == SPARSITY_OK) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  sparsity_sparsifier_destroy(s);
  sparsity_model_destroy(m);
  sparsity_tensor_destroy(t);
  EXPECT_STREQ(sparsity_last_error(), "");  // each successful call clears it
  return st;
}

TEST(CApi, ErrorCodesMapToStatuses) {
  EXPECT_EQ(step_status("io"), SPARSITY_IO);
  EXPECT_EQ(step_status("range"), SPARSITY_OUT_OF_RANGE);
  EXPECT_EQ(step_status("internal"), SPARSITY_INTERNAL);
  EXPECT_EQ(step_status("none"), SPARSITY_OK);
}

TEST(CApi, OtherExceptionsNeverEscape) {
  EXPECT_EQ(step_status("bad_alloc"), SPARSITY_NO_MEMORY);
  EXPECT_EQ(step_status("runtime_error"), SPARSITY_INTERNAL);
  EXPECT_EQ(step_status("int"), SPARSITY_INTERNAL);
}

TEST(CApi, MessagesAreOneLineAndNameTheCall) {
  float w[4] = {};
  const int64_t shape[2] = {2, 2};
  EXPECT_EQ(sparsity_tensor_create(w, SPARSITY_DTYPE_F32, shape, 2, nullptr), SPARSITY_INVALID_ARGUMENT);
  EXPECT_STREQ(sparsity_last_error(), "sparsity_tensor_create: out is NULL");
  sparsity_sparsifier* s = nullptr;
  EXPECT_EQ(sparsity_sparsifier_create("No\nSuch", nullptr, &s), SPARSITY_NOT_FOUND);
  EXPECT_EQ(s, nullptr);
  EXPECT_NE(std::string(sparsity_last_error()).find("'No\\x0aSuch'"), std::string::npos)
      << sparsity_last_error();
}

TEST(CApi, LastErrorIsPerThread) {
  EXPECT_EQ(sparsity_model_create(nullptr), SPARSITY_INVALID_ARGUMENT);
  std::string other;
  std::thread([&] { other = sparsity_last_error(); }).join();
  EXPECT_EQ(other, "");
  EXPECT_STREQ(sparsity_last_error(), "sparsity_model_create: out is NULL");
}

TEST(CApi, StatusNamesAndVersion) {
  EXPECT_STREQ(sparsity_status_string(SPARSITY_OK), "ok");
  EXPECT_STREQ(sparsity_status_string(SPARSITY_INVALID_ARGUMENT), "invalid argument");
  EXPECT_STREQ(sparsity_status_string(SPARSITY_NOT_FOUND), "not found");
  EXPECT_STREQ(sparsity_status_string(SPARSITY_FAILED_PRECONDITION), "failed precondition");
  EXPECT_STREQ(sparsity_status_string(SPARSITY_OUT_OF_RANGE), "out of range");
  EXPECT_STREQ(sparsity_status_string(SPARSITY_IO), "i/o error");
  EXPECT_STREQ(sparsity_status_string(SPARSITY_INTERNAL), "internal error");
  EXPECT_STREQ(sparsity_status_string(SPARSITY_NO_MEMORY), "out of memory");
  EXPECT_EQ(std::string(sparsity_version()), std::to_string(SPARSITY_VERSION_MAJOR) + "." +
                                                 std::to_string(SPARSITY_VERSION_MINOR) + "." +
                                                 std::to_string(SPARSITY_VERSION_PATCH));
}

}  // namespace
}  // namespace sparsity
