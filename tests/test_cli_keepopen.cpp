// `sslstream listen --keep-open` on the server engine, as a process: SIGTERM and SIGINT drain
// (--drain), SIGHUP reloads the certificate files, threads stay at the event loops with many
// idle connections, -v names the peer on every line, and --drain's bad values.
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "cli_run.hpp"
#include "loopback.hpp"
#include "temp_dir.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

using clock_type = std::chrono::steady_clock;

// How late the process may exit after its drain: the engine polls its connections every 10 ms
// and the listen process its signals every 100 ms; the rest is for a loaded two-core machine
// and the sanitizer builds. The lower bound has no slack: a drain must never be cut short.
constexpr milliseconds slack = 1500ms;

milliseconds since(clock_type::time_point t) {
  return std::chrono::duration_cast<milliseconds>(clock_type::now() - t);
}

/// Replaces `to` by a copy of `from` in one rename, as a deployment tool does: the server never
/// reads half a file.
void install(const std::string& from, const std::string& to) {
  fs::copy_file(from, to + ".new", fs::copy_options::overwrite_existing);
  fs::rename(to + ".new", to);
}

/// A TLS client of the listen process, handshaken, with its own context.
ssl_stream connect_to(std::uint16_t port) {
  auto s = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = port}), client_options());
  s.set_timeout(20s);
  s.do_handshake();
  return s;
}

/// Sends a line and reads back its echo.
std::string echo_round(ssl_stream& s, const std::string& line) {
  s.write_all(std::as_bytes(std::span(line)));
  std::string got;
  std::array<std::byte, 256> buf;
  while (got.size() < line.size()) {
    auto n = s.read_some(buf);
    if (n == 0) break;
    got.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  return got;
}

std::string fingerprint(ssl_stream& s) {
  auto c = s.peer_certificate();
  return c ? c->fingerprint_sha256() : "";
}

std::string fingerprint_of(const std::string& pem_file) {
  return x509_certificate::load_pem_file(pem_file).fingerprint_sha256();
}

/// The peer closes: 0 from a read (close_notify), or an error (reset, truncation). Not data,
/// not our own timeout.
testing::AssertionResult closed_by_server(ssl_stream& s) {
  std::array<std::byte, 64> b;
  try {
    auto n = s.read_some(b);
    if (n != 0) return testing::AssertionFailure() << "data instead of the end";
  } catch (const socket_error& e) {
    if (e.identifier() == "timeout") return testing::AssertionFailure() << e.what();
  } catch (const sslstream::error&) {
  }
  return testing::AssertionSuccess();
}

class KeepOpenSignals : public testing::TestWithParam<int> {};

}  // namespace

// --- SIGTERM and SIGINT: stop accepting, drain, exit 0 ----------------------------------------

TEST_P(KeepOpenSignals, AnActiveClientFinishesItsExchangeWithinTheDrain) {
  process srv(
      cmd({"listen", "--cert", cert("combined.pem"), "--keep-open", "--echo", "--drain", "10"}));
  auto port = listening(srv);
  auto c = connect_to(port);
  EXPECT_EQ(echo_round(c, "before\n"), "before\n");
  auto start = clock_type::now();
  srv.kill(GetParam());
  ASSERT_TRUE(srv.wait_for_output("no longer accepting; 1 connection may finish within --drain"))
      << srv.output();
  // The open connection goes on; a new one is no longer handshaken (it waits in the backlog).
  EXPECT_EQ(echo_round(c, "after the signal\n"), "after the signal\n");
  auto late = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = port}), client_options());
  late.set_timeout(500ms);
  EXPECT_THROW(late.do_handshake(), socket_error);
  c.close();  // our close_notify: the server's echo answers with its own
  EXPECT_TRUE(closed_by_server(c));
  auto status = srv.wait(20s);
  auto took = since(start);
  EXPECT_EQ(status, 0) << srv.output();
  EXPECT_LT(took, 10s) << "the last connection ended: no need to wait for the drain";
  std::string name = GetParam() == SIGTERM ? "SIGTERM" : "SIGINT";
  EXPECT_TRUE(srv.wait_for_output("exiting: " + name + ", every connection ended")) << srv.output();
}

TEST_P(KeepOpenSignals, AClientThatNeverFinishesIsClosedAtTheDrain) {
  constexpr milliseconds drain = 2000ms;
  process srv(
      cmd({"listen", "--cert", cert("combined.pem"), "--keep-open", "--echo", "--drain", "2"}));
  auto port = listening(srv);
  auto c = connect_to(port);  // then neither sends nor closes
  EXPECT_EQ(echo_round(c, "x\n"), "x\n");
  auto start = clock_type::now();
  srv.kill(GetParam());
  auto status = srv.wait(drain + 20s);
  auto took = since(start);
  EXPECT_EQ(status, 0) << srv.output();
  EXPECT_GE(took, drain) << "closed before --drain was over";
  EXPECT_LE(took, drain + slack);
  EXPECT_TRUE(closed_by_server(c));
  EXPECT_TRUE(srv.wait_for_output("--drain 2 s over: closed 1 connection still open"))
      << srv.output();
}

