// The command-line tool as a tunnel (DESIGN.md §7): listen --forward (a TLS terminator in
// front of a plain TCP backend), listen --exec (a command per connection, inetd style) and
// connect --accept (local plaintext connections over verified TLS), against curl, openssl
// s_server, a plain Python backend (support/plain_backend.py) and the library as a client.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <thread>

#include "cli_run.hpp"
#include "loopback.hpp"
#include "temp_dir.hpp"
#include "timing.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;

namespace {

std::string ca() { return cert("ca.pem"); }
const std::string python = "/usr/bin/python3";  // Debian's (a shim on PATH may start slowly)
const std::string backend_script = SSLSTREAM_TEST_SUPPORT_DIR "/plain_backend.py";

/// A plain backend of the given mode (see plain_backend.py), listening.
struct backend {
  process p;
  std::uint16_t port;
  explicit backend(const std::string& mode) : p({python, backend_script, mode}), port(port_of(p)) {}
  static std::uint16_t port_of(process& p) {
    auto m = p.wait_for_match(R"(port (\d+)\n)", 30s);
    if (!m) throw std::runtime_error("the backend did not start: " + p.output());
    return static_cast<std::uint16_t>(std::stoul(*m));
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

/// `listen` with the test server certificate and `args`, listening.
struct listener {
  process p;
  std::uint16_t port;
  explicit listener(std::vector<std::string> args)
      : p(with_cert(std::move(args))), port(listening(p)) {}
  static std::vector<std::string> with_cert(std::vector<std::string> args) {
    auto v = cmd({"listen", "--cert", cert("server-rsa.pem"), "--key", cert("server-rsa.key")});
    v.insert(v.end(), args.begin(), args.end());
    return v;
  }
};

/// A library client of `port` (verifying the test CA), handshaken.
ssl_stream client(std::uint16_t port, ssl_options o = client_options()) {
  auto s =
      make_ssl_client_stream(make_socket({.remote_host = "localhost", .remote_port = port}), o);
  s.set_timeout(20s);
  s.do_handshake();
  return s;
}

/// Reads until the peer's close_notify.
std::string read_to_eof(ssl_stream& s) {
  std::string out;
  std::array<std::byte, 4096> b{};
  while (auto n = s.read_some(b)) out.append(reinterpret_cast<const char*>(b.data()), n);
  return out;
}

void send(ssl_stream& s, const std::string& text) { s.write_all(std::as_bytes(std::span(text))); }

/// CPU time (user + system) a process has used so far, in ms.
double cpu_ms(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), {});
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return 1000.0 * static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

TEST(CliTunnel, BadInputsForEveryNewFlag) {
  struct row {
    std::vector<std::string> args;
    std::string message;
  } rows[] = {
      {{"listen", "--forward", "localhost"}, "is not HOST:PORT (the port is missing)"},
      {{"listen", "--forward", "localhost:"}, "the port must be a number from 1 to 65535"},
      {{"listen", "--forward", "localhost:0"}, "the port must be a number from 1 to 65535"},
      {{"listen", "--forward", "localhost:99999"}, "the port must be a number from 1 to 65535"},
      {{"listen", "--forward", "localhost:http"}, "not 'http'"},
      {{"listen", "--forward", ":8080"}, "has no host before the ':'"},
      {{"listen", "--forward", "::1:8080"}, "write an IPv6 address in brackets: [::1]:8080"},
      {{"listen", "--forward", "localhost:80", "--echo"}, "excludes"},
      {{"listen", "--exec", ""}, "--exec: is empty"},
      {{"listen", "--exec", "  "}, "--exec: is empty"},
      {{"listen", "--exec", "cat", "--forward", "localhost:80"}, "excludes"},
      {{"listen", "--exec", "cat", "--echo"}, "excludes"},
      {{"listen", "--max-workers", "8"}, "requires --keep-open"},
      {{"listen", "--keep-open", "--max-workers", "0"}, "expects a whole number from 1 to 4096"},
      {{"connect", "localhost", "1", "--accept", "abc"}, "the port must be a number from 0"},
      {{"connect", "localhost", "1", "--accept", "70000"}, "the port must be a number from 0"},
      {{"connect", "localhost", "1", "--accept", ":80"}, "has no host before the ':'"},
      {{"connect", "localhost", "1", "--accept", ""}, "the port must be a number"},
      {{"connect", "localhost", "1", "--port-file", "/tmp/x"}, "requires --accept"},
      {{"info", "localhost", "1", "--accept", "0"}, "--accept"},
  };
  for (const auto& row : rows) {
    auto argv = cmd({});
    argv.insert(argv.end(), row.args.begin(), row.args.end());
    auto r = run(argv, "", 10s);
    EXPECT_EQ(r.status, 2) << row.args[1] << ": " << r.output;
    EXPECT_TRUE(says(r, row.message)) << "want '" << row.message << "': " << r.output;
  }
  // Every new flag is in --help, with an example.
  auto lh = run(cmd({"listen", "--help"}));
  for (auto text : {"--forward", "--exec", "--max-workers", "listen --cert server.pem --port 443",
                    "--accept: 300 when not given"})
    EXPECT_TRUE(says(lh, text)) << text << ": " << lh.output;
  auto ch = run(cmd({"connect", "--help"}));
  for (auto text : {"--accept", "--port-file", "--accept 1143"})
    EXPECT_TRUE(says(ch, text)) << text << ": " << ch.output;
}

TEST(CliTunnel, CurlThroughForwardReachesAPlainHttpServer) {
  backend b("http");
  listener srv({"--forward", b.address()});
  auto r = run({"curl", "-sS", "--max-time", "20", "--cacert", ca(),
                "https://localhost:" + std::to_string(srv.port) + "/through/forward"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "hello /through/forward from 127.0.0.1\n");
  // One connection without --keep-open: served, then listen ends.
  EXPECT_EQ(srv.p.wait(20s), 0) << srv.p.output();
}

TEST(CliTunnel, ForwardHalfCloseBothWays) {
  // The client's close_notify reaches the backend as a FIN (the sink answers only after its
  // EOF), and the backend's FIN reaches the client as close_notify.
  backend b("sink");
  listener srv({"--forward", b.address()});
  auto c = client(srv.port);
  send(c, "twelve bytes");
  c.shutdown(direction::output);
  // sha256 of "twelve bytes", from sha256sum.
  EXPECT_EQ(read_to_eof(c),
            "got 12 bytes sha256 "
            "d4ce2c527afe674c7a086bd74e256019e3d5dcdb31eeb6eaadef5ada8c4383b9\n");
  EXPECT_EQ(srv.p.wait(20s), 0) << srv.p.output();
}

TEST(CliTunnel, ForwardOneGibUploadByteExact) {
  backend b("sink");
  auto r = sh(R"SH(
dir=$(mktemp -d)
trap 'kill $lp 2>/dev/null; rm -rf "$dir"' EXIT
"$SSLSTREAM" listen -q --port-file "$dir/port" --cert "$COMBINED" --forward 127.0.0.1:)SH" +
                  std::to_string(b.port) + R"SH( &
lp=$!
for i in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
gen() { openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000 -nosalt < /dev/zero 2>/dev/null | head -c 1073741824; }
start=$(date +%s)
gen | timeout 200 "$SSLSTREAM" connect -q localhost "$(cat "$dir/port")" --ca-file "$CA" > "$dir/reply"
echo "connect=${PIPESTATUS[1]} seconds=$(( $(date +%s) - start ))"
wait $lp; echo "listen=$?"
echo "reply: $(cat "$dir/reply")"
echo "want: got 1073741824 bytes sha256 $(gen | sha256sum | cut -c1-64)"
)SH",
              300s);
  ASSERT_TRUE(says(r, "connect=0")) << r.output;
  EXPECT_TRUE(says(r, "listen=0")) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("reply: (.*)\nwant: (.*)\n"))) << r.output;
  EXPECT_EQ(m[1], m[2]) << r.output;
  std::cout << "upload: " << r.output.substr(0, r.output.find('\n')) << '\n';
}

