// Real peers from an independent TLS stack: `gnutls-serv` and `gnutls-cli` as subprocesses,
// both directions, TLS 1.2 and 1.3, client certificates.
#include <gtest/gtest.h>

#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;

namespace {

class GnutlsPeer : public ::testing::TestWithParam<std::string> {
 protected:
  std::string priority() const { return "--priority=NORMAL:-VERS-ALL:+VERS-TLS" + GetParam(); }
  std::string proto() const { return "TLSv" + GetParam(); }
};

}  // namespace

TEST_P(GnutlsPeer, OurClientToGnutlsServ) {
  process srv({"gnutls-serv", "--echo", "--port=0", priority(), "--x509certfile",
               cert("server-ec.pem"), "--x509keyfile", cert("server-ec.key")});
  auto port = listening_port(srv.pid());
  ASSERT_TRUE(port) << srv.output();
  auto tls = make_ssl_client_stream(
      make_socket(active{.remote_host = "127.0.0.1", .remote_port = *port}), [] {
        auto o = client_options();
        o.server_name = "localhost";
        return o;
      }());
  tls.set_timeout(std::chrono::seconds(20));
  tls << "echo me" << std::endl;
  std::string line;
  std::getline(tls, line);
  EXPECT_EQ(line, "echo me");
  EXPECT_EQ(tls.protocol_version(), proto());
  // gnutls-serv echoes what each read returns, so lines go one at a time.
  for (int i = 0; i < 50; ++i) {
    std::string text(1000, static_cast<char>('a' + i % 26));
    tls << text << std::endl;
    std::getline(tls, line);
    ASSERT_EQ(line, text);
  }
  tls.close();
}

TEST_P(GnutlsPeer, OurClientCertificateToGnutlsServRequiringOne) {
  process srv({"gnutls-serv", "--echo", "--port=0", priority(), "--x509certfile",
               cert("server-rsa.pem"), "--x509keyfile", cert("server-rsa.key"),
               "--require-client-cert", "--verify-client-cert", "--x509cafile", cert("ca.pem")});
  auto port = listening_port(srv.pid());
  ASSERT_TRUE(port) << srv.output();
  auto co = client_options();
  co.server_name = "localhost";
  co.certificate = cert("client-ec.pem");
  co.key = cert("client-ec.key");
  auto tls = make_ssl_client_stream(
      make_socket(active{.remote_host = "127.0.0.1", .remote_port = *port}), co);
  tls.set_timeout(std::chrono::seconds(20));
  tls << "with a client certificate" << std::endl;
  std::string line;
  std::getline(tls, line);
  EXPECT_EQ(line, "with a client certificate");
  tls.close();
}

TEST_P(GnutlsPeer, GnutlsCliToOurServer) {
  auto listener = make_socket(passive{});
  auto so = tls_server_options("ec");
  so.verify = verify_mode::required;
  so.ca_file = cert("ca.pem");
  so.alpn = {"sslstream-test"};
  process cli({"gnutls-cli", "--x509cafile", cert("ca.pem"), "-p",
               std::to_string(listener.local_port()), priority(), "--alpn=sslstream-test",
               "--x509certfile", cert("client-rsa.pem"), "--x509keyfile", cert("client-rsa.key"),
               "localhost"});
  auto tls = make_ssl_server_stream(accept_within(listener, "gnutls-cli"), so);
  tls.set_timeout(std::chrono::seconds(20));
  tls.do_handshake();
  EXPECT_EQ(tls.protocol_version(), proto());
  EXPECT_EQ(tls.alpn_protocol(), "sslstream-test");
  EXPECT_EQ(tls.server_name(), "localhost");
  ASSERT_TRUE(tls.peer_certificate());
  ASSERT_TRUE(cli.wait_for_output("Handshake was completed")) << cli.output();
  cli.write_stdin("from gnutls\n");
  std::string line;
  std::getline(tls, line);
  EXPECT_EQ(line, "from gnutls");
  tls << "from sslstream" << std::endl;
  EXPECT_TRUE(cli.wait_for_output("from sslstream")) << cli.output();
  tls.close();
  EXPECT_TRUE(cli.wait_for_output("Peer has closed the GnuTLS connection")) << cli.output();
  EXPECT_EQ(cli.wait(), 0) << cli.output();
}

TEST_P(GnutlsPeer, GnutlsCliRejectsAnUntrustedServer) {
  auto listener = make_socket(passive{});
  process cli({"gnutls-cli", "--x509cafile", cert("other-ca.pem"), "-p",
               std::to_string(listener.local_port()), priority(), "localhost"});
  auto tls = make_ssl_server_stream(accept_within(listener, "gnutls-cli"), tls_server_options());
  tls.set_timeout(std::chrono::seconds(20));
  auto e = expect_throw<tls_error>([&] { tls.do_handshake(); });
  // gnutls-cli answers an unknown issuer with a bad_certificate alert (42); our server must say
  // that the peer rejected its certificate, not merely that the handshake failed somehow.
  EXPECT_EQ(e.code(), make_error_code(errc::handshake_failed)) << e.what();
  EXPECT_NE(std::string(e.what()).find("alert bad certificate"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("the peer rejected our certificate"), std::string::npos)
      << e.what();
  EXPECT_NE(cli.wait(), 0) << cli.output();
  EXPECT_TRUE(cli.wait_for_output("The certificate issuer is unknown")) << cli.output();
}

INSTANTIATE_TEST_SUITE_P(Versions, GnutlsPeer, ::testing::Values("1.2", "1.3"),
                         [](const auto& i) { return i.param == "1.3" ? "TLS13" : "TLS12"; });
