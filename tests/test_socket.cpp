// Plain sockets: make-socket, accept-connection, printed forms, host naming, half close,
// timeouts, and the socket errors with their identifiers.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <sstream>
#include <thread>

#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;

namespace {

template <class T>
std::string printed(const T& x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

}  // namespace

TEST(Socket, PassiveOnOsChosenPortPrintsLikeAllegro) {
  auto p = make_socket(passive{});
  ASSERT_NE(p.local_port(), 0);
  EXPECT_EQ(p.local_host(), "*");
  EXPECT_EQ(printed(p),
            "#<passive socket waiting for connection at */" + std::to_string(p.local_port()) + ">");
  p.close();
  EXPECT_EQ(printed(p), "#<passive socket closed, but was waiting for connection at */" +
                            std::to_string(p.local_port()) + ">");
}

TEST(Socket, ConnectAcceptAndPrint) {
  auto p = make_socket(passive{});
  auto c = make_socket(active{.remote_host = "localhost", .remote_port = p.local_port()});
  auto s = p.accept_connection();  // the blocking overload: the client is connected already
  EXPECT_EQ(s.local_port(), p.local_port());
  EXPECT_EQ(c.remote_port(), p.local_port());
  EXPECT_EQ(s.remote_port(), c.local_port());
  EXPECT_EQ(printed(c), "#<stream socket connected from localhost/" +
                            std::to_string(c.local_port()) + " to localhost/" +
                            std::to_string(p.local_port()) + ">");
  EXPECT_EQ(printed(s), "#<stream socket connected from localhost/" +
                            std::to_string(p.local_port()) + " to localhost/" +
                            std::to_string(c.local_port()) + ">");
}

TEST(Socket, DualStackListenerAcceptsIpv4AndIpv6) {
  auto p = make_socket(passive{});
  for (std::string host : {"127.0.0.1", "::1"}) {
    auto c = make_socket(active{.remote_host = host, .remote_port = p.local_port()});
    auto s = accept_within(p, "the " + host + " client");
    EXPECT_EQ(s.remote_host(), host);
    c << "ping " << host << std::endl;
    std::string word, from;
    s >> word >> from;
    EXPECT_EQ(word, "ping");
    EXPECT_EQ(from, host);
  }
}

TEST(Socket, AcceptWithWait) {
  auto p = make_socket(passive{});
  EXPECT_FALSE(p.accept_connection(0ms).has_value());  // Allegro :wait nil
  EXPECT_FALSE(p.accept_connection(20ms).has_value());
  auto c = make_socket(active{.remote_host = "127.0.0.1", .remote_port = p.local_port()});
  auto s = p.accept_connection(10s);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->remote_port(), c.local_port());
}

TEST(Socket, ConnectFromGivenLocalPort) {
  auto p = make_socket(passive{.local_host = "127.0.0.1"});
  auto spare = make_socket(passive{.local_host = "127.0.0.1"});
  auto port = spare.local_port();
  spare.close();
  auto c = make_socket(active{.remote_host = "127.0.0.1",
                              .remote_port = p.local_port(),
                              .local_host = "127.0.0.1",
                              .local_port = port});
  EXPECT_EQ(c.local_port(), port);
}

TEST(Socket, OptionsAreApplied) {
  auto p = make_socket(passive{.local_host = "127.0.0.1", .nodelay = false, .keepalive = true});
  auto c = make_socket(active{.remote_host = "127.0.0.1",
                              .remote_port = p.local_port(),
                              .nodelay = true,
                              .keepalive = false});
  auto s = accept_within(p, "the client");
  auto get = [](int fd, int level, int opt) {
    int v = -1;
    socklen_t len = sizeof v;
    getsockopt(fd, level, opt, &v, &len);
    return v != 0;
  };
  EXPECT_TRUE(get(c.native_handle(), IPPROTO_TCP, TCP_NODELAY));
  EXPECT_FALSE(get(c.native_handle(), SOL_SOCKET, SO_KEEPALIVE));
  EXPECT_FALSE(get(s.native_handle(), IPPROTO_TCP, TCP_NODELAY));
  EXPECT_TRUE(get(s.native_handle(), SOL_SOCKET, SO_KEEPALIVE));
  EXPECT_TRUE(get(p.native_handle(), SOL_SOCKET, SO_REUSEADDR));
}