INSTANTIATE_TEST_SUITE_P(Cli, KeepOpenSignals, testing::Values(SIGTERM, SIGINT),
                         [](const testing::TestParamInfo<int>& p) {
                           return p.param == SIGTERM ? std::string("Sigterm") : "Sigint";
                         });

TEST(CliKeepOpen, DrainOfZeroClosesAtOnce) {
  process srv(
      cmd({"listen", "--cert", cert("combined.pem"), "--keep-open", "--echo", "--drain", "0"}));
  auto port = listening(srv);
  auto c = connect_to(port);
  EXPECT_EQ(echo_round(c, "x\n"), "x\n");
  auto start = clock_type::now();
  srv.kill(SIGTERM);
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
  EXPECT_LE(since(start), slack);
  EXPECT_TRUE(closed_by_server(c));
}

TEST(CliKeepOpen, BadDrainValues) {
  struct row {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<row> rows = {
      {{"listen", "--keep-open", "--drain", "-1"},
       "expects seconds from 0 (close the connections at once) to 86400 (a day), not '-1'"},
      {{"listen", "--keep-open", "--drain", "soon"}, "not 'soon'"},
      {{"listen", "--keep-open", "--drain", "1e12"}, "not '1e12'"},
      {{"listen", "--keep-open", "--drain", ""}, "--drain"},
      {{"listen", "--drain", "5"}, "--drain requires --keep-open"},
  };
  for (const auto& r : rows) {
    auto argv = cmd({});
    argv.insert(argv.end(), r.args.begin(), r.args.end());
    auto got = run(argv, "", 10s);
    EXPECT_EQ(got.status, 2) << got.output;
    EXPECT_TRUE(says(got, r.message)) << got.output;
    EXPECT_TRUE(says(got, "--drain")) << got.output;
  }
}

// --- SIGHUP: the certificate files read again for new connections -----------------------------

TEST(CliKeepOpen, SighupServesTheNewCertificateToNewConnections) {
  temp_dir dir("sighup");
  install(cert("server-rsa.pem"), dir / "cert.pem");
  install(cert("server-rsa.key"), dir / "key.pem");
  process srv(cmd(
      {"listen", "--cert", dir / "cert.pem", "--key", dir / "key.pem", "--keep-open", "--echo"}));
  auto port = listening(srv);
  auto old_conn = connect_to(port);
  EXPECT_EQ(fingerprint(old_conn), fingerprint_of(cert("server-rsa.pem")));

  install(cert("server-ec.pem"), dir / "cert.pem");
  install(cert("server-ec.key"), dir / "key.pem");
  srv.kill(SIGHUP);
  ASSERT_TRUE(srv.wait_for_output("SIGHUP: certificate, key and CA files read again"))
      << srv.output();
  auto new_conn = connect_to(port);
  EXPECT_EQ(fingerprint(new_conn), fingerprint_of(cert("server-ec.pem")));
  EXPECT_EQ(echo_round(new_conn, "new\n"), "new\n");
  // The connection made before keeps working, on its old certificate.
  EXPECT_EQ(echo_round(old_conn, "old\n"), "old\n");
  EXPECT_EQ(fingerprint(old_conn), fingerprint_of(cert("server-rsa.pem")));
  srv.kill(SIGTERM);
  old_conn.close();
  new_conn.close();
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
}

TEST(CliKeepOpen, SighupWithABrokenFileKeepsTheOldCertificateAndSaysWhy) {
  temp_dir dir("sighup-bad");
  install(cert("server-rsa.pem"), dir / "cert.pem");
  install(cert("server-rsa.key"), dir / "key.pem");
  process srv(cmd(
      {"listen", "--cert", dir / "cert.pem", "--key", dir / "key.pem", "--keep-open", "--echo"}));
  auto port = listening(srv);
  auto before = connect_to(port);

  {  // Half a deployment: a new certificate whose key is not (yet) there.
    install(cert("server-ec.pem"), dir / "cert.pem");
  }
  srv.kill(SIGHUP);
  ASSERT_TRUE(srv.wait_for_output("(kept the previous certificate, key and CA files"))
      << srv.output();
  EXPECT_TRUE(srv.wait_for_output("SIGHUP: the private key in '" + dir / "key.pem" +
                                  "' does not match the certificate in '" + dir / "cert.pem"))
      << srv.output();
  auto after = connect_to(port);
  EXPECT_EQ(fingerprint(after), fingerprint_of(cert("server-rsa.pem")));
  EXPECT_EQ(echo_round(before, "still\n"), "still\n");

  // A file that is no certificate at all: the same.
  { std::ofstream(dir / "cert.pem") << "not a certificate\n"; }
  srv.kill(SIGHUP);
  ASSERT_TRUE(srv.wait_for_output("SIGHUP: no usable PEM certificate in '" + dir / "cert.pem"))
      << srv.output();
  auto third = connect_to(port);
  EXPECT_EQ(fingerprint(third), fingerprint_of(cert("server-rsa.pem")));
  srv.kill(SIGTERM);
  for (auto* s : {&before, &after, &third}) s->close();
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
}

TEST(CliKeepOpen, SighupKeepsTheSelfSignedCertificate) {
  process srv(cmd({"listen", "--keep-open", "--echo"}));
  auto port = listening(srv);
  std::smatch m;
  std::string out = srv.output();
  ASSERT_TRUE(std::regex_search(out, m, std::regex("sha256:([0-9a-f]{64})"))) << out;
  srv.kill(SIGHUP);
  ASSERT_TRUE(srv.wait_for_output("SIGHUP: certificate, key and CA files read again"))
      << srv.output();
  ssl_options o;
  o.pinned_sha256 = {m[1]};
  auto c = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = port}), o);
  c.set_timeout(20s);
  c.do_handshake();  // throws if the pin no longer matches
  EXPECT_EQ(fingerprint(c), m[1]);
  srv.kill(SIGTERM);
  c.close();
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
}