TEST(CliTunnel, ForwardOneGibDownloadByteExact) {
  // The client's stdin is empty: its close_notify comes first and the backend's FIN reaches
  // it only after the whole GiB (half close the other way round).
  backend b("source:1073741824");
  auto r = sh(R"SH(
dir=$(mktemp -d)
trap 'kill $lp 2>/dev/null; rm -rf "$dir"' EXIT
"$SSLSTREAM" listen -q --port-file "$dir/port" --cert "$COMBINED" --forward 127.0.0.1:)SH" +
                  std::to_string(b.port) + R"SH( &
lp=$!
for i in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
start=$(date +%s)
timeout 200 "$SSLSTREAM" connect -q localhost "$(cat "$dir/port")" --ca-file "$CA" < /dev/null | sha256sum > "$dir/sum"
echo "connect=${PIPESTATUS[0]} seconds=$(( $(date +%s) - start ))"
wait $lp; echo "listen=$?"
echo "got sha256 $(cut -c1-64 "$dir/sum")"
)SH",
              300s);
  ASSERT_TRUE(says(r, "connect=0")) << r.output;
  EXPECT_TRUE(says(r, "listen=0")) << r.output;
  auto sent = b.p.wait_for_match(R"(sent 1073741824 sha256 ([0-9a-f]{64})\n)", 10s);
  ASSERT_TRUE(sent) << b.p.output();
  EXPECT_TRUE(says(r, "got sha256 " + *sent)) << r.output;
  std::cout << "download: " << r.output.substr(0, r.output.find('\n')) << '\n';
}

