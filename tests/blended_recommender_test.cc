// The blended recommender's ALS re-fits (Recommender::UpdateModel): synchronous by default,
// or on a background thread from a store snapshot, installed by a later batch, with triggers
// coalesced, errors logged, and a clean stop with a fit in flight. Tests wait on conditions with
// deadlines; a gate holds a background fit at its start where the order of events matters.
#include "streamrec/blended_recommender.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>

#include "background_thread.h"
#include "streamrec/features.h"
#include "streamrec/state_store.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

constexpr int64_t kWaitMs = 60000;
constexpr int64_t kT0 = 1700000000000;  // 2023-11-14

// A customer who bought `items`, one a day.
CustomerState Customer(const std::string& id, const std::vector<std::string>& items) {
  CustomerState s = NewCustomerState(id);
  int64_t t = kT0;
  for (const std::string& item : items) {
    ApplyEvent(FeatureOptions(), testing::Purchase(id, item, t), nullptr, &s);
    t += 86400000;
  }
  return s;
}

// Two tastes, {a1..a4} and {b1..b4}: 16 customers holding three of their group's items.
std::vector<CustomerState> TwoTastes() {
  std::vector<CustomerState> out;
  for (const char* p : {"a", "b"}) {
    for (int c = 0; c < 8; ++c) {
      std::vector<std::string> items;
      for (int k = 0; k < 3; ++k) items.push_back(p + std::to_string(1 + (c + k) % 4));
      out.push_back(Customer(p + std::string("cust") + std::to_string(c), items));
    }
  }
  return out;
}

void Store(StateStore* store, const std::vector<CustomerState>& customers) {
  WriteSet w;
  for (const CustomerState& c : customers) {
    w.Put(Column::kCustomers, PartitionKey(0, c.customer_id()), EncodeState(c));
  }
  ASSERT_OK(store->Write(w));
}

RecommenderOptions AlsOnly() {
  RecommenderOptions o;
  o.weights = "als=1";
  o.segment_weights = "";
  o.list_length = 3;
  o.als_factors = 2;
  o.als_iterations = 10;
  o.als_threads = 2;
  return o;
}

// The value `writes` puts at model key `key`: "<none>" when it does not touch the key,
// "<deleted>" when its last operation on the key is a delete.
std::string ModelWrite(const WriteSet& writes, const std::string& key) {
  std::string value = "<none>";
  for (const WriteSet::Op& op : writes.ops()) {
    if (op.column == Column::kModel && op.key == key) value = op.is_delete ? "<deleted>" : op.value;
  }
  return value;
}

class RecordingLogger : public Logger {
 public:
  void Log(LogLevel level, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(std::string(level == LogLevel::kError ? "E " : "I ") + std::string(message));
  }
  std::string All() {
    std::lock_guard<std::mutex> lock(mu);
    std::string out;
    for (const std::string& l : lines) out += l + "\n";
    return out;
  }
  std::mutex mu;
  std::vector<std::string> lines;
};

