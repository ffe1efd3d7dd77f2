#include "background_thread.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace streamrec {

namespace {

id_t ThisThreadId() { return static_cast<id_t>(syscall(SYS_gettid)); }

}  // namespace

int ThisThreadNice() {
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, ThisThreadId());
  return errno == 0 ? nice : 0;
}

int StartBackgroundThread(const char* name, int nice) {
  if (name != nullptr) {
    char truncated[16] = {};
    for (int i = 0; i < 15 && name[i] != '\0'; ++i) truncated[i] = name[i];
    pthread_setname_np(pthread_self(), truncated);
  }
  nice = std::clamp(nice, 0, 19);
  // Only ever lowers the priority: a process started with a higher nice value keeps it.
  if (nice > ThisThreadNice()) setpriority(PRIO_PROCESS, ThisThreadId(), nice);
  return ThisThreadNice();
}

}  // namespace streamrec