TEST(Socket, HalfCloseLetsTheOtherDirectionContinue) {
  auto [s, c] = socket_pair();
  c << "request" << std::flush;
  c.shutdown(direction::output);
  std::string got((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "request");  // EOF after the request
  s << "reply" << std::flush;
  s.close();
  std::string reply;
  c >> reply;
  EXPECT_EQ(reply, "reply");
}

TEST(Socket, ShutdownOutputFlushesWhatWasBuffered) {
  auto [s, c] = socket_pair();
  c << "buffered";  // not flushed
  c.shutdown(direction::output);
  std::string got;
  s >> got;
  EXPECT_EQ(got, "buffered");
}

TEST(Socket, ShutdownInputReadsEof) {
  auto [s, c] = socket_pair();
  s.shutdown(direction::input);
  std::byte b[1];
  EXPECT_EQ(s.read_some(b), 0u);
  s.shutdown(direction::output);
  EXPECT_FALSE(s.is_open());  // both halves shut = closed
  s.close();                  // and a later close is harmless
}

TEST(Socket, CloseFlushes) {
  auto [s, c] = socket_pair();
  c << "bye";
  c.close();
  std::string got;
  s >> got;
  EXPECT_EQ(got, "bye");
}

TEST(Socket, ReadTimeout) {
  auto [s, c] = socket_pair();
  s.set_timeout(50ms);
  std::byte b[1];
  auto e = expect_throw<socket_error>([&] { s.read_some(b); });
  EXPECT_EQ(e.identifier(), "timeout");
  EXPECT_EQ(e.code().value(), ETIMEDOUT);
  EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos);
  // The stream operators throw the same error instead of setting failbit silently.
  std::string w;
  EXPECT_THROW(s >> w, socket_error);
}

TEST(Socket, WriteTimeoutWhenPeerDoesNotRead) {
  auto [s, c] = socket_pair();
  c.set_timeout(100ms);
  std::vector<std::byte> big(1 << 20);
  auto e = expect_throw<socket_error>([&] {
    for (int i = 0; i < 64; ++i) c.write_all(big);  // far more than the socket buffers hold
  });
  EXPECT_EQ(e.identifier(), "timeout");
}

TEST(Socket, ConnectionRefused) {
  auto p = make_socket(passive{.local_host = "127.0.0.1"});
  auto port = p.local_port();
  p.close();
  auto e = expect_throw<socket_error>(
      [&] { make_socket(active{.remote_host = "127.0.0.1", .remote_port = port}); });
  EXPECT_EQ(e.identifier(), "connection-refused");
  EXPECT_EQ(e.code().value(), ECONNREFUSED);
  EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos);
}

TEST(Socket, HostNotFound) {
  auto e = expect_throw<socket_error>(
      [&] { make_socket(active{.remote_host = "no-such-host.invalid", .remote_port = 443}); });
  EXPECT_EQ(e.identifier(), "host-not-found");
  EXPECT_EQ(e.code(), make_error_code(errc::host_not_found));
  EXPECT_NE(std::string(e.what()).find("no-such-host.invalid"), std::string::npos);
}

TEST(Socket, AddressInUse) {
  auto p = make_socket(passive{.local_host = "127.0.0.1"});
  auto e = expect_throw<socket_error>(
      [&] { make_socket(passive{.local_host = "127.0.0.1", .local_port = p.local_port()}); });
  EXPECT_EQ(e.identifier(), "address-in-use");
  EXPECT_NE(std::string(e.what()).find("port 0"), std::string::npos);  // says what to do
}