// Holds background fits at their start until opened. Its state is shared with the hook, and the
// gate opens when it goes away: declared after the recommender, a failed test cannot leave a
// fit waiting on a gate nobody opens while the recommender's destructor joins it.
class FitGate {
 public:
  ~FitGate() { Open(); }
  std::function<void(const std::atomic<bool>&)> Hook() const {
    return [state = state_](const std::atomic<bool>&) {
      std::unique_lock<std::mutex> lock(state->mu);
      ++state->entered;
      state->cv.notify_all();
      state->cv.wait(lock, [&] { return state->open; });
    };
  }
  void Open() {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->open = true;
    state_->cv.notify_all();
  }
  // Waits until `n` fits reached the gate.
  bool WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(state_->mu);
    return state_->cv.wait_for(lock, std::chrono::milliseconds(kWaitMs),
                               [&] { return state_->entered >= n; });
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int entered = 0;
    bool open = false;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

AlsRefitOptions Background(std::shared_ptr<Logger> logger = NewNullLogger(),
                           std::function<void(const std::atomic<bool>&)> hook = nullptr) {
  AlsRefitOptions o;
  o.background = true;
  o.logger = std::move(logger);
  o.on_fit_start = std::move(hook);
  return o;
}

// A recommender re-fitting in the background whose fits wait at `gate`. Declare the pointer
// before the gate, so the gate opens before the recommender's destructor joins its fit.
std::unique_ptr<Recommender> GatedRecommender(const FitGate& gate) {
  auto r = NewBlendedRecommender(AlsOnly(), nullptr, Background(NewNullLogger(), gate.Hook()));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(BlendedRecommenderRefitTest, SynchronousByDefault) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  ASSERT_OK_AND_ASSIGN(r, NewBlendedRecommender(AlsOnly(), nullptr));
  WriteSet none;
  ASSERT_OK(r->UpdateModel(store.get(), {}, /*refit_due=*/false, &none));
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(r->model_version(), 0u);
  WriteSet w;
  ASSERT_OK(r->UpdateModel(store.get(), {}, /*refit_due=*/true, &w));
  EXPECT_NE(ModelWrite(w, "als"), "<none>");
  EXPECT_EQ(ModelWrite(w, "als_version"), "1");
  EXPECT_EQ(ModelWrite(w, "als_refit_due"), "<none>") << "a synchronous fit stores no trigger";
  EXPECT_EQ(r->model_version(), 1u);
  EXPECT_EQ(r->refit_stats().installed, 1u);
  EXPECT_EQ(r->refit_stats().started, 0u);
}

// One ALS model for several instances (kafka.model_topic): the refitter hands every version it
// fits to on_model_fitted; a follower never fits, adopts what it is offered (newer versions, or
// another fit of its own version) and stores it; the refitter adopts only newer versions.
TEST(BlendedRecommenderRefitTest, FollowerAdoptsTheRefittersAlsVersionsAndNeverFits) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  ASSERT_OK_AND_ASSIGN(refitter, NewBlendedRecommender(AlsOnly(), nullptr));
  std::vector<std::pair<uint64_t, std::string>> fitted;
  refitter->set_on_model_fitted([&](uint64_t version, const std::string& encoded) {
    fitted.emplace_back(version, encoded);
  });
  WriteSet w1;
  ASSERT_OK(refitter->UpdateModel(store.get(), {}, true, &w1));
  ASSERT_EQ(fitted.size(), 1u);
  EXPECT_EQ(fitted[0].first, 1u);
  EXPECT_EQ(fitted[0].second, ModelWrite(w1, "als")) << "the encoding the store holds";

  auto follower_store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(follower_store.get(), TwoTastes()));
  ASSERT_OK_AND_ASSIGN(follower, NewBlendedRecommender(AlsOnly(), nullptr, Background()));
  follower->SetModelRefitter(false);
  WriteSet none;
  ASSERT_OK(follower->UpdateModel(follower_store.get(), {}, true, &none));
  EXPECT_TRUE(follower->WaitForBackgroundRefit(kWaitMs));
  EXPECT_TRUE(none.empty()) << "a follower neither fits nor stores a trigger";
  EXPECT_EQ(follower->refit_stats().started, 0u);
  EXPECT_EQ(follower->model_version(), 0u);
  EXPECT_FALSE(follower->AdoptOffered(&none)) << "nothing offered yet";

  Status bad = follower->OfferModel(7, "not a model");
  EXPECT_TRUE(bad.IsInvalidArgument()) << bad.ToString();
  EXPECT_NE(bad.message().find("ALS model v7"), std::string::npos) << bad.ToString();
  ASSERT_OK(follower->OfferModel(1, fitted[0].second));
  WriteSet adopted;
  ASSERT_TRUE(follower->AdoptOffered(&adopted));
  EXPECT_EQ(follower->model_version(), 1u);
  EXPECT_EQ(follower->models_adopted(), 1u);
  EXPECT_EQ(ModelWrite(adopted, "als"), fitted[0].second);
  EXPECT_EQ(ModelWrite(adopted, "als_version"), "1");
  WriteSet again;
  EXPECT_FALSE(follower->AdoptOffered(&again)) << "the same offer is adopted once";
  ASSERT_OK(follower_store->Write(adopted));

  // The follower's lists use the adopted model: the same as the refitter's.
  const CustomerState me = Customer("me", {"b1", "b2"});
  ItemStatsTable stats;
  std::vector<Recommendation> want, got;
  for (const CustomerState& c : TwoTastes()) {
    refitter->ObserveChange(nullptr, c);
    follower->ObserveChange(nullptr, c);
  }
  refitter->BeginBatch(stats, kT0);
  refitter->Recommend(me, &want);
  follower->BeginBatch(stats, kT0);
  follower->Recommend(me, &got);
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i].item_id, want[i].item_id);

  // Kept across a restart.
  ASSERT_OK_AND_ASSIGN(restarted, NewBlendedRecommender(AlsOnly(), nullptr));
  ASSERT_OK(restarted->LoadModel(follower_store.get()));
  EXPECT_EQ(restarted->model_version(), 1u);

  // Versions only go forward; the refitter never takes its own version back.
  ASSERT_OK(follower->OfferModel(0, fitted[0].second));
  EXPECT_FALSE(follower->AdoptOffered(&again));
  ASSERT_OK(refitter->OfferModel(1, fitted[0].second));
  EXPECT_FALSE(refitter->AdoptOffered(&again));
  EXPECT_TRUE(again.empty());
  // Promoted, the follower fits, numbering after the version it adopted.
  follower->SetModelRefitter(true);
  WriteSet own;
  ASSERT_OK(follower->UpdateModel(follower_store.get(), {}, true, &own));
  ASSERT_TRUE(follower->WaitForBackgroundRefit(kWaitMs));
  ASSERT_OK(follower->UpdateModel(follower_store.get(), {}, false, &own));
  EXPECT_EQ(follower->model_version(), 2u);
}

