#include "testutil/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

extern char** environ;

namespace streamrec::testing {

std::string StreamrecBinary() { return STREAMREC_BINARY; }

namespace {

// Forks and execs `argv` with the merged environment, output to `fd`. Returns the pid.
int Spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
          int fd) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) merged[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execve(argp[0], argp.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

std::string TempOutputPath(int* fd) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/streamrec_proc_XXXXXX";
  *fd = ::mkstemp(path.data());
  return path;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Reap(int pid, ProcessResult* result) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status)) {
    result->exited = true;
    result->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result->signaled = true;
    result->signal = WTERMSIG(status);
  }
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env) {
  ProcessResult result;
  int fd = -1;
  std::string out_path = TempOutputPath(&fd);
  if (fd < 0) return result;
  int pid = Spawn(argv, env, fd);
  ::close(fd);
  if (pid > 0) Reap(pid, &result);
  result.output = ReadAll(out_path);
  ::unlink(out_path.c_str());
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv,
                                     const std::map<std::string, std::string>& env) {
  int fd = -1;
  out_path_ = TempOutputPath(&fd);
  if (fd < 0) return;
  pid_ = Spawn(argv, env, fd);
  ::close(fd);
}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ > 0 && !waited_) {
    ::kill(pid_, SIGKILL);
    ProcessResult ignored;
    Reap(pid_, &ignored);
  }
  ::unlink(out_path_.c_str());
}

void BackgroundProcess::Signal(int signal) {
  if (pid_ > 0 && !waited_) ::kill(pid_, signal);
}

ProcessResult BackgroundProcess::Wait() {
  ProcessResult result;
  if (pid_ > 0 && !waited_) {
    Reap(pid_, &result);
    waited_ = true;
  }
  result.output = ReadAll(out_path_);
  return result;
}

bool BackgroundProcess::WaitFor(int timeout_ms, ProcessResult* result) {
  if (pid_ <= 0 || waited_) return false;
  // A pidfd becomes readable when the process ends: poll waits on that, not on a timer.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd < 0) return false;
  struct pollfd p = {pidfd, POLLIN, 0};
  int ready = ::poll(&p, 1, timeout_ms);
  ::close(pidfd);
  if (ready <= 0) return false;
  *result = Wait();
  return true;
}

std::string BackgroundProcess::Output() const { return ReadAll(out_path_); }

}  // namespace streamrec::testing
