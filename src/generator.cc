// Synthetic telco purchase feed: catalogue of data packages plus an event-driven simulation of
// subscribers drawn from behaviour personas.
//
// Model (all figures are the constants below; change them and the feed changes):
//  - Catalogue: a fixed core ladder per service type (normal_internet, social, streaming, gaming,
//    roaming), short-validity one-time packages and 30-day recurring ones, priced in IDR. When
//    options.catalog_size exceeds the core, app-exclusive copies of one-time packages (10% off)
//    fill the rest.
//  - Each subscriber gets a persona (fixed shares). The persona decides the service-type mix of
//    one-time purchases, the price level (position on the ladder), the channel mix, the chance
//    of a recurring subscription, the chance of moving up the ladder and the sensitivity to
//    promotions. Lapsing subscribers stop partway through (and rarely come back); new joiners
//    start partway through.
//  - A subscription renews every `validity_days` (a couple of hours of jitter, sometimes a day or
//    two late, sometimes cancelled); one-time purchases come at exponential gaps whose mean is
//    calibrated so that an average subscriber makes events/customers purchases over a planned
//    span of clamp(90 * sqrt(events / customers / 12), 7, 365) days. The feed stops after exactly
//    options.events purchases, so the real span is whatever the draws give.
//  - A min-heap keyed by each subscriber's next purchase time yields events in time order with
//    O(customers) memory.
//  - Randomness: one std::mt19937_64 seeded with options.seed; uniform, exponential and
//    categorical draws are computed here from its raw output so the feed is identical across
//    standard libraries.
#include "streamrec/generator.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "file_io.h"