TEST(BlendedRecommenderRefitTest, FitsASampleOfCustomersThatDependsOnlyOnWhoTheyAre) {
  // 16 stored customers, a cap of 6: the fit reads the 6 whose ids hash lowest.
  RecommenderOptions capped = AlsOnly();
  capped.als_max_customers = 6;
  capped.als_warm_iterations = 0;
  auto all_stored = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(all_stored.get(), TwoTastes()));
  ASSERT_OK_AND_ASSIGN(a, NewBlendedRecommender(capped, nullptr));
  WriteSet wa;
  ASSERT_OK(a->RefitModel(all_stored.get(), {}, &wa));
  ASSERT_NE(ModelWrite(wa, "als"), "<none>");

  // The same customers, half of them in the batch instead of the store: the same sample, the
  // same model, bit for bit.
  std::vector<CustomerState> customers = TwoTastes();
  auto half_stored = NewMemStateStore();
  std::vector<CustomerState> stored(customers.begin(), customers.begin() + 8);
  std::vector<CustomerState> batch(customers.begin() + 8, customers.end());
  ASSERT_NO_FATAL_FAILURE(Store(half_stored.get(), stored));
  ASSERT_OK_AND_ASSIGN(b, NewBlendedRecommender(capped, nullptr));
  WriteSet wb;
  ASSERT_OK(b->RefitModel(half_stored.get(), batch, &wb));
  EXPECT_TRUE(ModelWrite(wa, "als") == ModelWrite(wb, "als"));

  // Without the cap the fit reads all 16 and differs.
  RecommenderOptions all = capped;
  all.als_max_customers = 0;
  ASSERT_OK_AND_ASSIGN(c, NewBlendedRecommender(all, nullptr));
  WriteSet wc;
  ASSERT_OK(c->RefitModel(all_stored.get(), {}, &wc));
  EXPECT_FALSE(ModelWrite(wa, "als") == ModelWrite(wc, "als"));
  // A cap above the population is no cap.
  all.als_max_customers = 100;
  ASSERT_OK_AND_ASSIGN(d, NewBlendedRecommender(all, nullptr));
  WriteSet wd;
  ASSERT_OK(d->RefitModel(all_stored.get(), {}, &wd));
  EXPECT_TRUE(ModelWrite(wc, "als") == ModelWrite(wd, "als"));
}

TEST(BlendedRecommenderRefitTest, ReFitsStartFromTheModelInUse) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  RecommenderOptions o = AlsOnly();
  o.als_warm_iterations = 2;
  ASSERT_OK_AND_ASSIGN(warm, NewBlendedRecommender(o, nullptr));
  o.als_warm_iterations = 0;
  ASSERT_OK_AND_ASSIGN(cold, NewBlendedRecommender(o, nullptr));
  WriteSet w1, c1;
  ASSERT_OK(warm->RefitModel(store.get(), {}, &w1));
  ASSERT_OK(cold->RefitModel(store.get(), {}, &c1));
  EXPECT_TRUE(ModelWrite(w1, "als") == ModelWrite(c1, "als")) << "the first fit starts cold";
  WriteSet w2, c2;
  ASSERT_OK(warm->RefitModel(store.get(), {}, &w2));
  ASSERT_OK(cold->RefitModel(store.get(), {}, &c2));
  EXPECT_TRUE(ModelWrite(c1, "als") == ModelWrite(c2, "als")) << "a cold re-fit repeats itself";
  EXPECT_FALSE(ModelWrite(w1, "als") == ModelWrite(w2, "als")) << "a warm one continues";
  EXPECT_EQ(warm->model_version(), 2u);
}

