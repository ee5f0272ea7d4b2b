// Test support: a child process (a real TLS peer such as openssl s_server or gnutls-cli) with
// its stdin and merged stdout/stderr as pipes. A thread keeps reading the child's output, so a
// chatty child never blocks on a full pipe. Every wait is bounded; the destructor kills the
// child by its own pid and reaps it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace testing_support {

using namespace std::chrono_literals;

class process {
 public:
  explicit process(std::vector<std::string> argv);
  process(const process&) = delete;
  process& operator=(const process&) = delete;
  ~process();

  void write_stdin(std::string_view data);
  void close_stdin();
  /// Reads output until it contains `needle` (true) or the timeout/EOF comes first (false).
  bool wait_for_output(std::string_view needle, std::chrono::milliseconds timeout = 10s);
  /// Waits until the output matches `pattern`; the first submatch, or nullopt on timeout/EOF.
  std::optional<std::string> wait_for_match(const std::string& pattern,
                                            std::chrono::milliseconds timeout = 10s);
  /// Reads output until EOF or timeout.
  void drain(std::chrono::milliseconds timeout = 10s);
  /// Waits for the exit status; nullopt on timeout. A signal death is 128 + signal.
  std::optional<int> wait(std::chrono::milliseconds timeout = 10s);
  void kill(int sig);
  std::string output() const;
  pid_t pid() const { return pid_; }

 private:
  void read_loop();
  pid_t pid_ = -1;
  int in_ = -1;
  int outfd_ = -1;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::string out_;
  bool eof_ = false;
  std::thread reader_;
  std::optional<int> status_;
};

/// The TCP port a process listens on, found through /proc (for servers such as gnutls-serv that
/// bind port 0 but do not print the port); nullopt if none appears within the timeout.
std::optional<std::uint16_t> listening_port(pid_t pid, std::chrono::milliseconds timeout = 10s);

/// What a process holds, from /proc: open descriptors, threads.
std::size_t open_descriptors(pid_t pid);
std::size_t thread_count(pid_t pid);
/// A KiB figure from /proc/PID/status, `field` with its colon: "VmRSS:" (resident memory),
/// "VmSize:" (address space). 0 once the process is gone.
std::size_t status_kib(pid_t pid, std::string_view field);

/// The path of a test certificate file made by tests/certs/make-test-certs.sh.
std::string cert(const std::string& name);

}  // namespace testing_support