namespace streamrec {

namespace {

// ---- domain constants ---------------------------------------------------------------------------

constexpr int kNumServiceTypes = 5;
enum ServiceType : uint8_t { kNormalInternet, kSocial, kStreaming, kGaming, kRoaming };
constexpr std::array<std::string_view, kNumServiceTypes> kServiceTypeNames = {
    "normal_internet", "social", "streaming", "gaming", "roaming"};
constexpr std::array<std::string_view, kNumServiceTypes> kServiceTypeCodes = {"NI", "SOC", "STR",
                                                                              "GAM", "RM"};
constexpr std::array<std::string_view, kNumServiceTypes> kServiceTypeLabels = {
    "Internet", "Social", "Streaming", "Gaming", "Roaming"};

constexpr int kNumChannels = 5;
enum Channel : uint8_t { kApp, kUssd, kRetail, kWeb, kCallCentre };
constexpr std::array<std::string_view, kNumChannels> kChannelNames = {"app", "ussd", "retail",
                                                                      "web", "call_centre"};
constexpr uint8_t kAllChannels = 0x1F;
constexpr uint8_t Bit(Channel c) { return static_cast<uint8_t>(1u << c); }

struct PackageSpec {
  ServiceType type;
  int quota_mb;  // 0 = unlimited (fair use)
  int validity_days;
  bool recurring;
  int64_t price_idr;
  double max_speed_mbps;
  double min_speed_mbps;
};

// The core catalogue. Within a (service type, charging) group packages form a ladder by price.
// Columns: type, quota_mb, validity_days, recurring, price_idr, max_speed_mbps, min_speed_mbps.
// clang-format off
constexpr PackageSpec kCorePackages[] = {
    // normal_internet, one-time top-ups
    {kNormalInternet, 500, 1, false, 2500, 10, 1},
    {kNormalInternet, 1024, 1, false, 5000, 20, 1},
    {kNormalInternet, 2048, 3, false, 10000, 20, 2},
    {kNormalInternet, 3072, 7, false, 15000, 30, 2},
    {kNormalInternet, 0, 1, false, 20000, 20, 1},
    {kNormalInternet, 6144, 7, false, 25000, 50, 3},
    {kNormalInternet, 12288, 7, false, 40000, 50, 5},
    // normal_internet, monthly subscriptions
    {kNormalInternet, 5120, 30, true, 35000, 30, 2},
    {kNormalInternet, 10240, 30, true, 50000, 50, 3},
    {kNormalInternet, 20480, 30, true, 75000, 50, 5},
    {kNormalInternet, 35840, 30, true, 100000, 100, 5},
    {kNormalInternet, 51200, 30, true, 130000, 100, 10},
    {kNormalInternet, 102400, 30, true, 180000, 150, 10},
    {kNormalInternet, 0, 30, true, 250000, 150, 10},
    // social (chat and social-network apps only)
    {kSocial, 1024, 1, false, 2000, 10, 1},
    {kSocial, 0, 1, false, 5000, 10, 1},
    {kSocial, 2048, 7, false, 8000, 20, 1},
    {kSocial, 5120, 7, false, 15000, 20, 2},
    {kSocial, 5120, 30, true, 25000, 20, 2},
    {kSocial, 10240, 30, true, 40000, 30, 2},
    {kSocial, 20480, 30, true, 55000, 30, 3},
    {kSocial, 0, 30, true, 80000, 30, 3},
    // streaming (video and music apps; a guaranteed minimum speed matters)
    {kStreaming, 2048, 1, false, 7000, 50, 5},
    {kStreaming, 5120, 3, false, 15000, 50, 5},
    {kStreaming, 10240, 7, false, 28000, 75, 8},
    {kStreaming, 20480, 7, false, 45000, 100, 10},
    {kStreaming, 15360, 30, true, 60000, 50, 5},
    {kStreaming, 30720, 30, true, 90000, 75, 8},
    {kStreaming, 61440, 30, true, 130000, 100, 10},
    {kStreaming, 0, 30, true, 180000, 150, 15},
    // gaming (game servers; low latency)
    {kGaming, 1024, 1, false, 3000, 30, 3},
    {kGaming, 3072, 3, false, 8000, 30, 3},
    {kGaming, 0, 1, false, 10000, 30, 3},
    {kGaming, 6144, 7, false, 18000, 50, 5},
    {kGaming, 10240, 30, true, 40000, 50, 5},
    {kGaming, 25600, 30, true, 70000, 75, 8},
    {kGaming, 0, 30, true, 110000, 100, 10},
    // roaming (abroad; always one-time)
    {kRoaming, 500, 1, false, 45000, 20, 1},
    {kRoaming, 1024, 3, false, 85000, 20, 1},
    {kRoaming, 0, 1, false, 120000, 20, 1},
    {kRoaming, 3072, 7, false, 180000, 30, 2},
    {kRoaming, 5120, 7, false, 250000, 30, 2},
    {kRoaming, 10240, 30, false, 400000, 50, 3},
    {kRoaming, 20480, 30, false, 650000, 50, 3},
};
// clang-format on
constexpr int kNumCorePackages = static_cast<int>(std::size(kCorePackages));
// Upper bound on app-exclusive variants, whatever options.catalog_size asks for.
constexpr int kMaxCatalogSize = 100000;
constexpr double kAppVariantPriceFactor = 0.9;
// Chance that an app purchase of a one-time package takes one of its app-exclusive variants.
constexpr double kAppVariantChoice = 0.4;

enum class Window : uint8_t { kWhole, kLapsing, kNewJoiner };

struct Persona {
  std::string_view name;
  double share;                                   // fraction of subscribers
  double intensity;                               // relative purchase rate (1 = average-ish)
  std::array<double, kNumServiceTypes> type_mix;  // one-time purchases
  double tier;                      // preferred rung, 0 = cheapest .. 1 = most expensive
  double subscription_probability;  // chance of holding a recurring package
  double upgrade_probability;       // per purchase: move one step up the ladder
  double promo_affinity;            // multiplies the per-channel promotion chance
  std::array<double, kNumChannels> channel_mix;
  Window window;
};

// Columns: name, share, intensity, type_mix {NI, SOC, STR, GAM, RM}, tier, subscription,
// upgrade, promo affinity, channel_mix {app, ussd, retail, web, call_centre}, window.
// clang-format off
constexpr Persona kPersonas[] = {
    {"heavy_streamer", 0.15, 1.6, {0.20, 0.05, 0.70, 0.03, 0.02}, 0.70, 0.80, 0.04, 1.0,
     {0.65, 0.05, 0.05, 0.20, 0.05}, Window::kWhole},
    {"social_only", 0.18, 1.0, {0.10, 0.88, 0.01, 0.01, 0.00}, 0.30, 0.35, 0.02, 1.0,
     {0.30, 0.40, 0.25, 0.03, 0.02}, Window::kWhole},
    {"occasional_topup", 0.20, 0.35, {0.75, 0.15, 0.05, 0.05, 0.00}, 0.10, 0.05, 0.01, 1.5,
     {0.15, 0.45, 0.35, 0.03, 0.02}, Window::kWhole},
    {"big_spender", 0.07, 1.4, {0.45, 0.05, 0.30, 0.10, 0.10}, 0.95, 0.90, 0.06, 0.5,
     {0.45, 0.02, 0.08, 0.30, 0.15}, Window::kWhole},
    {"gamer", 0.10, 1.5, {0.12, 0.05, 0.08, 0.75, 0.00}, 0.55, 0.60, 0.05, 1.0,
     {0.75, 0.10, 0.05, 0.10, 0.00}, Window::kWhole},
    {"traveller", 0.06, 0.8, {0.35, 0.10, 0.05, 0.00, 0.50}, 0.60, 0.40, 0.03, 0.8,
     {0.50, 0.05, 0.10, 0.25, 0.10}, Window::kWhole},
    {"lapsing", 0.12, 0.9, {0.55, 0.25, 0.15, 0.05, 0.00}, 0.40, 0.50, 0.01, 1.2,
     {0.30, 0.30, 0.30, 0.05, 0.05}, Window::kLapsing},
    {"new_joiner", 0.12, 1.0, {0.40, 0.30, 0.15, 0.15, 0.00}, 0.25, 0.25, 0.10, 1.2,
     {0.50, 0.25, 0.20, 0.05, 0.00}, Window::kNewJoiner},
};
// clang-format on
constexpr int kNumPersonas = static_cast<int>(std::size(kPersonas));

// Lapsing subscribers stop at U[kLapseFrom, kLapseTo) x span; new joiners start at
// U[kJoinFrom, kJoinTo) x span. Their mean active fractions feed the rate calibration.
constexpr double kLapseFrom = 0.15, kLapseTo = 0.60;
constexpr double kJoinFrom = 0.20, kJoinTo = 0.80;
// After lapsing, the rare win-back purchase comes after this many spans on average.
constexpr double kDormantGapSpans = 2.0;
// Per-channel chance that a purchase carries a promotion (times the persona's affinity).
constexpr std::array<double, kNumChannels> kPromoChance = {0.12, 0.05, 0.04, 0.08, 0.02};
constexpr std::array<double, 4> kPromoPercent = {0.05, 0.10, 0.20, 0.25};
constexpr std::array<double, 4> kPromoPercentWeight = {0.40, 0.35, 0.20, 0.05};
// Subscription renewal: cancelled, late by up to kLateRenewalMaxS, else within kOnTimeJitterS.
constexpr double kCancelProbability = 0.04;
constexpr double kLateProbability = 0.10;
constexpr int64_t kOnTimeJitterS = 2 * 3600;
constexpr int64_t kLateRenewalMaxS = 3 * 86400;
// Subscribers spend little at night: a one-time purchase drawn between 00:00 and 06:00 local
// time (UTC+7) moves, with this probability, to a uniform time between 06:00 and 18:00.
constexpr int64_t kLocalUtcOffsetS = 7 * 3600;
constexpr double kNightShiftProbability = 0.75;
// Ladder position of a one-time purchase: the preferred rung, one rung off with this chance.
constexpr double kRungJitterProbability = 0.25;
constexpr double kTierStep = 0.12;    // an upgrade moves the preferred position this far
constexpr double kTierSpread = 0.15;  // per-subscriber spread around the persona's tier

constexpr std::string_view kMsisdnPrefix = "62811";
constexpr uint64_t kMsisdnMultiplier = 7654321;  // coprime with 10: a bijection mod 10^d
constexpr uint64_t kMsisdnOffset = 1234567;
constexpr uint64_t kMaxCustomers = 1000000000ULL;
constexpr uint64_t kProgressEvery = 100000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

constexpr std::string_view kEventsHeader =
    "customer_id,item_id,timestamp,quantity,unit_price,amount,channel,discount,event_id";

// ---- randomness -----------------------------------------------------------------------------

// Draws computed from the raw engine output, identical on every standard library.
class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}
  // Uniform in [0, 1), 53 bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  bool Bernoulli(double p) { return Uniform() < p; }
  double Exponential(double mean) { return -std::log1p(-Uniform()) * mean; }
  // Index i with probability weights[i] / sum (weights[i] > 0 only where mask bit i is set).
  template <size_t N>
  int Categorical(const std::array<double, N>& weights, uint32_t mask = ~0u) {
    double total = 0;
    for (size_t i = 0; i < N; ++i) {
      if (mask & (1u << i)) total += weights[i];
    }
    if (total <= 0) {  // nothing weighted: uniform over the mask
      int n = 0;
      for (size_t i = 0; i < N; ++i) n += (mask >> i) & 1u;
      int pick = static_cast<int>(Uniform() * n);
      for (size_t i = 0; i < N; ++i) {
        if (((mask >> i) & 1u) && pick-- == 0) return static_cast<int>(i);
      }
      return 0;
    }
    double u = Uniform() * total;
    int last = 0;
    for (size_t i = 0; i < N; ++i) {
      if (!(mask & (1u << i)) || weights[i] <= 0) continue;
      last = static_cast<int>(i);
      if (u < weights[i]) return last;
      u -= weights[i];
    }
    return last;  // rounding
  }
  // Uniform integer in [0, n), n > 0.
  uint64_t Below(uint64_t n) { return static_cast<uint64_t>(Uniform() * static_cast<double>(n)); }

