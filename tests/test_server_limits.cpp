// The server engine's limits, measured through its public API (issue 11, "What it must show"):
// 10,000 stalled handshakes, 10,000 idle TLS connections, peers that never read, idle_timeout,
// max_connections, thread starts that fail, reload under load. Each test prints its figures
// ("limits: ...") so that they can be quoted. Thousands of client connections come from a
// process of their own (tests/support/limits_peer.cpp), so that their descriptors and memory
// are never counted as the server's.
#include <gtest/gtest.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <future>
#include <regex>
#include <sslstream/sslstream.hpp>
#include <thread>

#include "echo_once.hpp"
#include "fault_proxy.hpp"
#include "loopback.hpp"
#include "raw_connect.hpp"
#include "timing.hpp"

using namespace std::chrono_literals;
using namespace sslstream;
using namespace testing_support;

namespace {

// Scheduling on a loaded 2-core machine and sanitizers: how late past its limit a drop may be
// seen (the engine itself checks deadlines every 100 ms).
constexpr auto slack = 1500ms;
#if defined(__SANITIZE_THREAD__)
constexpr std::size_t runtime_threads = 1;  // TSan starts a background thread of its own
#else
constexpr std::size_t runtime_threads = 0;
#endif
constexpr std::size_t peer_reader_thread = 1;  // testing_support::process reads its output

// Sanitized builds run handshakes ten times slower and redzone every allocation: they check
// the same behaviour with fewer connections, and print memory without bounding it.
constexpr std::size_t thousands = sanitized ? 1000 : 10000;

double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

passive_socket listener() { return make_socket(passive{.local_host = "127.0.0.1"}); }

void echo_blocking(ssl_stream& s) {
  std::array<std::byte, 4096> b{};
  while (auto n = s.read_some(b)) s.write_all(std::span(b).first(n));
}

task<> echo_coroutine(async_stream& s) {
  std::array<std::byte, 4096> b{};
  while (auto n = co_await s.read_some(b)) co_await s.write_all(std::span(b).first(n));
}

/// Raises this process's descriptor limit to `n`, or says why it cannot.
std::string allow_descriptors(std::size_t n) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_max != RLIM_INFINITY && r.rlim_max < n)
    return "needs " + std::to_string(n) + " descriptors; the hard limit is " +
           std::to_string(r.rlim_max) + " (raise it: ulimit -Hn, or LimitNOFILE=)";
  if (r.rlim_cur < n) {
    r.rlim_cur = n;
    if (::setrlimit(RLIMIT_NOFILE, &r) != 0) return "setrlimit(RLIMIT_NOFILE) failed";
  }
  return "";
}

std::string peer_path() { return SSLSTREAM_LIMITS_PEER; }

/// Waits until `pred` holds, at most `limit`; whether it did.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

}  // namespace

