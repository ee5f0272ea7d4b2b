// Non-blocking streams (DESIGN §5): one thread, one poll() loop, driving both ends of TLS
// connections with try_handshake / try_read_some / try_write_some — the way an event loop
// uses them — and the same for plain socket streams. Against openssl s_server too.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <optional>
#include <sslstream/sslstream.hpp>
#include <thread>

#include "data.hpp"
#include "loopback.hpp"
#include "timing.hpp"

using namespace std::chrono_literals;
using namespace sslstream;
using namespace testing_support;

namespace {

/// One end of a conversation, advanced only when its descriptor is ready: sends `out` whole,
/// then close_notify, and reads everything until the peer's close_notify.
template <class Stream>
struct end_point {
  Stream& s;
  std::string out;
  std::size_t sent = 0;
  std::string in;
  bool handshaken = false, shut = false, eof = false;
  short wait = POLLOUT;  // what to wait for next
  int steps = 0;
  int blocked_writes = 0;  // times the socket took no more and the loop had to wait

  void step() {
    ++steps;
    if constexpr (std::is_same_v<Stream, ssl_stream>) {
      if (!handshaken) {
        auto r = s.try_handshake();
        if (r.status != io_status::done) return wait_for(r.status);
        handshaken = true;
      }
    }
    wait = 0;
    while (sent < out.size()) {  // write what the socket takes
      auto r = s.try_write_some(std::as_bytes(std::span(out)).subspan(sent));
      if (r.status != io_status::done) {
        ++blocked_writes;
        wait_for(r.status);
        break;
      }
      sent += r.bytes;
    }
    if (sent == out.size() && !shut) {
      s.shutdown(direction::output);  // close_notify (blocking, but the buffer has room)
      shut = true;
    }
    std::array<std::byte, 4096> b{};
    while (!eof) {
      auto r = s.try_read_some(b);
      if (r.status == io_status::eof) eof = true;
      if (r.status != io_status::done) {
        if (!eof) wait |= r.status == io_status::want_write ? POLLOUT : POLLIN;
        break;
      }
      in.append(reinterpret_cast<const char*>(b.data()), r.bytes);
    }
  }
  void wait_for(io_status st) { wait = st == io_status::want_write ? POLLOUT : POLLIN; }
  bool finished() const { return eof && shut; }
};

template <class Stream>
bool pending(Stream& s) {
  if constexpr (std::is_same_v<Stream, ssl_stream>)
    return s.input_pending();  // OpenSSL may hold a whole record already read
  else
    return false;
}

/// Drives both ends from one thread until both finished (bounded by a deadline).
template <class Stream>
void run_loop(end_point<Stream>& a, end_point<Stream>& b) {
  auto until = std::chrono::steady_clock::now() + 20s;
  a.step();
  b.step();
  while (!(a.finished() && b.finished())) {
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "the loop did not finish";
    pollfd p[2] = {{a.s.native_handle(), a.finished() ? short(0) : a.wait, 0},
                   {b.s.native_handle(), b.finished() ? short(0) : b.wait, 0}};
    ASSERT_GE(::poll(p, 2, 1000), 0);
    if (!a.finished() && (p[0].revents || pending(a.s))) a.step();
    if (!b.finished() && (p[1].revents || pending(b.s))) b.step();
  }
}

}  // namespace

TEST(NonBlocking, OneThreadDrivesBothEndsOfATlsConnection) {
  for (auto version : {tls_version::tls1_3, tls_version::tls1_2}) {
    auto co = client_options();
    co.max_version = version;
    auto p = make_tls_pair(tls_server_options(), co);
    end_point<ssl_stream> server{p.server, random_bytes(3 << 20, 1)};
    end_point<ssl_stream> client{p.client, random_bytes(5 << 20, 2)};
    run_loop(server, client);
    EXPECT_EQ(sha256(server.in), sha256(client.out));
    EXPECT_EQ(sha256(client.in), sha256(server.out));
    // Megabytes both ways at once cannot fit in the socket buffers: it really waited and resumed.
    EXPECT_GT(server.blocked_writes + client.blocked_writes, 0);
  }
}

TEST(NonBlocking, SocketStreamsToo) {
  auto [s, c] = socket_pair();
  end_point<socket_stream> a{s, random_bytes(2 << 20, 3)};
  end_point<socket_stream> b{c, random_bytes(2 << 20, 4)};
  run_loop(a, b);
  EXPECT_EQ(sha256(a.in), sha256(b.out));
  EXPECT_EQ(sha256(b.in), sha256(a.out));
}

TEST(NonBlocking, NothingThereIsWantReadNeverABlockOrAnEof) {
  auto p = make_tls_pair(tls_server_options(), client_options());
  // Before the server has answered, the client's handshake wants to read.
  auto first = p.client.try_handshake();
  EXPECT_EQ(first.status, io_status::want_read);
  auto r = handshake_both(p.server, p.client);
  ASSERT_FALSE(r.server || r.client);
  std::array<std::byte, 16> b{};
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(p.client.try_read_some(b).status, io_status::want_read);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  // A FIN without close_notify is an error, never eof.
  ::shutdown(p.server.native_handle(), SHUT_WR);
  pollfd pf{p.client.native_handle(), POLLIN, 0};
  ASSERT_EQ(::poll(&pf, 1, 5000), 1);
  EXPECT_THROW(p.client.try_read_some(b), tls_error);
}

