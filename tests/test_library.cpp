// The library features Go, Python and libtls users reach for: per-direction timeouts, the
// verify callback, exported keying material (checked against openssl s_client), truncation
// allowed on request, and sessions saved and resumed elsewhere (openssl s_client both ways).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <sslstream/sslstream.hpp>
#include <sstream>
#include <thread>

#include "loopback.hpp"
#include "timing.hpp"

using namespace std::chrono_literals;
using namespace sslstream;
using namespace testing_support;

namespace {

constexpr auto slack = 1000ms;  // scheduling on a loaded 2-core machine, sanitizers

tls_pair connected(const ssl_options& so, const ssl_options& co) {
  auto p = make_tls_pair(so, co);
  auto r = handshake_both(p.server, p.client);
  if (r.server) std::rethrow_exception(r.server);
  if (r.client) std::rethrow_exception(r.client);
  return p;
}

std::string hex(const std::vector<std::byte>& b) {
  std::string out;
  char h[3];
  for (auto x : b) {
    std::snprintf(h, sizeof h, "%02X", static_cast<unsigned>(x));
    out += h;
  }
  return out;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("sslstream-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

}  // namespace

TEST(Timeouts, ReadAndWriteTimeoutsAreSeparateAndMeasured) {
  constexpr auto limit = 300ms;
  auto p = connected(tls_server_options(), client_options());
  p.client.set_read_timeout(limit);
  // Writes are not limited by the read timeout: 8 MiB into a peer that reads later.
  auto t0 = std::chrono::steady_clock::now();
  std::array<std::byte, 64> b{};
  auto e = expect_throw<socket_error>([&] { p.client.read_some(b); });
  EXPECT_EQ(e.identifier(), "timeout");
  EXPECT_GE(ms_since(t0), 300);
  EXPECT_LE(ms_since(t0), 300 + static_cast<double>(slack.count()));
  // The read timed out and consumed nothing: it can be retried, and data then arrives.
  p.server << "late" << std::flush;
  EXPECT_EQ(p.client.read_some(b), 4u);

  // A peer that never reads: the write timeout, alone, bounds the write.
  p.client.set_read_timeout(0ms);
  p.client.set_write_timeout(limit);
  std::vector<std::byte> big(1 << 20);
  t0 = std::chrono::steady_clock::now();
  auto w = expect_throw<socket_error>([&] {
    for (int i = 0; i < 256; ++i) p.client.write_all(big);
  });
  EXPECT_EQ(w.identifier(), "timeout");
  EXPECT_LE(ms_since(t0), 300 + static_cast<double>(slack.count()) + 2000);  // + filling buffers
}

TEST(VerifyCallback, AServerRequiresAParticularClientSubject) {
  auto so = tls_server_options();
  so.verify = verify_mode::required;
  so.ca_file = cert("ca.pem");
  std::vector<std::string> seen;
  so.verify_callback = [&](const verify_info& v) {
    seen.push_back(v.leaf.subject() + " " + v.result.text);
    EXPECT_GE(v.chain.size(), 2u);  // the verified chain, to the root
    return v.result.code == 0 && v.leaf.subject().find("CN=sslstream test client") == 0;
  };
  auto co = client_options();
  co.certificate = cert("client-rsa.pem");
  co.key = cert("client-rsa.key");
  auto ok = connected(so, co);
  EXPECT_EQ(
      ok.server.peer_certificate()->subject().find("CN=sslstream test client") != std::string::npos,
      true);
  // A certificate of the same CA with another subject is refused by the callback.
  co.certificate = cert("server-rsa.pem");
  co.key = cert("server-rsa.key");
  auto p = make_tls_pair(so, co);
  auto r = handshake_both(p.server, p.client);
  ASSERT_TRUE(r.server);
  auto e = rethrow_as<verify_error>(r.server);
  EXPECT_NE(std::string(e.what()).find("verify_callback rejected it"), std::string::npos)
      << e.what();
  EXPECT_EQ(seen.size(), 2u);
}

TEST(VerifyCallback, AClientAcceptsAnInternalCaForOneNameOnly) {
  ssl_options so;
  so.certificate = cert("unknown-ca.pem");  // issued by a CA the client does not trust
  so.key = cert("unknown-ca.key");
  auto co = client_options();
  co.verify_callback = [](const verify_info& v) {
    return v.server_name == "localhost" &&
           v.leaf.issuer().find("untrusted CA") != std::string::npos;
  };
  auto p = connected(so, co);
  EXPECT_EQ(p.client.verify_result().code, 0);  // accepted, so verified as far as we say
  co.server_name = "127.0.0.1";                 // the same certificate names it, but no
  auto q = make_tls_pair(so, co);
  auto r = handshake_both(q.server, q.client);
  ASSERT_TRUE(r.client);
  EXPECT_NE(std::string(rethrow_as<verify_error>(r.client).what()).find("verify_callback"),
            std::string::npos);
}

TEST(VerifyCallback, AThrowingCallbackFailsTheHandshakeWithItsException) {
  struct no_policy : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  auto co = client_options();
  co.verify_callback = [](const verify_info&) -> bool { throw no_policy("policy store down"); };
  auto p = make_tls_pair(tls_server_options(), co);
  auto r = handshake_both(p.server, p.client);
  ASSERT_TRUE(r.client);
  EXPECT_THROW(std::rethrow_exception(r.client), no_policy);
  // Never called without verification.
  auto none = client_options();
  none.verify = verify_mode::none;
  bool called = false;
  none.verify_callback = [&](const verify_info&) { return called = true; };
  connected(tls_server_options(), none);
  EXPECT_FALSE(called);
}

TEST(KeyingMaterial, EqualOnBothEndsAndToOpensslsExporter) {
  auto p = connected(tls_server_options(), client_options());
  std::array<std::byte, 3> ctx{std::byte{1}, std::byte{2}, std::byte{3}};
  auto a = p.client.export_keying_material("EXPERIMENTAL-sslstream", ctx, 32);
  auto b = p.server.export_keying_material("EXPERIMENTAL-sslstream", ctx, 32);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, p.client.export_keying_material("EXPERIMENTAL-other", ctx, 32));

  for (const char* version : {"-tls1_3", "-tls1_2"}) {
    auto listener = make_socket(passive{.local_host = "127.0.0.1"});
    auto server = std::async(std::launch::async, [&] {
      auto c = listener.accept_connection(10s);
      if (!c) return std::string("no connection");
      auto s = make_ssl_server_stream(std::move(*c), tls_server_options());
      s.set_timeout(10s);
      auto km = s.export_keying_material("EXPERIMENTAL-sslstream", {}, 20);
      std::string line;
      std::getline(s, line);  // until s_client ends
      return hex(km);
    });
    process client({"openssl", "s_client", "-connect",
                    "127.0.0.1:" + std::to_string(listener.local_port()), version, "-CAfile",
                    cert("ca.pem"), "-keymatexport", "EXPERIMENTAL-sslstream", "-keymatexportlen",
                    "20"});
    auto printed = client.wait_for_match("Keying material: ([0-9A-F]+)", 10s);
    client.close_stdin();
    std::string ours = server.get();
    ASSERT_TRUE(printed) << client.output();
    EXPECT_EQ(*printed, ours) << version;
  }
}

TEST(Truncation, AllowedOnRequestAndSaidSo) {
  for (bool allow : {false, true}) {
    auto co = client_options();
    co.allow_truncation = allow;
    auto p = connected(tls_server_options(), co);
    p.server << "framed by its own length" << std::flush;
    ::shutdown(p.server.native_handle(), SHUT_WR);  // FIN without close_notify
    std::string got;
    if (allow) {
      std::getline(p.client, got);
      EXPECT_EQ(got, "framed by its own length");
      EXPECT_TRUE(p.client.eof());
      EXPECT_TRUE(p.client.truncated());
    } else {
      std::array<std::byte, 64> b{};
      EXPECT_EQ(p.client.read_some(b), 24u);
      auto e = expect_throw<tls_error>([&] { p.client.read_some(b); });
      EXPECT_EQ(e.code(), errc::truncated);
      EXPECT_FALSE(p.client.truncated());
    }
  }
  // A reset is never a clean end, allowed or not.
  auto co = client_options();
  co.allow_truncation = true;
  auto p = connected(tls_server_options(), co);
  std::array<std::byte, 64> b{};
  {
    // A server that gave up reading closes without close_notify; SO_LINGER 0 makes it an RST.
    auto s = std::move(p.server);
    s.set_read_timeout(1ms);
    EXPECT_THROW(s.read_some(b), socket_error);
    linger l{1, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  EXPECT_THROW(
      {
        while (p.client.read_some(b) > 0) {
        }
      },
      sslstream::error);
}

TEST(Sessions, SavedByOneClientResumedByAnother) {
  for (auto version : {tls_version::tls1_3, tls_version::tls1_2}) {
    auto server = make_ssl_server_context(tls_server_options());
    auto co = client_options();
    co.max_version = version;
    auto listener = make_socket(passive{.local_host = "127.0.0.1"});
    auto run = [&](const ssl_options& o) {
      auto c =
          make_socket(active{.remote_host = "localhost", .remote_port = listener.local_port()});
      auto s = listener.accept_connection(10s);
      tls_pair p{make_ssl_server_stream(std::move(*s), server),
                 make_ssl_client_stream(std::move(c), o)};
      if (auto r = handshake_both(p.server, p.client); r.server || r.client)
        throw std::runtime_error("handshake failed");
      auto srv = std::async(std::launch::async, [&] {
        p.server << "x" << std::flush;
        p.server.close();
      });
      std::string w;
      p.client >> w;  // brings the TLS 1.3 ticket
      srv.get();
      return std::pair{p.client.session(), p.client.session_reused()};
    };
    auto [saved, first_reused] = run(co);
    EXPECT_FALSE(first_reused);
    ASSERT_NE(saved.find("BEGIN SSL SESSION PARAMETERS"), std::string::npos);
    auto later = co;  // a new context: nothing shared but the saved text
    later.session = saved;
    EXPECT_TRUE(run(later).second);
  }
  auto bad = client_options();
  bad.session = "not a session";
  EXPECT_THROW(make_ssl_client_context(bad), config_error);
}

// A resumed handshake verifies nothing by itself: a session imported through
// ssl_options::session must pass this client's checks, or anyone could hand us one made
// without verification (here: against a server whose CA this client does not trust).
TEST(Sessions, AnImportedSessionMustPassThisClientsVerification) {
  ssl_options so;
  so.certificate = cert("unknown-ca.pem");
  so.key = cert("unknown-ca.key");
  auto server = make_ssl_server_context(so);
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  auto one = [&](const ssl_options& co) {
    auto c = make_socket(active{.remote_host = "localhost", .remote_port = listener.local_port()});
    auto s = listener.accept_connection(10s);
    tls_pair p{make_ssl_server_stream(std::move(*s), server),
               make_ssl_client_stream(std::move(c), co)};
    auto r = handshake_both(p.server, p.client);
    if (r.client) std::rethrow_exception(r.client);
    auto srv = std::async(std::launch::async, [&] {
      p.server << "x" << std::flush;
      p.server.close();
    });
    std::string w;
    p.client >> w;
    srv.get();
    return p.client.session();
  };
  auto lax = client_options();
  lax.verify = verify_mode::none;
  auto saved = one(lax);
  ASSERT_FALSE(saved.empty());
  auto strict = client_options();  // trusts only the test CA
  strict.session = saved;
  auto e = expect_throw<verify_error>([&] { one(strict); });
  EXPECT_NE(std::string(e.what()).find("resumed session was refused"), std::string::npos)
      << e.what();
}

TEST(Sessions, InteroperateWithOpensslSessionFiles) {
  auto server = make_ssl_server_context(tls_server_options());
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  std::string port = std::to_string(listener.local_port());
  auto serve = [&](int n) {
    return std::async(std::launch::async, [&, n] {
      for (int i = 0; i < n; ++i) {
        auto c = listener.accept_connection(10s);
        if (!c) return;
        auto s = make_ssl_server_stream(std::move(*c), server);
        s.set_timeout(10s);
        try {
          s << "hello\n" << std::flush;
          std::string line;
          std::getline(s, line);
        } catch (...) {
        }
      }
    });
  };
  auto file = temp_path("s_client.session");
  {  // s_client saves a session, our client resumes it
    auto srv = serve(2);
    process sc({"openssl", "s_client", "-connect", "127.0.0.1:" + port, "-CAfile", cert("ca.pem"),
                "-sess_out", file});
    ASSERT_TRUE(sc.wait_for_output("hello", 10s)) << sc.output();
    sc.close_stdin();
    sc.wait(10s);
    std::ifstream in(file);
    std::string pem((std::istreambuf_iterator<char>(in)), {});
    auto co = client_options();
    co.session = pem;
    auto c = make_socket(active{.remote_host = "localhost", .remote_port = listener.local_port()});
    auto t = make_ssl_client_stream(std::move(c), co);
    t.set_timeout(10s);
    t.do_handshake();
    EXPECT_TRUE(t.session_reused());
    t.close();
    srv.get();
  }
  {  // our client saves a session, s_client resumes it
    auto srv = serve(2);
    auto c = make_socket(active{.remote_host = "localhost", .remote_port = listener.local_port()});
    auto t = make_ssl_client_stream(std::move(c), client_options());
    t.set_timeout(10s);
    std::string line;
    std::getline(t, line);
    {
      std::ofstream out(file, std::ios::trunc);
      out << t.session();
    }
    t.close();
    process sc({"openssl", "s_client", "-connect", "127.0.0.1:" + port, "-CAfile", cert("ca.pem"),
                "-sess_in", file});
    ASSERT_TRUE(sc.wait_for_output("hello", 10s)) << sc.output();
    sc.close_stdin();
    sc.wait(10s);
    EXPECT_NE(sc.output().find("Reused, TLSv1.3"), std::string::npos) << sc.output();
    srv.get();
  }
  std::filesystem::remove(file);
}

// --- wrapping descriptors made elsewhere ---------------------------------------------------

namespace {

bool still_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

}  // namespace

TEST(Adopt, TlsOverASocketpair) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto a = adopt_socket(sv[0]);
  auto b = adopt_socket(sv[1]);
  EXPECT_NE((std::ostringstream() << a).str().find("unix:"), std::string::npos);
  auto co = client_options();
  // No host name on a Unix-domain socket: verifying needs one.
  EXPECT_THROW(make_ssl_client_stream(adopt_socket(::dup(sv[1])), co), config_error);
  co.server_name = "localhost";
  auto server = make_ssl_server_stream(std::move(a), tls_server_options());
  auto client = make_ssl_client_stream(std::move(b), co);
  auto r = handshake_both(server, client);
  ASSERT_FALSE(r.server || r.client);
  client << "over a socketpair" << std::endl;
  std::string line;
  std::getline(server, line);
  EXPECT_EQ(line, "over a socketpair");
  EXPECT_EQ(client.verify_result().code, 0);
}

TEST(Adopt, AUnixListeningSocketFromSocketActivation) {
  auto path = temp_path("listen.sock");
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 8), 0);
  auto listener = adopt_passive_socket(lfd);
  auto peer = std::async(std::launch::async, [&] {
    int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return std::string("connect");
    auto co = client_options();
    co.server_name = "localhost";
    auto t = make_ssl_client_stream(adopt_socket(c), co);
    t.set_timeout(10s);
    t << "hello over unix" << std::endl;
    std::string reply;
    std::getline(t, reply);
    t.close();
    return reply;
  });
  auto conn = listener.accept_connection(10s);
  ASSERT_TRUE(conn);
  auto s = make_ssl_server_stream(std::move(*conn), tls_server_options());
  s.set_timeout(10s);
  std::string line;
  std::getline(s, line);
  s << "got: " << line << std::endl;
  EXPECT_EQ(peer.get(), "got: hello over unix");
  s.close();
  std::filesystem::remove(path);
}