TEST(CliTunnel, KeepOpenForwardServesTwoHundredConcurrentClients) {
  // Each reply comes 1 s after its request: served one at a time, 200 would take 200 s and
  // the clients' own 60 s limits would fail them; --max-workers 256 serves them all at once.
  backend b("http:1");
  auto r = sh(R"SH(
dir=$(mktemp -d)
trap 'kill $lp 2>/dev/null; rm -rf "$dir"' EXIT
"$SSLSTREAM" listen -q --keep-open --max-workers 256 --max-connections 200 --port-file "$dir/port" --cert "$COMBINED" --forward 127.0.0.1:)SH" +
                  std::to_string(b.port) + R"SH( &
lp=$!
for i in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
port=$(cat "$dir/port")
start=$(date +%s)
pids=""
for i in $(seq 200); do
  curl -sS --max-time 60 --cacert "$CA" "https://localhost:$port/client$i" > "$dir/out.$i" 2>&1 &
  pids="$pids $!"
done
failed=0
for p in $pids; do wait $p || failed=$((failed+1)); done
echo "seconds=$(( $(date +%s) - start ))"
good=0
for i in $(seq 200); do [ "$(cat "$dir/out.$i")" = "hello /client$i from 127.0.0.1" ] && good=$((good+1)); done
[ $good = 200 ] || cat "$dir/out.1"
timeout 30 tail --pid=$lp -f /dev/null; wait $lp; echo "listen=$?"
echo "failed=$failed good=$good"
)SH",
              300s);
  EXPECT_TRUE(says(r, "failed=0 good=200")) << r.output;
  EXPECT_TRUE(says(r, "listen=0")) << r.output;
  std::cout << "200 clients: " << r.output.substr(0, r.output.find('\n')) << '\n';
}

TEST(CliTunnel, BackendClosingEarlyGivesTheClientEofAfterItsReply) {
  // The backend answers one line and closes while the client has not closed its side: the
  // client reads the answer, then a clean EOF; what it still sends is dropped, not an error.
  backend b("close-early");
  listener srv({"-v", "--forward", b.address()});
  auto c = client(srv.port);
  send(c, "hello\n");
  EXPECT_EQ(read_to_eof(c), "bye\n");
  send(c, "more, after the backend closed\n");
  c.close();
  EXPECT_EQ(srv.p.wait(20s), 0) << srv.p.output();
  EXPECT_TRUE(srv.p.wait_for_output("done: 4 bytes to the client, ")) << srv.p.output();
}

