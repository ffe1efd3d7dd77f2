#include "streamrec/segment_naming.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "testutil/test_util.h"

namespace streamrec {
namespace {

// Quintiles with cut points 20/40/60/80 days, 2/4/6/8 baskets, 200/400/600/800 spent.
RfmQuintiles Grid() { return RfmQuintiles({20, 40, 60, 80}, {2, 4, 6, 8}, {200, 400, 600, 800}); }

TEST(SegmentNamingTest, QuintilesAsNumpyPercentile) {
  std::vector<double> r, f, m;
  for (int i = 1; i <= 100; ++i) {
    r.push_back(i);
    f.push_back(101 - i);
    m.push_back(i * 10.0);
  }
  ASSERT_OK_AND_ASSIGN(q, RfmQuintiles::Fit(r, f, m));
  // numpy.percentile(range(1, 101), [20, 40, 60, 80]) = 20.8, 40.6, 60.4, 80.2
  EXPECT_NEAR(q.recency()[0], 20.8, 1e-12);
  EXPECT_NEAR(q.recency()[1], 40.6, 1e-12);
  EXPECT_NEAR(q.recency()[3], 80.2, 1e-12);
  EXPECT_NEAR(q.frequency()[2], 60.4, 1e-12);
  EXPECT_NEAR(q.monetary()[0], 208, 1e-9);

  std::vector<double> short_list = {1, 2};
  EXPECT_FALSE(RfmQuintiles::Fit(r, f, short_list).ok());
  std::vector<double> nan = m;
  nan[3] = NAN;
  StatusOr<RfmQuintiles> bad = RfmQuintiles::Fit(r, f, nan);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("monetary of customer 3"), std::string::npos);
}

TEST(SegmentNamingTest, ScoresRecencyReversed) {
  const RfmQuintiles q = Grid();
  EXPECT_EQ(q.ScoreCentre(1, 100, 5000), (RfmScore{5, 5, 5}));
  EXPECT_EQ(q.ScoreCentre(365, 1, 10), (RfmScore{1, 1, 1}));
  EXPECT_EQ(q.ScoreCentre(30, 5, 500), (RfmScore{4, 3, 3}));
  // A value on a cut point scores as the fifth below it.
  EXPECT_EQ(q.ScoreCentre(20, 2, 200), (RfmScore{5, 1, 1}));
  EXPECT_EQ(q.ScoreCentre(20.01, 2.01, 200.01), (RfmScore{4, 2, 2}));
}

TEST(SegmentNamingTest, DefaultTableNamesTheClassicProfiles) {
  const SegmentRuleTable t = SegmentRuleTable::Default();
  ASSERT_OK(t.Validate());
  const RfmQuintiles q = Grid();
  const std::vector<CentreRfm> centres = {
      {5, 20, 2000},    // recent, frequent, big spender
      {300, 1, 50},     // long gone, one small purchase
      {300, 20, 2000},  // was a top customer, gone for long
      {3, 1, 50},       // just arrived
      {50, 3, 300},     // middling recency, below-average frequency and spend
      {70, 7, 700},     // good customer, slipping
  };
  const std::vector<SegmentLabel> labels = NameSegments(q, t, centres);
  ASSERT_EQ(labels.size(), centres.size());
  EXPECT_EQ(labels[0].name, "Champions");
  EXPECT_EQ(labels[1].name, "Lost");
  EXPECT_EQ(labels[2].name, "Can't Lose");
  EXPECT_EQ(labels[3].name, "New");
  EXPECT_EQ(labels[4].name, "Need Attention");
  EXPECT_EQ(labels[5].name, "At Risk");
  EXPECT_EQ(labels[0].score, (RfmScore{5, 5, 5}));
  EXPECT_FALSE(labels[0].action.empty());
  EXPECT_NE(labels[0].action, labels[1].action);
}

TEST(SegmentNamingTest, DefaultTableCoversTheGridAndReachesEverySegment) {
  const SegmentRuleTable t = SegmentRuleTable::Default();
  std::set<std::string> reached;
  for (int r = 1; r <= 5; ++r) {
    for (int f = 1; f <= 5; ++f) {
      for (int m = 1; m <= 5; ++m) {
        const SegmentRule* rule = t.Match({r, f, m});
        ASSERT_NE(rule, nullptr) << r << f << m;
        reached.insert(rule->name);
      }
    }
  }
  EXPECT_EQ(reached, (std::set<std::string>{"Champions", "Loyal", "Potential Loyalist", "New",
                                            "Promising", "Need Attention", "About to Sleep",
                                            "At Risk", "Can't Lose", "Hibernating", "Lost"}));
  // Spot checks of the documented map.
  EXPECT_EQ(t.Match({4, 3, 4})->name, "Loyal");
  EXPECT_EQ(t.Match({3, 5, 5})->name, "Loyal");
  EXPECT_EQ(t.Match({5, 2, 3})->name, "Potential Loyalist");
  EXPECT_EQ(t.Match({4, 1, 2})->name, "Promising");
  EXPECT_EQ(t.Match({2, 1, 1})->name, "About to Sleep");
  EXPECT_EQ(t.Match({2, 2, 2})->name, "Hibernating");
  EXPECT_EQ(t.Match({1, 3, 4})->name, "At Risk");
}

TEST(SegmentNamingTest, DuplicateNamesAreDisambiguatedInOrder) {
  const RfmQuintiles q = Grid();
  const std::vector<SegmentLabel> labels = NameSegments(
      q, SegmentRuleTable::Default(), {{5, 20, 2000}, {300, 1, 10}, {1, 50, 9000}, {2, 9, 900}});
  EXPECT_EQ(labels[0].name, "Champions");
  EXPECT_EQ(labels[1].name, "Lost");
  EXPECT_EQ(labels[2].name, "Champions 2");
  EXPECT_EQ(labels[3].name, "Champions 3");
  EXPECT_EQ(labels[2].action, labels[0].action);

  EXPECT_EQ(DisambiguateNames({"Loyal", "Loyal", "Loyal 2", "Lost"}),
            (std::vector<std::string>{"Loyal", "Loyal 3", "Loyal 2", "Lost"}));
}

TEST(SegmentNamingTest, CustomTableFirstMatchWinsAndFallback) {
  SegmentRuleTable t;
  t.rules = {{"Recent", 4, 5, 1, 5, "say hi"}, {"Big", 1, 5, 4, 5, "upsell"}};
  t.fallback_name = "Everyone else";
  ASSERT_OK(t.Validate());
  const std::vector<SegmentLabel> labels =
      NameSegments(Grid(), t, {{5, 20, 2000}, {300, 20, 2000}, {300, 1, 1}});
  EXPECT_EQ(labels[0].name, "Recent");
  EXPECT_EQ(labels[1].name, "Big");
  EXPECT_EQ(labels[1].action, "upsell");
  EXPECT_EQ(labels[2].name, "Everyone else");
}

TEST(SegmentNamingTest, ValidateNamesTheBadRule) {
  SegmentRuleTable t = SegmentRuleTable::Default();
  t.rules[3].min_r = 0;
  Status s = t.Validate();
  ASSERT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("segment rule 3 ('At Risk')"), std::string::npos) << s.ToString();
  t = SegmentRuleTable::Default();
  t.rules[0].min_fm = 4.5;
  t.rules[0].max_fm = 4;
  EXPECT_FALSE(t.Validate().ok());
  t.rules.clear();
  EXPECT_FALSE(t.Validate().ok());
}

