// A small streaming JSON writer (objects, arrays, strings, numbers) for output records and
// summaries. No DOM; the caller writes keys and values in order.
#ifndef STREAMREC_SRC_JSON_WRITER_H_
#define STREAMREC_SRC_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace streamrec {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  // Shortest text that round-trips; non-finite numbers are written as null.
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

  const std::string& str() const { return out_; }
  std::string Release() { return std::move(out_); }

 private:
  void Separator();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

// Appends `value` to `out` as a quoted JSON string with escapes. Bytes that are not part of
// well-formed UTF-8 are written as U+FFFD (JSON text must be UTF-8).
void AppendJsonString(std::string* out, std::string_view value);

}  // namespace streamrec

#endif  // STREAMREC_SRC_JSON_WRITER_H_