TEST(Adopt, AnythingElseIsRefusedAndLeftOpen) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  auto e = expect_throw<socket_error>([&] { adopt_socket(p[0]); });
  EXPECT_NE(std::string(e.what()).find("not a socket"), std::string::npos) << e.what();
  EXPECT_TRUE(still_open(p[0]));
  EXPECT_THROW(adopt_passive_socket(p[1]), socket_error);
  EXPECT_TRUE(still_open(p[1]));
  int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
  EXPECT_THROW(adopt_socket(udp), socket_error);
  EXPECT_TRUE(still_open(udp));
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  int lfd = ::dup(listener.native_handle());
  auto l = expect_throw<socket_error>([&] { adopt_socket(lfd); });
  EXPECT_NE(std::string(l.what()).find("adopt_passive_socket"), std::string::npos) << l.what();
  EXPECT_TRUE(still_open(lfd));
  int unconnected = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_THROW(adopt_socket(unconnected), socket_error);
  EXPECT_TRUE(still_open(unconnected));
  auto [s, c] = socket_pair();
  int connected = ::dup(s.native_handle());
  EXPECT_THROW(adopt_passive_socket(connected), socket_error);
  EXPECT_TRUE(still_open(connected));
  EXPECT_THROW(adopt_socket(-1), socket_error);
  for (int fd : {p[0], p[1], udp, lfd, unconnected, connected}) ::close(fd);
}

