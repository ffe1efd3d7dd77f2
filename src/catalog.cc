// Catalog: CSV loading and writing of the item table.
//
// Contracts beyond catalog.h:
//  - Header names are matched case-insensitively after trimming blanks; unknown columns (e.g.
//    the retail file's n_rows) are ignored. A header naming the same column twice is an error.
//  - When both `name` and `description` are present, `name` wins unless it is empty; likewise
//    `service_type` over `category`.
//  - Empty optional fields take the CatalogItem defaults. Numbers must be finite and >= 0.
//  - Blank lines are skipped; every other line must have exactly as many fields as the header.
//  - A later line with an item_id already seen replaces the earlier item in place (the item
//    keeps the position of its first appearance). Add() follows the same rule.
//  - Names, service types and channels are trimmed; channels are lower-cased (event channels
//    are lower-cased by the decoders, so the two compare equal). item_id is kept verbatim.
//  - WriteCsv cannot represent a channel that contains '|'.
#include "streamrec/catalog.h"

#include <array>
#include <charconv>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "csv.h"
#include "file_io.h"
#include "streamrec/time_util.h"

namespace streamrec {

namespace {

enum Column : int {
  kItemId = 0,
  kName,
  kDescription,
  kServiceType,
  kCategory,
  kMaxSpeed,
  kMinSpeed,
  kQuota,
  kPrice,
  kCharging,
  kValidity,
  kChannels,
  kNonProduct,
  kRecommendable,
  kActiveFrom,
  kActiveTo,
  kNumColumns,
};

constexpr std::array<std::string_view, kNumColumns> kColumnNames = {
    "item_id",        "name",           "description", "service_type",  "category",
    "max_speed_mbps", "min_speed_mbps", "quota_mb",    "price",         "charging",
    "validity_days",  "channels",       "non_product", "recommendable", "active_from",
    "active_to",
};

constexpr std::string_view kWriteHeader =
    "item_id,name,service_type,max_speed_mbps,min_speed_mbps,quota_mb,price,charging,"
    "validity_days,channels,recommendable,active_from,active_to";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Parses the whole of `text` (trimmed) as a finite, non-negative number.
std::optional<double> ParseNonNegative(std::string_view text) {
  text = Trim(text);
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(value) || value < 0) {
    return std::nullopt;
  }
  return value;
}

std::optional<int> ParseNonNegativeInt(std::string_view text) {
  text = Trim(text);
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

std::optional<bool> ParseBool(std::string_view text) {
  std::string v = ToLower(Trim(text));
  if (v == "1" || v == "true" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "no") return false;
  return std::nullopt;
}

std::optional<Charging> ParseCharging(std::string_view text) {
  std::string v = ToLower(Trim(text));
  if (v.empty() || v == "unknown") return Charging::kUnknown;
  if (v == "one_time" || v == "one-time" || v == "onetime") return Charging::kOneTime;
  if (v == "recurring") return Charging::kRecurring;
  return std::nullopt;
}

std::string_view ChargingName(Charging charging) {
  switch (charging) {
    case Charging::kOneTime:
      return "one_time";
    case Charging::kRecurring:
      return "recurring";
    case Charging::kUnknown:
      break;
  }
  return "";
}

// Shortest plain (no exponent) text that parses back to exactly `value`.
void AppendNumber(double value, std::string* out) {
  char buf[400];  // the longest fixed-notation double (~1.8e308) needs 309 digits plus sign
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed);
  (void)ec;
  out->append(buf, ptr);
}

std::vector<std::string> SplitChannels(std::string_view text) {
  std::vector<std::string> channels;
  while (true) {
    size_t bar = text.find('|');
    std::string_view part = Trim(text.substr(0, bar));
    if (!part.empty()) channels.push_back(ToLower(part));
    if (bar == std::string_view::npos) break;
    text.remove_prefix(bar + 1);
  }
  return channels;
}

}  // namespace

