// The relay between a TLS stream and plaintext descriptors (relay.hpp), and the stdin/stdout
// relay of listen and connect built on it.
#include "relay.hpp"

#include <fcntl.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iostream>
#include <optional>
#include <system_error>
#include <vector>

namespace cli {

using namespace sslstream;

namespace {

using clock = std::chrono::steady_clock;

/// How long a poll() waits at most: a stream whose input the server engine shut from another
/// thread (stop()) wakes no poll, so the relay looks again this often.
constexpr std::chrono::milliseconds tick{200};
/// After our close_notify, with nobody left to take the TLS peer's bytes: how long its own
/// close_notify is awaited (its bytes dropped meanwhile) before the connection is closed, so
/// that a peer still sending sees our clean end rather than a reset.
constexpr std::chrono::milliseconds linger{1000};

/// One buffered direction: bytes read but not yet written.
struct buffer {
  std::vector<std::byte> data = std::vector<std::byte>(1 << 16);
  std::size_t begin = 0, end = 0;
  bool empty() const { return begin == end; }
  std::span<std::byte> pending() { return std::span(data).subspan(begin, end - begin); }
  void took(std::size_t n) {
    begin += n;
    if (begin == end) begin = end = 0;
  }
};

bool gone(int err) { return err == EPIPE || err == ECONNRESET; }

[[noreturn]] void fail(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

/// The peer's close_notify arrived (as opposed to our input being shut here).
bool peer_closed(ssl_stream& s) {
  return (SSL_get_shutdown(static_cast<SSL*>(s.native_ssl())) & SSL_RECEIVED_SHUTDOWN) != 0;
}

class relay_loop {
 public:
  relay_loop(ssl_stream& s, const plain_side& p, const relay_options& o) : s_(s), p_(p), o_(o) {
    // A descriptor we may not make non-blocking (stdout, shared with other processes) is
    // written only once poll() says it can take bytes, and at most PIPE_BUF at a time, which a
    // pipe then takes without blocking.
    int fl = ::fcntl(p.out, F_GETFL);
    out_blocking_ = fl < 0 || (fl & O_NONBLOCK) == 0;
  }

  relay_result run() {
    last_ = last_taken_ = clock::now();
    try {
      for (;;) {
        step();
        if (result_.stopped || finished()) return result_;
        wait();
      }
    } catch (...) {
      // Bytes the peer sent were lost: it must not see a clean end.
      if (lost_) abort_connection(s_);
      throw;
    }
  }

 private:
  bool finished() const {
    bool down_done = out_ended_ || (out_lost_ && tls_eof_);
    if (ours_sent_ && down_done) return true;
    // The peer said close_notify and then closed the whole connection (its FIN or a reset):
    // nothing we send would be read, so `in` is not waited for (s_client exits then too). A peer
    // that sent close_notify only (TLS half close) is still written to until `in` ends.
    if (down_done && peer_gone_) return true;
    // Nobody takes the peer's bytes any more and we said goodbye: wait a little for its own.
    return ours_sent_ && out_lost_ && linger_until_ && clock::now() >= *linger_until_;
  }

  void step() {
    // plain -> TLS
    while (!up_.empty()) {
      auto w = s_.try_write_some(up_.pending());
      tls_write_wants_ = w.status;
      if (w.status != io_status::done) break;
      up_.took(w.bytes);
      result_.to_tls += w.bytes;
      last_ = last_taken_ = clock::now();
    }
    if (up_.empty()) {
      tls_write_wants_ = io_status::done;
      last_taken_ = clock::now();
    }
    if (in_eof_ && up_.empty() && !ours_sent_) {
      // Known before our close_notify leaves: a peer may answer it by closing at once.
      closing_ = true;
      auto r = s_.try_shutdown();
      tls_write_wants_ = r.status;
      if (r.status == io_status::done) ours_sent_ = true;
    }
    // TLS -> plain
    for (;;) {
      if (!down_.empty()) {
        if (!out_blocking_ || out_ready_) write_out();
        out_ready_ = false;
        if (!down_.empty()) {
          tls_read_wants_ = io_status::done;  // full: the TLS side waits for `out`
          break;
        }
      }
      if (tls_eof_) break;
      auto r = read_tls();
      if (r.status == io_status::want_read || r.status == io_status::want_write) {
        tls_read_wants_ = r.status;
        break;
      }
      tls_read_wants_ = io_status::done;
      if (r.status == io_status::eof) {
        tls_eof_ = true;
        if (!peer_closed(s_) && !s_.truncated() && !truncation_accepted_) {
          result_.stopped = true;
          return;
        }
        break;
      }
      last_ = clock::now();
      if (out_lost_)
        result_.dropped += r.bytes;
      else
        down_.end = r.bytes;
    }
    if (tls_eof_ && down_.empty() && !out_ended_ && !out_lost_) {
      out_ended_ = true;
      if (p_.end_output) p_.end_output();
    }
    if (ours_sent_ && out_lost_ && !tls_eof_ && !linger_until_)
      linger_until_ = clock::now() + linger;
  }

  io_result read_tls() {
    try {
      return s_.try_read_some(down_.data);
    } catch (const tls_error& e) {
      // Some peers (gnutls-cli among them) answer our close_notify by closing the connection
      // without one of their own. That is indistinguishable from an attacker cutting the reply
      // short, so it is an error unless the user said this peer closes that way.
      bool after_ours = closing_ && e.code() == make_error_code(errc::truncated);
      if (!after_ours) throw;
      if (!o_.allow_truncation)
        throw tls_error(e.code(), e.identifier(),
                        "the peer closed the connection after our close_notify without sending "
                        "its own: the data it sent may be truncated (pass --allow-truncation if "
                        "this peer always closes this way)");
      if (!o_.quiet)
        std::cerr << "sslstream: note: the peer closed the connection after our close_notify "
                     "without sending its own (accepted: --allow-truncation)\n";
      truncation_accepted_ = true;
      return {0, io_status::eof};
    }
  }

  /// Writes what it can of `down_` to `out`.
  void write_out() {
    while (!down_.empty()) {
      auto piece = down_.pending();
      std::size_t n = out_blocking_ ? std::min<std::size_t>(piece.size(), PIPE_BUF) : piece.size();
      auto w = ::write(p_.out, piece.data(), n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (w < 0 && gone(errno) && !p_.fail_on_lost_output) {
        lose_output();
        return;
      }
      if (w < 0) {
        lost_ = true;
        fail(errno, "write to " + p_.out_name);
      }
      down_.took(static_cast<std::size_t>(w));
      result_.from_tls += static_cast<std::uint64_t>(w);
      last_ = clock::now();
      if (out_blocking_) return;  // one piece per poll() that said it fits
    }
  }

  void lose_output() {
    out_lost_ = true;
    result_.dropped += down_.pending().size();
    down_.begin = down_.end = 0;
  }

  void read_in() {
    auto n = ::read(p_.in, up_.data.data(), up_.data.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) fail(errno, "read " + p_.in_name);
    if (n == 0) {
      in_eof_ = true;
      return;
    }
    up_.end = static_cast<std::size_t>(n);
    last_ = clock::now();
  }

  void wait() {
    pollfd fds[3];
    nfds_t count = 0;
    short tls_events = 0;
    for (auto want : {tls_write_wants_, tls_read_wants_}) {
      if (want == io_status::want_read) tls_events |= POLLIN;
      if (want == io_status::want_write) tls_events |= POLLOUT;
    }
    // A stream with bytes already decrypted is read again without waiting for its socket.
    bool tls_ready = tls_read_wants_ == io_status::want_read && s_.input_pending();
    // After the peer's close_notify, while `in` still goes to it: its FIN ends the relay.
    // POLLRDHUP only, so bytes after close_notify (which TLS no longer reads) never wake us.
    bool watch_fin = tls_eof_ && !ours_sent_ && up_.empty();
    if (watch_fin) tls_events |= POLLRDHUP;
    // Not watched at all when nothing is wanted of it (we wait for `out` to take bytes): poll()
    // reports a reset socket's POLLERR/POLLHUP even for no events, and would return at once,
    // again and again, while `out` stays full.
    fds[count++] = {tls_events ? s_.native_handle() : -1, tls_events, 0};
    int in_at = -1, out_at = -1;
    if (!in_eof_ && up_.empty()) {
      in_at = static_cast<int>(count);
      fds[count++] = {p_.in, POLLIN, 0};
    }
    if (!out_ended_ && !out_lost_) {
      // Watched even with nothing to write, when a closed reader can end the relay early.
      short ev = down_.empty() ? 0 : POLLOUT;
      if (ev || !p_.fail_on_lost_output) {
        out_at = static_cast<int>(count);
        fds[count++] = {p_.out, ev, 0};
      }
    }
    auto now = clock::now();
    auto limit = tick;
    if (!up_.empty() && o_.write_timeout.count() > 0 && now - last_taken_ >= o_.write_timeout)
      throw socket_error(std::error_code(ETIMEDOUT, std::system_category()), "timeout",
                         "write timed out: the peer took none of our bytes for " +
                             std::to_string(o_.write_timeout.count()) + " ms (it stopped reading)");
    if (o_.idle_timeout.count() > 0) {
      auto idle_left =
          std::chrono::duration_cast<std::chrono::milliseconds>(last_ + o_.idle_timeout - now);
      if (idle_left.count() <= 0)
        throw socket_error(std::error_code(ETIMEDOUT, std::system_category()), "timeout",
                           "timed out: nothing was sent either way for " +
                               std::to_string(o_.idle_timeout.count()) +
                               " ms (the limit is --idle-timeout)");
      limit = std::min(limit, idle_left + std::chrono::milliseconds(1));
    }
    if (linger_until_)
      limit = std::min(limit, std::chrono::duration_cast<std::chrono::milliseconds>(
                                  *linger_until_ - now + std::chrono::milliseconds(1)));
    if (tls_ready) limit = std::chrono::milliseconds(0);
    int n = ::poll(fds, count, static_cast<int>(std::max<long long>(limit.count(), 0)));
    if (n < 0 && errno != EINTR) fail(errno, "poll");
    if (n <= 0) return;
    if (watch_fin && (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      peer_gone_ = true;
      return;
    }
    if (in_at >= 0 && fds[in_at].revents) read_in();
    if (out_at >= 0 && fds[out_at].revents) {
      if (fds[out_at].revents & POLLOUT) out_ready_ = true;
      // Nobody reads `out` any more (a pipe without reader, a reset socket).
      if ((fds[out_at].revents & (POLLERR | POLLHUP)) && !(fds[out_at].revents & POLLOUT) &&
          !p_.fail_on_lost_output)
        lose_output();
    }
  }

  ssl_stream& s_;
  const plain_side& p_;
  const relay_options& o_;
  relay_result result_;
  buffer up_, down_;
  bool out_blocking_ = false;
  bool out_ready_ = false;
  bool in_eof_ = false;
  bool closing_ = false;    // our close_notify is being sent
  bool ours_sent_ = false;  // ... and has been
  bool tls_eof_ = false;
  bool peer_gone_ = false;  // after its close_notify, the peer closed the whole connection
  bool truncation_accepted_ = false;
  bool out_ended_ = false;
  bool out_lost_ = false;  // `out` takes nothing more: the peer's bytes are dropped
  bool lost_ = false;      // bytes the peer sent could not be delivered: fail with a reset
  io_status tls_write_wants_ = io_status::done;
  io_status tls_read_wants_ = io_status::done;
  clock::time_point last_;
  clock::time_point last_taken_;  // the TLS peer last took bytes (or had none waiting)
  std::optional<clock::time_point> linger_until_;
};

/// The peer's close_notify came: nothing more will be written to stdout, so close it now (a
/// reader of our output sees its end without waiting for our stdin to end). /dev/null takes
/// its place, so descriptor 1 is never reused by a socket or file opened later.
void end_stdout() {
  int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null < 0) {
    ::close(1);
    return;
  }
  ::dup2(null, 1);
  ::close(null);
}

}  // namespace

std::chrono::milliseconds tunnel_idle_limit(double idle_timeout_seconds) {
  return idle_timeout_seconds > 0 ? seconds(idle_timeout_seconds) : std::chrono::minutes(5);
}

relay_result relay(ssl_stream& s, const plain_side& p, const relay_options& o) {
  return relay_loop(s, p, o).run();
}

void relay_stdio(ssl_stream& s, const tls_flags& f) {
  plain_side p{0, 1, "standard input", "standard output", end_stdout, true};
  // The stream's own timeout is not used by the non-blocking calls: the relay keeps it.
  // No write limit: a server may take its time before it reads the rest of what we send.
  relay(s, p, {seconds(f.idle_timeout), f.allow_truncation, f.quiet, {}});
}

}  // namespace cli
