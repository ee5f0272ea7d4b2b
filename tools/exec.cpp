// listen --exec CMD: each connection's plaintext is the stdin/stdout of a new `sh -c CMD`
// (inetd style), with the peer in its environment. posix_spawn (safe beside the server's
// threads), pipes, and every other descriptor of ours close-on-exec: the command inherits its
// two pipes and stderr, nothing of other connections.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iostream>
#include <thread>

#include "backend.hpp"
#include "relay.hpp"

extern char** environ;

namespace cli {

using namespace sslstream;

namespace {

/// Once the connection has ended, how long the command may take to exit before it is sent
/// SIGTERM, and then SIGKILL.
constexpr std::chrono::milliseconds grace{2000};

[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// An owned descriptor.
struct fd_t {
  int fd = -1;
  fd_t() = default;
  explicit fd_t(int f) : fd(f) {}
  fd_t(const fd_t&) = delete;
  fd_t& operator=(const fd_t&) = delete;
  ~fd_t() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

/// A pipe whose ends are never 0, 1 or 2 (when ours were closed, a pipe may get them, and
/// dup2 onto the same number would keep it close-on-exec), both close-on-exec.
void make_pipe(fd_t& r, fd_t& w) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) fail("pipe");
  for (int& e : p)
    if (e <= 2) {
      int high = ::fcntl(e, F_DUPFD_CLOEXEC, 3);
      ::close(e);
      if (high < 0) fail("fcntl");
      e = high;
    }
  r.fd = p[0];
  w.fd = p[1];
}

/// A name a client sent (SNI) that is safe in a command's environment: a host name's letters,
/// digits, hyphens and dots only (OpenSSL passes any byte but NUL: newlines, quotes, `$(...)`).
bool plain_host_name(const std::string& n) {
  return !n.empty() && n.size() <= 253 && std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

/// Our environment without any SSLSTREAM_ variable (one set for sslstream itself must never
/// pass for a peer's) and without the --password-env variable (the key's password is ours, not
/// the command's), then the peer's.
std::vector<std::string> environment(ssl_stream& s, const std::string& password_env) {
  std::vector<std::string> env;
  std::string hidden = password_env.empty() ? std::string() : password_env + "=";
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "SSLSTREAM_", 10) != 0 &&
        (hidden.empty() || std::strncmp(*e, hidden.c_str(), hidden.size()) != 0))
      env.emplace_back(*e);
  env.push_back("SSLSTREAM_PEER_ADDRESS=" + s.remote_host());
  env.push_back("SSLSTREAM_PEER_PORT=" + std::to_string(s.remote_port()));
  // Only a certificate that was verified names the peer: with --verify optional a client may
  // send any certificate at all.
  if (auto c = s.peer_certificate(); c && s.verify_result().code == 0)
    env.push_back("SSLSTREAM_PEER_SUBJECT=" + c->subject());
  if (auto sni = s.server_name(); plain_host_name(sni))
    env.push_back("SSLSTREAM_SERVER_NAME=" + sni);
  return env;
}

pid_t spawn(const std::string& command, const std::vector<std::string>& env, int in, int out) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, in, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  // Nothing else of ours: a descriptor another thread opened without O_CLOEXEC a moment ago
  // (a key file read by a SIGHUP reload) must not live on in the command.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  // The command starts with the signals as a shell's would be: none blocked (the server's
  // threads may block some), none ignored (we ignore SIGPIPE). A process group of its own, so
  // that ending it ends what it started too.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  int err = posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err != 0) throw std::system_error(err, std::generic_category(), "start /bin/sh");
  return pid;
}

/// Waits up to `limit` for `pid` to exit; its wait status, or nullopt if it still runs.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds limit) {
  // A pidfd turns the wait into a bounded poll; without one (old kernels), look every 10 ms.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) {
      if (pidfd >= 0) ::close(pidfd);
      return r == pid ? std::optional<int>(status) : std::optional<int>(0);
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    } else {
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  return std::nullopt;
}

/// Reaps the command, ending its process group if it outlives the connection by `grace`.
int reap(pid_t pid, const std::string& prefix, const tls_flags& tls) {
  auto st = wait_exit(pid, grace);
  const char* sent = nullptr;
  if (!st) {
    ::kill(-pid, SIGTERM);
    sent = "SIGTERM";
    st = wait_exit(pid, grace);
  }
  if (!st) {
    ::kill(-pid, SIGKILL);
    sent = "SIGKILL";
    st = wait_exit(pid, std::chrono::hours(1));
  }
  if (sent && !tls.quiet)
    std::cerr << prefix << "the command was still running " << grace.count()
              << " ms after the connection ended: sent " << sent << '\n';
  if (tls.verbose) {
    if (WIFEXITED(*st))
      std::cerr << prefix << "the command exited with status " << WEXITSTATUS(*st) << '\n';
    else if (WIFSIGNALED(*st))
      std::cerr << prefix << "the command was killed by signal " << WTERMSIG(*st) << " ("
                << strsignal(WTERMSIG(*st)) << ")\n";
  }
  return *st;
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

int exec_connection(ssl_stream& s, const std::string& command, const tls_flags& tls) {
  std::string prefix;
  pid_t pid = -1;
  fd_t to_child_r, to_child_w, from_child_r, from_child_w;
  try {
    prefix = connection_prefix(s);
    make_pipe(to_child_r, to_child_w);
    make_pipe(from_child_r, from_child_w);
    pid = spawn(command, environment(s, tls.password_env), to_child_r.fd, from_child_w.fd);
  } catch (const std::exception& e) {
    std::cerr << prefix << "cannot run the command: " << e.what()
              << " (the client's connection is closed)\n";
    try {
      s.close();
    } catch (...) {
    }
    return other;
  }
  // The command's ends are its own now: its stdout ends when it (and what it started) exits.
  to_child_r.reset();
  from_child_w.reset();
  set_nonblocking(to_child_w.fd);
  set_nonblocking(from_child_r.fd);
  if (tls.verbose) std::cerr << prefix << "started the command, process " << pid << '\n';
  int status = ok;
  try {
    plain_side p{from_child_r.fd,
                 to_child_w.fd,
                 "the command's output",
                 "the command's input",
                 [&] { to_child_w.reset(); },
                 false};
    auto r = relay(s, p, {tunnel_idle_limit(tls.idle_timeout), tls.allow_truncation, tls.quiet});
    if (r.stopped) {
      abort_connection(s);
      ::kill(-pid, SIGTERM);  // cut: the command must not take its input's end for a clean one
      if (tls.verbose) std::cerr << prefix << "cut: the server is stopping\n";
    } else {
      if (tls.verbose && r.dropped)
        std::cerr << prefix << r.dropped
                  << " bytes from the client dropped: the command had stopped reading\n";
      s.close();
    }
  } catch (const std::exception& e) {
    abort_connection(s);
    // The client's bytes ended by an error (a cut without close_notify, a timeout): closing the
    // command's input would look like the end of a complete upload. It is stopped instead.
    ::kill(-pid, SIGTERM);
    auto f = explain("listen", phase::transfer, e);
    std::cerr << prefix << f.message << '\n';
    status = f.status;
  }
  // Its pipes closed: a command still reading sees EOF, one still writing gets SIGPIPE.
  to_child_w.reset();
  from_child_r.reset();
  reap(pid, prefix, tls);
  return status;
}

}  // namespace cli
