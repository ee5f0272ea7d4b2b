// In-process client against server over loopback: {TLS 1.2, 1.3} x {RSA, ECDSA} x
// {client certificate none, optional, required} x {ALPN on, off}, with every accessor checked;
// then session resumption and SNI.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <cctype>
#include <mutex>
#include <sstream>
#include <thread>
#include <tuple>

#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;

namespace {

struct matrix_case {
  tls_version version;
  std::string key;  // "rsa" or "ec"
  verify_mode client_cert;
  bool alpn;
};

std::string name_of(const ::testing::TestParamInfo<matrix_case>& i) {
  const auto& c = i.param;
  std::string v = c.version == tls_version::tls1_3 ? "TLS13" : "TLS12";
  std::string m = c.client_cert == verify_mode::none       ? "NoClientCert"
                  : c.client_cert == verify_mode::optional ? "OptionalClientCert"
                                                           : "RequiredClientCert";
  return v + "_" + (c.key == "rsa" ? "RSA" : "ECDSA") + "_" + m + (c.alpn ? "_ALPN" : "_NoALPN");
}

std::vector<matrix_case> all_cases() {
  std::vector<matrix_case> v;
  for (auto ver : {tls_version::tls1_2, tls_version::tls1_3})
    for (std::string key : {"rsa", "ec"})
      for (auto mode : {verify_mode::none, verify_mode::optional, verify_mode::required})
        for (bool alpn : {false, true}) v.push_back({ver, key, mode, alpn});
  return v;
}

class Matrix : public ::testing::TestWithParam<matrix_case> {};

}  // namespace

TEST_P(Matrix, HandshakeDataAndAccessors) {
  const auto& c = GetParam();
  auto so = tls_server_options(c.key);
  so.verify = c.client_cert;
  so.ca_file = cert("ca.pem");
  so.max_version = c.version;
  auto co = client_options();
  co.max_version = c.version;
  if (c.client_cert != verify_mode::none) {
    co.certificate = cert("client-" + c.key + ".pem");
    co.key = cert("client-" + c.key + ".key");
  }
  if (c.alpn) {
    so.alpn = {"h2", "http/1.1"};
    co.alpn = {"http/1.1", "h2"};  // the server's preference wins
  }
  auto p = make_tls_pair(so, co);
  auto r = handshake_both(p.server, p.client);
  ASSERT_FALSE(r.server) << rethrow_as<error>(r.server).what();
  ASSERT_FALSE(r.client) << rethrow_as<error>(r.client).what();

  std::string proto = c.version == tls_version::tls1_3 ? "TLSv1.3" : "TLSv1.2";
  for (auto* s : {&p.server, &p.client}) {
    EXPECT_EQ(s->protocol_version(), proto);
    EXPECT_EQ(s->alpn_protocol(), c.alpn ? "h2" : "");
    EXPECT_FALSE(s->session_reused());
    EXPECT_EQ(s->verify_result().code, 0);
    EXPECT_EQ(s->verify_result().text, "ok");
    EXPECT_EQ(s->cipher(), p.server.cipher());
  }
  if (c.version == tls_version::tls1_2)
    EXPECT_EQ(p.client.cipher().rfind("ECDHE-" + std::string(c.key == "rsa" ? "RSA" : "ECDSA"), 0),
              0u)
        << p.client.cipher();
  else
    EXPECT_EQ(p.client.cipher().rfind("TLS_", 0), 0u);

  EXPECT_EQ(p.client.server_name(), "localhost");
  EXPECT_EQ(p.server.server_name(), "localhost");  // the SNI the client sent
  auto server_cert = p.client.peer_certificate();
  ASSERT_TRUE(server_cert);
  EXPECT_EQ(server_cert->subject(), "CN=localhost,O=sslstream tests");
  auto client_cert = p.server.peer_certificate();
  EXPECT_EQ(client_cert.has_value(), c.client_cert != verify_mode::none);
  if (client_cert) {
    EXPECT_EQ(client_cert->subject(), "CN=sslstream test client,O=sslstream tests");
  }

  std::ostringstream printed;
  printed << p.client;
  EXPECT_NE(printed.str().find("ssl client stream connected from localhost/"), std::string::npos);
  EXPECT_NE(printed.str().find(proto + " " + p.client.cipher()), std::string::npos);

  p.client << "secret message " << std::flush;
  std::string a, b;
  p.server >> a >> b;
  EXPECT_EQ(a + " " + b, "secret message");
  p.server << "got-it " << std::flush;
  p.client >> a;
  EXPECT_EQ(a, "got-it");
  p.client.close();
  EXPECT_FALSE(p.server >> a);  // close_notify: a clean EOF
  EXPECT_TRUE(p.server.eof());
}