TEST(CliTunnel, BackendRefusedClosesTheClientAndSaysWhy) {
  std::uint16_t closed;
  {
    auto l = make_socket(passive{.local_host = "127.0.0.1"});
    closed = l.local_port();
  }
  listener srv({"--forward", "127.0.0.1:" + std::to_string(closed)});
  auto c = client(srv.port);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(read_to_eof(c), "");  // a close_notify, not a reset
  EXPECT_LT(ms_since(start), 10000);
  EXPECT_EQ(srv.p.wait(20s), 3) << srv.p.output();
  srv.p.drain(5s);
  auto peer = "127.0.0.1:" + std::to_string(c.local_port()) +
              ": cannot reach the backend 127.0.0.1:" + std::to_string(closed) + ": ";
  EXPECT_TRUE(says({0, srv.p.output()}, peer)) << srv.p.output();
  EXPECT_TRUE(says({0, srv.p.output()}, "refused")) << srv.p.output();
}

TEST(CliTunnel, ExecCatEchoesWithHalfClose) {
  listener srv({"--exec", "cat"});
  std::string data;
  for (int i = 0; i < 20000; ++i) data += "line " + std::to_string(i) + " through cat\n";
  auto r = run(cmd({"connect", "-q", "localhost", std::to_string(srv.port), "--ca-file", ca()}),
               data, 60s);
  EXPECT_EQ(r.status, 0) << r.output.substr(0, 500);
  EXPECT_TRUE(r.output == data) << r.output.size() << " bytes back of " << data.size();
  EXPECT_EQ(srv.p.wait(20s), 0) << srv.p.output();
}

TEST(CliTunnel, ExecSeesThePeerInItsEnvironment) {
  const std::string show =
      R"(printf '%s|%s|%s|%s\n' "$SSLSTREAM_PEER_ADDRESS" "$SSLSTREAM_PEER_PORT" )"
      R"("${SSLSTREAM_PEER_SUBJECT-unset}" "${SSLSTREAM_SERVER_NAME-unset}")";
  {
    // A verified client certificate: its subject. A forged variable in listen's own
    // environment never reaches the command.
    process srv({"env", "SSLSTREAM_PEER_SUBJECT=CN=forged", cli_binary, "listen", "--cert",
                 cert("server-rsa.pem"), "--key", cert("server-rsa.key"), "--verify", "required",
                 "--ca-file", ca(), "--exec", show});
    auto port = listening(srv);
    auto o = client_options();
    o.certificate = cert("client.pem");
    o.key = cert("client.key");
    auto c = client(port, o);
    c.shutdown(direction::output);
    auto subject = x509_certificate::load_pem_file(cert("client.pem")).subject();
    EXPECT_EQ(read_to_eof(c),
              "127.0.0.1|" + std::to_string(c.local_port()) + "|" + subject + "|localhost\n");
    EXPECT_EQ(srv.wait(20s), 0) << srv.output();
  }
  {
    // No client certificate, no SNI (a client of an address sends none): both unset.
    process srv({"env", "SSLSTREAM_PEER_SUBJECT=CN=forged", cli_binary, "listen", "--cert",
                 cert("server-rsa.pem"), "--key", cert("server-rsa.key"), "--exec", show});
    auto port = listening(srv);
    auto o = client_options();
    o.server_name = "";
    o.verify = verify_mode::none;
    auto s =
        make_ssl_client_stream(make_socket({.remote_host = "127.0.0.1", .remote_port = port}), o);
    s.set_timeout(20s);
    s.shutdown(direction::output);
    EXPECT_EQ(read_to_eof(s), "127.0.0.1|" + std::to_string(s.local_port()) + "|unset|unset\n");
    EXPECT_EQ(srv.wait(20s), 0) << srv.output();
  }
}

TEST(CliTunnel, ExecCommandNeverTakesACutUploadForAComplete) {
  // The client sends part of an upload and its connection is cut (a FIN without close_notify):
  // the command must not see a clean end of input (it would process a truncated upload as
  // whole). It is stopped instead: `cat` then never gets to write its marker. Before, its stdin
  // was just closed, exactly as after a close_notify.
  temp_dir dir("exec-cut");
  auto marker = dir / "complete";
  listener srv({"--exec", "cat > /dev/null && echo complete > " + marker});
  auto c = client(srv.port);
  send(c, "half of an upload\n");
  ::shutdown(c.native_handle(), SHUT_WR);           // FIN, no close_notify
  EXPECT_NE(srv.p.wait(20s), 0) << srv.p.output();  // the cut is an error: exit 5
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the command took the cut for a clean end";
}