TEST(Socket, ListeningOnAnAddressThatIsNotOursSaysSo) {
  // 192.0.2.1 (TEST-NET-1) is no interface of this machine: bind fails before any packet.
  auto e = expect_throw<socket_error>([] { make_socket(passive{.local_host = "192.0.2.1"}); });
  EXPECT_EQ(e.identifier(), "address-not-available");
  EXPECT_NE(std::string(e.what()).find("192.0.2.1"), std::string::npos) << e.what();
}

TEST(Socket, EveryErrnoHasAnAllegroStyleIdentifier) {
  // The ones loopback cannot produce on demand are checked through the mapping itself.
  const std::pair<int, const char*> table[] = {
      {ECONNREFUSED, "connection-refused"},
      {EADDRINUSE, "address-in-use"},
      {EADDRNOTAVAIL, "address-not-available"},
      {EHOSTUNREACH, "host-unreachable"},
      {ENETUNREACH, "network-unreachable"},
      {ENETDOWN, "network-down"},
      {ECONNRESET, "connection-reset"},
      {ECONNABORTED, "connection-aborted"},
      {EPIPE, "broken-pipe"},
      {ETIMEDOUT, "timeout"},
      {EACCES, "permission-denied"},
      {EMFILE, "too-many-files"},
      {ENFILE, "too-many-files"},
      {ENOTCONN, "not-connected"},
  };
  for (auto [err, id] : table) EXPECT_EQ(errno_identifier(err), id) << err;
  EXPECT_EQ(errno_identifier(EIO), "error-" + std::to_string(EIO));
}

TEST(Socket, ConnectionReset) {
  auto [s, c] = socket_pair();
  linger l{1, 0};  // close with RST
  setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  s.close();
  std::byte b[16];
  auto e = expect_throw<socket_error>([&] { c.read_some(b); });
  EXPECT_EQ(e.identifier(), "connection-reset");
}

TEST(Socket, PeerCloseIsCleanEof) {
  auto [s, c] = socket_pair();
  s.close();
  std::string w;
  EXPECT_FALSE(c >> w);
  EXPECT_TRUE(c.eof());
}

TEST(Socket, MoveKeepsTheConnection) {
  auto [s, c] = socket_pair();
  socket_stream moved = std::move(c);
  moved << "one " << std::flush;
  std::string w;
  s >> w;
  EXPECT_EQ(w, "one");
  EXPECT_FALSE(c.is_open());
  auto [s2, c2] = socket_pair();
  moved = std::move(c2);  // the old connection is closed
  EXPECT_FALSE(s >> w);
  moved << "two " << std::flush;
  s2 >> w;
  EXPECT_EQ(w, "two");
}

TEST(HostNaming, AllegroFunctions) {
  EXPECT_EQ(ipaddr_to_dotted(0x7f000001), "127.0.0.1");
  EXPECT_EQ(ipaddr_to_dotted(0xc0845f54), "192.132.95.84");
  EXPECT_EQ(dotted_to_ipaddr("192.132.95.84"), 0xc0845f54u);
  EXPECT_THROW(dotted_to_ipaddr("192.132.95"), std::invalid_argument);
  EXPECT_THROW(dotted_to_ipaddr("localhost"), std::invalid_argument);
  EXPECT_TRUE(is_ip_address("10.0.0.1"));
  EXPECT_TRUE(is_ip_address("::1"));
  EXPECT_FALSE(is_ip_address("localhost"));
  EXPECT_EQ(lookup_hostname("localhost"), "127.0.0.1");
  EXPECT_EQ(lookup_hostname("127.0.0.1"), "127.0.0.1");
  auto all = lookup_hostname_all("localhost");
  EXPECT_NE(std::find(all.begin(), all.end(), "127.0.0.1"), all.end());
  EXPECT_EQ(ipaddr_to_hostname("127.0.0.1"), "localhost");
  auto e = expect_throw<socket_error>([] { lookup_hostname("no-such-host.invalid"); });
  EXPECT_EQ(e.identifier(), "host-not-found");
}