 private:
  std::mt19937_64 engine_;
};

// ---- catalogue ------------------------------------------------------------------------------

// What the simulation needs about a package; parallel to the catalogue's items.
struct Package {
  ServiceType type;
  bool recurring;
  int validity_days;
  int64_t price_cents;
  uint8_t channel_mask;
  std::vector<uint32_t> app_variants;  // indices of app-exclusive copies
};

struct PackageTable {
  Catalog catalog;
  std::vector<Package> packages;
  std::array<std::vector<uint32_t>, kNumServiceTypes> one_time_ladder;   // by price
  std::array<std::vector<uint32_t>, kNumServiceTypes> recurring_ladder;  // by price
};

std::string QuotaCode(int quota_mb) {
  if (quota_mb == 0) return "UNL";
  if (quota_mb % 1024 == 0) return std::to_string(quota_mb / 1024) + "GB";
  return std::to_string(quota_mb) + "MB";
}

std::string QuotaLabel(int quota_mb) {
  if (quota_mb == 0) return "Unlimited";
  if (quota_mb % 1024 == 0) return std::to_string(quota_mb / 1024) + " GB";
  return std::to_string(quota_mb) + " MB";
}

uint8_t ChannelsFor(const PackageSpec& spec) {
  if (spec.type == kRoaming) return kAllChannels & ~Bit(kRetail);  // bought abroad
  if (spec.price_idr >= 150000) return kAllChannels & ~Bit(kUssd);
  if (spec.validity_days == 1) return kAllChannels & ~Bit(kCallCentre);
  return kAllChannels;
}