TEST(CliTunnel, ExecGetsNeitherTheKeyPasswordNorAnUnsafeServerName) {
  // --password-env names our key's password: never the command's. A server name (SNI) that is
  // not a plain host name (here with $(...) and a space) is not exported at all.
  const std::string show =
      R"(printf '%s|%s\n' "${KEY_SECRET-unset}" "${SSLSTREAM_SERVER_NAME-unset}")";
  process srv({"env", "KEY_SECRET=hunter2", cli_binary, "listen", "--cert", cert("server-rsa.pem"),
               "--key", cert("server-rsa.key"), "--password-env", "KEY_SECRET", "--exec", show});
  auto port = listening(srv);
  auto o = client_options();
  o.server_name = "x$(id) y";
  o.verify = verify_mode::none;
  auto c =
      make_ssl_client_stream(make_socket({.remote_host = "127.0.0.1", .remote_port = port}), o);
  c.shutdown(direction::output);
  EXPECT_EQ(read_to_eof(c), "unset|unset\n");
  EXPECT_EQ(srv.wait(20s), 0) << srv.output();
}

TEST(CliTunnel, ExecCommandExitingEarly) {
  // The command answers and exits without reading: the client gets the answer and a clean
  // EOF while its own side is still open; -v logs the exit status.
  listener srv({"-v", "--exec", "echo early; exit 3"});
  auto c = client(srv.port);
  EXPECT_EQ(read_to_eof(c), "early\n");
  send(c, "unread\n");
  c.close();
  EXPECT_EQ(srv.p.wait(20s), 0) << srv.p.output();
  EXPECT_TRUE(srv.p.wait_for_output("the command exited with status 3")) << srv.p.output();
}

TEST(CliTunnel, ExecCommandOutlivingItsConnectionIsEndedAfterTheGrace) {
  // It closes its stdout but keeps running: 2 s after the connection ends it gets SIGTERM
  // (its whole process group: the sleep too).
  listener srv({"-v", "--exec", "echo hi; exec >&-; sleep 60"});
  auto c = client(srv.port);
  EXPECT_EQ(read_to_eof(c), "hi\n");
  c.close();
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(srv.p.wait(20s), 0) << srv.p.output();
  auto took = ms_since(start);
  EXPECT_GE(took, 1900);
  EXPECT_LT(took, 2000 + 3000);  // slack for a loaded machine
  EXPECT_TRUE(srv.p.wait_for_output("sent SIGTERM")) << srv.p.output();
  EXPECT_TRUE(srv.p.wait_for_output("killed by signal 15")) << srv.p.output();
}

TEST(CliTunnel, AcceptRelaysCurlToOpensslServerVerified) {
  process s_server({"openssl", "s_server", "-www", "-accept", "0", "-cert", cert("server-rsa.pem"),
                    "-key", cert("server-rsa.key")});
  auto sport = listening_port(s_server.pid());
  ASSERT_TRUE(sport) << s_server.output();
  process tunnel(
      cmd({"connect", "localhost", std::to_string(*sport), "--ca-file", ca(), "--accept", "0"}));
  auto lport = listening(tunnel);
  EXPECT_TRUE(tunnel.wait_for_output("listening on 127.0.0.1:")) << tunnel.output();
  for (int i = 0; i < 3; ++i) {  // a new TLS connection for each local one
    auto r =
        run({"curl", "-sS", "--max-time", "20", "http://127.0.0.1:" + std::to_string(lport) + "/"});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(says(r, "s_server -www")) << r.output;
  }
  tunnel.kill(SIGTERM);
  s_server.kill(SIGTERM);
}