TEST(ServerLimits, TenThousandHalfSentHellosTakeNoThreadAndAreDroppedAtHandshakeTimeout) {
  // Long enough that all of them are held at once: opening 10,000 connections took 4.5 s on
  // the 2-core machine under a load average of 9 (up to 13 s before the engine deferred
  // OpenSSL's handshake state to the first whole record).
  constexpr auto limit = 15s;
  // Ending a stream costs about 40 us (SSL_free; measured apart, more under load): the loops
  // end 10,000 at the rate they were accepted, or later, not all at their exact deadline.
  constexpr auto drop_slack = 3000ms;
  constexpr unsigned loops = 2;
  constexpr std::size_t workers = 4;
  if (auto why = allow_descriptors(thousands + 256); !why.empty()) GTEST_SKIP() << why;
  auto base_threads = thread_count(::getpid());
  sslstream::server_options o;
  o.threads = loops;
  o.max_workers = workers;
  o.max_connections = thousands + 16;  // room for the legitimate client beside them
  o.handshake_timeout = limit;
  server srv(listener(), make_ssl_server_context(tls_server_options("ec")), echo_blocking, o);
  srv.start();
  ::malloc_trim(0);  // what earlier tests freed is not resident any more
  auto rss0 = status_kib(::getpid(), "VmRSS:");  // the listener up, no connection yet

  process peer({peer_path(), "half-hellos", std::to_string(srv.local_port()),
                std::to_string(thousands), "60"});
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(peer.wait_for_output("held ", limit + 30s)) << peer.output();
  ASSERT_TRUE(eventually([&] { return srv.stats().accepted >= thousands; }, 10s))
      << srv.stats().accepted << " accepted; " << peer.output();
  // Every one was accepted by now, so every deadline falls before now + limit.
  auto all_accepted = std::chrono::steady_clock::now();
  auto held_after = ms_since(t0);
  auto st = srv.stats();
  auto rss1 = status_kib(::getpid(), "VmRSS:");
  auto threads_held = thread_count(::getpid());
  ASSERT_EQ(st.active, thousands) << "some were dropped before all were held (connecting took "
                                  << held_after << " ms, the limit is " << ms(limit)
                                  << " ms): " << peer.output();

  // A legitimate client is served beside them, at once.
  auto client_ctx = make_ssl_client_context(client_options());
  auto served_at = std::chrono::steady_clock::now();
  EXPECT_EQ(echo_once(srv.local_port(), client_ctx), "");
  auto served_ms = ms_since(served_at);
  EXPECT_LT(served_ms, 1000);
  auto threads_after = thread_count(::getpid());
  auto max_threads = base_threads + loops + workers + peer_reader_thread + runtime_threads;
  EXPECT_LE(threads_held, max_threads);
  EXPECT_LE(threads_after, max_threads);

  double per_conn =
      static_cast<double>(rss1 - std::min(rss1, rss0)) * 1024.0 / static_cast<double>(thousands);
  // A stalled handshake holds its stream (OpenSSL's SSL at SSL_new: 8.5 KiB) and the socket;
  // the engine starts the handshake only once the ClientHello is whole. Before it did: a
  // partial record made OpenSSL set up its whole handshake state, 47.5 KiB resident each.
  if (!sanitized) {
    EXPECT_LE(per_conn, 16.0 * 1024) << "bytes of resident memory per stalled handshake";
  }

  ASSERT_TRUE(peer.wait_for_output("dropped ", limit + drop_slack + 30s)) << peer.output();
  std::smatch m;
  auto out = peer.output();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(dropped (\d+) (\d+) (\d+) (\d+))"))) << out;
  auto dropped = std::stoul(m[1]);
  auto first_ms = std::stod(m[2]), last_ms = std::stod(m[3]);
  // The last drop, from the moment all had been accepted (the peer's clock is the same
  // CLOCK_MONOTONIC): a connection waits in the accept queue after its connect(), and its
  // limit starts only when the server accepts it.
  auto last_after_accepted = std::stod(m[4]) - ms(all_accepted.time_since_epoch());
  EXPECT_EQ(dropped, thousands) << out;
  // None before its limit (measured from its own connect(), earlier than its accept) ...
  EXPECT_GE(first_ms, static_cast<double>(ms(limit)));
  // ... and the last within the slack after the last limit could have started.
  EXPECT_LE(last_after_accepted, static_cast<double>(ms(limit + drop_slack)));
  EXPECT_TRUE(eventually([&] { return srv.stats().active == 0; }, 5s));
  EXPECT_EQ(srv.stats().timed_out, thousands);
  EXPECT_EQ(srv.stats().handshakes, 1u);  // the legitimate one
  std::printf(
      "limits: %zu half-sent ClientHellos held (all connected %.0f ms after the first): "
      "resident %zu -> %zu KiB, %.0f bytes each; threads %zu (loops %u + workers %zu + this "
      "test's %zu); a legitimate client served in %.0f ms; dropped %.0f..%.0f ms after their "
      "connect, the last %.0f ms after all were accepted (handshake_timeout %lld ms); "
      "rejected accepts %llu\n",
      thousands, held_after, rss0, rss1, per_conn, threads_after, loops, workers,
      base_threads + peer_reader_thread, served_ms, first_ms, last_ms, last_after_accepted,
      static_cast<long long>(std::chrono::milliseconds(limit).count()),
      static_cast<unsigned long long>(srv.stats().rejected));
  srv.stop();
}