// --- cancelling a blocked read from another thread -----------------------------------------

namespace {

constexpr double wake_limit_ms = 100;  // the contract's bound

/// A reader blocked in read_some on `s`; `cancel` from this thread after it has blocked.
/// Returns how long the reader took to return after the cancel, and what it saw.
template <class Stream, class Cancel>
std::pair<double, std::string> cancel_blocked_read(Stream& s, Cancel cancel) {
  std::atomic<bool> started{false};
  std::chrono::steady_clock::time_point returned;
  auto reader = std::async(std::launch::async, [&] {
    std::array<std::byte, 64> b{};
    started = true;
    std::string what;
    try {
      what = "returned " + std::to_string(s.read_some(b));
    } catch (const sslstream::error& e) {
      what = "threw " + e.identifier();
    }
    returned = std::chrono::steady_clock::now();
    return what;
  });
  while (!started) std::this_thread::yield();
  std::this_thread::sleep_for(200ms);  // into its poll (timing only makes the test meaningful)
  auto t0 = std::chrono::steady_clock::now();
  cancel();
  auto what = reader.get();
  return {std::chrono::duration<double, std::milli>(returned - t0).count(), what};
}

}  // namespace

TEST(Cancel, ShutdownInputWakesABlockedReader) {
  auto p = connected(tls_server_options(), client_options());
  auto [ms, what] = cancel_blocked_read(p.client, [&] { p.client.shutdown(direction::input); });
  EXPECT_EQ(what, "returned 0");
  EXPECT_LT(ms, wake_limit_ms);
  p.client << "still writing after shutdown(input)" << std::flush;  // the other half lives
  std::array<std::byte, 64> b{};
  EXPECT_GT(p.server.read_some(b), 0u);

  auto [s, c] = socket_pair();
  auto [ms2, what2] = cancel_blocked_read(c, [&c = c] { c.shutdown(direction::input); });
  EXPECT_EQ(what2, "returned 0");
  EXPECT_LT(ms2, wake_limit_ms);
}

TEST(Cancel, CloseWakesABlockedReaderWhichNeverUsesTheClosedDescriptor) {
  auto p = connected(tls_server_options(), client_options());
  auto [ms, what] = cancel_blocked_read(p.client, [&] { p.client.close(); });
  EXPECT_EQ(what, "threw closed");
  EXPECT_LT(ms, wake_limit_ms);
  EXPECT_FALSE(p.client.is_open());
  std::array<std::byte, 8> b{};
  EXPECT_THROW(p.client.read_some(b), std::exception);  // closed: never the old number

  auto [s, c] = socket_pair();
  auto [ms2, what2] = cancel_blocked_read(c, [&c = c] { c.close(); });
  EXPECT_EQ(what2, "threw closed");
  EXPECT_LT(ms2, wake_limit_ms);
}
