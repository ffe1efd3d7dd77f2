#include "streamrec/catalog.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "testutil/test_util.h"

namespace streamrec {
namespace {

using ::streamrec::testing::ReadFile;
using ::streamrec::testing::SharedDataDir;
using ::streamrec::testing::TempDir;
using ::streamrec::testing::WriteFile;

TEST(CatalogTest, LoadsSharedRetailItems) {
  ASSERT_OK_AND_ASSIGN(catalog, Catalog::LoadCsv(SharedDataDir() + "/online_retail/items.csv"));
  EXPECT_GE(catalog.size(), 3000u);

  const CatalogItem* postage = catalog.Find("POST");
  ASSERT_NE(postage, nullptr);
  EXPECT_FALSE(postage->recommendable);
  EXPECT_EQ(postage->name, "POSTAGE");
  const CatalogItem* manual = catalog.Find("M");
  ASSERT_NE(manual, nullptr);
  EXPECT_FALSE(manual->recommendable);

  const CatalogItem* globe = catalog.Find("10002");
  ASSERT_NE(globe, nullptr);
  EXPECT_TRUE(globe->recommendable);
  EXPECT_EQ(globe->name, "INFLATABLE POLITICAL GLOBE");  // description, trimmed
  EXPECT_EQ(globe->price, 0);                            // n_rows is ignored, no price column
  EXPECT_EQ(globe->charging, Charging::kUnknown);
  EXPECT_TRUE(globe->channels.empty());

  const CatalogItem* quoted = catalog.Find("17107D");  // description holds a quoted comma
  ASSERT_NE(quoted, nullptr);
  EXPECT_EQ(quoted->name, "FLOWER FAIRY,5 SUMMER B'DRAW LINERS");
  EXPECT_EQ(catalog.Find("NO-SUCH-ITEM"), nullptr);
}

TEST(CatalogTest, LoadsTelcoColumnsInAnyOrderWithAliases) {
  TempDir dir;
  const std::string path = dir.File("packages.csv");
  WriteFile(path,
            "price,Item_ID ,category,charging,validity_days,quota_mb,channels,max_speed_mbps,"
            "min_speed_mbps,recommendable,extra\n"
            "50000,NI-10GB-30D,normal_internet,recurring,30,10240,App| USSD ||web,50,3,1,zz\r\n"
            "\n"
            "5000,NI-1GB-1D,normal_internet,one-time,1,1024,,20,1,0,zz\n");
  ASSERT_OK_AND_ASSIGN(catalog, Catalog::LoadCsv(path));
  ASSERT_EQ(catalog.size(), 2u);

  const CatalogItem* monthly = catalog.Find("NI-10GB-30D");
  ASSERT_NE(monthly, nullptr);
  EXPECT_EQ(monthly->service_type, "normal_internet");
  EXPECT_EQ(monthly->price, 50000);
  EXPECT_EQ(monthly->charging, Charging::kRecurring);
  EXPECT_EQ(monthly->validity_days, 30);
  EXPECT_EQ(monthly->quota_mb, 10240);
  EXPECT_EQ(monthly->max_speed_mbps, 50);
  EXPECT_EQ(monthly->min_speed_mbps, 3);
  EXPECT_EQ(monthly->channels, (std::vector<std::string>{"app", "ussd", "web"}));
  EXPECT_TRUE(monthly->recommendable);

  const CatalogItem* daily = catalog.Find("NI-1GB-1D");
  ASSERT_NE(daily, nullptr);
  EXPECT_EQ(daily->charging, Charging::kOneTime);
  EXPECT_TRUE(daily->channels.empty());
  EXPECT_FALSE(daily->recommendable);
}

TEST(CatalogTest, NonProductOverridesRecommendable) {
  TempDir dir;
  const std::string path = dir.File("items.csv");
  WriteFile(path, "item_id,non_product,recommendable\nA,1,1\nB,0,1\nC,,0\nD,,\n");
  ASSERT_OK_AND_ASSIGN(catalog, Catalog::LoadCsv(path));
  EXPECT_FALSE(catalog.Find("A")->recommendable);
  EXPECT_TRUE(catalog.Find("B")->recommendable);
  EXPECT_FALSE(catalog.Find("C")->recommendable);
  EXPECT_TRUE(catalog.Find("D")->recommendable);
}

TEST(CatalogTest, WriteCsvRoundTrips) {
  Catalog catalog;
  CatalogItem full;
  full.item_id = "STR-UNL-30D";
  full.name = "Streaming \"Unlimited\", 30 days";
  full.service_type = "streaming";
  full.max_speed_mbps = 150;
  full.min_speed_mbps = 1.5;
  full.quota_mb = 0.1;  // not exactly representable: must still round-trip bit for bit
  full.price = 180000;
  full.charging = Charging::kRecurring;
  full.validity_days = 30;
  full.channels = {"app", "web", "call_centre"};
  full.active_from_ms = 1291161600000;  // 2010-12-01T00:00:00Z
  full.active_to_ms = 1293753600000;    // 2010-12-31T00:00:00Z
  catalog.Add(full);
  CatalogItem bare;
  bare.item_id = "POST";
  bare.recommendable = false;
  catalog.Add(bare);
  CatalogItem one_time;
  one_time.item_id = "RM-1GB-3D";
  one_time.price = 1e6;  // written without an exponent
  one_time.charging = Charging::kOneTime;
  catalog.Add(one_time);

  TempDir dir;
  for (const std::string name : {"catalog.csv", "catalog.csv.gz"}) {
    SCOPED_TRACE(name);
    const std::string path = dir.File(name);
    ASSERT_OK(catalog.WriteCsv(path));
    ASSERT_OK_AND_ASSIGN(loaded, Catalog::LoadCsv(path));
    ASSERT_EQ(loaded.size(), catalog.size());
    for (size_t i = 0; i < catalog.size(); ++i) {
      const CatalogItem& a = catalog.items()[i];
      const CatalogItem& b = loaded.items()[i];
      EXPECT_EQ(a.item_id, b.item_id);
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.service_type, b.service_type);
      EXPECT_EQ(a.max_speed_mbps, b.max_speed_mbps);
      EXPECT_EQ(a.min_speed_mbps, b.min_speed_mbps);
      EXPECT_EQ(a.quota_mb, b.quota_mb);
      EXPECT_EQ(a.price, b.price);
      EXPECT_EQ(a.charging, b.charging);
      EXPECT_EQ(a.validity_days, b.validity_days);
      EXPECT_EQ(a.channels, b.channels);
      EXPECT_EQ(a.recommendable, b.recommendable);
      EXPECT_EQ(a.active_from_ms, b.active_from_ms);
      EXPECT_EQ(a.active_to_ms, b.active_to_ms);
    }
  }
  const std::string text = ReadFile(dir.File("catalog.csv"));
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "item_id,name,service_type,max_speed_mbps,min_speed_mbps,quota_mb,price,charging,"
            "validity_days,channels,recommendable,active_from,active_to");
  EXPECT_NE(text.find("RM-1GB-3D,,,0,0,0,1000000,one_time,0,,1,,"), std::string::npos) << text;
}

