#include "background_thread.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <string>
#include <thread>

namespace streamrec {
namespace {

std::string ThisThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

TEST(BackgroundThreadTest, LowersOnlyItsOwnPriorityAndItsChildrenInheritIt) {
  const int own = ThisThreadNice();
  const int target = std::min(own + 6, 19);
  int nice = -1, child_nice = -1, after = -1;
  std::string name;
  std::thread([&] {
    after = StartBackgroundThread("sr-test-background-thread", target);
    nice = ThisThreadNice();
    name = ThisThreadName();
    std::thread([&] { child_nice = ThisThreadNice(); }).join();  // a fit's worker pool
  }).join();
  EXPECT_EQ(after, target);
  EXPECT_EQ(nice, target);
  EXPECT_EQ(child_nice, target) << "threads a background thread starts inherit its priority";
  EXPECT_EQ(name, "sr-test-backgro") << "15 characters kept";
  EXPECT_EQ(ThisThreadNice(), own) << "other threads keep theirs";
}

TEST(BackgroundThreadTest, NeverRaisesPriorityAndZeroLeavesItAsItIs) {
  const int own = ThisThreadNice();
  int zero = -1, lower = -1, back = -1;
  std::thread([&] {
    zero = StartBackgroundThread("sr-zero", 0);
    lower = StartBackgroundThread(nullptr, std::min(own + 4, 19));
    back = StartBackgroundThread(nullptr, own);  // asks for more priority: refused silently
  }).join();
  EXPECT_EQ(zero, own);
  EXPECT_EQ(lower, std::min(own + 4, 19));
  EXPECT_EQ(back, lower) << "a background thread never raises its priority";
  int clamped = -1;
  std::thread([&] { clamped = StartBackgroundThread(nullptr, 40); }).join();
  EXPECT_EQ(clamped, 19);
}

}  // namespace
}  // namespace streamrec