std::vector<std::string> ChannelList(uint8_t mask) {
  std::vector<std::string> channels;
  for (int c = 0; c < kNumChannels; ++c) {
    if (mask & (1u << c)) channels.emplace_back(kChannelNames[c]);
  }
  return channels;
}

PackageTable BuildPackages(const TelcoGeneratorOptions& options) {
  PackageTable table;
  std::vector<uint32_t> one_time_core;
  for (const PackageSpec& spec : kCorePackages) {
    CatalogItem item;
    item.item_id = std::string(kServiceTypeCodes[spec.type]) + "-" + QuotaCode(spec.quota_mb) +
                   "-" + std::to_string(spec.validity_days) + "D";
    item.name = std::string(kServiceTypeLabels[spec.type]) + " " + QuotaLabel(spec.quota_mb) + " " +
                std::to_string(spec.validity_days) + (spec.validity_days == 1 ? " day" : " days") +
                (spec.recurring ? " (monthly)" : "");
    item.service_type = std::string(kServiceTypeNames[spec.type]);
    item.max_speed_mbps = spec.max_speed_mbps;
    item.min_speed_mbps = spec.min_speed_mbps;
    item.quota_mb = spec.quota_mb;
    item.price = static_cast<double>(spec.price_idr);
    item.charging = spec.recurring ? Charging::kRecurring : Charging::kOneTime;
    item.validity_days = spec.validity_days;
    uint8_t mask = ChannelsFor(spec);
    item.channels = ChannelList(mask);
    item.recommendable = true;
    auto index = static_cast<uint32_t>(table.packages.size());
    table.packages.push_back(
        {spec.type, spec.recurring, spec.validity_days, spec.price_idr * 100, mask, {}});
    table.catalog.Add(std::move(item));
    (spec.recurring ? table.recurring_ladder : table.one_time_ladder)[spec.type].push_back(index);
    if (!spec.recurring) one_time_core.push_back(index);
  }
  for (int t = 0; t < kNumServiceTypes; ++t) {
    for (auto* ladder : {&table.one_time_ladder[t], &table.recurring_ladder[t]}) {
      std::stable_sort(ladder->begin(), ladder->end(), [&](uint32_t a, uint32_t b) {
        return table.packages[a].price_cents < table.packages[b].price_cents;
      });
    }
  }

  // App-exclusive copies of one-time packages, round-robin over the core one-time list.
  const int target = std::min(std::max(options.catalog_size, kNumCorePackages), kMaxCatalogSize);
  for (int k = 0; kNumCorePackages + k < target; ++k) {
    const uint32_t base = one_time_core[k % one_time_core.size()];
    const int round = k / static_cast<int>(one_time_core.size()) + 1;
    CatalogItem item = table.catalog.items()[base];
    item.item_id += "-APP";
    if (round > 1) item.item_id += std::to_string(round);
    item.name += " (app exclusive)";
    // Rounded to 100 IDR.
    auto price_idr =
        static_cast<int64_t>(std::llround(item.price * kAppVariantPriceFactor / 100.0) * 100);
    item.price = static_cast<double>(price_idr);
    item.channels = ChannelList(Bit(kApp));
    Package package = table.packages[base];
    package.price_cents = price_idr * 100;
    package.channel_mask = Bit(kApp);
    package.app_variants.clear();
    auto index = static_cast<uint32_t>(table.packages.size());
    table.packages.push_back(std::move(package));
    table.packages[base].app_variants.push_back(index);
    table.catalog.Add(std::move(item));
  }
  return table;
}