// --- resources and messages ---------------------------------------------------------------------

TEST(CliKeepOpen, TwoHundredIdleConnectionsTakeNoThreads) {
  // Coroutine handlers (--echo): an idle connection waits in its event loop, with no thread.
  process srv(cmd({"listen", "--cert", cert("server-ec.pem"), "--key", cert("server-ec.key"),
                   "--keep-open", "--echo"}));
  auto port = listening(srv);
  auto ctx = make_ssl_client_context(client_options());
  std::vector<ssl_stream> idle;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(make_ssl_client_stream(
        make_socket(active{.remote_host = "localhost", .remote_port = port}), ctx));
    idle.back().set_timeout(20s);
    ASSERT_EQ(echo_round(idle.back(), "i\n"), "i\n") << i;  // each one is in its handler
  }
  // The event loops (one per core), the main thread that reads signals; +1 for TSan's own.
  std::size_t loops = std::max(1u, std::thread::hardware_concurrency());
  std::size_t limit = loops + 1;
#if defined(__SANITIZE_THREAD__)
  limit += 1;
#endif
  EXPECT_LE(thread_count(srv.pid()), limit) << loops << " event loops";
  // And every one of them is still served.
  EXPECT_EQ(echo_round(idle.front(), "first\n"), "first\n");
  EXPECT_EQ(echo_round(idle.back(), "last\n"), "last\n");
  srv.kill(SIGTERM);
  for (auto& s : idle) s.close();
  EXPECT_EQ(srv.wait(30s), 0) << srv.output();
}

TEST(CliKeepOpen, VerboseNamesThePeerOnEveryLine) {
  process srv(cmd({"listen", "--cert", cert("combined.pem"), "--keep-open", "--echo", "-v"}));
  auto port = listening(srv);
  auto a = connect_to(port);
  auto b = connect_to(port);
  EXPECT_EQ(echo_round(a, "a\n"), "a\n");
  EXPECT_EQ(echo_round(b, "b\n"), "b\n");
  auto pa = "127.0.0.1:" + std::to_string(a.local_port());
  auto pb = "127.0.0.1:" + std::to_string(b.local_port());
  a.close();
  EXPECT_TRUE(closed_by_server(a));
  ASSERT_TRUE(srv.wait_for_output(pa + ": closed")) << srv.output();
  b.close();
  ASSERT_TRUE(srv.wait_for_output(pb + ": closed")) << srv.output();
  srv.kill(SIGTERM);
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
  std::istringstream lines(srv.output());
  int about_a = 0, about_b = 0;
  for (std::string line; std::getline(lines, line);) {
    // Every line about a connection (its handshake, its certificate, its end) names it.
    if (line.find("TLSv") != std::string::npos || line.find("certificate") != std::string::npos ||
        line.find("verify result") != std::string::npos ||
        line.find(": closed") != std::string::npos) {
      if (line.find("self-signed") != std::string::npos) continue;
      bool names_a = line.find(pa) != std::string::npos,
           names_b = line.find(pb) != std::string::npos;
      EXPECT_TRUE(names_a || names_b) << line;
      about_a += names_a;
      about_b += names_b;
    }
  }
  EXPECT_EQ(about_a, 4) << srv.output();  // protocol, certificate, verify result, closed
  EXPECT_EQ(about_b, 4) << srv.output();
}

