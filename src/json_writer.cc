#include "json_writer.h"

#include <charconv>
#include <cmath>

namespace streamrec {

void AppendJsonString(std::string* out, std::string_view value) {
  static const char* kHex = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : value) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void JsonWriter::Separator() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
  }
}

JsonWriter& JsonWriter::BeginObject() {
  Separator();
  out_.push_back('{');
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::EndObject() {
  out_.push_back('}');
  first_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::BeginArray() {
  Separator();
  out_.push_back('[');
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::EndArray() {
  out_.push_back(']');
  first_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::Key(std::string_view key) {
  Separator();
  AppendJsonString(&out_, key);
  out_.push_back(':');
  after_key_ = true;
  return *this;
}
JsonWriter& JsonWriter::String(std::string_view value) {
  Separator();
  AppendJsonString(&out_, value);
  return *this;
}
JsonWriter& JsonWriter::Int(int64_t value) {
  Separator();
  out_.append(std::to_string(value));
  return *this;
}
JsonWriter& JsonWriter::Uint(uint64_t value) {
  Separator();
  out_.append(std::to_string(value));
  return *this;
}
JsonWriter& JsonWriter::Double(double value) {
  Separator();
  if (!std::isfinite(value)) {
    out_.append("null");
    return *this;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out_.append(buf, end);
  return *this;
}
JsonWriter& JsonWriter::Bool(bool value) {
  Separator();
  out_.append(value ? "true" : "false");
  return *this;
}
JsonWriter& JsonWriter::Null() {
  Separator();
  out_.append("null");
  return *this;
}

}  // namespace streamrec