// ---- output formatting ------------------------------------------------------------------------

// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
void CivilFromDays(int64_t z, int64_t* year, unsigned* month, unsigned* day) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *day = doy - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = static_cast<int64_t>(yoe) + era * 400 + (*month <= 2 ? 1 : 0);
}

void AppendTwoDigits(unsigned value, std::string* out) {
  out->push_back(static_cast<char>('0' + value / 10));
  out->push_back(static_cast<char>('0' + value % 10));
}

void AppendInt(uint64_t value, std::string* out) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  (void)ec;
  out->append(buf, ptr);
}

// Appends `value` zero-padded to at least `width` digits.
void AppendPadded(uint64_t value, int width, std::string* out) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  (void)ec;
  for (int n = static_cast<int>(ptr - buf); n < width; ++n) out->push_back('0');
  out->append(buf, ptr);
}

// "123.45" from cents (non-negative).
void AppendMoney(int64_t cents, std::string* out) {
  AppendInt(static_cast<uint64_t>(cents / 100), out);
  out->push_back('.');
  AppendTwoDigits(static_cast<unsigned>(cents % 100), out);
}

// "YYYY-MM-DD hh:mm:ss" (UTC) for whole seconds since the epoch; caches the date part, which
// changes rarely because events come in time order.
class TimestampFormatter {
 public:
  void Append(int64_t epoch_s, std::string* out) {
    int64_t days = epoch_s >= 0 ? epoch_s / 86400 : -((-epoch_s + 86399) / 86400);
    auto second_of_day = static_cast<unsigned>(epoch_s - days * 86400);
    if (days != cached_day_ || date_.empty()) {
      int64_t year;
      unsigned month, day;
      CivilFromDays(days, &year, &month, &day);
      date_.clear();
      AppendPadded(static_cast<uint64_t>(year < 0 ? 0 : year), 4, &date_);
      date_.push_back('-');
      AppendTwoDigits(month, &date_);
      date_.push_back('-');
      AppendTwoDigits(day, &date_);
      date_.push_back(' ');
      cached_day_ = days;
    }
    out->append(date_);
    AppendTwoDigits(second_of_day / 3600, out);
    out->push_back(':');
    AppendTwoDigits(second_of_day / 60 % 60, out);
    out->push_back(':');
    AppendTwoDigits(second_of_day % 60, out);
  }

 private:
  int64_t cached_day_ = 0;
  std::string date_;
};

// ---- simulation ---------------------------------------------------------------------------------

struct CustomerState {
  int64_t next_one_time_s = kNever;  // seconds after the feed start
  int64_t next_renewal_s = kNever;   // kNever: no subscription
  int64_t lapse_at_s = kNever;       // lapsing persona: when buying stops
  double one_time_gap_s = 0;         // mean gap between one-time purchases
  double unsubscribed_gap_s = 0;     // the same once without a subscription
  float tier = 0;                    // preferred ladder position, 0..1
  int32_t subscription = -1;         // package index of the recurring package held
  uint8_t persona = 0;
  uint8_t subscription_channel = 0;
  bool dormant = false;
};