TEST(NonBlocking, AgainstOpensslSServer) {
  process server({"openssl", "s_server", "-accept", "0", "-naccept", "1", "-cert",
                  cert("server-rsa.pem"), "-key", cert("server-rsa.key"), "-rev"});
  auto port = server.wait_for_match("ACCEPT (?:\\[::\\]|0\\.0\\.0\\.0|\\*):(\\d+)", 10s);
  ASSERT_TRUE(port) << server.output();
  auto sock = make_socket(active{.remote_host = "localhost",
                                 .remote_port = static_cast<std::uint16_t>(std::stoi(*port))});
  auto t = make_ssl_client_stream(std::move(sock), client_options());
  std::string out = "non-blocking\n", in;
  std::size_t sent = 0;
  auto until = std::chrono::steady_clock::now() + 10s;
  while (in.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
    io_result r;
    if (sent < out.size()) {
      r = t.try_write_some(std::as_bytes(std::span(out)).subspan(sent));
      if (r.status == io_status::done) sent += r.bytes;
    } else {
      std::array<std::byte, 256> b{};
      r = t.try_read_some(b);
      if (r.status == io_status::done) in.append(reinterpret_cast<const char*>(b.data()), r.bytes);
    }
    if (r.status == io_status::want_read || r.status == io_status::want_write) {
      pollfd pf{t.native_handle(), short(r.status == io_status::want_read ? POLLIN : POLLOUT), 0};
      if (!t.input_pending()) ::poll(&pf, 1, 1000);
    }
  }
  EXPECT_EQ(in.substr(0, in.find('\n')), "gnikcolb-non");
}

// A peer that sends half a record and stalls: after want_read, input_pending() must be false
// (the bytes OpenSSL holds are a partial record only the socket can complete), or an event
// loop that checks it before waiting spins at 100% CPU. The connection runs through a relay
// over two socketpairs that passes everything, then only the first bytes of one record.
TEST(NonBlocking, HalfARecordIsNotPendingInput) {
  int a[2], b[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  std::atomic<bool> cut{false}, done{false};
  std::thread relay([&] {
    std::array<char, 65536> buf{};
    while (!done) {
      pollfd p[2] = {{a[1], POLLIN, 0}, {b[1], POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      if (p[0].revents & POLLIN) {  // client -> server
        auto n = ::read(a[1], buf.data(), buf.size());
        if (n <= 0) break;
        (void)!::write(b[1], buf.data(), static_cast<std::size_t>(n));
      }
      if (p[1].revents & POLLIN) {  // server -> client: whole, or 10 bytes once cut
        auto n = ::read(b[1], buf.data(), cut ? 10 : buf.size());
        if (n <= 0) break;
        (void)!::write(a[1], buf.data(), static_cast<std::size_t>(n));
        if (cut) {
          while (!done) std::this_thread::sleep_for(10ms);  // stall
          break;
        }
      }
    }
  });
  auto co = client_options();
  co.server_name = "localhost";
  auto server = make_ssl_server_stream(adopt_socket(b[0]), tls_server_options());
  auto client = make_ssl_client_stream(adopt_socket(a[0]), co);
  auto r = handshake_both(server, client);
  ASSERT_FALSE(r.server || r.client);
  // Let the TLS 1.3 ticket through and processed, so that what follows is one record alone.
  std::array<std::byte, 64> buf{};
  pollfd pf{client.native_handle(), POLLIN, 0};
  while (::poll(&pf, 1, 200) == 1 && client.try_read_some(buf).status == io_status::done) {
  }
  cut = true;
  server << std::string(1000, 'x') << std::flush;  // one record; 10 bytes of it arrive
  ASSERT_EQ(::poll(&pf, 1, 5000), 1);
  EXPECT_EQ(client.try_read_some(buf).status, io_status::want_read);
  EXPECT_FALSE(client.input_pending()) << "a partial record would make an event loop spin";
  done = true;
  relay.join();
  for (int fd : {a[1], b[1]}) ::close(fd);
}

// handshake_timeout bounds a non-blocking handshake too: against a peer that accepts and never
// answers, an event loop that waits in steps of 50 ms gets the timeout error from try_handshake
// once the limit has passed (counted from the first attempt), never a want_read forever.
TEST(NonBlocking, TryHandshakeStopsAtTheHandshakeTimeout) {
  constexpr auto limit = 300ms;
  constexpr double slack_ms = 250;   // the loop's 50 ms steps plus a loaded machine
  auto [near, far] = socket_pair();  // `far` never says a word
  auto o = client_options();
  o.handshake_timeout = limit;
  auto t = make_ssl_client_stream(std::move(near), make_ssl_client_context(o));
  auto t0 = std::chrono::steady_clock::now();
  std::optional<double> failed_at;
  std::string what;
  while (!failed_at && ms_since(t0) < 5000) {
    try {
      auto r = t.try_handshake();
      ASSERT_EQ(r.status, io_status::want_read);
      pollfd pf{t.native_handle(), POLLIN, 0};
      ::poll(&pf, 1, 50);
    } catch (const socket_error& e) {
      failed_at = ms_since(t0);
      what = e.what();
    }
  }
  ASSERT_TRUE(failed_at) << "no timeout within 5 s";
  EXPECT_GE(*failed_at, 300.0);
  EXPECT_LE(*failed_at, 300.0 + slack_ms);
  EXPECT_NE(what.find("handshake"), std::string::npos) << what;
  // It sticks: the next attempt fails the same way at once.
  EXPECT_THROW(t.try_handshake(), socket_error);
}