TEST(CliTunnel, AcceptWithAClientCertificateSaysEveryLocalUserIsLentIt) {
  // A TCP port cannot tell local users apart: whoever connects is the certificate's holder
  // to the server. connect says so, even with -q (and without --cert says nothing).
  process s_server({"openssl", "s_server", "-www", "-accept", "0", "-cert", cert("server-rsa.pem"),
                    "-key", cert("server-rsa.key"), "-Verify", "1", "-CAfile", ca()});
  auto sport = listening_port(s_server.pid());
  ASSERT_TRUE(sport) << s_server.output();
  temp_dir dir;
  auto port_file = dir / "port";
  process tunnel(cmd({"connect", "-q", "localhost", std::to_string(*sport), "--ca-file", ca(),
                      "--cert", cert("client.pem"), "--key", cert("client.key"), "--accept",
                      "127.0.0.1:0", "--port-file", port_file}));
  EXPECT_TRUE(tunnel.wait_for_output("connects as the holder of --cert")) << tunnel.output();
  auto port = read_file(port_file);
  auto r = run({"curl", "-sS", "--max-time", "20",
                "http://127.0.0.1:" + port.substr(0, port.find('\n')) + "/"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(says(r, "s_server -www")) << r.output;  // served: the certificate was accepted
  tunnel.kill(SIGTERM);
  s_server.kill(SIGTERM);
  EXPECT_TRUE(tunnel.wait_for_output("every local user who can reach 127.0.0.1:"))
      << tunnel.output();

  process plain(
      cmd({"connect", "localhost", std::to_string(*sport), "--ca-file", ca(), "--accept", "0"}));
  EXPECT_TRUE(plain.wait_for_output("listening on 127.0.0.1:")) << plain.output();
  plain.kill(SIGTERM);
  EXPECT_FALSE(says({0, plain.output()}, "holder of --cert")) << plain.output();
}

TEST(CliTunnel, AcceptThroughListenForwardChain) {
  // curl (plain) -> connect --accept -> TLS -> listen --forward -> plain HTTP backend.
  backend b("http");
  listener srv({"--forward", b.address()});
  auto dir =
      std::filesystem::temp_directory_path() / ("sslstream-accept-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto port_file = (dir / "port").string();
  process tunnel(cmd({"connect", "localhost", std::to_string(srv.port), "--ca-file", ca(),
                      "--accept", "127.0.0.1:0", "--port-file", port_file}));
  listening(tunnel);
  std::ifstream in(port_file);
  std::uint16_t lport = 0;
  in >> lport;
  ASSERT_NE(lport, 0) << tunnel.output();
  auto r = run(
      {"curl", "-sS", "--max-time", "20", "http://127.0.0.1:" + std::to_string(lport) + "/chain"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "hello /chain from 127.0.0.1\n");
  EXPECT_EQ(srv.p.wait(20s), 0) << srv.p.output();
  tunnel.kill(SIGTERM);
  std::filesystem::remove_all(dir);
}

TEST(CliTunnel, AcceptWithTheWrongCaRelaysNothing) {
  process s_server({"openssl", "s_server", "-accept", "0", "-cert", cert("server-rsa.pem"), "-key",
                    cert("server-rsa.key")});
  auto sport = listening_port(s_server.pid());
  ASSERT_TRUE(sport) << s_server.output();
  process tunnel(cmd({"connect", "localhost", std::to_string(*sport), "--ca-file",
                      cert("other-ca.pem"), "--accept", "0"}));
  auto lport = listening(tunnel);
  auto r = run(
      {"curl", "-sS", "--max-time", "20", "http://127.0.0.1:" + std::to_string(lport) + "/secret"});
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_FALSE(says(r, "HTTP")) << r.output;
  EXPECT_TRUE(tunnel.wait_for_output("(the local connection is closed)")) << tunnel.output();
  EXPECT_TRUE(says({0, tunnel.output()}, "certificate verify failed")) << tunnel.output();
  EXPECT_TRUE(says({0, tunnel.output()}, "sslstream connect: 127.0.0.1:")) << tunnel.output();
  EXPECT_FALSE(says({0, s_server.output()}, "/secret")) << s_server.output();
  // The tunnel goes on serving after a failed connection.
  EXPECT_TRUE(tunnel.wait(200ms) == std::nullopt);
  tunnel.kill(SIGTERM);
  s_server.kill(SIGTERM);
}

TEST(CliTunnel, KeepOpenExecServesManyAtOnce) {
  // Each client waits for its own line back before it ends its input: all 40 commands run at
  // once, each with its own pipes.
  auto r = sh(R"SH(
dir=$(mktemp -d)
trap 'kill $lp 2>/dev/null; rm -rf "$dir"' EXIT
"$SSLSTREAM" listen -q --keep-open --max-connections 40 --port-file "$dir/port" --cert "$COMBINED" --exec 'read l; echo "$l via $SSLSTREAM_PEER_ADDRESS"; cat' &
lp=$!
for i in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
port=$(cat "$dir/port")
pids=""
for i in $(seq 40); do
  (printf 'client %s\n' $i; sleep 1; printf 'tail %s\n' $i) | timeout 60 "$SSLSTREAM" connect -q localhost $port --ca-file "$CA" > "$dir/out.$i" &
  pids="$pids $!"
done
failed=0
for p in $pids; do wait $p || failed=$((failed+1)); done
good=0
for i in $(seq 40); do [ "$(cat "$dir/out.$i")" = "$(printf 'client %s via 127.0.0.1\ntail %s' $i $i)" ] && good=$((good+1)); done
timeout 30 tail --pid=$lp -f /dev/null; wait $lp; echo "listen=$?"
echo "failed=$failed good=$good"
)SH",
              200s);
  EXPECT_TRUE(says(r, "failed=0 good=40")) << r.output;
  EXPECT_TRUE(says(r, "listen=0")) << r.output;
}

TEST(CliTunnel, KeepOpenForwardDrainsThenCutsBothSides) {
  // A backend that takes a minute to answer: on SIGTERM the connection has --drain 1 s, then
  // the client sees a reset (never a clean end of an answer it did not get) and listen exits 0.
  backend b("http:60");
  listener srv({"--keep-open", "--drain", "1", "--forward", b.address()});
  auto c = client(srv.port);
  send(c, "GET /slow HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(b.p.wait_for_output("request /slow")) << b.p.output();
  auto start = std::chrono::steady_clock::now();
  srv.p.kill(SIGTERM);
  // The drain's end is what the client sees (its cut), not the process's exit, which under
  // the sanitizers includes their own work at exit.
  std::array<std::byte, 64> buf{};
  EXPECT_THROW(c.read_some(buf), sslstream::error);
  auto took = ms_since(start);
  EXPECT_GE(took, 900);
  EXPECT_LT(took, 1000 + 3000);  // the relay looks every 200 ms; slack for a loaded machine
  EXPECT_EQ(srv.p.wait(20s), 0) << srv.p.output();
}

TEST(CliTunnel, AClientResetWhileTheBackendStallsDoesNotSpinTheRelay) {
  // The backend stops reading, so the relay waits for it to take bytes and wants nothing of
  // the TLS socket; the client then resets. poll() reports a reset socket's POLLERR even when
  // asked for no events: watched, it would return at once, again and again (100% CPU).
  backend b("stall");
  listener srv({"--forward", b.address()});
  auto c = client(srv.port);
  ASSERT_TRUE(b.p.wait_for_output("stalled")) << b.p.output();
  c.set_write_timeout(1500ms);
  std::string piece(64 * 1024, 'x');
  std::size_t sent = 0;
  try {
    while (sent < (256u << 20)) {  // every buffer on the way fills long before this
      send(c, piece);
      sent += piece.size();
    }
  } catch (const socket_error&) {  // the write timed out: the whole path is full
  }
  ASSERT_LT(sent, 256u << 20) << "the backend never filled up";
  linger l{1, 0};
  ::setsockopt(c.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  { auto gone = std::move(c); }        // closed with unread data and linger 0: a reset
  std::this_thread::sleep_for(300ms);  // the reset arrives; the relay goes on waiting
  auto before = cpu_ms(srv.p.pid());
  std::this_thread::sleep_for(1s);
  auto used = cpu_ms(srv.p.pid()) - before;
  EXPECT_LT(used, 150) << "listen used " << used << " ms of CPU in 1 s while waiting";
  srv.p.kill(SIGTERM);
  b.p.kill(SIGTERM);
}
