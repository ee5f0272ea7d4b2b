// Every timeout is measured: a limit is behaviour, so each test asserts that the time taken
// lies within [limit, limit + slack] — not just that the operation ended. Socket and TLS
// reads and writes, the connect timeout, close()'s bound, the destructor that never waits, and
// the CLI's --handshake-timeout and --idle-timeout (listen as a process, one-shot and
// --keep-open).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <vector>

#include "loopback.hpp"
#include "silent_listener.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

using clock_type = std::chrono::steady_clock;

// How late a timeout may fire. Deadlines are polled with millisecond rounding and the CLI's
// keep-open server sweeps its parked connections every 100 ms; the rest of the second is for a
// loaded two-core machine and the sanitizer builds. The lower bound has no slack: a limit must
// never fire early.
constexpr milliseconds slack = 1000ms;
// The limit the library tests set: long enough that a wrong (zero or default) limit shows.
constexpr milliseconds limit = 700ms;
// A destructor may send what it can without blocking and close; it must not wait.
constexpr milliseconds destructor_bound = 100ms;

milliseconds since(clock_type::time_point start) {
  return std::chrono::duration_cast<milliseconds>(clock_type::now() - start);
}

/// Elapsed time of `f`, which must throw socket_error "timeout".
template <class F>
milliseconds time_timeout(F&& f) {
  auto start = clock_type::now();
  auto e = expect_throw<socket_error>(f);
  auto took = since(start);
  EXPECT_EQ(e.identifier(), "timeout") << e.what();
  return took;
}

/// Whether `took` lies within [lim, lim + slack].
testing::AssertionResult within(milliseconds took, milliseconds lim) {
  auto says = [&] {
    return "took " + std::to_string(took.count()) + " ms for a limit of " +
           std::to_string(lim.count()) + " ms (slack " + std::to_string(slack.count()) + " ms)";
  };
  if (took < lim) return testing::AssertionFailure() << says() << ": fired early";
  if (took > lim + slack) return testing::AssertionFailure() << says() << ": fired late";
  return testing::AssertionSuccess() << says();
}