TEST(BlendedRecommenderRefitTest, BackgroundFitEqualsTheSynchronousFitOfTheTriggerSnapshot) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  // The batch: a stored customer with one more item, and a newcomer (not yet written).
  const std::vector<CustomerState> batch = {Customer("acust0", {"a1", "a2", "a3", "a4"}),
                                            Customer("new", {"b1", "b2"})};
  ASSERT_OK_AND_ASSIGN(sync, NewBlendedRecommender(AlsOnly(), nullptr));
  WriteSet expected;
  ASSERT_OK(sync->RefitModel(store.get(), batch, &expected));
  ASSERT_NE(ModelWrite(expected, "als"), "<none>");

  ASSERT_OK_AND_ASSIGN(bg, NewBlendedRecommender(AlsOnly(), nullptr, Background()));
  WriteSet trigger;
  ASSERT_OK(bg->UpdateModel(store.get(), batch, /*refit_due=*/true, &trigger));
  EXPECT_EQ(ModelWrite(trigger, "als"), "<none>") << "the triggering batch does not wait";
  EXPECT_EQ(ModelWrite(trigger, "als_refit_due"), "") << "the trigger is stored with the batch";
  EXPECT_EQ(bg->model_version(), 0u);
  ASSERT_TRUE(bg->WaitForBackgroundRefit(kWaitMs));
  WriteSet install;
  ASSERT_OK(bg->UpdateModel(store.get(), {}, /*refit_due=*/false, &install));
  EXPECT_TRUE(ModelWrite(install, "als") == ModelWrite(expected, "als")) << "bit-identical model";
  EXPECT_EQ(ModelWrite(install, "als_version"), "1");
  EXPECT_EQ(ModelWrite(install, "als_refit_due"), "<deleted>");
  EXPECT_EQ(bg->model_version(), 1u);
}

// A background fit runs at recommend.als_refit_nice on a thread named for it (its worker pool
// inherits the priority); the thread that triggered it keeps its own.
TEST(BlendedRecommenderRefitTest, BackgroundFitRunsAtTheConfiguredLowerPriority) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  const int own = ThisThreadNice();
  RecommenderOptions options = AlsOnly();
  options.als_refit_nice = std::min(own + 5, 19);
  std::atomic<int> nice{-1};
  std::string name;
  ASSERT_OK_AND_ASSIGN(
      bg, NewBlendedRecommender(options, nullptr,
                                Background(NewNullLogger(), [&](const std::atomic<bool>&) {
                                  char buf[16] = {};
                                  pthread_getname_np(pthread_self(), buf, sizeof(buf));
                                  name = buf;
                                  nice = ThisThreadNice();
                                })));
  WriteSet trigger;
  ASSERT_OK(bg->UpdateModel(store.get(), {}, /*refit_due=*/true, &trigger));
  ASSERT_TRUE(bg->WaitForBackgroundRefit(kWaitMs));
  EXPECT_EQ(nice.load(), options.als_refit_nice);
  EXPECT_EQ(name, "sr-als-fit");
  EXPECT_EQ(ThisThreadNice(), own);
  WriteSet install;
  ASSERT_OK(bg->UpdateModel(store.get(), {}, /*refit_due=*/false, &install));
  EXPECT_EQ(bg->model_version(), 1u) << "the fit at the lower priority is installed";
}

TEST(BlendedRecommenderRefitTest, BackgroundFitReadsTheStoreAsOfTheTrigger) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  ASSERT_OK_AND_ASSIGN(sync, NewBlendedRecommender(AlsOnly(), nullptr));
  WriteSet expected;
  ASSERT_OK(sync->RefitModel(store.get(), {}, &expected));

  std::unique_ptr<Recommender> bg;
  FitGate gate;
  ASSERT_NE(bg = GatedRecommender(gate), nullptr);
  WriteSet trigger;
  ASSERT_OK(bg->UpdateModel(store.get(), {}, /*refit_due=*/true, &trigger));
  ASSERT_TRUE(gate.WaitEntered(1));
  // The store moves on while the fit waits at its start: later batches are not in its input.
  ASSERT_OK(store->Write(trigger));
  ASSERT_NO_FATAL_FAILURE(Store(
      store.get(), {Customer("late", {"a1", "b1", "b2", "b3"}), Customer("bcust0", {"a1", "a2"})}));
  gate.Open();
  ASSERT_TRUE(bg->WaitForBackgroundRefit(kWaitMs));
  WriteSet install;
  ASSERT_OK(bg->UpdateModel(store.get(), {}, /*refit_due=*/false, &install));
  EXPECT_TRUE(ModelWrite(install, "als") == ModelWrite(expected, "als"));
  // (the later writes do change a fit: a synchronous one on the store now differs)
  WriteSet now;
  ASSERT_OK(sync->RefitModel(store.get(), {}, &now));
  EXPECT_FALSE(ModelWrite(now, "als") == ModelWrite(expected, "als"));
}

