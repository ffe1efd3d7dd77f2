#include "streamrec/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "csv.h"
#include "file_io.h"
#include "streamrec/catalog.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using ::streamrec::testing::ReadFile;
using ::streamrec::testing::TempDir;

constexpr char kHeader[] =
    "customer_id,item_id,timestamp,quantity,unit_price,amount,channel,discount,event_id";

struct Row {
  std::string customer_id;
  std::string item_id;
  std::string timestamp;
  std::string quantity;
  double unit_price;
  double amount;
  std::string channel;
  double discount;
  std::string event_id;
};

double ToDouble(const std::string& text) {
  double value = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  EXPECT_TRUE(ec == std::errc() && ptr == text.data() + text.size()) << "'" << text << "'";
  return value;
}

// Seconds since 2026-01-01 00:00:00 for "2026-MM-DD hh:mm:ss" (2026 only: enough for tests).
int64_t SecondsIn2026(const std::string& ts) {
  static constexpr int kDaysBefore[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  EXPECT_EQ(ts.size(), 19u) << ts;
  EXPECT_EQ(ts.substr(0, 5), "2026-") << ts;
  int month = std::stoi(ts.substr(5, 2));
  int day = std::stoi(ts.substr(8, 2));
  int64_t days = kDaysBefore[month - 1] + day - 1;
  return days * 86400 + std::stoi(ts.substr(11, 2)) * 3600 + std::stoi(ts.substr(14, 2)) * 60 +
         std::stoi(ts.substr(17, 2));
}

// Reads a feed (plain or gzip) into rows; fails the test on a malformed line.
void ReadFeed(const std::string& path, std::string* header, std::vector<Row>* rows) {
  ASSERT_OK_AND_ASSIGN(reader, LineReader::Open(path));
  std::string line;
  ASSERT_TRUE(reader->Next(&line));
  *header = line;
  std::vector<std::string> f;
  while (reader->Next(&line)) {
    ASSERT_OK(SplitCsvLine(line, ',', &f));
    ASSERT_EQ(f.size(), 9u) << line;
    rows->push_back(
        {f[0], f[1], f[2], f[3], ToDouble(f[4]), ToDouble(f[5]), f[6], ToDouble(f[7]), f[8]});
  }
  ASSERT_OK(reader->status());
}

TelcoGeneratorOptions SmallOptions() {
  TelcoGeneratorOptions options;
  options.customers = 2000;
  options.events = 30000;  // 15 per customer: a ~100-day span
  options.seed = 7;
  return options;
}

TEST(GeneratorTest, CatalogHasLaddersOfRealisticPackages) {
  TelcoGeneratorOptions options;
  const Catalog catalog = TelcoCatalog(options);
  EXPECT_EQ(catalog.size(), 60u);  // options.catalog_size
  for (const char* code : {"NI-10GB-30D", "SOC-2GB-7D", "STR-UNL-30D", "RM-1GB-3D"}) {
    EXPECT_NE(catalog.Find(code), nullptr) << code;
  }
  std::map<std::string, std::vector<double>> one_time_prices, recurring_prices;
  for (const CatalogItem& item : catalog.items()) {
    SCOPED_TRACE(item.item_id);
    EXPECT_FALSE(item.name.empty());
    EXPECT_GT(item.price, 0);
    EXPECT_GT(item.max_speed_mbps, 0);
    EXPECT_GE(item.max_speed_mbps, item.min_speed_mbps);
    EXPECT_TRUE(item.validity_days == 1 || item.validity_days == 3 || item.validity_days == 7 ||
                item.validity_days == 30);
    EXPECT_FALSE(item.channels.empty());
    EXPECT_TRUE(item.recommendable);
    ASSERT_NE(item.charging, Charging::kUnknown);
    if (item.charging == Charging::kRecurring) {
      EXPECT_EQ(item.validity_days, 30);
      recurring_prices[item.service_type].push_back(item.price);
    } else {
      one_time_prices[item.service_type].push_back(item.price);
    }
  }
  EXPECT_EQ(one_time_prices.size(), 5u);  // all five service types
  for (const char* type : {"normal_internet", "social", "streaming", "gaming"}) {
    EXPECT_GE(recurring_prices[type].size(), 3u) << type;  // an upsell ladder
    std::set<double> distinct(recurring_prices[type].begin(), recurring_prices[type].end());
    EXPECT_EQ(distinct.size(), recurring_prices[type].size()) << type;
  }
  EXPECT_EQ(recurring_prices.count("roaming"), 0u);

  // The core packages do not depend on catalog_size; extra ones are added on top.
  options.catalog_size = 10;
  const Catalog core = TelcoCatalog(options);
  EXPECT_GE(core.size(), 40u);
  EXPECT_LE(core.size(), 60u);
  for (size_t i = 0; i < core.size(); ++i) {
    EXPECT_EQ(core.items()[i].item_id, catalog.items()[i].item_id);
  }
  options.catalog_size = 200;
  EXPECT_EQ(TelcoCatalog(options).size(), 200u);
}

TEST(GeneratorTest, WritesExactlyNValidEventsInTimeOrder) {
  TempDir dir;
  const TelcoGeneratorOptions options = SmallOptions();
  ASSERT_OK(GenerateTelcoFeed(options, dir.File("events.csv"), dir.File("catalog.csv")));
  ASSERT_OK_AND_ASSIGN(catalog, Catalog::LoadCsv(dir.File("catalog.csv")));
  EXPECT_EQ(catalog.size(), TelcoCatalog(options).size());

  std::string header;
  std::vector<Row> rows;
  ReadFeed(dir.File("events.csv"), &header, &rows);
  EXPECT_EQ(header, kHeader);
  ASSERT_EQ(rows.size(), options.events);

  std::unordered_set<std::string> customers, event_ids;
  int64_t previous = -1;
  for (const Row& row : rows) {
    SCOPED_TRACE(row.event_id);
    const int64_t t = SecondsIn2026(row.timestamp);
    EXPECT_GE(t, previous);
    previous = t;
    const CatalogItem* item = catalog.Find(row.item_id);
    ASSERT_NE(item, nullptr) << row.item_id;
    EXPECT_EQ(row.quantity, "1");
    EXPECT_EQ(row.unit_price, item->price);
    EXPECT_GE(row.discount, 0);
    EXPECT_LT(row.discount, row.unit_price);
    EXPECT_DOUBLE_EQ(row.amount, row.unit_price - row.discount);
    EXPECT_NE(std::find(item->channels.begin(), item->channels.end(), row.channel),
              item->channels.end())
        << row.channel;
    ASSERT_EQ(row.customer_id.size(), 12u) << row.customer_id;
    EXPECT_EQ(row.customer_id.substr(0, 5), "62811");
    EXPECT_TRUE(std::all_of(row.customer_id.begin(), row.customer_id.end(),
                            [](char c) { return c >= '0' && c <= '9'; }));
    customers.insert(row.customer_id);
    EXPECT_TRUE(event_ids.insert(row.event_id).second) << "duplicate event_id";
  }
  EXPECT_LE(customers.size(), options.customers);
  EXPECT_GE(customers.size(), options.customers * 9 / 10);
  EXPECT_EQ(rows.front().timestamp.substr(0, 10), "2026-01-01");  // options.start_time_ms
  // Planned span for 15 events per customer is ~100 days.
  const double span_days = (SecondsIn2026(rows.back().timestamp)) / 86400.0;
  EXPECT_GT(span_days, 60);
  EXPECT_LT(span_days, 150);
  // Some purchases carry a promotion, most do not.
  const auto discounted =
      std::count_if(rows.begin(), rows.end(), [](const Row& r) { return r.discount > 0; });
  EXPECT_GT(discounted, static_cast<long>(rows.size() / 50));
  EXPECT_LT(discounted, static_cast<long>(rows.size() / 4));
}

TEST(GeneratorTest, SameSeedIsByteIdenticalAndOtherSeedDiffers) {
  TempDir dir;
  TelcoGeneratorOptions options = SmallOptions();
  ASSERT_OK(GenerateTelcoFeed(options, dir.File("a.csv"), dir.File("a_catalog.csv")));
  ASSERT_OK(GenerateTelcoFeed(options, dir.File("b.csv"), dir.File("b_catalog.csv")));
  ASSERT_OK(GenerateTelcoFeed(options, dir.File("c.csv.gz"), dir.File("c_catalog.csv")));
  options.seed += 1;
  ASSERT_OK(GenerateTelcoFeed(options, dir.File("d.csv"), dir.File("d_catalog.csv")));

  const std::string a = ReadFile(dir.File("a.csv"));
  EXPECT_EQ(a, ReadFile(dir.File("b.csv")));
  EXPECT_EQ(ReadFile(dir.File("a_catalog.csv")), ReadFile(dir.File("b_catalog.csv")));
  EXPECT_NE(a, ReadFile(dir.File("d.csv")));
  EXPECT_EQ(ReadFile(dir.File("a_catalog.csv")), ReadFile(dir.File("d_catalog.csv")));

  // The gzip feed holds the same lines.
  const std::string gz = ReadFile(dir.File("c.csv.gz"));
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  ASSERT_OK_AND_ASSIGN(reader, LineReader::Open(dir.File("c.csv.gz")));
  std::string unzipped, line;
  while (reader->Next(&line)) unzipped += line + "\n";
  EXPECT_EQ(unzipped, a);
}

TEST(GeneratorTest, PersonasProduceDistinguishableBehaviour) {
  TempDir dir;
  const TelcoGeneratorOptions options = SmallOptions();
  ASSERT_OK(GenerateTelcoFeed(options, dir.File("events.csv"), dir.File("catalog.csv")));
  ASSERT_OK_AND_ASSIGN(catalog, Catalog::LoadCsv(dir.File("catalog.csv")));
  std::string header;
  std::vector<Row> rows;
  ReadFeed(dir.File("events.csv"), &header, &rows);
  ASSERT_EQ(rows.size(), options.events);

  struct Summary {
    std::map<std::string, int> types;
    std::map<std::string, int64_t> last_recurring;  // item -> time
    int64_t first = -1, last = -1;
    double spend = 0;
    int count = 0;
  };
  std::unordered_map<std::string, Summary> by_customer;
  int renewals_at_validity = 0, recurring_repeats = 0;
  for (const Row& row : rows) {
    const CatalogItem* item = catalog.Find(row.item_id);
    ASSERT_NE(item, nullptr);
    Summary& s = by_customer[row.customer_id];
    const int64_t t = SecondsIn2026(row.timestamp);
    if (s.first < 0) s.first = t;
    s.last = t;
    s.types[item->service_type]++;
    s.spend += row.amount;
    s.count++;
    if (item->charging == Charging::kRecurring) {
      auto it = s.last_recurring.find(row.item_id);
      if (it != s.last_recurring.end()) {
        ++recurring_repeats;
        const int64_t gap = t - it->second;
        if (gap >= item->validity_days * 86400LL && gap <= (item->validity_days + 1) * 86400LL) {
          ++renewals_at_validity;
        }
      }
      s.last_recurring[row.item_id] = t;
    }
  }

  // Customers differ in what they mostly buy.
  std::map<std::string, int> dominant;
  for (const auto& [id, s] : by_customer) {
    auto top = std::max_element(s.types.begin(), s.types.end(),
                                [](const auto& a, const auto& b) { return a.second < b.second; });
    dominant[top->first]++;
  }
  int sizeable = 0;
  for (const auto& [type, n] : dominant) sizeable += n >= 50 ? 1 : 0;
  EXPECT_GE(sizeable, 3) << "dominant service types: " << dominant.size();

  // Recurring packages come back at their validity, give or take a day.
  EXPECT_GT(recurring_repeats, 200);
  EXPECT_GT(renewals_at_validity, recurring_repeats * 7 / 10);

  // Lapsing customers stop early and new joiners start late; heavy and light buyers differ.
  const int64_t end = SecondsIn2026(rows.back().timestamp);
  int stopped_early = 0, started_late = 0;
  std::vector<double> spend;
  std::vector<int> counts;
  for (const auto& [id, s] : by_customer) {
    stopped_early += s.count >= 3 && s.last < end * 6 / 10 ? 1 : 0;
    started_late += s.count >= 3 && s.first > end * 3 / 10 ? 1 : 0;
    spend.push_back(s.spend);
    counts.push_back(s.count);
  }
  const size_t n = by_customer.size();
  EXPECT_GT(stopped_early, static_cast<int>(n / 40));
  EXPECT_GT(started_late, static_cast<int>(n / 40));
  std::sort(spend.begin(), spend.end());
  std::sort(counts.begin(), counts.end());
  EXPECT_GT(spend[n * 9 / 10], 10 * spend[n / 10]);
  EXPECT_GT(counts[n * 9 / 10], 4 * counts[n / 10]);
}

TEST(GeneratorTest, ExactCountEvenForASingleCustomer) {
  // Whatever persona the one customer gets (lapsing included), the feed has exactly N events.
  TempDir dir;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE(seed);
    TelcoGeneratorOptions options;
    options.customers = 1;
    options.events = 40;
    options.seed = seed;
    ASSERT_OK(GenerateTelcoFeed(options, dir.File("one.csv"), dir.File("catalog.csv")));
    std::string header;
    std::vector<Row> rows;
    ReadFeed(dir.File("one.csv"), &header, &rows);
    ASSERT_EQ(rows.size(), 40u);
    std::set<std::string> ids;
    for (const Row& row : rows) ids.insert(row.customer_id);
    EXPECT_EQ(ids.size(), 1u);
  }
}

