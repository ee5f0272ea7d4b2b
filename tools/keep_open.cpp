#include "keep_open.hpp"

#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_set>

namespace cli {

using namespace sslstream;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

/// How long a write waits for the peer to take it when no --idle-timeout is set.
constexpr milliseconds write_limit{30000};

/// Thrown by the copy to stdout once standard output has failed.
struct stdout_failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// One write per message: lines from connections on different threads never interleave.
void say(const std::string& text) {
  std::string line = "sslstream listen: " + text + "\n";
  std::string_view rest = line;
  while (!rest.empty()) {
    auto w = ::write(2, rest.data(), rest.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    rest.remove_prefix(static_cast<std::size_t>(w));
  }
}

std::string peer_of(ssl_stream& s) {
  try {
    return s.remote_host() + ':' + std::to_string(s.remote_port());
  } catch (const std::exception&) {
    return "(peer gone)";  // reset before we asked
  }
}

std::string plural(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + ' ' + (n == 1 ? one : many);
}

std::string secs(milliseconds ms) {
  std::ostringstream out;
  out << static_cast<double>(ms.count()) / 1000 << " s";
  return out.str();
}

/// -v: the handshake of one connection, every line naming the peer (print_handshake's lines).
std::string describe_handshake(ssl_stream& s, const std::string& peer) {
  std::ostringstream out;
  out << peer << ": " << s.protocol_version() << ' ' << s.cipher();
  if (auto a = s.alpn_protocol(); !a.empty()) out << ", ALPN " << a;
  if (s.session_reused()) out << ", resumed";
  out << "\nsslstream listen: " << peer << ": ";
  if (auto c = s.peer_certificate())
    out << "peer " << c->subject() << " (issuer " << c->issuer()
        << ", sha256:" << c->fingerprint_sha256() << ")";
  else
    out << "the peer sent no certificate";
  auto v = s.verify_result();
  out << "\nsslstream listen: " << peer << ": verify result " << v.code << " (" << v.text << ")";
  return out.str();
}

/// What the handlers share with the thread that watches signals and limits.
class keep_open_state {
 public:
  explicit keep_open_state(const keep_open_options& options) : o(options) {
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  ~keep_open_state() { ::close(wake_fd); }
  keep_open_state(const keep_open_state&) = delete;
  keep_open_state& operator=(const keep_open_state&) = delete;

  void wake() noexcept {
    std::uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  /// A connection's handler starts: -v describes it; it can now be ended if stdout fails.
  void started(ssl_stream& s, const std::string& peer) {
    {
      std::lock_guard lk(m_);
      fds_.insert(s.native_handle());
    }
    if (o.tls->verbose) say(describe_handshake(s, peer));
  }
  void ended(ssl_stream& s, const std::string& peer) {
    {
      std::lock_guard lk(m_);
      fds_.erase(s.native_handle());
    }
    if (o.tls->verbose) say(peer + ": closed");
    // --max-connections: the count is checked at once, so that the engine, free to accept
    // again now that one has ended, has little time to take one more than N.
    if (o.max_connections > 0) wake();
  }

  /// A handler failed: says why (in the tool's words, naming the peer), unless -q. Standard
  /// output failing ends every connection: this one now, the others from serve_keep_open.
  void failed(ssl_stream& s, const std::string& peer, const std::exception_ptr& error,
              bool count_timeouts) {
    try {
      std::rethrow_exception(error);
    } catch (const stdout_failed& e) {
      abort_connection(s);  // its bytes were lost: the client must not see a clean end
      {
        std::lock_guard lk(m_);
        if (output_error_.empty()) output_error_ = e.what();
      }
      output_failed = true;
      wake();
    } catch (const socket_error& e) {
      if (e.identifier() == "timeout" && count_timeouts) ++handler_timeouts;
      if (output_failed || o.tls->quiet) return;  // ended on purpose: said once already
      if (e.identifier() != "timeout")
        say(peer + ": " + explain("listen", phase::transfer, e).message);
      else if (std::strstr(e.what(), "write_timeout"))
        say(peer +
            ": timed out waiting for the peer to take our data (the limit is --idle-timeout): "
            "connection closed after " +
            secs(o.idle_timeout.count() > 0 ? o.idle_timeout : write_limit));
      else
        say(peer + ": idle past --idle-timeout, timed out: connection closed");
    } catch (const std::exception& e) {
      if (!output_failed && !o.tls->quiet)
        say(peer + ": " + explain("listen", phase::transfer, e).message);
    } catch (...) {
      if (!output_failed && !o.tls->quiet) say(peer + ": the handler failed");
    }
  }

  /// Ends every connection in a handler with an error (a reset) after standard output failed:
  /// their bytes can no longer be delivered. Only the descriptors are touched (shutdown is
  /// safe beside the loop thread using the stream); each handler then fails and ends.
  void abort_all() {
    std::lock_guard lk(m_);
    for (int fd : fds_) {
      linger l{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      ::shutdown(fd, SHUT_RDWR);
    }
  }
  std::string output_error() {
    std::lock_guard lk(m_);
    return output_error_;
  }

  const keep_open_options& o;
  int wake_fd = -1;
  std::atomic<bool> output_failed{false};
  /// Timeouts the engine counted in stats().timed_out that a coroutine handler saw (so the
  /// rest were handshakes).
  std::atomic<std::uint64_t> handler_timeouts{0};

 private:
  std::mutex m_;
  std::unordered_set<int> fds_;
  std::string output_error_;
};

/// Around every coroutine handler: start and end, and the error said with the peer's address.
task<> serve_coroutine(keep_open_state& st, const server::coroutine_handler& inner,
                       async_stream& s) {
  auto peer = peer_of(s.stream());
  st.started(s.stream(), peer);
  // Ended also when the frame is destroyed unfinished (stop() after the drain).
  struct end_guard {
    keep_open_state& st;
    ssl_stream& s;
    const std::string& peer;
    ~end_guard() { st.ended(s, peer); }
  } guard{st, s.stream(), peer};
  std::exception_ptr error;
  try {
    co_await inner(s);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) st.failed(s.stream(), peer, error, true);
}

/// Around every blocking handler, on its worker thread.
void serve_blocking(keep_open_state& st, const server::blocking_handler& inner, ssl_stream& s) {
  auto peer = peer_of(s);
  st.started(s, peer);
  try {
    inner(s);
  } catch (...) {
    st.failed(s, peer, std::current_exception(), false);
  }
  st.ended(s, peer);
}

constexpr std::size_t chunk = 1 << 14;  // one TLS record

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

/// The next bytes from `s`, in `buf`; 0 at the peer's close_notify. A buffer is held only while
/// data flows: a connection gone quiet awaits its next byte alone, so an idle connection costs
/// its TLS state and no I/O buffer.
task<std::size_t> next_piece(async_stream& s, std::unique_ptr<std::byte[]>& buf) {
  if (buf && (s.stream().input_pending() || readable_now(s.stream().native_handle())))
    co_return co_await s.read_some(std::span(buf.get(), chunk));
  buf.reset();
  std::byte first{};
  if (co_await s.read_some(std::span(&first, 1)) == 0) co_return 0;
  buf = std::make_unique<std::byte[]>(chunk);
  buf[0] = first;
  std::size_t n = 1;  // the rest of the record it came in, already decrypted
  if (s.stream().input_pending()) n += co_await s.read_some(std::span(buf.get() + 1, chunk - 1));
  co_return n;
}

task<> echo_connection(async_stream& s) {
  std::unique_ptr<std::byte[]> buf;
  while (auto n = co_await next_piece(s, buf)) co_await s.write_all(std::span(buf.get(), n));
  co_await s.close();
}

/// Standard output is shared: whole reads go out under one lock, and after a failure nothing
/// more is written.
struct stdout_sink {
  std::mutex m;
  bool failed = false;
  std::string why;
  void write(std::span<const std::byte> data) {
    std::lock_guard lk(m);
    if (failed) throw stdout_failed(why);
    try {
      write_stdout(data);
    } catch (const std::system_error& e) {
      failed = true;
      why = e.what();
      throw stdout_failed(why);
    }
  }
};

// A write to stdout blocks this connection's event loop until it is taken: standard output is
// the user's, and a reader that stops reading stops the server (as it did with workers).
task<> stdout_connection(async_stream& s, std::shared_ptr<stdout_sink> out) {
  std::unique_ptr<std::byte[]> buf;
  while (auto n = co_await next_piece(s, buf)) out->write(std::span(buf.get(), n));
  // At the peer's close_notify: the stream's destructor answers with ours.
}

}  // namespace

server::coroutine_handler echo_handler() {
  return [](async_stream& s) { return echo_connection(s); };
}

server::coroutine_handler stdout_handler() {
  auto out = std::make_shared<stdout_sink>();
  return [out](async_stream& s) { return stdout_connection(s, out); };
}

namespace {

/// SIGTERM, SIGINT and SIGHUP, read from a descriptor on the thread that serves: nothing runs
/// in a signal handler. Blocked before the engine's threads start, so they inherit the mask
/// and no signal is delivered to them.
class signal_reader {
 public:
  signal_reader() {
    sigemptyset(&set_);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set_, s);
    if (int e = ::pthread_sigmask(SIG_BLOCK, &set_, &old_))
      throw std::system_error(e, std::generic_category(), "pthread_sigmask");
    fd_ = ::signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
  }
  ~signal_reader() { ::close(fd_); }
  signal_reader(const signal_reader&) = delete;
  signal_reader& operator=(const signal_reader&) = delete;
  int fd() const noexcept { return fd_; }
  /// The next pending signal, or 0.
  int next() noexcept {
    signalfd_siginfo si{};
    if (::read(fd_, &si, sizeof si) != static_cast<ssize_t>(sizeof si)) return 0;
    return static_cast<int>(si.ssi_signo);
  }

 private:
  sigset_t set_{}, old_{};
  int fd_ = -1;
};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}

/// Failed and timed-out handshakes, one line each with the client's address and why, at most
/// `per_second` a second (a peer decides how many there are): the engine's loops only queue
/// them, the main loop prints them, so a slow stderr never stalls a loop. Beyond the limit, and
/// for failed accepts (out of descriptors, once), counts.
class handshake_reporter {
 public:
  static constexpr int per_second = 10;

  handshake_reporter(keep_open_state& st, std::size_t max_connections)
      : st_(st), max_connections_(max_connections) {}
  /// For server_options::on_handshake_failure (an event loop's thread).
  void failed(const handshake_failure& f) {
    if (st_.o.tls->quiet) return;
    std::lock_guard lk(m_);
    auto now = clock_type::now();
    if (now - window_ >= std::chrono::seconds(1)) {
      window_ = now;
      in_window_ = 0;
    }
    // Also bounded while the main loop is held up (stderr a pipe nobody reads).
    if (in_window_ >= per_second || lines_.size() >= 100) return;
    ++in_window_;
    ++(f.timed_out ? shown_timeouts_ : shown_failures_);
    std::string line = f.peer + ": ";
    if (f.timed_out) {
      line += "TLS handshake timed out (--handshake-timeout " + secs(st_.o.handshake_timeout) + ")";
    } else {
      // The library's reasons mostly say "TLS handshake failed: ..." already.
      if (f.reason.rfind("TLS handshake failed", 0) != 0) line += "TLS handshake failed: ";
      line += printable(f.reason);  // it may quote what the peer sent
    }
    lines_.push_back(line + ": connection dropped");
  }
  void report(const server& srv) {
    auto s = srv.stats();
    // Read after the engine's count: the handlers' timeouts never exceed it for long.
    auto handled = st_.handler_timeouts.load();
    std::uint64_t timeouts = s.timed_out > handled ? s.timed_out - handled : 0;
    if (st_.o.tls->quiet) return;
    std::vector<std::string> lines;
    std::uint64_t shown_failures, shown_timeouts;
    {
      std::lock_guard lk(m_);
      lines.swap(lines_);
      shown_failures = shown_failures_;
      shown_timeouts = shown_timeouts_;
    }
    for (const auto& line : lines) say(line);
    if (timeouts > timeouts_ + shown_timeouts) {
      say(plural(timeouts - timeouts_ - shown_timeouts, "more TLS handshake",
                 "more TLS handshakes") +
          " timed out (--handshake-timeout " + secs(st_.o.handshake_timeout) +
          "; not shown one by one past " + std::to_string(per_second) +
          " a second): connection dropped");
      timeouts_ = timeouts - shown_timeouts;
    }
    if (s.evicted > evicted_) {
      say(plural(s.evicted - evicted_, "stalled TLS handshake", "stalled TLS handshakes") +
          " closed to make room for new clients (" + std::to_string(max_connections_) +
          " connections at most at once: when full, a handshake that has lasted a second gives "
          "way, the oldest first)");
      evicted_ = s.evicted;
    }
    if (s.rejected > 0 && !said_rejected_) {  // once: it lasts until connections close
      said_rejected_ = true;
      say("cannot accept more connections (out of descriptors or memory): new connections wait "
          "until some close");
    }
    if (s.handshake_failures > failures_ + shown_failures) {
      say(plural(s.handshake_failures - failures_ - shown_failures, "more TLS handshake",
                 "more TLS handshakes") +
          " failed (not shown one by one past " + std::to_string(per_second) +
          " a second): connection dropped");
      failures_ = s.handshake_failures - shown_failures;
    }
  }

 private:
  keep_open_state& st_;
  std::mutex m_;
  std::vector<std::string> lines_;
  clock_type::time_point window_{};
  int in_window_ = 0;
  std::uint64_t shown_failures_ = 0, shown_timeouts_ = 0;
  std::size_t max_connections_;
  std::uint64_t timeouts_ = 0, failures_ = 0;  // counted beyond the shown ones, so far
  std::uint64_t evicted_ = 0;
  bool said_rejected_ = false;
};

/// Idle again after a burst: hands the memory the connections used back to the system, half a
/// second later, so that a server between bursts is as small as it started. Not after every
/// lone client: a trim walks every arena.
class memory_trim {
 public:
  void check(std::uint64_t active) {
    auto now = clock_type::now();
    peak_ = std::max(peak_, active);
    if (active > 0) {
      at_ = never;
    } else if (peak_ >= 64) {
      at_ = now + milliseconds(500);
      peak_ = 0;
    } else if (now >= at_) {
      ::malloc_trim(0);
      at_ = never;
    }
  }

 private:
  std::uint64_t peak_ = 0;
  static constexpr clock_type::time_point never = clock_type::time_point::max();
  clock_type::time_point at_ = never;
};

}  // namespace

int serve_keep_open(passive_socket listener, ssl_context ctx, const keep_open_options& o,
                    keep_open_handler handler, const std::function<void()>& ready) {
  raise_descriptor_limit();
  signal_reader signals;
  keep_open_state st(o);

  server_options so;
  if (o.max_connections > 0 && o.max_connections < so.max_connections)
    so.max_connections = o.max_connections;  // never more at once than will be served at all
  so.max_workers = o.max_workers;
  so.handshake_timeout = o.handshake_timeout;
  so.idle_timeout = o.idle_timeout;
  // A peer that stops reading holds its connection --idle-timeout, or 30 s without one.
  so.write_timeout = o.idle_timeout.count() > 0 ? o.idle_timeout : write_limit;
  handshake_reporter handshakes(st, so.max_connections);
  so.on_handshake_failure = [&handshakes](const handshake_failure& f) { handshakes.failed(f); };

  std::optional<server> srv;
  if (auto* b = std::get_if<server::blocking_handler>(&handler))
    srv.emplace(std::move(listener), std::move(ctx),
                server::blocking_handler(
                    [&st, inner = std::move(*b)](ssl_stream& s) { serve_blocking(st, inner, s); }),
                so);
  else
    srv.emplace(std::move(listener), std::move(ctx),
                server::coroutine_handler(
                    [&st, inner = std::move(std::get<server::coroutine_handler>(handler))](
                        async_stream& s) { return serve_coroutine(st, inner, s); }),
                so);
  srv->start();
  ready();

  // Stopping takes server::stop(drain), the only way to stop accepting, which waits: it runs
  // on its own thread, so that signals are still read meanwhile (a second one, the drain's end).
  std::thread stopper;
  std::atomic<bool> stopped{false};
  auto stop_accepting = [&](milliseconds limit) {
    if (stopper.joinable() || stopped) return;
    // Once we say "no longer accepting", a client connecting must find it so.
    srv->stop_accepting();
    try {
      stopper = std::thread([&] {
        srv->stop(std::chrono::hours(24 * 365));  // until every connection has ended
        stopped = true;
        st.wake();
      });
    } catch (const std::system_error&) {
      // No thread to spare (a thread or address-space limit): stop on this thread, within the
      // limit this stop has. Signals wait meanwhile; failing to start a thread never ends us.
      srv->stop(limit);
      stopped = true;
    }
  };
  std::optional<clock_type::time_point> deadline;  // connections left are closed then
  bool closed_early = false;
  std::string reason;
  memory_trim trim;
  auto active = [&] { return srv->stats().active; };

  while (!stopped) {
    int wait = 100;  // handshake reports, --max-connections; timeouts are seconds
    if (deadline)
      wait = static_cast<int>(std::clamp<long long>(
          std::chrono::ceil<milliseconds>(*deadline - clock_type::now()).count(), 0, 100));
    pollfd p[2] = {{signals.fd(), POLLIN, 0}, {st.wake_fd, POLLIN, 0}};
    ::poll(p, 2, wait);
    std::uint64_t drained;
    (void)!::read(st.wake_fd, &drained, sizeof drained);

    while (int sig = signals.next()) {
      if (sig == SIGHUP) {
        if (!o.reload) {
          say("SIGHUP: nothing to reload");
          continue;
        }
        try {
          srv->reload(o.reload());
          if (!o.tls->quiet)
            say("SIGHUP: certificate, key and CA files read again: new connections use them, "
                "open ones keep theirs");
        } catch (const std::exception& e) {
          say("SIGHUP: " + explain("listen", phase::setup, e).message +
              " (kept the previous certificate, key and CA files: nothing changed)");
        }
      } else if (!deadline) {
        reason = signal_name(sig);
        deadline = clock_type::now() + o.drain;
        stop_accepting(o.drain);
        if (!o.tls->quiet)
          say(reason + ": no longer accepting; " + plural(active(), "connection", "connections") +
              " may finish within --drain " + secs(o.drain));
      } else if (!closed_early) {
        if (!o.tls->quiet)
          say(std::string(signal_name(sig)) + " again: closing every connection now");
        deadline = clock_type::now();
      }
    }

    if (st.output_failed && !closed_early) {
      reason = "standard output failed";
      st.abort_all();
      stop_accepting(milliseconds(0));
      deadline = clock_type::now();
    }
    // The engine accepts by itself: a connection beyond N can slip in between the N-th accept
    // and this check only after one of the N has ended (it never holds more than N at once),
    // within one turn of this loop. It is then served like the others.
    if (o.max_connections > 0 && reason.empty() && srv->stats().accepted >= o.max_connections) {
      reason = "--max-connections " + std::to_string(o.max_connections) + " reached";
      stop_accepting(std::chrono::hours(24 * 365));
    }
    handshakes.report(*srv);
    trim.check(active());
    if (deadline && clock_type::now() >= *deadline && !closed_early) {
      closed_early = true;
      auto left = active();
      srv->stop();  // closes what is left; the stopper's wait then ends
      if (left > 0 && !o.tls->quiet && !st.output_failed)
        say("--drain " + secs(o.drain) + " over: closed " +
            plural(left, "connection", "connections") + " still open");
    }
  }
  if (stopper.joinable()) stopper.join();
  handshakes.report(*srv);
  srv.reset();  // the listener closes: clients still waiting in its backlog are refused

  if (st.output_failed)
    throw std::runtime_error(st.output_error() + ": every connection was ended with an error");
  if (!o.tls->quiet) say("exiting: " + reason + (closed_early ? "" : ", every connection ended"));
  return ok;
}

}  // namespace cli