TEST(BlendedRecommenderRefitTest, TriggersDuringAFitAreCoalescedIntoOneMoreFit) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  std::unique_ptr<Recommender> held;
  FitGate gate;
  ASSERT_NE(held = GatedRecommender(gate), nullptr);

  WriteSet w;
  ASSERT_OK(held->UpdateModel(store.get(), {}, true, &w));
  ASSERT_TRUE(gate.WaitEntered(1));
  for (int i = 0; i < 3; ++i) {
    WriteSet more;
    ASSERT_OK(held->UpdateModel(store.get(), {}, /*refit_due=*/i < 2, &more));
    EXPECT_EQ(ModelWrite(more, "als"), "<none>") << "nothing finished yet";
  }
  ModelRefitStats stats = held->refit_stats();
  EXPECT_EQ(stats.started, 1u);
  EXPECT_EQ(stats.coalesced, 2u);
  EXPECT_TRUE(stats.running);
  EXPECT_TRUE(stats.pending);

  gate.Open();
  ASSERT_TRUE(held->WaitForBackgroundRefit(kWaitMs));
  // The next batch installs the first fit and starts the one the triggers were folded into; the
  // stored trigger stays until that one is installed too.
  WriteSet first;
  ASSERT_OK(held->UpdateModel(store.get(), {}, false, &first));
  EXPECT_NE(ModelWrite(first, "als"), "<none>");
  EXPECT_EQ(ModelWrite(first, "als_version"), "1");
  EXPECT_EQ(ModelWrite(first, "als_refit_due"), "<none>");
  stats = held->refit_stats();
  EXPECT_EQ(stats.started, 2u);
  EXPECT_FALSE(stats.pending);
  ASSERT_TRUE(held->WaitForBackgroundRefit(kWaitMs));
  WriteSet second;
  ASSERT_OK(held->UpdateModel(store.get(), {}, false, &second));
  EXPECT_EQ(ModelWrite(second, "als_version"), "2");
  EXPECT_EQ(ModelWrite(second, "als_refit_due"), "<deleted>");
  // Nothing is left to do.
  WriteSet idle;
  ASSERT_OK(held->UpdateModel(store.get(), {}, false, &idle));
  EXPECT_TRUE(idle.empty());
  stats = held->refit_stats();
  EXPECT_EQ(stats.started, 2u);
  EXPECT_EQ(stats.installed, 2u);
  EXPECT_FALSE(stats.running);
  EXPECT_EQ(held->model_version(), 2u);
}

TEST(BlendedRecommenderRefitTest, StopWithAFitInFlightIsCleanAndTheTriggerSurvives) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  std::promise<void> entered;
  std::atomic<bool> saw_cancel{false};
  auto hook = [&](const std::atomic<bool>& cancel) {
    entered.set_value();
    cancel.wait(false);  // until the recommender asks the fit to stop
    saw_cancel.store(true);
  };
  ASSERT_OK_AND_ASSIGN(
      r, NewBlendedRecommender(AlsOnly(), nullptr, Background(NewNullLogger(), hook)));
  WriteSet trigger;
  ASSERT_OK(r->UpdateModel(store.get(), {}, true, &trigger));
  ASSERT_OK(store->Write(trigger));
  ASSERT_EQ(entered.get_future().wait_for(std::chrono::milliseconds(kWaitMs)),
            std::future_status::ready);
  EXPECT_TRUE(r->refit_stats().running);
  // Destroying it stops the fit and joins the thread, within the deadline.
  auto destroyed = std::async(std::launch::async, [&] { r.reset(); });
  ASSERT_EQ(destroyed.wait_for(std::chrono::milliseconds(kWaitMs)), std::future_status::ready);
  EXPECT_TRUE(saw_cancel.load());

  // The trigger was stored with its batch: after a restart the fit runs again and installs.
  ASSERT_OK_AND_ASSIGN(restarted, NewBlendedRecommender(AlsOnly(), nullptr, Background()));
  ASSERT_OK(restarted->LoadModel(store.get()));
  EXPECT_TRUE(restarted->refit_stats().pending);
  WriteSet start;
  ASSERT_OK(restarted->UpdateModel(store.get(), {}, /*refit_due=*/false, &start));
  EXPECT_EQ(restarted->refit_stats().started, 1u);
  ASSERT_TRUE(restarted->WaitForBackgroundRefit(kWaitMs));
  WriteSet install;
  ASSERT_OK(restarted->UpdateModel(store.get(), {}, false, &install));
  EXPECT_EQ(ModelWrite(install, "als_version"), "1");
  EXPECT_EQ(ModelWrite(install, "als_refit_due"), "<deleted>");
  ASSERT_OK(store->Write(install));
  // Reloaded: the model and its version, no trigger left.
  ASSERT_OK_AND_ASSIGN(again, NewBlendedRecommender(AlsOnly(), nullptr, Background()));
  ASSERT_OK(again->LoadModel(store.get()));
  EXPECT_EQ(again->model_version(), 1u);
  EXPECT_FALSE(again->refit_stats().pending);
}

