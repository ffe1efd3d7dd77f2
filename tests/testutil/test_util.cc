#include "testutil/test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "file_io.h"
#include "streamrec/decoder.h"

namespace streamrec::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/streamrec_test_XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr) << "mkdtemp failed for " << tmpl;
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void CapturingLogger::Log(LogLevel level, std::string_view message) {
  static constexpr const char* kPrefix[] = {"D ", "I ", "W ", "E "};
  std::lock_guard<std::mutex> lock(mu_);
  text_ += kPrefix[static_cast<int>(level)];
  text_.append(message);
  text_ += "\n";
}

std::string CapturingLogger::Text() const {
  std::lock_guard<std::mutex> lock(mu_);
  return text_;
}

std::string SharedDataDir() { return STREAMREC_SHARED_DATA_DIR; }

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  ASSERT_TRUE(out.good()) << "cannot write " << path;
  out << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteRetailSlice(const std::string& path, int events) {
  auto reader = LineReader::Open(SharedDataDir() + "/online_retail/events.csv.gz");
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  std::ofstream file(path);
  ASSERT_TRUE(file.good()) << "cannot write " << path;
  std::string line;
  for (int i = 0; i <= events && (*reader)->Next(&line); ++i) file << line << "\n";
  ASSERT_TRUE((*reader)->status().ok()) << (*reader)->status().ToString();
}

PurchaseEvent Purchase(const std::string& customer, const std::string& item, int64_t time_ms,
                       std::optional<double> price) {
  PurchaseEvent e;
  e.customer_id = customer;
  e.item_id = item;
  e.event_time_ms = time_ms;
  e.quantity = 1;
  e.unit_price = price;
  return e;
}

std::vector<PurchaseEvent> ReadCsvEvents(const std::string& path, size_t* undecodable) {
  std::vector<PurchaseEvent> out;
  if (undecodable != nullptr) *undecodable = 0;
  auto reader = LineReader::Open(path);
  EXPECT_TRUE(reader.ok()) << path;
  if (!reader.ok()) return out;
  std::string line;
  (*reader)->Next(&line);
  auto decoder = NewCsvDecoder(DecoderOptions(), line);
  EXPECT_TRUE(decoder.ok()) << path;
  if (!decoder.ok()) return out;
  PurchaseEvent e;
  while ((*reader)->Next(&line)) {
    if ((*decoder)->Decode(line, &e).ok()) {
      out.push_back(e);
    } else if (undecodable != nullptr) {
      ++*undecodable;
    }
  }
  return out;
}

}  // namespace streamrec::testing
