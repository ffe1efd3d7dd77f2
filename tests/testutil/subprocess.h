// Runs the streamrec binary (or any program) as a child process, for end-to-end tests.
#ifndef STREAMREC_TESTS_TESTUTIL_SUBPROCESS_H_
#define STREAMREC_TESTS_TESTUTIL_SUBPROCESS_H_

#include <map>
#include <string>
#include <vector>

namespace streamrec::testing {

struct ProcessResult {
  bool exited = false;     // ended by exit()
  int exit_code = -1;
  bool signaled = false;   // ended by a signal
  int signal = 0;
  std::string output;      // stdout and stderr, interleaved
};

// Runs `argv` (argv[0] is the program path) with the current environment plus `env`, waits for
// it and returns how it ended. Output goes through a temporary file (no pipe deadlocks).
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {});

// A child process running in the background; its output goes to a temporary file.
class BackgroundProcess {
 public:
  BackgroundProcess(const std::vector<std::string>& argv,
                    const std::map<std::string, std::string>& env = {});
  ~BackgroundProcess();  // kills the process if it is still running
  int pid() const { return pid_; }
  // Sends `signal` to the process.
  void Signal(int signal);
  // Waits for the process to end and returns how it ended (with its output).
  ProcessResult Wait();
  // Waits at most `timeout_ms` for the process to end: true (with *result) when it did.
  bool WaitFor(int timeout_ms, ProcessResult* result);
  // The output written so far.
  std::string Output() const;

 private:
  int pid_ = -1;
  std::string out_path_;
  bool waited_ = false;
};

// Path of the streamrec binary built with the tests.
std::string StreamrecBinary();

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_SUBPROCESS_H_