TEST(BlendedRecommenderRefitTest, FailedBackgroundFitIsLoggedAndTheModelKept) {
  auto store = NewMemStateStore();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), TwoTastes()));
  auto logger = std::make_shared<RecordingLogger>();
  ASSERT_OK_AND_ASSIGN(r, NewBlendedRecommender(AlsOnly(), nullptr, Background(logger)));
  WriteSet w;
  ASSERT_OK(r->UpdateModel(store.get(), {}, true, &w));
  ASSERT_TRUE(r->WaitForBackgroundRefit(kWaitMs));
  ASSERT_OK(r->UpdateModel(store.get(), {}, false, &w));
  ASSERT_OK(store->Write(w));
  ASSERT_EQ(r->model_version(), 1u);
  EXPECT_NE(logger->All().find("I ALS model v1 installed"), std::string::npos) << logger->All();

  // A customer that does not decode makes the next fit fail.
  WriteSet bad;
  bad.Put(Column::kCustomers, PartitionKey(0, "broken"), "garbage");
  ASSERT_OK(store->Write(bad));
  WriteSet trigger;
  ASSERT_OK(r->UpdateModel(store.get(), {}, true, &trigger));
  ASSERT_TRUE(r->WaitForBackgroundRefit(kWaitMs));
  WriteSet after;
  ASSERT_OK(r->UpdateModel(store.get(), {}, false, &after));
  EXPECT_EQ(ModelWrite(after, "als"), "<none>");
  EXPECT_EQ(r->model_version(), 1u);
  EXPECT_EQ(r->refit_stats().failed, 1u);
  const std::string log = logger->All();
  EXPECT_NE(log.find("E ALS background re-fit failed"), std::string::npos) << log;
  EXPECT_NE(log.find("broken"), std::string::npos) << log;
  EXPECT_NE(log.find("keeping model v1"), std::string::npos) << log;
}

TEST(BlendedRecommenderRefitTest, FoldInBetweenRefitsUsesTheInstalledModel) {
  auto store = NewMemStateStore();
  std::vector<CustomerState> customers = TwoTastes();
  ASSERT_NO_FATAL_FAILURE(Store(store.get(), customers));
  ASSERT_OK_AND_ASSIGN(r, NewBlendedRecommender(AlsOnly(), nullptr, Background()));
  for (const CustomerState& c : customers) r->ObserveChange(nullptr, c);
  ItemStatsTable stats;
  const CustomerState me = Customer("me", {"b1", "b2"});
  std::vector<Recommendation> list;
  r->BeginBatch(stats, kT0);
  r->Recommend(me, &list);
  EXPECT_TRUE(list.empty()) << "no model yet";

  WriteSet w;
  ASSERT_OK(r->UpdateModel(store.get(), {}, true, &w));
  ASSERT_TRUE(r->WaitForBackgroundRefit(kWaitMs));
  ASSERT_OK(r->UpdateModel(store.get(), {}, false, &w));
  // A customer the fit never saw is folded in against the installed model.
  r->BeginBatch(stats, kT0);
  r->Recommend(me, &list);
  ASSERT_GE(list.size(), 2u);
  for (const Recommendation& rec : list) EXPECT_EQ(rec.strategy, "als");
  // The two items of the taste not yet owned come first.
  std::set<std::string> first = {list[0].item_id, list[1].item_id};
  EXPECT_EQ(first, (std::set<std::string>{"b3", "b4"}));
}

}  // namespace
}  // namespace streamrec
