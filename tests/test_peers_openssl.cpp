// Real peers: `openssl s_server` and `openssl s_client` as subprocesses (and curl), both
// directions, TLS 1.2 and 1.3, client certificates, truncation by a killed peer.
#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <regex>

#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;

namespace {

class OpensslPeer : public ::testing::TestWithParam<std::string> {
 protected:
  std::string flag() const { return GetParam() == "1.3" ? "-tls1_3" : "-tls1_2"; }
  std::string proto() const { return GetParam() == "1.3" ? "TLSv1.3" : "TLSv1.2"; }
};

/// Starts s_server on an OS-chosen port and returns that port.
std::uint16_t start(process& p) {
  auto port = p.wait_for_match(R"(ACCEPT .*:(\d+)\n)");
  if (!port) throw std::runtime_error("s_server did not start: " + p.output());
  return static_cast<std::uint16_t>(std::stoul(*port));
}

std::string param_name(const ::testing::TestParamInfo<std::string>& i) {
  return i.param == "1.3" ? "TLS13" : "TLS12";
}

}  // namespace

TEST_P(OpensslPeer, OurClientToSServer) {
  process srv({"openssl", "s_server", "-accept", "0", "-naccept", "1", flag(), "-cert",
               cert("server-rsa.pem"), "-key", cert("server-rsa.key")});
  auto port = start(srv);
  auto tls = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = port}), client_options());
  tls.set_timeout(std::chrono::seconds(20));
  tls << "hello from sslstream" << std::endl;
  EXPECT_EQ(tls.protocol_version(), proto());
  EXPECT_TRUE(srv.wait_for_output("hello from sslstream")) << srv.output();
  srv.write_stdin("hello from openssl\n");
  std::string line;
  std::getline(tls, line);
  EXPECT_EQ(line, "hello from openssl");
  tls.close();
  EXPECT_EQ(srv.wait(), 0) << srv.output();
}

TEST_P(OpensslPeer, OurClientWithCertificateToSServerRequiringOne) {
  process srv({"openssl", "s_server", "-accept", "0", "-naccept", "1", flag(), "-cert",
               cert("server-ec.pem"), "-key", cert("server-ec.key"), "-Verify", "2", "-CAfile",
               cert("ca.pem"), "-verify_return_error"});
  auto port = start(srv);
  auto co = client_options();
  co.certificate = cert("client-rsa.pem");
  co.key = cert("client-rsa.key");
  auto tls = make_ssl_client_stream(
      make_socket(active{.remote_host = "localhost", .remote_port = port}), co);
  tls.set_timeout(std::chrono::seconds(20));
  tls << "mutual" << std::endl;
  EXPECT_TRUE(srv.wait_for_output("mutual")) << srv.output();
  EXPECT_NE(srv.output().find("CN = sslstream test client"), std::string::npos) << srv.output();
  tls.close();
}

TEST_P(OpensslPeer, SClientToOurServer) {
  auto listener = make_socket(passive{});
  auto so = tls_server_options();
  so.verify = verify_mode::required;
  so.ca_file = cert("ca.pem");
  process cli({"openssl", "s_client", "-connect",
               "localhost:" + std::to_string(listener.local_port()), flag(), "-CAfile",
               cert("ca.pem"), "-verify_return_error", "-servername", "localhost", "-cert",
               cert("client-ec.pem"), "-key", cert("client-ec.key"), "-quiet"});
  auto tls = make_ssl_server_stream(accept_within(listener, "openssl s_client"), so);
  tls.set_timeout(std::chrono::seconds(20));
  cli.write_stdin("from s_client\n");
  std::string line;
  std::getline(tls, line);
  EXPECT_EQ(line, "from s_client");
  EXPECT_EQ(tls.protocol_version(), proto());
  EXPECT_EQ(tls.server_name(), "localhost");
  ASSERT_TRUE(tls.peer_certificate());
  EXPECT_EQ(tls.peer_certificate()->subject(), "CN=sslstream test client,O=sslstream tests");
  tls << "from sslstream" << std::endl;
  EXPECT_TRUE(cli.wait_for_output("from sslstream")) << cli.output();
  tls.close();  // close_notify: s_client sees the end and exits
  EXPECT_EQ(cli.wait(), 0) << cli.output();
}

TEST_P(OpensslPeer, SClientClosingWithoutCloseNotifyIsTruncation) {
  auto listener = make_socket(passive{});
  process cli({"openssl", "s_client", "-connect",
               "localhost:" + std::to_string(listener.local_port()), flag(), "-CAfile",
               cert("ca.pem"), "-quiet"});
  auto tls =
      make_ssl_server_stream(accept_within(listener, "openssl s_client"), tls_server_options());
  tls.set_timeout(std::chrono::seconds(20));
  cli.write_stdin("before the kill\n");
  std::string line;
  std::getline(tls, line);
  EXPECT_EQ(line, "before the kill");
  cli.kill(SIGKILL);
  cli.wait();
  // The killed peer's kernel ends the connection with FIN (a truncation) or, if it held unread
  // data, RST: either way an error, never a clean end of stream.
  auto e = expect_throw<error>([&] { std::getline(tls, line); });
  EXPECT_TRUE(e.identifier() == "truncated" || e.identifier() == "connection-reset") << e.what();
}

INSTANTIATE_TEST_SUITE_P(Versions, OpensslPeer, ::testing::Values("1.2", "1.3"), param_name);

TEST(CurlPeer, CurlFetchesFromOurServer) {
  auto listener = make_socket(passive{});
  for (std::string v : {"1.2", "1.3"}) {
    process curl({"curl", "-sS", "--max-time", "20", "--cacert", cert("ca.pem"), "--tlsv" + v,
                  "--tls-max", v,
                  "https://localhost:" + std::to_string(listener.local_port()) + "/x"});
    auto tls = make_ssl_server_stream(accept_within(listener, "curl"), tls_server_options());
    tls.set_timeout(std::chrono::seconds(20));
    std::string request, line;
    std::getline(tls, request);
    while (std::getline(tls, line) && line != "\r") {
    }
    EXPECT_EQ(request, "GET /x HTTP/1.1\r");
    std::string body = "served over TLS " + v + "\n";
    tls << "HTTP/1.1 200 OK\r\nContent-Length: " << body.size() << "\r\nConnection: close\r\n\r\n"
        << body << std::flush;
    EXPECT_EQ(tls.protocol_version(), "TLSv" + v);
    tls.close();
    EXPECT_EQ(curl.wait(), 0) << curl.output();
    curl.drain();
    EXPECT_EQ(curl.output(), body);
  }
}
