#include "process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace testing_support {

std::string cert(const std::string& name) { return std::string(SSLSTREAM_TEST_CERTS) + "/" + name; }

process::process(std::vector<std::string> argv) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork");
  if (pid_ == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  in_ = in[1];
  outfd_ = out[0];
  reader_ = std::thread([this] { read_loop(); });
  ::signal(SIGPIPE, SIG_IGN);  // tests write to peers that may have exited
}

process::~process() {
  close_stdin();
  if (!status_) {
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
  }
  reader_.join();  // the child is dead, so its end of the pipe is closed and the reader sees EOF
  ::close(outfd_);
}

void process::write_stdin(std::string_view data) {
  while (!data.empty()) {
    auto n = ::write(in_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("write to child: ") + std::strerror(errno));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void process::close_stdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

void process::read_loop() {
  char buf[65536];
  for (;;) {
    auto n = ::read(outfd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lk(m_);
    if (n <= 0) {
      eof_ = true;
      cv_.notify_all();
      return;
    }
    out_.append(buf, static_cast<std::size_t>(n));
    cv_.notify_all();
  }
}

std::string process::output() const {
  std::lock_guard lk(m_);
  return out_;
}

bool process::wait_for_output(std::string_view needle, std::chrono::milliseconds timeout) {
  std::unique_lock lk(m_);
  return cv_.wait_for(lk, timeout, [&] {
    return out_.find(needle) != std::string::npos || eof_;
  }) && out_.find(needle) != std::string::npos;
}

std::optional<std::string> process::wait_for_match(const std::string& pattern,
                                                   std::chrono::milliseconds timeout) {
  std::regex re(pattern);
  std::smatch m;
  std::unique_lock lk(m_);
  cv_.wait_for(lk, timeout, [&] { return std::regex_search(out_, m, re) || eof_; });
  if (!std::regex_search(out_, m, re)) return std::nullopt;
  return m.size() > 1 ? m[1].str() : m[0].str();
}

void process::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lk(m_);
  cv_.wait_for(lk, timeout, [&] { return eof_; });
}

std::optional<int> process::wait(std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!status_) {
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    if (std::chrono::steady_clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(5ms);  // polling waitpid; bounded by `timeout`
  }
  return status_;
}

void process::kill(int sig) {
  if (!status_) ::kill(pid_, sig);
}

namespace {

std::set<std::string> socket_inodes(pid_t pid) {
  std::set<std::string> inodes;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      char target[256];
      auto n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      std::string t(target, static_cast<std::size_t>(n));
      if (t.starts_with("socket:[")) inodes.insert(t.substr(8, t.size() - 9));
    }
    ::closedir(d);
  }
  return inodes;
}

}  // namespace

std::optional<std::uint16_t> listening_port(pid_t pid, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  do {
    auto inodes = socket_inodes(pid);
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
      std::ifstream in(table);
      std::string line;
      std::getline(in, line);  // header
      while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string sl, local, remote, state, queues, tr, retr, uid, tmo, inode;
        f >> sl >> local >> remote >> state >> queues >> tr >> retr >> uid >> tmo >> inode;
        if (state == "0A" && inodes.contains(inode))
          return static_cast<std::uint16_t>(
              std::stoul(local.substr(local.find(':') + 1), nullptr, 16));
      }
    }
    std::this_thread::sleep_for(20ms);  // waiting for the child to bind; bounded by `timeout`
  } while (std::chrono::steady_clock::now() < until);
  return std::nullopt;
}

namespace {

/// Entries of /proc/PID/WHAT (descriptors, threads); 0 once the process is gone.
std::size_t proc_entries(pid_t pid, const char* what) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it =
           std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/" + what, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

}  // namespace

std::size_t open_descriptors(pid_t pid) { return proc_entries(pid, "fd"); }

std::size_t thread_count(pid_t pid) { return proc_entries(pid, "task"); }

std::size_t status_kib(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == field) {
      std::size_t kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace testing_support