TEST(ServerLimits, OutOfDescriptorsTheOldestStalledHandshakeGivesItsDescriptor) {
  // Stalled handshakes that hold every descriptor the process may open would keep clients out
  // as a full server would (max_connections is far away here): the oldest that has lasted a
  // second is closed when an accept fails for want of one. Before, the client waited.
  if (sanitized)  // as in test_load: UBSan's checks open /proc/self/maps, and misfire without
    GTEST_SKIP() << "a sanitizer runtime out of descriptors misfires: release builds only";
  sslstream::server_options o;
  o.threads = 1;
  o.handshake_timeout = 60s;
  server srv(listener(), make_ssl_server_context(tls_server_options("ec")), echo_coroutine, o);
  srv.start();
  // Everything the legitimate client needs is opened before descriptors run out.
  auto client_ctx = make_ssl_client_context(client_options());
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct restore {
    rlimit r;
    ~restore() { ::setrlimit(RLIMIT_NOFILE, &r); }
  } restore_at_end{saved};
  rlimit low = saved;
  low.rlim_cur = open_descriptors(::getpid()) + 24;  // the peer's pipes, then ~20 accepts
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  // 30: more than the ~20 descriptors left, fewer than twice as many (one round of eviction).
  process peer({peer_path(), "half-hellos", std::to_string(srv.local_port()), "30", "60"});
  ASSERT_TRUE(eventually([&] { return srv.stats().rejected > 0; }, 20s))
      << "the server never ran out of descriptors: " << peer.output();
  std::this_thread::sleep_for(1200ms);  // the stalled ones have lasted a second

  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(srv.local_port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  auto t0 = std::chrono::steady_clock::now();
  std::string result;
  try {
    auto t = make_ssl_client_stream(adopt_socket(fd), client_ctx);
    t.set_timeout(5s);
    t << "through\n" << std::flush;
    std::string got;
    std::getline(t, got);
    result = got == "through" ? "" : "wrong echo: " + got;
  } catch (const std::exception& e) {
    result = e.what();
  }
  auto took = ms_since(t0);
  EXPECT_EQ(result, "");
  EXPECT_LT(took, 1000 + 500) << "the loop tries again 100 ms after a failed accept; slack";
  EXPECT_GE(srv.stats().evicted, 1u);
  std::printf(
      "limits: out of descriptors, a client served in %.0f ms (%llu stalled handshakes "
      "closed for descriptors, %llu accepts failed)\n",
      took, static_cast<unsigned long long>(srv.stats().evicted),
      static_cast<unsigned long long>(srv.stats().rejected));
  peer.kill(SIGTERM);
  srv.stop();
}

TEST(ServerLimits, AClientHelloArrivingByteByByteIsServed) {
  // The engine waits for the ClientHello to be whole before it starts the handshake: a
  // record that comes in 1-byte pieces, each a wake-up of its own, still gets there.
  sslstream::server_options o;
  o.threads = 1;
  server srv(listener(), make_ssl_server_context(tls_server_options("ec")), echo_coroutine, o);
  srv.start();
  fault_proxy proxy(srv.local_port(), fault{.what = fault::split});
  EXPECT_EQ(echo_once(proxy.port(), make_ssl_client_context(client_options())), "");
  EXPECT_EQ(srv.stats().handshakes, 1u);
  srv.stop();
}

TEST(ServerLimits, AClientThatClosesInsideItsFirstRecordIsEndedAtOnce) {
  // Waiting for the rest of a record that can no longer come would hold the connection until
  // handshake_timeout: a peer's close ends the wait, and the handshake fails.
  sslstream::server_options o;
  o.threads = 1;
  o.handshake_timeout = 10s;
  server srv(listener(), make_ssl_server_context(tls_server_options("ec")), echo_coroutine, o);
  srv.start();
  int fd = raw_connect(srv.local_port());
  ASSERT_GE(fd, 0);
  const unsigned char part[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc};
  ASSERT_EQ(::send(fd, part, sizeof part, MSG_NOSIGNAL), static_cast<ssize_t>(sizeof part));
  auto t0 = std::chrono::steady_clock::now();
  ::shutdown(fd, SHUT_WR);
  EXPECT_TRUE(eventually(
      [&] {
        auto st = srv.stats();
        return st.accepted == 1 && st.active == 0;
      },
      5s));
  double took = ms_since(t0);
  ::close(fd);
  EXPECT_LT(took, 1000);
  EXPECT_EQ(srv.stats().handshake_failures, 1u)
      << "handshakes " << srv.stats().handshakes << ", accepted " << srv.stats().accepted;
  EXPECT_EQ(srv.stats().timed_out, 0u);
  srv.stop();
}

TEST(ServerLimits, TenThousandIdleTlsConnectionsOnCoroutinesTakeNoThreadAndBoundedMemory) {
  // Memory is the server's resident set (/proc/self/status VmRSS); the clients live in another
  // process, so none of theirs is counted. Baseline: the listener up, no connection.
  if (auto why = allow_descriptors(thousands + 256); !why.empty()) GTEST_SKIP() << why;
  constexpr unsigned loops = 2;
  auto base_threads = thread_count(::getpid());
  sslstream::server_options o;
  o.threads = loops;
  o.max_connections = thousands + 16;  // and the baseline's one
  o.handshake_timeout = 60s;
  server srv(listener(), make_ssl_server_context(tls_server_options("ec")), echo_coroutine, o);
  srv.start();
  // One connection first, so that what every connection shares (OpenSSL's tables, the
  // loops' first allocations) counts in the baseline, not against each connection.
  EXPECT_EQ(echo_once(srv.local_port(), make_ssl_client_context(client_options())), "");
  ASSERT_TRUE(eventually([&] { return srv.stats().active == 0; }, 5s));
  ::malloc_trim(0);  // what earlier tests freed is not resident any more
  auto rss0 = status_kib(::getpid(), "VmRSS:");

  auto t0 = std::chrono::steady_clock::now();
  process peer({peer_path(), "tls-idle", std::to_string(srv.local_port()),
                std::to_string(thousands), cert("server-ec.pem")});
  ASSERT_TRUE(peer.wait_for_output("idle ", 120s)) << peer.output();
  ASSERT_TRUE(eventually([&] { return srv.stats().handshakes >= thousands + 1; }, 20s))
      << srv.stats().handshakes;
  auto took = ms_since(t0);
  std::this_thread::sleep_for(200ms);  // the last handlers reach their first co_await
  auto rss1 = status_kib(::getpid(), "VmRSS:");
  auto threads = thread_count(::getpid());
  EXPECT_EQ(srv.stats().active, thousands);
  EXPECT_LE(threads, base_threads + loops + peer_reader_thread + runtime_threads);
  double per_conn =
      static_cast<double>(rss1 - std::min(rss1, rss0)) * 1024.0 / static_cast<double>(thousands);
  // Issue 11 asks for 12 KiB; OpenSSL 3.0 alone takes more. Measured apart (one thread,
  // mallinfo2): a server SSL is 8.5 KiB at SSL_new and 14 KiB after a TLS 1.3 handshake; this
  // handler's frame (its 4 KiB buffer) 4.3 KiB; the engine's connection and the stream's state
  // about 1.5 KiB. 20.2 KiB was measured here; the bound leaves room for the allocator.
  if (!sanitized) {
    EXPECT_LE(per_conn, 24.0 * 1024) << "bytes of resident memory per idle TLS connection";
  }
  std::printf(
      "limits: %zu idle TLS 1.3 connections (ECDSA P-256, coroutine echo with a 4 KiB buffer "
      "in its frame), handshaken in %.0f ms: resident %zu -> %zu KiB, %.0f bytes (%.1f KiB) "
      "each beyond the baseline (issue 11's target: 12 KiB); threads %zu (loops %u + this "
      "test's %zu)\n",
      thousands, took, rss0, rss1, per_conn, per_conn / 1024, threads, loops,
      base_threads + peer_reader_thread);
  peer.close_stdin();
  EXPECT_EQ(peer.wait(30s), 0) << peer.output();
  EXPECT_TRUE(eventually([&] { return srv.stats().active == 0; }, 20s));
  srv.stop();
}

namespace {

/// A TLS client whose receive buffer is small and which never reads: it writes until nothing
/// more is taken, and watches (without reading) how much has arrived for it.
struct non_reader {
  explicit non_reader(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;  // before connect(), so that the window is small from the start
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    int sndbuf = 16384;  // and what it sends waits in the server's queue, not in its own
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      throw std::runtime_error("connect to the server failed");
    }
    auto o = client_options();
    o.server_name = "localhost";  // an adopted socket has no host name to check
    s = std::make_unique<ssl_stream>(make_ssl_client_stream(adopt_socket(fd), o));
    s->set_timeout(20s);
    s->do_handshake();
  }
  /// Writes what the connection takes now; watches the receive queue; notices the drop.
  void step() {
    if (dropped) return;
    auto now = std::chrono::steady_clock::now();
    pollfd p{s->native_handle(), POLLRDHUP, 0};
    bool gone = ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
    try {
      // All it takes: the server then always has input, and stalls only on its output.
      for (int i = 0; i < 64 && !gone; ++i)
        if (s->try_write_some(chunk).status != io_status::done) break;
    } catch (const std::exception&) {
      gone = true;  // reset by the server
    }
    if (gone) {
      dropped = true;
      dropped_at = now;
      return;
    }
    int queued = 0;
    ::ioctl(s->native_handle(), FIONREAD, &queued);
    if (queued != last_queued) {
      last_queued = queued;
      // It grew after the previous look: the server last made progress after that moment.
      last_progress_before = previous_look;
    }
    previous_look = now;
  }
  std::unique_ptr<ssl_stream> s;
  std::vector<std::byte> chunk = std::vector<std::byte>(4096, std::byte{'x'});
  int last_queued = -1;
  std::chrono::steady_clock::time_point previous_look = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_progress_before = previous_look;
  bool dropped = false;
  std::chrono::steady_clock::time_point dropped_at;
};

/// A listener whose connections have small socket buffers (accepted sockets inherit them), so
/// that a server that cannot write stalls as soon as its peer's receive queue stops growing:
/// what the peer sees is then what the server did.
passive_socket small_buffered_listener() {
  auto l = listener();
  int size = 16384;
  ::setsockopt(l.native_handle(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  ::setsockopt(l.native_handle(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  return l;
}

/// 100 non-reading clients against `srv` (an echo server with write_timeout `limit`): each is
/// dropped within [limit, limit + slack] of the server's last progress in writing to it. That
/// moment comes after the client's receive queue last grew (the server stalls once it is full),
/// so measuring from the look before the last growth never reports less than the server
/// waited.
void expect_non_readers_dropped(server& srv, std::chrono::milliseconds limit, const char* kind) {
  constexpr int clients = 100;
  // One thread watches all 100: under a load average of 10 on 2 cores it saw the last drops up
  // to 1.9 s after the limit (most within 50 ms).
  constexpr auto watch_slack = 2500ms;
  std::vector<non_reader> cs;
  for (int i = 0; i < clients; ++i) cs.emplace_back(srv.local_port());
  auto until = std::chrono::steady_clock::now() + limit + watch_slack + 30s;
  int left = clients;
  while (left > 0 && std::chrono::steady_clock::now() < until) {
    left = 0;
    for (auto& c : cs) {
      c.step();
      left += c.dropped ? 0 : 1;
    }
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(left, 0) << left << " of " << clients << " clients were never dropped";
  double lo = 1e18, hi = 0;
  for (auto& c : cs) {
    double d = ms(c.dropped_at - c.last_progress_before);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  // The client sees the server's progress as its receive queue growing, which can lag the
  // server's last write (bytes wait in the server's send buffer until TCP's window opens): a
  // drop may look up to that lag early (29 ms seen under TSan). Never more than this:
  constexpr auto seen_late = 250ms;
  EXPECT_GE(lo, static_cast<double>((limit - seen_late).count()));
  EXPECT_LE(hi, static_cast<double>((limit + watch_slack).count()));
  EXPECT_TRUE(eventually([&] { return srv.stats().active == 0; }, 5s));
  EXPECT_EQ(srv.stats().timed_out, static_cast<std::uint64_t>(clients));
  std::printf(
      "limits: %d clients that never read (%s handlers): dropped %.0f..%.0f ms after the "
      "server's last progress (write_timeout %lld ms)\n",
      clients, kind, lo, hi, static_cast<long long>(limit.count()));
}

}  // namespace

TEST(ServerLimits, ClientsThatNeverReadAreDroppedAtWriteTimeoutCoroutineHandlers) {
  constexpr auto limit = 1000ms;
  sslstream::server_options o;
  o.threads = 2;
  o.write_timeout = limit;
  server srv(small_buffered_listener(), make_ssl_server_context(tls_server_options("ec")),
             echo_coroutine, o);
  srv.start();
  expect_non_readers_dropped(srv, limit, "coroutine");
  srv.stop();
}

TEST(ServerLimits, ClientsThatNeverReadAreDroppedAtWriteTimeoutBlockingHandlers) {
  constexpr auto limit = 1000ms;
  sslstream::server_options o;
  o.threads = 2;
  o.max_workers = 100;  // each stalled writer holds a worker until its limit
  o.write_timeout = limit;
  server srv(small_buffered_listener(), make_ssl_server_context(tls_server_options("ec")),
             echo_blocking, o);
  srv.start();
  expect_non_readers_dropped(srv, limit, "blocking");
  srv.stop();
}

namespace {

/// A client that reads `size` bytes at 32 KiB every 100 ms, about three times `limit` in all:
/// a slow but steady reader, never one that stopped.
void expect_slow_reader_gets_all(server& srv, std::chrono::milliseconds limit, std::size_t size,
                                 const char* kind) {
  auto t = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = srv.local_port()}),
      client_options());
  t.set_timeout(20s);
  auto t0 = std::chrono::steady_clock::now();
  std::size_t got = 0;
  std::vector<std::byte> b(16384);
  try {
    for (std::size_t tick = 0; got < size; got += 0) {
      auto n = t.read_some(b);
      if (n == 0) break;
      got += n;
      if (got / 32768 > tick) {
        tick = got / 32768;
        std::this_thread::sleep_for(100ms);
      }
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "after " << got << " bytes: " << e.what();
  }
  double took = ms_since(t0);
  EXPECT_EQ(got, size);
  EXPECT_GT(took, 2.0 * static_cast<double>(limit.count()));
  EXPECT_EQ(srv.stats().timed_out, 0u);
  std::printf(
      "limits: a reader taking 32 KiB every 100 ms got all %zu bytes of one write_all (%s "
      "handler) in %.0f ms (write_timeout %lld ms)\n",
      got, kind, took, static_cast<long long>(limit.count()));
}

}  // namespace

TEST(ServerLimits, ASlowReaderIsNotDroppedWhileItKeepsTakingData) {
  // write_timeout is for a peer that stops reading: one that reads slowly but steadily gets
  // one large write_all whole, however long it takes. Before: the limit counted from the
  // write's first wait, so this reader was dropped after 1 s with a third of the data.
  constexpr auto limit = 1000ms;
  constexpr std::size_t size = 1 << 20;
  sslstream::server_options o;
  o.threads = 1;
  o.write_timeout = limit;
  server srv(
      small_buffered_listener(), make_ssl_server_context(tls_server_options("ec")),
      [&](async_stream& s) -> task<> {
        std::vector<std::byte> big(size, std::byte{'z'});
        co_await s.write_all(big);
        co_await s.close();
      },
      o);
  srv.start();
  expect_slow_reader_gets_all(srv, limit, size, "coroutine");
  srv.stop();
}

TEST(ServerLimits, ASlowReaderIsNotDroppedByABlockingHandlersWrite) {
  // The same for a blocking handler: the stream's write timeout restarts whenever a record
  // goes out. Before, it bounded the whole write_all call, and this reader was cut after 1 s.
  constexpr auto limit = 1000ms;
  constexpr std::size_t size = 1 << 20;
  sslstream::server_options o;
  o.threads = 1;
  o.write_timeout = limit;
  server srv(
      small_buffered_listener(), make_ssl_server_context(tls_server_options("ec")),
      [&](ssl_stream& s) {
        std::vector<std::byte> big(size, std::byte{'z'});
        s.write_all(big);
        s.close();
      },
      o);
  srv.start();
  expect_slow_reader_gets_all(srv, limit, size, "blocking");
  srv.stop();
}

namespace {

void expect_idle_dropped_active_kept(server& srv, std::chrono::milliseconds limit,
                                     const char* kind) {
  auto ctx = make_ssl_client_context(client_options());
  // The active client: a line every third of the limit, for three limits, each echoed.
  auto busy = std::async(std::launch::async, [&] {
    auto t = make_ssl_client_stream(
        make_socket(active{.remote_host = "localhost", .remote_port = srv.local_port()}),
        make_ssl_client_context(client_options()));
    t.set_timeout(20s);
    for (int i = 0; i < 9; ++i) {
      std::this_thread::sleep_for(limit / 3);
      std::string line = "tick " + std::to_string(i) + "\n";
      t.write_all(std::as_bytes(std::span(line)));
      std::string got;
      std::array<std::byte, 64> b{};
      while (got.size() < line.size()) {
        auto n = t.read_some(b);
        if (n == 0) return std::string("dropped while active, at tick ") + std::to_string(i);
        got.append(reinterpret_cast<const char*>(b.data()), n);
      }
    }
    t.close();
    return std::string();
  });
  auto t0 = std::chrono::steady_clock::now();  // before connect(): the limit starts later
  auto idle = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = srv.local_port()}), ctx);
  idle.set_timeout(limit + slack + 10s);
  idle.do_handshake();
  std::array<std::byte, 64> b{};
  bool ended = false;
  try {
    while (idle.read_some(b) > 0) {  // the session tickets, then the server's close
    }
    ended = true;
  } catch (const socket_error& e) {
    ended = e.identifier() != "timeout";  // a reset is an end too
  }
  double took = ms_since(t0);
  EXPECT_TRUE(ended) << "the idle connection was not dropped";
  EXPECT_GE(took, static_cast<double>(limit.count()));
  EXPECT_LE(took, static_cast<double>((limit + slack).count()));
  EXPECT_EQ(busy.get(), "");
  EXPECT_EQ(srv.stats().timed_out, 1u);
  std::printf(
      "limits: idle connection (%s handler) dropped %.0f ms after its connect "
      "(idle_timeout %lld ms); one sending every %lld ms kept for %lld ms\n",
      kind, took, static_cast<long long>(limit.count()),
      static_cast<long long>((limit / 3).count()), static_cast<long long>((limit * 3).count()));
}

}  // namespace

TEST(ServerLimits, IdleTimeoutDropsAnIdleConnectionNotAnActiveOneCoroutineHandlers) {
  constexpr auto limit = 1000ms;
  sslstream::server_options o;
  o.threads = 1;
  o.idle_timeout = limit;
  server srv(listener(), make_ssl_server_context(tls_server_options("ec")), echo_coroutine, o);
  srv.start();
  expect_idle_dropped_active_kept(srv, limit, "coroutine");
  srv.stop();
}

TEST(ServerLimits, IdleTimeoutDropsAnIdleConnectionNotAnActiveOneBlockingHandlers) {
  constexpr auto limit = 1000ms;
  sslstream::server_options o;
  o.threads = 1;
  o.idle_timeout = limit;
  server srv(listener(), make_ssl_server_context(tls_server_options("ec")), echo_blocking, o);
  srv.start();
  expect_idle_dropped_active_kept(srv, limit, "blocking");
  srv.stop();
}

TEST(ServerLimits, PastMaxConnectionsClientsWaitInTheBacklogAndAreAllServed) {
  constexpr std::size_t max = 20;
  constexpr int waiting = 30;
  sslstream::server_options o;
  o.threads = 2;
  o.max_connections = max;
  server srv(listener(), make_ssl_server_context(tls_server_options("ec")), echo_coroutine, o);
  srv.start();
  auto ctx = make_ssl_client_context(client_options());
  std::vector<ssl_stream> open;
  for (std::size_t i = 0; i < max; ++i) {
    open.push_back(make_ssl_client_stream(
        make_socket(active{.remote_host = "localhost", .remote_port = srv.local_port()}), ctx));
    open.back().set_timeout(20s);
    open.back().do_handshake();
  }
  std::vector<std::future<std::string>> later;
  for (int i = 0; i < waiting; ++i)
    later.push_back(std::async(std::launch::async, [&] {
      return echo_once(srv.local_port(), make_ssl_client_context(client_options()));
    }));
  // They are connected (in the backlog) but not served while the server is full.
  std::this_thread::sleep_for(1s);
  for (auto& f : later) EXPECT_EQ(f.wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(srv.stats().active, max);
  EXPECT_EQ(srv.stats().accepted, max);
  auto t0 = std::chrono::steady_clock::now();
  for (auto& s : open) s.close();
  int served = 0;
  for (auto& f : later) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto e = f.get();
    EXPECT_EQ(e, "") << "a waiting client was refused or failed";
    served += e.empty() ? 1 : 0;
  }
  EXPECT_EQ(srv.stats().rejected, 0u);
  EXPECT_EQ(srv.stats().accepted, max + waiting);
  std::printf(
      "limits: max_connections %zu reached: %d more clients waited in the backlog, all "
      "%d served within %.0f ms of the first %zu ending\n",
      max, waiting, served, ms_since(t0), max);
  srv.stop();
}

TEST(ServerLimits, WhenNoMoreThreadsCanStartTheServerServesWithWhatItHas) {
  if (sanitized)
    GTEST_SKIP() << "a sanitized process reserves terabytes of shadow memory: no address-space "
                    "limit fits it";
  // A child server (4 loops, up to 16 workers) with room in its address space for only a few
  // 8 MiB thread stacks: its threads fail to start, and it serves with those that did. (With
  // room for its loops only, no worker ever starts, and blocking handlers wait: the engine
  // tries again every 100 ms, and serves once memory frees up.)
  constexpr unsigned loops = 4;
  constexpr std::size_t workers = 16;
  process child({peer_path(), "serve", cert("server-ec.pem"), cert("server-ec.key"),
                 std::to_string(loops), std::to_string(workers), "72"});
  auto port = child.wait_for_match(R"(port (\d+))", 20s);
  ASSERT_TRUE(port) << child.output();
  auto p = static_cast<std::uint16_t>(std::stoi(*port));
  // 24 clients at once, each holding a blocking handler until its echo comes back: more than
  // the workers that can start, so some wait for a worker to come free.
  constexpr int clients = 24;
  std::vector<std::future<std::string>> fs;
  for (int i = 0; i < clients; ++i)
    fs.push_back(std::async(std::launch::async, [p] {
      return echo_once(p, make_ssl_client_context(client_options()));
    }));
  int served = 0;
  for (auto& f : fs) {
    ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
    auto e = f.get();
    EXPECT_EQ(e, "");
    served += e.empty() ? 1 : 0;
  }
  auto threads = thread_count(child.pid());
  EXPECT_LT(threads, 1 + loops + workers) << "every thread started: the limit did not bite";
  EXPECT_GE(threads, 2u) << "no event loop runs";
  // Still serving, and alive.
  EXPECT_EQ(echo_once(p, make_ssl_client_context(client_options())), "");
  child.close_stdin();
  EXPECT_EQ(child.wait(20s), 0) << child.output();
  EXPECT_TRUE(child.wait_for_output("stopped", 1s)) << child.output();
  std::printf(
      "limits: under an address-space limit the server ran %zu threads of the %zu it "
      "may start (main + %u loops + %zu workers) and served all %d clients\n",
      threads, 1 + loops + workers, loops, workers, served);
}

TEST(ServerLimits, ReloadUnderLoadEveryHandshakeSucceedsWithTheOldOrTheNewCertificate) {
  constexpr int clients = 200;
  constexpr auto load_for = 3s;
  sslstream::server_options o;
  o.threads = 2;
  server srv(listener(), make_ssl_server_context(tls_server_options("rsa")), echo_coroutine, o);
  srv.start();
  auto rsa = x509_certificate::load_pem_file(cert("server-rsa.pem")).fingerprint_sha256();
  auto ec = x509_certificate::load_pem_file(cert("server-ec.pem")).fingerprint_sha256();
  std::atomic<bool> done{false};
  std::atomic<int> with_rsa{0}, with_ec{0}, failed{0};
  std::mutex m;
  std::string first_failure;
  std::vector<std::thread> ts;
  for (int i = 0; i < clients; ++i)
    ts.emplace_back([&] {
      auto ctx = make_ssl_client_context(client_options());  // one each: see test_server
      do {
        try {
          auto t = make_ssl_client_stream(
              make_socket(active{.remote_host = "localhost", .remote_port = srv.local_port()}),
              ctx);
          t.set_timeout(20s);
          auto fp = t.peer_certificate()->fingerprint_sha256();
          if (fp == rsa)
            ++with_rsa;
          else if (fp == ec)
            ++with_ec;
          else
            throw std::runtime_error("a certificate that is neither the old nor the new one");
          t.close();
        } catch (const std::exception& e) {
          ++failed;
          std::lock_guard lk(m);
          if (first_failure.empty()) first_failure = e.what();
        }
      } while (!done);
    });
  int reloads = 0;
  auto until = std::chrono::steady_clock::now() + load_for;
  while (std::chrono::steady_clock::now() < until) {
    srv.reload(make_ssl_server_context(tls_server_options(reloads % 2 ? "rsa" : "ec")));
    ++reloads;
    std::this_thread::sleep_for(20ms);
  }
  done = true;
  for (auto& t : ts) t.join();
  EXPECT_EQ(failed, 0) << first_failure;
  EXPECT_GT(with_rsa, 0);
  EXPECT_GT(with_ec, 0);
  EXPECT_EQ(srv.stats().handshake_failures, 0u);
  std::printf(
      "limits: %d clients connecting in a loop for %lld ms, %d reloads: %d handshakes "
      "with the RSA certificate, %d with the ECDSA one, %d failed\n",
      clients, static_cast<long long>(std::chrono::milliseconds(load_for).count()), reloads,
      with_rsa.load(), with_ec.load(), failed.load());
  srv.stop();
}
