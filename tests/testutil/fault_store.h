// A StateStore wrapper that fails chosen writes: for testing that a failed batch leaves no trace.
#ifndef STREAMREC_TESTS_TESTUTIL_FAULT_STORE_H_
#define STREAMREC_TESTS_TESTUTIL_FAULT_STORE_H_

#include "streamrec/state_store.h"

namespace streamrec::testing {

class FaultInjectingStore : public StateStore {
 public:
  explicit FaultInjectingStore(StateStore* base) : base_(base) {}
  // The next `n` calls to Write fail with IOError.
  void FailNextWrites(int n) { fail_writes_ = n; }

  Status Get(Column c, std::string_view k, std::string* v) override { return base_->Get(c, k, v); }
  Status MultiGet(Column c, const std::vector<std::string>& k, std::vector<std::string>* v,
                  std::vector<bool>* f) override {
    return base_->MultiGet(c, k, v, f);
  }
  Status Write(const WriteSet& w) override {
    if (fail_writes_ > 0) {
      --fail_writes_;
      return Status::IOError("injected write failure");
    }
    return base_->Write(w);
  }
  Status ScanFrom(Column c, std::string_view p, std::string_view start,
                  const std::function<bool(std::string_view, std::string_view)>& v) override {
    return base_->ScanFrom(c, p, start, v);
  }
  Status Flush() override { return base_->Flush(); }
  uint64_t ApproximateSize() override { return base_->ApproximateSize(); }
  std::unique_ptr<StateStore> Snapshot() override { return base_->Snapshot(); }

 private:
  StateStore* base_;
  int fail_writes_ = 0;
};

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_FAULT_STORE_H_
