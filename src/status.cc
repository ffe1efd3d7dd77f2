#include "streamrec/status.h"

namespace streamrec {

std::string Status::ToString() const {
  const char* name = "OK";
  switch (code_) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: name = "Invalid argument"; break;
    case Code::kNotFound: name = "Not found"; break;
    case Code::kCorruption: name = "Corruption"; break;
    case Code::kNotSupported: name = "Not supported"; break;
    case Code::kIOError: name = "IO error"; break;
    case Code::kBusy: name = "Busy"; break;
    case Code::kAborted: name = "Aborted"; break;
  }
  return std::string(name) + ": " + message_;
}

}  // namespace streamrec
