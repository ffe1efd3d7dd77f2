// Background work that must not take the CPU from ingestion: model re-fits run on their own
// threads at a lower CPU priority (a higher nice value), as RocksDB lowers the priority of its
// compaction pool (Env::LowerThreadPoolCPUPriority). On Linux the nice value belongs to the
// thread, and the threads it starts (a fit's worker pool) inherit it.
#ifndef STREAMREC_SRC_BACKGROUND_THREAD_H_
#define STREAMREC_SRC_BACKGROUND_THREAD_H_

namespace streamrec {

// Names the calling thread (at most 15 characters are kept; shown by top -H, perf, gdb) and
// raises its nice value to `nice` (0..19; 0 leaves it as it is). Lowering one's own priority
// needs no privilege; returns the nice value the thread has afterwards, which the caller may
// log if it differs from `nice` (e.g. the process already ran at a higher nice value).
int StartBackgroundThread(const char* name, int nice);

// The calling thread's nice value.
int ThisThreadNice();

}  // namespace streamrec

#endif  // STREAMREC_SRC_BACKGROUND_THREAD_H_
