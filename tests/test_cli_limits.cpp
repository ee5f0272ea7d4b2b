// The server engine's limits shown through `sslstream listen --keep-open` itself (issue 11):
// tests/test_server_limits.cpp shows them through the library's API, this shows that the CLI
// keeps them. The stalled clients come from tests/support/limits_peer.cpp, a process of its
// own: the listen process's threads and memory are read from /proc, and only its own count.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <regex>
#include <sslstream/sslstream.hpp>
#include <thread>

#include "cli_run.hpp"
#include "echo_once.hpp"
#include "loopback.hpp"
#include "timing.hpp"

using namespace std::chrono_literals;
using namespace sslstream;
using namespace testing_support;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr std::size_t runtime_threads = 1;  // TSan starts a background thread of its own
#else
constexpr std::size_t runtime_threads = 0;
#endif

double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

/// Why this machine cannot hold `n` connections in one process, or "": listen raises its soft
/// descriptor limit to the hard one, and limits_peer its own, but neither can pass the hard one.
std::string descriptors_allowed(std::size_t n) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_max != RLIM_INFINITY && r.rlim_max < n)
    return "needs " + std::to_string(n) + " descriptors; the hard limit is " +
           std::to_string(r.rlim_max) + " (raise it: ulimit -Hn, or LimitNOFILE=)";
  return "";
}

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

/// The handshakes listen has reported timed out so far: one line per client ("HOST:PORT: TLS
/// handshake timed out"), at most 10 a second, then counts ("N more TLS handshakes timed out").
std::size_t reported_timeouts(const std::string& out) {
  static const std::regex each(R"(\d+: TLS handshake timed out \()");
  static const std::regex more(R"((\d+) more TLS handshakes? timed out)");
  std::size_t n = 0;
  for (std::sregex_iterator it(out.begin(), out.end(), each), end; it != end; ++it) ++n;
  for (std::sregex_iterator it(out.begin(), out.end(), more), end; it != end; ++it)
    n += std::stoul((*it)[1]);
  return n;
}

}  // namespace

