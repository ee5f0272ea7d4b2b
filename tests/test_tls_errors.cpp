// Every TLS failure a peer or a certificate can cause: the error's kind, code, and a message
// that names the cause.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;

namespace {

bool says(const std::exception& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

/// The client's verification error against a server using certificate NAME.
verify_error client_verify_error(const std::string& name, ssl_options co = client_options()) {
  ssl_options so;
  so.certificate = cert(name + ".pem");
  so.key = cert(name + ".key");
  auto p = make_tls_pair(so, co);
  auto r = handshake_both(p.server, p.client);
  EXPECT_TRUE(r.server);  // the server sees the client's alert
  return rethrow_as<verify_error>(r.client);
}

}  // namespace

TEST(TlsErrors, ExpiredCertificate) {
  auto e = client_verify_error("expired");
  EXPECT_EQ(e.verify_code(), X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(e.code(), make_error_code(errc::verify_failed));
  EXPECT_EQ(e.identifier(), "verify-failed");
  EXPECT_EQ(e.verify_text(), "certificate has expired");
  EXPECT_EQ(e.certificate_subject(), "CN=localhost,O=sslstream tests");
  EXPECT_TRUE(says(e, "certificate has expired")) << e.what();
  EXPECT_TRUE(says(e, "CN=localhost")) << e.what();
}

TEST(TlsErrors, NotYetValidCertificate) {
  auto e = client_verify_error("notyet");
  EXPECT_EQ(e.verify_code(), X509_V_ERR_CERT_NOT_YET_VALID);
  EXPECT_TRUE(says(e, "not yet valid")) << e.what();
}

TEST(TlsErrors, WrongHost) {
  auto e = client_verify_error("wronghost");
  EXPECT_EQ(e.verify_code(), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_TRUE(says(e, "hostname mismatch")) << e.what();
  EXPECT_TRUE(says(e, "'localhost'")) << e.what();
  EXPECT_TRUE(says(e, "server_name")) << e.what();
}

TEST(TlsErrors, NameOnlyInCommonNameIsRejected) {
  auto e = client_verify_error("nosan");
  EXPECT_EQ(e.verify_code(), X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST(TlsErrors, IpAddressOnlyInCommonNameIsRejected) {
  auto co = client_options();
  co.server_name = "127.0.0.1";
  auto e = client_verify_error("ipcn", co);
  EXPECT_EQ(e.verify_code(), X509_V_ERR_IP_ADDRESS_MISMATCH);
}

TEST(TlsErrors, UnknownCa) {
  auto e = client_verify_error("unknown-ca");
  EXPECT_EQ(e.verify_code(), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_TRUE(says(e, "ca_file")) << e.what();
}

TEST(TlsErrors, SelfSignedSampleIsNotTrustedImplicitly) {
  ssl_options so;
  so.certificate = SSLSTREAM_SAMPLE_PEM;
  ssl_options co;  // system trust store
  auto p = make_tls_pair(so, co);
  auto e = rethrow_as<verify_error>(handshake_both(p.server, p.client).client);
  EXPECT_EQ(e.verify_code(), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  EXPECT_TRUE(says(e, "self-signed")) << e.what();
}

TEST(TlsErrors, RevokedCertificate) {
  auto co = client_options();
  co.crl_file = cert("crl.pem");
  co.crl_check = true;
  auto e = client_verify_error("revoked", co);
  EXPECT_EQ(e.verify_code(), X509_V_ERR_CERT_REVOKED);
  EXPECT_TRUE(says(e, "revoked")) << e.what();
}

TEST(TlsErrors, ChainTooLong) {
  auto so = tls_server_options();
  so.certificate = cert("chained.pem");
  so.key = cert("chained.key");
  so.other_certificates = {cert("inter.pem")};
  auto co = client_options();
  co.max_depth = 0;
  auto p = make_tls_pair(so, co);
  auto e = rethrow_as<verify_error>(handshake_both(p.server, p.client).client);
  EXPECT_EQ(e.verify_code(), X509_V_ERR_CERT_CHAIN_TOO_LONG);
}

TEST(TlsErrors, ClientCertificateRequiredButMissing) {
  auto so = tls_server_options();
  so.verify = verify_mode::required;
  so.ca_file = cert("ca.pem");
  auto p = make_tls_pair(so, client_options());
  auto r = handshake_both(p.server, p.client);
  auto se = rethrow_as<tls_error>(r.server);
  EXPECT_EQ(se.code(), make_error_code(errc::handshake_failed));
  EXPECT_TRUE(says(se, "certificate")) << se.what();
  // In TLS 1.3 the client's handshake ends before the server judges it; the alert arrives on
  // the client's first read.
  auto ce = expect_throw<tls_error>([&] {
    if (r.client) std::rethrow_exception(r.client);
    std::string w;
    p.client >> w;
  });
  EXPECT_TRUE(says(ce, "certificate required")) << ce.what();
  EXPECT_EQ(ce.code(), make_error_code(errc::handshake_failed)) << ce.what();
}

TEST(TlsErrors, ClientCertificateFromUnknownCa) {
  auto so = tls_server_options();
  so.verify = verify_mode::optional;
  so.ca_file = cert("ca.pem");
  auto co = client_options();
  co.certificate = cert("unknown-ca.pem");
  co.key = cert("unknown-ca.key");
  auto p = make_tls_pair(so, co);
  auto r = handshake_both(p.server, p.client);
  auto se = rethrow_as<verify_error>(r.server);
  EXPECT_EQ(se.verify_code(), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_TRUE(says(se, "client's certificate")) << se.what();
}

TEST(TlsErrors, ProtocolVersionMismatch) {
  auto so = tls_server_options();
  so.max_version = tls_version::tls1_2;
  auto co = client_options();
  co.min_version = tls_version::tls1_3;
  auto p = make_tls_pair(so, co);
  auto r = handshake_both(p.server, p.client);
  auto se = rethrow_as<tls_error>(r.server);
  auto ce = rethrow_as<tls_error>(r.client);
  EXPECT_EQ(se.code(), make_error_code(errc::handshake_failed));
  EXPECT_EQ(ce.code(), make_error_code(errc::handshake_failed));
  EXPECT_TRUE(says(se, "TLS version")) << se.what();
  EXPECT_TRUE(says(ce, "TLS version")) << ce.what();
}

TEST(TlsErrors, NoAlpnInCommon) {
  auto so = tls_server_options();
  so.alpn = {"h2"};
  auto co = client_options();
  co.alpn = {"imap"};
  auto p = make_tls_pair(so, co);
  auto r = handshake_both(p.server, p.client);
  EXPECT_TRUE(says(rethrow_as<tls_error>(r.client), "application protocol"));
}

TEST(TlsErrors, PeerClosesDuringHandshake) {
  auto [s, c] = socket_pair();
  auto client = make_ssl_client_stream(std::move(c), client_options());
  client.set_timeout(std::chrono::seconds(20));
  auto closer = std::async(std::launch::async, [&s] {
    char buf[100];
    s.read_some(std::as_writable_bytes(std::span(buf)));  // part of the ClientHello
    s.close();
  });
  auto e = expect_throw<tls_error>([&] { client.do_handshake(); });
  closer.get();
  EXPECT_EQ(e.code(), make_error_code(errc::handshake_failed));
  EXPECT_TRUE(says(e, "closed the connection during the handshake")) << e.what();
}

TEST(TlsErrors, PlainTextClient) {
  auto [s, c] = socket_pair();
  auto server = make_ssl_server_stream(std::move(s), tls_server_options());
  server.set_timeout(std::chrono::seconds(20));
  c << "GET / HTTP/1.0\r\n\r\n" << std::flush;
  auto e = expect_throw<tls_error>([&] { server.do_handshake(); });
  EXPECT_EQ(e.code(), make_error_code(errc::handshake_failed));
  EXPECT_TRUE(says(e, "is the peer speaking TLS")) << e.what();
}

TEST(TlsErrors, PlainTextServer) {
  auto [s, c] = socket_pair();
  auto client = make_ssl_client_stream(std::move(c), client_options());
  client.set_timeout(std::chrono::seconds(20));
  s << "220 smtp.example ESMTP ready\r\n" << std::flush;
  auto e = expect_throw<tls_error>([&] { client.do_handshake(); });
  EXPECT_TRUE(says(e, "is the peer speaking TLS")) << e.what();
}

TEST(TlsErrors, TruncationIsNotACleanEof) {
  auto p = make_tls_pair(tls_server_options(), client_options());
  ASSERT_FALSE(handshake_both(p.server, p.client).client);
  p.server << "partial " << std::flush;
  ::shutdown(p.server.native_handle(), SHUT_RDWR);  // vanish without close_notify
  std::string w;
  p.client >> w;
  EXPECT_EQ(w, "partial");
  auto e = expect_throw<tls_error>([&] { p.client >> w; });
  EXPECT_EQ(e.code(), make_error_code(errc::truncated));
  EXPECT_EQ(e.identifier(), "truncated");
  EXPECT_TRUE(says(e, "close_notify")) << e.what();
  // The error sticks.
  std::byte b[4];
  EXPECT_THROW(p.client.read_some(b), tls_error);
}

TEST(TlsErrors, ResetAfterHandshake) {
  auto p = make_tls_pair(tls_server_options(), client_options());
  ASSERT_FALSE(handshake_both(p.server, p.client).client);
  // Abort the server's socket with RST: linger 0, then replace the descriptor (closing the
  // socket's last reference) with /dev/null so the stream's own close stays harmless.
  int fd = p.server.native_handle();
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  int null = ::open("/dev/null", O_RDONLY);
  ::dup2(null, fd);
  ::close(null);
  std::byte b[4];
  auto e = expect_throw<socket_error>([&] { p.client.read_some(b); });
  EXPECT_EQ(e.identifier(), "connection-reset");
  EXPECT_TRUE(says(e, "after the handshake")) << e.what();
}

TEST(TlsErrors, ReadTimeoutIsRetryable) {
  auto p = make_tls_pair(tls_server_options(), client_options());
  ASSERT_FALSE(handshake_both(p.server, p.client).client);
  p.client.set_timeout(std::chrono::milliseconds(50));
  std::byte b[4];
  auto e = expect_throw<socket_error>([&] { p.client.read_some(b); });
  EXPECT_EQ(e.identifier(), "timeout");
  p.server << "late" << std::endl;
  p.client.set_timeout(std::chrono::seconds(20));
  std::string w;
  p.client >> w;
  EXPECT_EQ(w, "late");
}

TEST(TlsErrors, RejectionIsReportedEvenWhenOurWriteFailsFirst) {
  // TLS 1.3: the client's handshake is done before the server rejects it. A client that goes
  // on writing hits EPIPE/ECONNRESET; the reason is the server's alert, and the error says so.
  auto so = tls_server_options();
  so.verify = verify_mode::required;
  so.ca_file = cert("ca.pem");
  auto p = make_tls_pair(so, client_options());
  auto r = handshake_both(p.server, p.client);
  ASSERT_TRUE(r.server);
  ASSERT_FALSE(r.client);
  std::string chunk(1 << 16, 'w');
  auto e = expect_throw<tls_error>([&] {
    for (int i = 0; i < 4096; ++i) p.client.write_all(std::as_bytes(std::span(chunk)));
  });
  EXPECT_EQ(e.code(), make_error_code(errc::handshake_failed)) << e.what();
  EXPECT_TRUE(says(e, "certificate required")) << e.what();
}