INSTANTIATE_TEST_SUITE_P(All, Matrix, ::testing::ValuesIn(all_cases()), name_of);

class Resumption : public ::testing::TestWithParam<tls_version> {};

TEST_P(Resumption, ClientContextResumesWithTheSameServer) {
  auto so = tls_server_options();
  so.max_version = GetParam();
  auto co = client_options();
  co.max_version = GetParam();
  auto server_ctx = make_ssl_server_context(so);
  auto client_ctx = make_ssl_client_context(co);
  // Sessions are cached per server: the same name, address and port every time.
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  auto connect = [&](const ssl_context& cctx) {
    auto c = make_socket(active{.remote_host = "localhost", .remote_port = listener.local_port()});
    return tls_pair{make_ssl_server_stream(accept_within(listener, "the client"), server_ctx),
                    make_ssl_client_stream(std::move(c), cctx)};
  };
  for (int i = 0; i < 3; ++i) {
    auto p = connect(client_ctx);
    auto r = handshake_both(p.server, p.client);
    ASSERT_FALSE(r.server || r.client);
    EXPECT_EQ(p.client.session_reused(), i > 0) << "connection " << i;
    EXPECT_EQ(p.server.session_reused(), i > 0) << "connection " << i;
    // TLS 1.3 tickets arrive after the handshake: the client reads them with the first data.
    p.server << "x" << std::flush;
    char ch;
    p.client >> ch;
    p.client.close();
    p.server.close();
  }
  // A different client context has no session to offer.
  auto fresh = connect(make_ssl_client_context(co));
  ASSERT_FALSE(handshake_both(fresh.server, fresh.client).client);
  EXPECT_FALSE(fresh.client.session_reused());
}

INSTANTIATE_TEST_SUITE_P(Versions, Resumption,
                         ::testing::Values(tls_version::tls1_2, tls_version::tls1_3),
                         [](const auto& i) {
                           return i.param == tls_version::tls1_3 ? "TLS13" : "TLS12";
                         });

TEST(Tls, SniOnlyForNamesButIpAddressesAreVerified) {
  auto [s, c] = socket_pair();
  auto co = client_options();
  co.server_name = "127.0.0.1";
  auto server = make_ssl_server_stream(std::move(s), tls_server_options());
  auto client = make_ssl_client_stream(std::move(c), co);
  auto r = handshake_both(server, client);
  ASSERT_FALSE(r.client || r.server);
  EXPECT_EQ(server.server_name(), "");  // no SNI for an address (RFC 6066 §3)
  EXPECT_EQ(client.verify_result().code, 0);
}

TEST(Tls, ServerNameDefaultsToTheConnectedHost) {
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  auto c = make_socket(active{.remote_host = "127.0.0.1", .remote_port = listener.local_port()});
  auto server = make_ssl_server_stream(accept_within(listener, "the client"), tls_server_options());
  auto client = make_ssl_client_stream(std::move(c), client_options());
  ASSERT_FALSE(handshake_both(server, client).client);  // verified against IP:127.0.0.1
  EXPECT_EQ(server.server_name(), "");
}

TEST(Tls, ChainCertificatesAreSent) {
  auto so = tls_server_options();
  so.certificate = cert("chained.pem");
  so.key = cert("chained.key");
  so.other_certificates = {cert("inter.pem")};
  auto p = make_tls_pair(so, client_options());  // the client trusts only the root
  auto r = handshake_both(p.server, p.client);
  ASSERT_FALSE(r.client) << rethrow_as<error>(r.client).what();
  auto chain = p.client.peer_chain();
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[1].subject(), "CN=sslstream intermediate CA,O=sslstream tests");
}

TEST(Tls, CertificateAndKeyInOneFileWithPassword) {
  auto so = tls_server_options();
  so.key = cert("server-enc.key");
  so.certificate_password = "secret";
  auto p = make_tls_pair(so, client_options());
  EXPECT_FALSE(handshake_both(p.server, p.client).client);
  ssl_options one;
  one.certificate = cert("combined.pem");
  auto q = make_tls_pair(one, client_options());
  EXPECT_FALSE(handshake_both(q.server, q.client).client);
}