TEST(CatalogTest, DuplicateItemIdLaterLineWins) {
  TempDir dir;
  const std::string path = dir.File("dup.csv");
  WriteFile(path, "item_id,name,price\nA,first,1\nB,bee,2\nA,second,3\n");
  ASSERT_OK_AND_ASSIGN(catalog, Catalog::LoadCsv(path));
  ASSERT_EQ(catalog.size(), 2u);
  EXPECT_EQ(catalog.items()[0].item_id, "A");  // keeps its first position
  EXPECT_EQ(catalog.Find("A")->name, "second");
  EXPECT_EQ(catalog.Find("A")->price, 3);
}

TEST(CatalogTest, AddReplacesExistingItem) {
  auto make = [](std::string id, std::string name) {
    CatalogItem item;
    item.item_id = std::move(id);
    item.name = std::move(name);
    return item;
  };
  Catalog catalog;
  catalog.Add(make("X", "old"));
  catalog.Add(make("Y", ""));
  catalog.Add(make("X", "new"));
  EXPECT_EQ(catalog.size(), 2u);
  ASSERT_NE(catalog.Find("X"), nullptr);
  EXPECT_EQ(catalog.Find("X")->name, "new");
  EXPECT_EQ(catalog.Find("Z"), nullptr);
}

// Each bad value is reported as "<path>:<line>: bad <column> '<value>'".
TEST(CatalogTest, BadValueErrorNamesFileLineAndColumn) {
  struct Case {
    std::string column;
    std::string value;
  };
  const Case cases[] = {{"price", "x"},
                        {"price", "-5"},
                        {"quota_mb", "1e400"},
                        {"max_speed_mbps", "12abc"},
                        {"charging", "monthly"},
                        {"validity_days", "2.5"},
                        {"recommendable", "maybe"},
                        {"non_product", "2"}};
  TempDir dir;
  const std::string path = dir.File("bad.csv");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.column + "=" + c.value);
    WriteFile(path, "item_id," + c.column + "\nGOOD,\n\nBAD," + c.value + "\n");
    auto loaded = Catalog::LoadCsv(path);
    ASSERT_FALSE(loaded.ok());
    EXPECT_TRUE(loaded.status().IsInvalidArgument());
    EXPECT_EQ(loaded.status().message(), path + ":4: bad " + c.column + " '" + c.value + "'");
  }
}

TEST(CatalogTest, StructuralErrorsNameTheLine) {
  TempDir dir;
  const std::string path = dir.File("broken.csv");

  WriteFile(path, "name,price\nfoo,1\n");
  auto no_id = Catalog::LoadCsv(path);
  ASSERT_FALSE(no_id.ok());
  EXPECT_NE(no_id.status().message().find(path + ":1:"), std::string::npos);
  EXPECT_NE(no_id.status().message().find("item_id"), std::string::npos);

  WriteFile(path, "item_id,price\nA,1\nB\n");
  auto short_line = Catalog::LoadCsv(path);
  ASSERT_FALSE(short_line.ok());
  EXPECT_NE(short_line.status().message().find(path + ":3:"), std::string::npos)
      << short_line.status().ToString();

  WriteFile(path, "item_id,price\nA,1\n,2\n");
  auto empty_id = Catalog::LoadCsv(path);
  ASSERT_FALSE(empty_id.ok());
  EXPECT_EQ(empty_id.status().message(), path + ":3: empty item_id");

  WriteFile(path, "item_id,name\n\"A,unterminated\n");
  auto quote = Catalog::LoadCsv(path);
  ASSERT_FALSE(quote.ok());
  EXPECT_NE(quote.status().message().find(path + ":2:"), std::string::npos);

  WriteFile(path, "item_id,price,PRICE\nA,1,2\n");
  auto duplicate_column = Catalog::LoadCsv(path);
  ASSERT_FALSE(duplicate_column.ok());
  EXPECT_NE(duplicate_column.status().message().find("duplicate column 'price'"),
            std::string::npos);

  WriteFile(path, "");
  EXPECT_FALSE(Catalog::LoadCsv(path).ok());

  auto missing = Catalog::LoadCsv(dir.File("does_not_exist.csv"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsIOError());
}

}  // namespace
}  // namespace streamrec