// Binary min-heap of (time, customer) with an in-place replace-top; ties go to the lower
// customer index so the order is fully determined.
class EventHeap {
 public:
  struct Entry {
    int64_t time_s;
    uint32_t customer;
  };
  void Reserve(size_t n) { heap_.reserve(n); }
  void Push(Entry e) {
    heap_.push_back(e);
    size_t i = heap_.size() - 1;
    while (i > 0) {
      size_t parent = (i - 1) / 2;
      if (!Less(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  const Entry& Top() const { return heap_.front(); }
  bool empty() const { return heap_.empty(); }
  // Replaces the smallest entry by `e` and restores the heap.
  void ReplaceTop(Entry e) {
    const size_t n = heap_.size();
    size_t i = 0;
    while (true) {
      size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && Less(heap_[child + 1], heap_[child])) ++child;
      if (!Less(heap_[child], e)) break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = e;
  }

 private:
  static bool Less(const Entry& a, const Entry& b) {
    return a.time_s < b.time_s || (a.time_s == b.time_s && a.customer < b.customer);
  }
  std::vector<Entry> heap_;
};

class FeedSimulation {
 public:
  FeedSimulation(const TelcoGeneratorOptions& options, const PackageTable& table)
      : options_(options), table_(table), random_(options.seed) {}

  Status Run(LineWriter* writer, const GeneratorProgress& progress);

 private:
  void InitCustomers();
  // Moves a one-time time drawn at night (local) to the morning, usually.
  int64_t ShiftOutOfNight(int64_t t_s);
  void ScheduleOneTime(CustomerState* c, int64_t now_s);
  void ScheduleRenewal(CustomerState* c, int64_t now_s);
  uint32_t PickOneTimePackage(CustomerState* c, int* channel);
  int PickChannel(const Persona& persona, uint8_t mask);
  int64_t DrawDiscountCents(const Persona& persona, int channel, int64_t price_cents, double scale);
  void AppendEvent(uint32_t customer, uint32_t package, int64_t time_s, int channel,
                   int64_t discount_cents);

  const TelcoGeneratorOptions& options_;
  const PackageTable& table_;
  Random random_;
  std::vector<CustomerState> customers_;
  EventHeap heap_;
  double span_s_ = 0;
  int msisdn_digits_ = 7;
  uint64_t msisdn_modulus_ = 10000000;
  uint64_t next_event_id_ = 1;
  std::string block_;  // lines waiting to be written, each ending in '\n'
  TimestampFormatter timestamps_;
};

void FeedSimulation::InitCustomers() {
  const double per_customer =
      static_cast<double>(options_.events) / static_cast<double>(options_.customers);
  const double span_days = std::clamp(90.0 * std::sqrt(per_customer / 12.0), 7.0, 365.0);
  span_s_ = span_days * 86400.0;

  // Calibrate so that the expected purchases over the span sum to options.events.
  double weighted_activity = 0;
  for (const Persona& p : kPersonas) {
    double active = 1.0;
    if (p.window == Window::kLapsing) active = (kLapseFrom + kLapseTo) / 2;
    if (p.window == Window::kNewJoiner) active = 1.0 - (kJoinFrom + kJoinTo) / 2;
    weighted_activity += p.share * p.intensity * active;
  }
  std::array<double, kNumPersonas> shares;
  for (int i = 0; i < kNumPersonas; ++i) shares[i] = kPersonas[i].share;

  customers_.resize(options_.customers);
  heap_.Reserve(options_.customers);
  for (uint64_t i = 0; i < options_.customers; ++i) {
    CustomerState& c = customers_[i];
    c.persona = static_cast<uint8_t>(random_.Categorical(shares));
    const Persona& persona = kPersonas[c.persona];
    c.tier = static_cast<float>(
        std::clamp(persona.tier + random_.Uniform(-kTierSpread, kTierSpread), 0.0, 1.0));

    int64_t start_s = 0;
    if (persona.window == Window::kNewJoiner) {
      start_s = static_cast<int64_t>(random_.Uniform(kJoinFrom, kJoinTo) * span_s_);
    } else if (persona.window == Window::kLapsing) {
      c.lapse_at_s = static_cast<int64_t>(random_.Uniform(kLapseFrom, kLapseTo) * span_s_);
    }

    const double rate_per_day = per_customer * persona.intensity / (span_days * weighted_activity);
    double one_time_rate = rate_per_day;
    if (random_.Bernoulli(persona.subscription_probability)) {
      std::array<double, kNumServiceTypes> mix = persona.type_mix;
      uint32_t mask = 0;
      for (int t = 0; t < kNumServiceTypes; ++t) {
        if (!table_.recurring_ladder[t].empty()) mask |= 1u << t;
      }
      int type = random_.Categorical(mix, mask);
      const std::vector<uint32_t>& ladder = table_.recurring_ladder[type];
      auto rung = static_cast<size_t>(std::lround(c.tier * (ladder.size() - 1)));
      c.subscription = static_cast<int32_t>(ladder[std::min(rung, ladder.size() - 1)]);
      const Package& package = table_.packages[c.subscription];
      c.subscription_channel = static_cast<uint8_t>(PickChannel(persona, package.channel_mask));
      const double validity_s = package.validity_days * 86400.0;
      // Existing subscribers are mid-cycle; new joiners subscribe within their first week.
      c.next_renewal_s = start_s + static_cast<int64_t>(persona.window == Window::kNewJoiner
                                                            ? random_.Uniform(0, 7 * 86400.0)
                                                            : random_.Uniform(0, validity_s));
      const double renewal_rate = 1.0 / package.validity_days;
      one_time_rate = std::max(rate_per_day - renewal_rate, 0.2 * rate_per_day);
    }
    c.one_time_gap_s = 86400.0 / one_time_rate;
    c.unsubscribed_gap_s = 86400.0 / rate_per_day;
    ScheduleOneTime(&c, start_s);
    heap_.Push({std::min(c.next_one_time_s, c.next_renewal_s), static_cast<uint32_t>(i)});
  }

  msisdn_digits_ = 7;
  msisdn_modulus_ = 10000000;
  while (msisdn_modulus_ < options_.customers) {
    msisdn_modulus_ *= 10;
    ++msisdn_digits_;
  }
}

int64_t FeedSimulation::ShiftOutOfNight(int64_t t_s) {
  const int64_t local_s = options_.start_time_ms / 1000 + t_s + kLocalUtcOffsetS;
  const int64_t hour = ((local_s % 86400) + 86400) % 86400 / 3600;
  if (hour < 6 && random_.Bernoulli(kNightShiftProbability)) {
    t_s += (6 - hour) * 3600 + static_cast<int64_t>(random_.Uniform(0, 12 * 3600.0));
  }
  return t_s;
}

void FeedSimulation::ScheduleOneTime(CustomerState* c, int64_t now_s) {
  double gap = c->dormant ? kDormantGapSpans * span_s_ : c->one_time_gap_s;
  int64_t t = now_s + 1 + static_cast<int64_t>(random_.Exponential(gap));
  c->next_one_time_s = ShiftOutOfNight(t);
}

void FeedSimulation::ScheduleRenewal(CustomerState* c, int64_t now_s) {
  double u = random_.Uniform();
  if (u < kCancelProbability) {
    c->subscription = -1;
    c->next_renewal_s = kNever;
    return;
  }
  const Package& package = table_.packages[c->subscription];
  int64_t t = now_s + package.validity_days * 86400LL;
  if (u < kCancelProbability + kLateProbability) {
    t += static_cast<int64_t>(random_.Uniform(0, static_cast<double>(kLateRenewalMaxS)));
  } else {
    t += static_cast<int64_t>(random_.Uniform(0, static_cast<double>(kOnTimeJitterS)));
  }
  c->next_renewal_s = t;
}

int FeedSimulation::PickChannel(const Persona& persona, uint8_t mask) {
  return random_.Categorical(persona.channel_mix, mask);
}

uint32_t FeedSimulation::PickOneTimePackage(CustomerState* c, int* channel) {
  const Persona& persona = kPersonas[c->persona];
  uint32_t mask = 0;
  for (int t = 0; t < kNumServiceTypes; ++t) {
    if (!table_.one_time_ladder[t].empty()) mask |= 1u << t;
  }
  const int type = random_.Categorical(persona.type_mix, mask);
  const std::vector<uint32_t>& ladder = table_.one_time_ladder[type];
  const auto top = static_cast<int64_t>(ladder.size()) - 1;
  int64_t rung = std::lround(c->tier * static_cast<double>(top));
  if (random_.Bernoulli(kRungJitterProbability)) rung += random_.Bernoulli(0.5) ? 1 : -1;
  rung = std::clamp<int64_t>(rung, 0, top);
  uint32_t package = ladder[rung];
  *channel = PickChannel(persona, table_.packages[package].channel_mask);
  const std::vector<uint32_t>& variants = table_.packages[package].app_variants;
  if (*channel == kApp && !variants.empty() && random_.Bernoulli(kAppVariantChoice)) {
    package = variants[random_.Below(variants.size())];
  }
  return package;
}

int64_t FeedSimulation::DrawDiscountCents(const Persona& persona, int channel, int64_t price_cents,
                                          double scale) {
  if (!random_.Bernoulli(kPromoChance[channel] * persona.promo_affinity * scale)) return 0;
  const double percent = kPromoPercent[random_.Categorical(kPromoPercentWeight)];
  // Whole hundreds of IDR, at least 100 IDR, never the whole price.
  int64_t discount = std::llround(static_cast<double>(price_cents) * percent / 10000.0) * 10000;
  return std::min<int64_t>(std::max<int64_t>(discount, 10000), price_cents / 2);
}

void FeedSimulation::AppendEvent(uint32_t customer, uint32_t package, int64_t time_s, int channel,
                                 int64_t discount_cents) {
  const uint64_t msisdn =
      (static_cast<uint64_t>(customer) * kMsisdnMultiplier + kMsisdnOffset) % msisdn_modulus_;
  const int64_t price_cents = table_.packages[package].price_cents;
  block_.append(kMsisdnPrefix);
  AppendPadded(msisdn, msisdn_digits_, &block_);
  block_.push_back(',');
  block_.append(table_.catalog.items()[package].item_id);
  block_.push_back(',');
  timestamps_.Append(options_.start_time_ms / 1000 + time_s, &block_);
  block_.append(",1,");
  AppendMoney(price_cents, &block_);
  block_.push_back(',');
  AppendMoney(price_cents - discount_cents, &block_);
  block_.push_back(',');
  block_.append(kChannelNames[channel]);
  block_.push_back(',');
  AppendMoney(discount_cents, &block_);
  block_.append(",e");
  AppendPadded(next_event_id_++, 10, &block_);
  block_.push_back('\n');
}

Status FeedSimulation::Run(LineWriter* writer, const GeneratorProgress& progress) {
  constexpr size_t kBlockBytes = 1 << 16;
  block_.reserve(kBlockBytes + 512);
  auto flush_block = [&]() -> Status {
    if (block_.empty()) return Status::OK();
    // LineWriter::Write appends the final '\n' itself.
    Status s = writer->Write(std::string_view(block_.data(), block_.size() - 1));
    block_.clear();
    return s;
  };

  if (options_.events > 0) InitCustomers();
  uint64_t written = 0;
  while (written < options_.events) {
    const EventHeap::Entry top = heap_.Top();
    CustomerState& c = customers_[top.customer];
    const Persona& persona = kPersonas[c.persona];
    const int64_t now = top.time_s;

    if (!c.dormant && now >= c.lapse_at_s) {
      // Lapsed: the subscription ends, purchases become rare win-backs.
      c.dormant = true;
      c.subscription = -1;
      c.next_renewal_s = kNever;
      ScheduleOneTime(&c, now);
      heap_.ReplaceTop({c.next_one_time_s, top.customer});
      continue;
    }

    uint32_t package;
    int channel;
    int64_t discount;
    if (c.next_renewal_s <= c.next_one_time_s) {
      // Renewal of the recurring package, sometimes one rung up.
      if (random_.Bernoulli(persona.upgrade_probability)) {
        const Package& held = table_.packages[c.subscription];
        const std::vector<uint32_t>& ladder = table_.recurring_ladder[held.type];
        auto it = std::find(ladder.begin(), ladder.end(), static_cast<uint32_t>(c.subscription));
        if (it != ladder.end() && it + 1 != ladder.end()) {
          c.subscription = static_cast<int32_t>(*(it + 1));
        }
      }
      package = static_cast<uint32_t>(c.subscription);
      channel = c.subscription_channel;
      if (!(table_.packages[package].channel_mask & (1u << channel))) {
        channel = PickChannel(persona, table_.packages[package].channel_mask);
        c.subscription_channel = static_cast<uint8_t>(channel);
      }
      discount = DrawDiscountCents(persona, channel, table_.packages[package].price_cents, 0.5);
      ScheduleRenewal(&c, now);
      if (c.next_renewal_s == kNever && !c.dormant) {
        // Cancelled: the subscriber now relies on one-time top-ups at the full rate.
        c.one_time_gap_s = c.unsubscribed_gap_s;
      }
    } else {
      package = PickOneTimePackage(&c, &channel);
      discount = DrawDiscountCents(persona, channel, table_.packages[package].price_cents, 1.0);
      if (random_.Bernoulli(persona.upgrade_probability)) {
        c.tier = std::min(1.0f, c.tier + static_cast<float>(kTierStep));
      }
      ScheduleOneTime(&c, now);
    }
    AppendEvent(top.customer, package, now, channel, discount);
    heap_.ReplaceTop({std::min(c.next_one_time_s, c.next_renewal_s), top.customer});

    ++written;
    // Progress counts events handed to the writer; a last call reports completion.
    const bool report = progress && written % kProgressEvery == 0;
    if (block_.size() >= kBlockBytes || report) STREAMREC_RETURN_IF_ERROR(flush_block());
    if (report) progress(written, options_.events);
  }
  STREAMREC_RETURN_IF_ERROR(flush_block());
  if (progress && written > 0 && written % kProgressEvery != 0) {
    progress(written, options_.events);
  }
  return Status::OK();
}

}  // namespace

Catalog TelcoCatalog(const TelcoGeneratorOptions& options) {
  return BuildPackages(options).catalog;
}

Status GenerateTelcoFeed(const TelcoGeneratorOptions& options, const std::string& events_path,
                         const std::string& catalog_path, const GeneratorProgress& progress) {
  if (options.events > 0 && options.customers == 0) {
    return Status::InvalidArgument("generator: customers must be >= 1 when events > 0 (got 0)");
  }
  if (options.customers > kMaxCustomers) {
    return Status::InvalidArgument(
        "generator: customers must be <= " + std::to_string(kMaxCustomers) + " (got " +
        std::to_string(options.customers) + ")");
  }
  const PackageTable table = BuildPackages(options);
  STREAMREC_RETURN_IF_ERROR(table.catalog.WriteCsv(catalog_path));

  auto writer_or = LineWriter::Open(events_path);
  if (!writer_or.ok()) return writer_or.status();
  LineWriter& writer = **writer_or;
  STREAMREC_RETURN_IF_ERROR(writer.Write(kEventsHeader));
  FeedSimulation simulation(options, table);
  STREAMREC_RETURN_IF_ERROR(simulation.Run(&writer, progress));
  return writer.Close();
}

}  // namespace streamrec