/// Fills the kernel's buffers from `writer` to `reader` (which never reads), so that the next
/// write must wait. Fixed buffer sizes turn off the kernel's autotuning; and since the kernel
/// may still make room a little later (it moves queued data to the reader, compacts its queue)
/// without saying so through POLLOUT, filling ends only when a write 300 ms after the last
/// full buffer still finds it full.
void stall(int writer, int reader) {
  int size = 1 << 16;
  ::setsockopt(writer, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  ::setsockopt(reader, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  std::vector<char> junk(4096, 'z');
  auto full = [&] {
    auto n = ::send(writer, junk.data(), junk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      throw std::runtime_error("send while filling the buffers failed");
    return n < 0;
  };
  for (int i = 0; i < 10000; ++i) {  // bounded: the buffers hold a few MiB at most
    if (!full()) continue;
    pollfd p{writer, POLLOUT, 0};
    ::poll(&p, 1, 300);
    if (full()) return;
  }
  throw std::runtime_error("the buffers never filled");
}

tls_pair handshaken_pair() {
  auto p = make_tls_pair(tls_server_options(), client_options());
  auto r = handshake_both(p.server, p.client);
  if (r.server || r.client) throw std::runtime_error("handshake failed");
  return p;
}

const std::vector<std::byte> chunk(1 << 16, std::byte{'w'});
// What `<<` buffers for close() to flush: below the stream's 16 KiB buffer, so that `<<` itself
// does not write, but more than the kernel may still take in small writes.
const std::string buffered(16000, 'b');

}  // namespace

TEST(Timeouts, SocketReadFromASilentPeer) {
  auto [s, c] = socket_pair();
  c.set_timeout(limit);
  std::byte b[1];
  EXPECT_TRUE(within(time_timeout([&] { c.read_some(b); }), limit));
}

TEST(Timeouts, SocketWriteToAPeerThatNeverReads) {
  auto [s, c] = socket_pair();
  stall(c.native_handle(), s.native_handle());
  c.set_timeout(limit);
  EXPECT_TRUE(within(time_timeout([&] { c.write_all(chunk); }), limit));
}

TEST(Timeouts, TlsReadFromASilentPeer) {
  auto p = handshaken_pair();
  p.client.set_timeout(limit);
  std::byte b[1];
  EXPECT_TRUE(within(time_timeout([&] { p.client.read_some(b); }), limit));
}

TEST(Timeouts, TlsWriteToAPeerThatNeverReads) {
  auto p = handshaken_pair();
  // Raw bytes under TLS: the server never reads, so they only have to take up the room.
  stall(p.client.native_handle(), p.server.native_handle());
  p.client.set_timeout(limit);
  EXPECT_TRUE(within(time_timeout([&] { p.client.write_all(chunk); }), limit));
}

TEST(Timeouts, ConnectToASilentAddress) {
  silent_listener silent("127.0.0.1");
  auto start = clock_type::now();
  auto e = expect_throw<socket_error>([&] {
    make_socket(active{.remote_host = "127.0.0.1",
                       .remote_port = silent.listener.local_port(),
                       .connect_timeout = limit});
  });
  auto took = since(start);
  EXPECT_EQ(e.identifier(), "timeout") << e.what();
  EXPECT_TRUE(within(took, limit));
}

TEST(Timeouts, SocketCloseIsBoundedByTheTimeout) {
  auto [s, c] = socket_pair();
  stall(c.native_handle(), s.native_handle());
  c.set_timeout(limit);
  c << buffered;
  EXPECT_TRUE(within(time_timeout([&] { c.close(); }), limit));
  EXPECT_FALSE(c.is_open());  // closed even though the flush failed
}

TEST(Timeouts, TlsCloseIsBoundedByTheTimeout) {
  auto p = handshaken_pair();
  stall(p.client.native_handle(), p.server.native_handle());
  p.client.set_timeout(limit);
  p.client << buffered;
  EXPECT_TRUE(within(time_timeout([&] { p.client.close(); }), limit));
  EXPECT_FALSE(p.client.is_open());
}

// With no timeout set, close() still ends: 10 s (ssl_stream.hpp, socket.hpp).
constexpr milliseconds default_close_bound = 10s;

TEST(Timeouts, SocketCloseWithoutATimeoutStopsAtTheDefaultBound) {
  auto [s, c] = socket_pair();
  stall(c.native_handle(), s.native_handle());
  c << buffered;
  EXPECT_TRUE(within(time_timeout([&] { c.close(); }), default_close_bound));
}

TEST(Timeouts, TlsCloseWithoutATimeoutStopsAtTheDefaultBound) {
  auto p = handshaken_pair();
  p.client.set_timeout(0ms);  // handshake_both set one
  stall(p.client.native_handle(), p.server.native_handle());
  p.client << buffered;
  EXPECT_TRUE(within(time_timeout([&] { p.client.close(); }), default_close_bound));
}

TEST(Timeouts, SocketDestructorNeverWaits) {
  auto [s, c] = socket_pair();
  stall(c.native_handle(), s.native_handle());
  c.set_timeout(5s);  // a destructor that waited on the network would take this long
  c << buffered;
  auto start = clock_type::now();
  { auto gone = std::move(c); }
  EXPECT_LT(since(start).count(), destructor_bound.count());
}

TEST(Timeouts, TlsDestructorNeverWaits) {
  auto p = handshaken_pair();
  stall(p.client.native_handle(), p.server.native_handle());
  p.client.set_timeout(5s);
  p.client << buffered;
  auto start = clock_type::now();
  { auto gone = std::move(p.client); }
  EXPECT_LT(since(start).count(), destructor_bound.count());
}

// The CLI, as a process: from our connect to the server's close of the connection.

namespace {

const std::string bin = SSLSTREAM_CLI;
// The CLI's limits are given in seconds; a whole second keeps the flag's text exact.
constexpr milliseconds cli_limit = 1000ms;

std::uint16_t listening(process& p) {
  auto port = p.wait_for_match(R"(listening on \S*:(\d+)\n)");
  if (!port) throw std::runtime_error("listen did not start: " + p.output());
  return static_cast<std::uint16_t>(std::stoul(*port));
}

std::vector<std::string> listen_argv(const std::string& flag, bool keep_open) {
  std::vector<std::string> v{bin, "listen", "--cert", cert("combined.pem"), flag, "1"};
  if (keep_open) v.push_back("--keep-open");
  return v;
}

/// Waits (at most 20 s) for the server to end the connection: a clean end, a truncation or a
/// reset all count; our own timeout does not, nor data (the server has none to send).
template <class Stream>
void wait_for_the_server_to_close(Stream& s) {
  s.set_timeout(20s);
  std::byte b[256];
  try {
    if (s.read_some(b) != 0) throw std::runtime_error("the server sent data instead of closing");
  } catch (const socket_error& e) {
    if (e.identifier() == "timeout") throw;
  } catch (const tls_error&) {
  }
}

void handshake_timeout_is_kept(bool keep_open) {
  process srv(listen_argv("--handshake-timeout", keep_open));
  auto port = listening(srv);
  auto start = clock_type::now();
  auto c = make_socket(active{.remote_host = "127.0.0.1", .remote_port = port});  // says nothing
  wait_for_the_server_to_close(c);
  EXPECT_TRUE(within(since(start), cli_limit));
  EXPECT_TRUE(srv.wait_for_output("timed out")) << srv.output();
  srv.kill(SIGTERM);
}

void idle_timeout_is_kept(bool keep_open) {
  process srv(listen_argv("--idle-timeout", keep_open));
  auto port = listening(srv);
  auto tls = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = port}), client_options());
  tls.set_timeout(20s);
  tls.do_handshake();  // then neither sends nor closes
  auto start = clock_type::now();
  wait_for_the_server_to_close(tls);
  // In TLS 1.3 (the default) the server's handshake, and so its idle clock, ends after ours:
  // it waits for our Finished. So no allowance is needed at the lower bound.
  EXPECT_TRUE(within(since(start), cli_limit));
  EXPECT_TRUE(srv.wait_for_output("timed out")) << srv.output();
  srv.kill(SIGTERM);
}

}  // namespace

TEST(Timeouts, CliListenHandshakeTimeout) { handshake_timeout_is_kept(false); }
TEST(Timeouts, CliListenKeepOpenHandshakeTimeout) { handshake_timeout_is_kept(true); }
TEST(Timeouts, CliListenIdleTimeout) { idle_timeout_is_kept(false); }
TEST(Timeouts, CliListenKeepOpenIdleTimeout) { idle_timeout_is_kept(true); }