TEST(Tls, CipherChoices) {
  auto so = tls_server_options();
  so.max_version = tls_version::tls1_2;
  so.ciphers = "ECDHE-RSA-CHACHA20-POLY1305";
  auto p = make_tls_pair(so, client_options());
  ASSERT_FALSE(handshake_both(p.server, p.client).client);
  EXPECT_EQ(p.client.cipher(), "ECDHE-RSA-CHACHA20-POLY1305");

  auto so13 = tls_server_options();
  so13.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
  auto q = make_tls_pair(so13, client_options());
  ASSERT_FALSE(handshake_both(q.server, q.client).client);
  EXPECT_EQ(q.client.cipher(), "TLS_CHACHA20_POLY1305_SHA256");

  // Server preference: the server's first choice wins over the client's order.
  auto pref = tls_server_options();
  pref.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";
  auto co = client_options();
  co.ciphersuites = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
  auto r = make_tls_pair(pref, co);
  ASSERT_FALSE(handshake_both(r.server, r.client).client);
  EXPECT_EQ(r.client.cipher(), "TLS_AES_128_GCM_SHA256");
  pref.prefer_server_cipher_order = false;
  auto r2 = make_tls_pair(pref, co);
  ASSERT_FALSE(handshake_both(r2.server, r2.client).client);
  EXPECT_EQ(r2.client.cipher(), "TLS_AES_256_GCM_SHA384");
}

TEST(Tls, DefaultCipherListIsForwardSecretAead) {
  auto ctx = make_ssl_server_context(tls_server_options());
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx.native_handle()));
  STACK_OF(SSL_CIPHER)* list = SSL_get1_supported_ciphers(ssl);
  ASSERT_TRUE(list);
  for (int i = 0; i < sk_SSL_CIPHER_num(list); ++i) {
    const SSL_CIPHER* c = sk_SSL_CIPHER_value(list, i);
    EXPECT_TRUE(SSL_CIPHER_is_aead(c)) << SSL_CIPHER_get_name(c);
    int kx = SSL_CIPHER_get_kx_nid(c);
    EXPECT_TRUE(kx == NID_kx_ecdhe || kx == NID_kx_dhe || kx == NID_kx_any)
        << SSL_CIPHER_get_name(c);
  }
  sk_SSL_CIPHER_free(list);
  SSL_free(ssl);
}

TEST(Tls, ClientOptionalVerifyReportsButContinues) {
  auto co = client_options();
  co.ca_file.clear();
  co.ca_directory.clear();
  co.verify = verify_mode::optional;
  co.ca_file = cert("other-ca.pem");  // trusts the wrong CA
  auto p = make_tls_pair(tls_server_options(), co);
  ASSERT_FALSE(handshake_both(p.server, p.client).client);
  auto v = p.client.verify_result();
  EXPECT_EQ(v.code, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE);
  EXPECT_EQ(v.text, "unable to verify the first certificate");
}

TEST(Tls, VerifyNoneTrustsAnything) {
  ssl_options co;
  co.verify = verify_mode::none;
  ssl_options so;
  so.certificate = SSLSTREAM_SAMPLE_PEM;
  auto p = make_tls_pair(so, co);
  EXPECT_FALSE(handshake_both(p.server, p.client).client);
}

TEST(Tls, ExpiredServerCertificateStillServes) {
  // The server never checks its own dates (the tutorial: "You can use an expired SSL certificate").
  ssl_options so;
  so.certificate = cert("expired.pem");
  so.key = cert("expired.key");
  ssl_options co;
  co.verify = verify_mode::none;
  auto p = make_tls_pair(so, co);
  EXPECT_FALSE(handshake_both(p.server, p.client).server);
}

TEST(Tls, KeylogLinesAreReported) {
  std::vector<std::string> lines;
  std::mutex m;
  auto co = client_options();
  co.keylog = [&](std::string_view l) {
    std::lock_guard lk(m);
    lines.emplace_back(l);
  };
  auto p = make_tls_pair(tls_server_options(), co);
  ASSERT_FALSE(handshake_both(p.server, p.client).client);
  std::lock_guard lk(m);
  ASSERT_FALSE(lines.empty());
  bool traffic = false;
  for (auto& l : lines) traffic |= l.rfind("CLIENT_TRAFFIC_SECRET_0 ", 0) == 0;
  EXPECT_TRUE(traffic);
}

TEST(Tls, CrlCheckAcceptsGoodCertificates) {
  auto co = client_options();
  co.crl_file = cert("crl.pem");
  co.crl_check = true;
  auto p = make_tls_pair(tls_server_options(), co);
  auto r = handshake_both(p.server, p.client);
  EXPECT_FALSE(r.client) << rethrow_as<error>(r.client).what();
}

TEST(Tls, CaDirectoryTrustsOnBothSides) {
  // A hashed directory (openssl rehash) in place of a CA file: the client verifies the server
  // by it, and a server requiring client certificates verifies the client by it.
  ssl_options co;
  co.ca_directory = cert("cadir");
  co.certificate = cert("client-ec.pem");
  co.key = cert("client-ec.key");
  auto so = tls_server_options();
  so.verify = verify_mode::required;
  so.ca_directory = cert("cadir");
  auto p = make_tls_pair(so, co);
  auto r = handshake_both(p.server, p.client);
  ASSERT_FALSE(r.client) << rethrow_as<error>(r.client).what();
  ASSERT_FALSE(r.server) << rethrow_as<error>(r.server).what();
  EXPECT_EQ(p.client.verify_result().code, 0);
  ASSERT_TRUE(p.server.peer_certificate().has_value());
  EXPECT_EQ(p.server.verify_result().code, 0);
  // A directory with no hashed names in it (the certificate folder itself) trusts nothing.
  ssl_options other;
  other.ca_directory = cert("");
  auto q = make_tls_pair(tls_server_options(), other);
  EXPECT_TRUE(handshake_both(q.server, q.client).client);
}