TEST(SegmentNamingTest, QuintilesProtoRoundTrip) {
  const RfmQuintiles q = Grid();
  v1::SegmentModel model;
  q.ToProto(model.mutable_rfm());
  ASSERT_OK_AND_ASSIGN(back, RfmQuintiles::FromProto(model.rfm()));
  EXPECT_EQ(back.recency(), q.recency());
  EXPECT_EQ(back.frequency(), q.frequency());
  EXPECT_EQ(back.monetary(), q.monetary());
  model.mutable_rfm()->mutable_frequency()->RemoveLast();
  EXPECT_TRUE(RfmQuintiles::FromProto(model.rfm()).status().IsCorruption());
}

TEST(SegmentNamingTest, RulesFromCsvReplaceTheDefaultTable) {
  const std::string csv =
      "name,r_min,r_max,fm_min,fm_max,action\n"
      "# best first\n"
      "VIP,5,5,4.5,5,\"Call them, personally\"\n"
      "\n"
      "Everyone else,1,5,1,5,Monthly newsletter\r\n";
  ASSERT_OK_AND_ASSIGN(table, SegmentRuleTable::ParseCsv(csv, "rules.csv"));
  ASSERT_EQ(table.rules.size(), 2u);
  EXPECT_EQ(table.rules[0].name, "VIP");
  EXPECT_EQ(table.rules[0].action, "Call them, personally");
  EXPECT_EQ(table.rules[0].min_fm, 4.5);
  EXPECT_EQ(table.rules[1].action, "Monthly newsletter");
  auto labels = NameSegments(Grid(), table,
                             {{5, 9, 900} /* R5 F5 M5 */, {90, 1, 100} /* R1 F1 M1 */});
  EXPECT_EQ(labels[0].name, "VIP");
  EXPECT_EQ(labels[0].action, "Call them, personally");
  EXPECT_EQ(labels[1].name, "Everyone else");

  testing::TempDir dir;
  const std::string path = dir.File("rules.csv");
  testing::WriteFile(path, csv);
  ASSERT_OK_AND_ASSIGN(loaded, SegmentRuleTable::LoadCsv(path));
  EXPECT_EQ(loaded.rules.size(), 2u);
  EXPECT_TRUE(SegmentRuleTable::LoadCsv(dir.File("missing.csv")).status().IsIOError());
}

TEST(SegmentNamingTest, RulesCsvErrorsNameFileAndLine) {
  const std::string header = "name,r_min,r_max,fm_min,fm_max,action\n";
  auto expect = [](const std::string& csv, const std::string& part) {
    auto t = SegmentRuleTable::ParseCsv(csv, "r.csv");
    ASSERT_FALSE(t.ok()) << csv;
    EXPECT_TRUE(t.status().IsInvalidArgument());
    EXPECT_NE(t.status().message().find(part), std::string::npos)
        << "'" << part << "' not in: " << t.status().message();
  };
  expect("name,r,action\n", "r.csv:1: expected the header");
  expect(header + "A,1,5,1,5,x\nB,1,7,1,5,x\n", "r.csv:3: rule ('B'): R range 1-7");
  expect(header + "A,1,5,1,5,x\nB,1,5,0.5,5,x\n", "r.csv:3: rule ('B'): FM range");
  expect(header + "\nA,1,five,1,5,x\n", "r.csv:3: r_max 'five' is not a number");
  expect(header + "A,1.5,5,1,5,x\n", "r.csv:2: r_min 1.5 should be an integer");
  expect(header + "A,1,5,1,5\n", "r.csv:2: expected 6 fields, got 5");
  expect(header + ",1,5,1,5,x\n", "r.csv:2: rule has an empty name");
  expect(header, "r.csv: no rules");
  expect("", "r.csv: empty");
}

}  // namespace
}  // namespace streamrec