TEST(CliLimits, TenThousandHalfSentHellosTakeNoThreadLetALegitimateClientInAndAreDroppedOnTime) {
  // listen's engine holds at most 10,000 connections (server_options' default: the CLI's
  // --max-connections means "exit after N" instead). 10,000 stalled hellos fill it, so the
  // legitimate client gets in only because the oldest stalled handshake, older than a second by
  // then, is closed to make room (stats().evicted): exactly one hello is dropped early.
  constexpr std::size_t hellos = 10000;
  // Long enough that all of them are held at once: opening 10,000 connections takes about
  // 4.5 s on the 2-core machine under load (test_server_limits measures the same).
  constexpr auto limit = 15s;
  // The engine checks deadlines every 100 ms and ends a stream in about 40 us (SSL_free, more
  // under load): 10,000 end at the rate they were accepted, or later, not all at their deadline.
  constexpr auto drop_slack = 3000ms;
  // The issue's "under 1 s", plus a loaded 2-core machine's (and sanitizers') scheduling.
  constexpr auto served_slack = 500ms;
  if (auto why = descriptors_allowed(hellos + 256); !why.empty()) GTEST_SKIP() << why;

  process srv(cmd({"listen", "--host", "127.0.0.1", "--cert", cert("server-ec.pem"), "--key",
                   cert("server-ec.key"), "--keep-open", "--echo", "--handshake-timeout",
                   std::to_string(std::chrono::seconds(limit).count())}));
  auto port = listening(srv);
  // listen's threads: one event loop per core (no --threads flag: the engine's default), no
  // worker (--echo is a coroutine handler: workers start only for --forward/--exec), and its
  // main thread, which reads signals and reports. Its stopper thread starts only at SIGTERM.
  const std::size_t loops = std::max(1u, std::thread::hardware_concurrency());
  constexpr std::size_t workers = 0, main_thread = 1;
  const std::size_t max_threads = loops + workers + main_thread + runtime_threads;
  std::size_t peak_threads = thread_count(srv.pid());
  auto rss0 = status_kib(srv.pid(), "VmRSS:");  // listening, no connection yet
  auto fds0 = open_descriptors(srv.pid());

  process peer({SSLSTREAM_LIMITS_PEER, "half-hellos", std::to_string(port), std::to_string(hellos),
                "60", std::to_string(std::chrono::milliseconds(limit).count())});
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(peer.wait_for_output("held ", limit + 30s)) << peer.output();
  // Accepted, each an open descriptor of listen's (a connection waits in the backlog after its
  // connect() until then): every deadline now falls before now + limit.
  ASSERT_TRUE(eventually([&] { return open_descriptors(srv.pid()) >= fds0 + hellos; }, 10s))
      << open_descriptors(srv.pid()) - fds0 << " accepted; " << peer.output() << srv.output();
  auto all_accepted = std::chrono::steady_clock::now();
  auto held_after = ms_since(t0);
  peak_threads = std::max(peak_threads, thread_count(srv.pid()));
  auto rss1 = status_kib(srv.pid(), "VmRSS:");
  ASSERT_EQ(reported_timeouts(srv.output()), 0u)
      << "dropped before all were held (connecting took " << held_after << " ms, the limit is "
      << ms(limit) << " ms): " << srv.output();

  // The legitimate client: the 10,001st connection.
  auto served_at = std::chrono::steady_clock::now();
  EXPECT_EQ(echo_once(port, make_ssl_client_context(client_options())), "") << srv.output();
  auto served_ms = ms_since(served_at);
  EXPECT_LE(served_ms, ms(1s + served_slack));
  rss1 = std::max(rss1, status_kib(srv.pid(), "VmRSS:"));

  // Threads, watched until the peer has seen every drop.
  bool finished = false;
  auto until = std::chrono::steady_clock::now() + limit + drop_slack + 30s;
  while (!finished && std::chrono::steady_clock::now() < until) {
    peak_threads = std::max(peak_threads, thread_count(srv.pid()));
    finished = peer.wait_for_output("dropped ", 100ms);
  }
  ASSERT_TRUE(finished) << peer.output();
  EXPECT_LE(peak_threads, max_threads);

  auto out = peer.output();
  std::smatch m, e;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(dropped (\d+) (\d+) (\d+) (\d+))"))) << out;
  ASSERT_TRUE(std::regex_search(out, e, std::regex(R"(early (\d+) (\d+))"))) << out;
  auto dropped = std::stoul(m[1]), early = std::stoul(e[1]);
  auto on_time_first_ms = std::stod(e[2]), last_ms = std::stod(m[3]);
  // The last drop, from the moment all had been accepted (the peer's clock is the same
  // CLOCK_MONOTONIC); each limit starts at its accept, after its connect().
  auto last_after_accepted = std::stod(m[4]) - ms(all_accepted.time_since_epoch());
  EXPECT_EQ(dropped, hellos) << out;
  // One made room for the legitimate client; none of the others before its limit (measured
  // from its connect(), earlier than its accept) ...
  EXPECT_EQ(early, 1u) << out;
  EXPECT_GE(on_time_first_ms, ms(limit)) << out;
  // ... and the last within the slack after the last limit could have started.
  EXPECT_LE(last_after_accepted, ms(limit + drop_slack)) << out;
  // listen reports the timeouts, and the eviction apart.
  EXPECT_TRUE(says({0, srv.output()},
                   "1 stalled TLS handshake closed to make room for new "
                   "clients (10000 connections at most at once"))
      << srv.output().substr(0, 4000);
  EXPECT_TRUE(eventually([&] { return reported_timeouts(srv.output()) >= hellos - early; }, 5s));
  EXPECT_EQ(reported_timeouts(srv.output()), hellos - early) << srv.output();

  double per_conn =
      static_cast<double>(rss1 - std::min(rss1, rss0)) * 1024.0 / static_cast<double>(hellos);
  // A stalled handshake holds its stream (OpenSSL's SSL at SSL_new: 8.5 KiB) and its socket;
  // the engine starts the handshake only once the first record is whole. Sanitizers redzone
  // every allocation: their figure is printed, not bounded.
  if (!sanitized) {
    EXPECT_LE(per_conn, 16.0 * 1024) << "bytes of resident memory per stalled handshake";
  }
  std::printf(
      "limits: listen --keep-open --echo held %zu half-sent ClientHellos (all accepted %.0f ms "
      "after the first connect): resident %zu -> %zu KiB, %.0f bytes each; threads at most %zu "
      "(loops %zu + workers %zu + main %zu); a legitimate client served in %.0f ms, %zu hello "
      "evicted for it; the rest dropped %.0f..%.0f ms after their connect, the last %.0f ms "
      "after all were accepted (--handshake-timeout %lld s)\n",
      hellos, held_after, rss0, rss1, per_conn, peak_threads, loops, workers, main_thread,
      served_ms, early, on_time_first_ms, last_ms, last_after_accepted,
      static_cast<long long>(std::chrono::seconds(limit).count()));

  srv.kill(SIGTERM);
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
}