namespace {

std::string fingerprint_of(const std::string& file) {
  return x509_certificate::load_pem_file(cert(file)).fingerprint_sha256();
}

/// "sha256:AB:CD:..." — the pin spelled as other tools print fingerprints.
std::string colon_upper(const std::string& hex) {
  std::string out = "sha256:";
  // Appended char by char: GCC 12 at -O3 misreports `"x" + std::string` as overlapping.
  for (std::size_t i = 0; i < hex.size(); ++i) {
    if (i > 0 && i % 2 == 0) out.push_back(':');
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(hex[i]))));
  }
  return out;
}

}  // namespace

TEST(Tls, PinnedCertificatesReplaceVerification) {
  for (auto version : {tls_version::tls1_2, tls_version::tls1_3}) {
    // A server no CA here vouches for, under a name we do not connect by: the pin alone decides.
    ssl_options so;
    so.certificate = cert("wronghost.pem");
    so.key = cert("wronghost.key");
    so.max_version = version;
    ssl_options co;
    co.pinned_sha256 = {std::string(64, '0'), colon_upper(fingerprint_of("wronghost.pem"))};
    auto p = make_tls_pair(so, co);
    auto r = handshake_both(p.server, p.client);
    ASSERT_FALSE(r.client) << rethrow_as<error>(r.client).what();
    EXPECT_EQ(p.client.verify_result().code, 0);
    p.client << "pinned " << std::flush;
    std::string w;
    p.server >> w;
    EXPECT_EQ(w, "pinned");

    // Another certificate: refused inside the handshake with bad_certificate, so the server
    // asking for our certificate never gets it.
    so.verify = verify_mode::optional;
    so.ca_file = cert("ca.pem");
    ssl_options wrong;
    wrong.pinned_sha256 = {fingerprint_of("server-rsa.pem")};
    wrong.certificate = cert("client-ec.pem");
    wrong.key = cert("client-ec.key");
    auto q = make_tls_pair(so, wrong);
    auto rq = handshake_both(q.server, q.client);
    auto e = rethrow_as<verify_error>(rq.client);
    EXPECT_EQ(e.verify_code(), X509_V_ERR_CERT_REJECTED);
    EXPECT_EQ(e.certificate_fingerprint(), fingerprint_of("wronghost.pem"));
    EXPECT_NE(std::string(e.what()).find("none of ssl_options::pinned_sha256"), std::string::npos)
        << e.what();
    ASSERT_TRUE(rq.server);
    EXPECT_NE(std::string(rethrow_as<error>(rq.server).what()).find("bad certificate"),
              std::string::npos)
        << rethrow_as<error>(rq.server).what();
  }
}

TEST(Tls, APinningServerRequiresThePinnedClientCertificate) {
  auto so = tls_server_options();
  so.pinned_sha256 = {fingerprint_of("client-ec.pem")};
  auto with = client_options();
  with.certificate = cert("client-ec.pem");
  with.key = cert("client-ec.key");
  auto p = make_tls_pair(so, with);
  auto r = handshake_both(p.server, p.client);
  ASSERT_FALSE(r.server) << rethrow_as<error>(r.server).what();
  p.client << "hi " << std::flush;  // TLS 1.3: the server judges our certificate after we finish
  std::string w;
  p.server >> w;
  EXPECT_EQ(w, "hi");
  EXPECT_EQ(p.server.peer_certificate()->fingerprint_sha256(), fingerprint_of("client-ec.pem"));

  for (std::string other : {"client-rsa", ""}) {
    auto co = client_options();
    if (!other.empty()) {
      co.certificate = cert(other + ".pem");
      co.key = cert(other + ".key");
    }
    auto q = make_tls_pair(so, co);
    auto rq = handshake_both(q.server, q.client);
    EXPECT_TRUE(rq.server) << "a client with " << (other.empty() ? "no certificate" : other)
                           << " was accepted";
  }
}

TEST(Tls, AMalformedPinIsAConfigurationError) {
  ssl_options co;
  co.pinned_sha256 = {"sha256:xyz"};
  auto e = expect_throw<config_error>([&] { make_ssl_client_context(co); });
  EXPECT_NE(std::string(e.what()).find("'sha256:xyz'"), std::string::npos) << e.what();
}