StatusOr<Catalog> Catalog::LoadCsv(const std::string& path) {
  auto reader_or = LineReader::Open(path);
  if (!reader_or.ok()) return reader_or.status();
  LineReader& reader = **reader_or;

  std::string line;
  std::vector<std::string> fields;
  if (!reader.Next(&line)) {
    STREAMREC_RETURN_IF_ERROR(reader.status());
    return Status::InvalidArgument(path + ": empty file, expected a header row");
  }
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // BOM
  Status split = SplitCsvLine(line, ',', &fields);
  if (!split.ok()) return Status::InvalidArgument(path + ":1: " + split.message());

  std::array<int, kNumColumns> position;
  position.fill(-1);
  for (size_t i = 0; i < fields.size(); ++i) {
    std::string name = ToLower(Trim(fields[i]));
    for (int c = 0; c < kNumColumns; ++c) {
      if (name != kColumnNames[c]) continue;
      if (position[c] >= 0) {
        return Status::InvalidArgument(path + ":1: duplicate column '" + name + "'");
      }
      position[c] = static_cast<int>(i);
    }
  }
  if (position[kItemId] < 0) {
    return Status::InvalidArgument(path + ":1: missing required column 'item_id'");
  }
  const size_t num_fields = fields.size();

  Catalog catalog;
  uint64_t line_no = 1;
  while (reader.Next(&line)) {
    ++line_no;
    if (Trim(line).empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    split = SplitCsvLine(line, ',', &fields);
    if (!split.ok()) return Status::InvalidArgument(where + split.message());
    if (fields.size() != num_fields) {
      return Status::InvalidArgument(where + "expected " + std::to_string(num_fields) +
                                     " fields, found " + std::to_string(fields.size()));
    }
    auto field = [&](Column c) -> std::string_view {
      return position[c] >= 0 ? std::string_view(fields[position[c]]) : std::string_view();
    };
    auto bad = [&](Column c) {
      return Status::InvalidArgument(where + "bad " + std::string(kColumnNames[c]) + " '" +
                                     std::string(field(c)) + "'");
    };

    CatalogItem item;
    item.item_id = std::string(field(kItemId));
    if (Trim(item.item_id).empty()) return Status::InvalidArgument(where + "empty item_id");

    item.name = std::string(Trim(field(kName)));
    if (item.name.empty()) item.name = std::string(Trim(field(kDescription)));
    item.service_type = std::string(Trim(field(kServiceType)));
    if (item.service_type.empty()) item.service_type = std::string(Trim(field(kCategory)));

    for (auto [column, target] :
         {std::pair{kMaxSpeed, &item.max_speed_mbps}, std::pair{kMinSpeed, &item.min_speed_mbps},
          std::pair{kQuota, &item.quota_mb}, std::pair{kPrice, &item.price}}) {
      if (Trim(field(column)).empty()) continue;
      std::optional<double> value = ParseNonNegative(field(column));
      if (!value) return bad(column);
      *target = *value;
    }
    std::optional<Charging> charging = ParseCharging(field(kCharging));
    if (!charging) return bad(kCharging);
    item.charging = *charging;
    if (!Trim(field(kValidity)).empty()) {
      std::optional<int> days = ParseNonNegativeInt(field(kValidity));
      if (!days) return bad(kValidity);
      item.validity_days = *days;
    }
    item.channels = SplitChannels(field(kChannels));
    if (!Trim(field(kNonProduct)).empty()) {
      std::optional<bool> non_product = ParseBool(field(kNonProduct));
      if (!non_product) return bad(kNonProduct);
      if (*non_product) item.recommendable = false;
    }
    if (!Trim(field(kRecommendable)).empty()) {
      std::optional<bool> recommendable = ParseBool(field(kRecommendable));
      if (!recommendable) return bad(kRecommendable);
      if (!*recommendable) item.recommendable = false;
    }
    for (auto [column, target] : {std::pair{kActiveFrom, &item.active_from_ms},
                                  std::pair{kActiveTo, &item.active_to_ms}}) {
      if (Trim(field(column)).empty()) continue;
      auto t = ParseEventTime(Trim(field(column)), TimestampFormat::kIso8601, 0);
      if (!t.ok()) return bad(column);
      *target = *t;
    }
    if (item.active_from_ms != 0 && item.active_to_ms != 0 &&
        item.active_to_ms <= item.active_from_ms) {
      return Status::InvalidArgument(where + "active_to must be later than active_from");
    }
    catalog.Add(std::move(item));
  }
  STREAMREC_RETURN_IF_ERROR(reader.status());
  return catalog;
}

Status Catalog::WriteCsv(const std::string& path) const {
  auto writer_or = LineWriter::Open(path);
  if (!writer_or.ok()) return writer_or.status();
  LineWriter& writer = **writer_or;
  STREAMREC_RETURN_IF_ERROR(writer.Write(kWriteHeader));
  std::string line;
  std::string channels;
  for (const CatalogItem& item : items_) {
    line.clear();
    line += CsvEscape(item.item_id);
    line += ',';
    line += CsvEscape(item.name);
    line += ',';
    line += CsvEscape(item.service_type);
    line += ',';
    AppendNumber(item.max_speed_mbps, &line);
    line += ',';
    AppendNumber(item.min_speed_mbps, &line);
    line += ',';
    AppendNumber(item.quota_mb, &line);
    line += ',';
    AppendNumber(item.price, &line);
    line += ',';
    line += ChargingName(item.charging);
    line += ',';
    line += std::to_string(item.validity_days);
    line += ',';
    channels.clear();
    for (size_t i = 0; i < item.channels.size(); ++i) {
      if (i > 0) channels += '|';
      channels += item.channels[i];
    }
    line += CsvEscape(channels);
    line += ',';
    line += item.recommendable ? '1' : '0';
    line += ',';
    if (item.active_from_ms != 0) line += FormatIso8601(item.active_from_ms);
    line += ',';
    if (item.active_to_ms != 0) line += FormatIso8601(item.active_to_ms);
    STREAMREC_RETURN_IF_ERROR(writer.Write(line));
  }
  return writer.Close();
}

void Catalog::Add(CatalogItem item) {
  auto it = index_.find(item.item_id);
  if (it != index_.end()) {
    items_[it->second] = std::move(item);
    return;
  }
  index_.emplace(item.item_id, items_.size());
  items_.push_back(std::move(item));
}

const CatalogItem* Catalog::Find(std::string_view item_id) const {
  auto it = index_.find(std::string(item_id));
  return it == index_.end() ? nullptr : &items_[it->second];
}

}  // namespace streamrec