TEST(CliKeepOpen, MaxConnectionsExitsOnceTheyHaveAllEnded) {
  process srv(cmd({"listen", "--cert", cert("combined.pem"), "--keep-open", "--echo",
                   "--max-connections", "2"}));
  auto port = listening(srv);
  auto a = connect_to(port);
  auto b = connect_to(port);
  EXPECT_EQ(echo_round(a, "a\n"), "a\n");
  a.close();
  EXPECT_TRUE(closed_by_server(a));
  // Two accepted, one still open: listen waits for it, however long.
  EXPECT_FALSE(srv.wait(1s)) << srv.output();
  EXPECT_EQ(echo_round(b, "b\n"), "b\n");
  b.close();
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
  EXPECT_TRUE(srv.wait_for_output("exiting: --max-connections 2 reached, every connection ended"))
      << srv.output();
}

TEST(CliKeepOpen, CopiesEachConnectionsBytesToStdout) {
  // Without --echo: each connection's bytes go to stdout (whole reads, so lines of different
  // clients do not mix), and the client sees a clean end.
  process srv(
      cmd({"listen", "--cert", cert("combined.pem"), "--keep-open", "--max-connections", "2"}));
  auto port = std::to_string(listening(srv));
  for (std::string line : {"from the first client\n", "from the second client\n"}) {
    auto r = run(cmd({"connect", "-q", "localhost", port, "--ca-file", cert("ca.pem")}), line);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(srv.wait_for_output(line)) << srv.output();
  }
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
  EXPECT_TRUE(srv.wait_for_output("exiting: --max-connections 2 reached, every connection ended"))
      << srv.output();
}

TEST(CliKeepOpen, AFailedHandshakeIsReportedAndServingGoesOn) {
  // One line per failed handshake, with the client's address and why (concurrent clients can
  // be told apart), at most 10 a second: past that, a count.
  process srv(cmd({"listen", "--cert", cert("combined.pem"), "--keep-open", "--echo"}));
  auto port = listening(srv);
  {
    auto plain = make_socket(active{.remote_host = "127.0.0.1", .remote_port = port});
    plain << "GET / HTTP/1.0\r\n\r\n" << std::flush;
    auto line = "127.0.0.1:" + std::to_string(plain.local_port()) +
                ": TLS handshake failed: http request (is the peer speaking TLS? it sent "
                "something else): connection dropped";
    ASSERT_TRUE(srv.wait_for_output(line)) << srv.output();
  }
  std::this_thread::sleep_for(1100ms);  // a new second: the next burst starts a window
  for (int i = 0; i < 30; ++i) {
    auto plain = make_socket(active{.remote_host = "127.0.0.1", .remote_port = port});
    plain << "GET / HTTP/1.0\r\n\r\n" << std::flush;
    std::array<char, 1> b{};
    plain.set_timeout(10s);
    plain.read(b.data(), 1);  // the server's close: this one's handshake has failed
  }
  ASSERT_TRUE(
      srv.wait_for_output("more TLS handshakes failed (not shown one by one past 10 a "
                          "second): connection dropped"))
      << srv.output();
  auto out = srv.output();
  std::size_t lines = 0;
  for (auto at = out.find(": TLS handshake failed: http request"); at != std::string::npos;
       at = out.find(": TLS handshake failed: http request", at + 1))
    ++lines;
  EXPECT_LE(lines, 1u + 2 * 10) << "the burst of 30 spans at most two seconds' windows: " << out;
  auto c = connect_to(port);
  EXPECT_EQ(echo_round(c, "served\n"), "served\n");
  c.close();
  srv.kill(SIGTERM);
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
}

TEST(CliKeepOpen, SighupKeepsTheKeylogFileWithoutOpeningItAgain) {
  temp_dir dir("sighup-keylog");
  auto log = dir / "keys.log";
  process srv(
      cmd({"listen", "--cert", cert("combined.pem"), "--keep-open", "--echo", "--keylog", log}));
  auto port = listening(srv);
  auto fds = open_descriptors(srv.pid());
  srv.kill(SIGHUP);
  ASSERT_TRUE(srv.wait_for_output("SIGHUP: certificate, key and CA files read again"))
      << srv.output();
  EXPECT_EQ(open_descriptors(srv.pid()), fds);
  auto c = connect_to(port);
  EXPECT_EQ(echo_round(c, "k\n"), "k\n");
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("CLIENT_TRAFFIC_SECRET_0 "), std::string::npos) << text.str();
  c.close();
  srv.kill(SIGTERM);
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
}