TEST(GeneratorTest, ReportsProgressEvery100kEvents) {
  TempDir dir;
  TelcoGeneratorOptions options;
  options.customers = 20000;
  options.events = 250000;
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  ASSERT_OK(
      GenerateTelcoFeed(options, dir.File("events.csv"), dir.File("catalog.csv"),
                        [&](uint64_t done, uint64_t total) { calls.emplace_back(done, total); }));
  const std::vector<std::pair<uint64_t, uint64_t>> expected = {
      {100000, 250000}, {200000, 250000}, {250000, 250000}};
  EXPECT_EQ(calls, expected);
}

TEST(GeneratorTest, ZeroEventsWritesHeaderOnly) {
  TempDir dir;
  TelcoGeneratorOptions options;
  options.events = 0;
  ASSERT_OK(GenerateTelcoFeed(options, dir.File("events.csv"), dir.File("catalog.csv")));
  EXPECT_EQ(ReadFile(dir.File("events.csv")), std::string(kHeader) + "\n");
}

TEST(GeneratorTest, RejectsBadOptions) {
  TempDir dir;
  TelcoGeneratorOptions options;
  options.customers = 0;
  options.events = 10;
  Status s = GenerateTelcoFeed(options, dir.File("events.csv"), dir.File("catalog.csv"));
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("customers"), std::string::npos);

  options.customers = 10;
  s = GenerateTelcoFeed(options, dir.File("no_such_dir/events.csv"), dir.File("catalog.csv"));
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
}

}  // namespace
}  // namespace streamrec
