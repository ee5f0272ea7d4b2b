// x509_certificate accessors, on the test certificates and the sample certificate.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;

TEST(X509, SampleCertificateIsWhatTheContractSays) {
  auto c = x509_certificate::load_pem_file(SSLSTREAM_SAMPLE_PEM);
  EXPECT_EQ(c.subject_entries().back(), (x509_certificate::entry{"CN", "localhost"}));
  EXPECT_EQ(c.subject(), c.issuer());  // self-signed
  auto sans = c.subject_alt_names();
  EXPECT_NE(std::find(sans.begin(), sans.end(), x509_certificate::entry{"DNS", "localhost"}),
            sans.end());
  EXPECT_NE(std::find(sans.begin(), sans.end(), x509_certificate::entry{"IP", "127.0.0.1"}),
            sans.end());
  EXPECT_NE(std::find(sans.begin(), sans.end(), x509_certificate::entry{"IP", "::1"}), sans.end());
  EXPECT_EQ(c.version(), 3);
  auto* key = X509_get0_pubkey(static_cast<X509*>(c.native_handle()));
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(key), 2048);
  // The file holds the unencrypted key after the certificate, as the tutorial describes.
  std::ifstream in(SSLSTREAM_SAMPLE_PEM);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_LT(text.str().find("BEGIN CERTIFICATE"), text.str().find("BEGIN PRIVATE KEY"));
}

TEST(X509, Accessors) {
  auto c = x509_certificate::load_pem_file(cert("server-rsa.pem"));
  EXPECT_EQ(c.subject(), "CN=localhost,O=sslstream tests");
  EXPECT_EQ(c.issuer(), "CN=sslstream test CA,O=sslstream tests");
  EXPECT_EQ(c.subject_entries(),
            (std::vector<x509_certificate::entry>{{"O", "sslstream tests"}, {"CN", "localhost"}}));
  EXPECT_EQ(c.issuer_entries().back(), (x509_certificate::entry{"CN", "sslstream test CA"}));
  EXPECT_EQ(c.subject_alt_names(), (std::vector<x509_certificate::entry>{
                                       {"DNS", "localhost"}, {"IP", "127.0.0.1"}, {"IP", "::1"}}));
  EXPECT_LT(c.not_before(), std::chrono::system_clock::now());
  EXPECT_GT(c.not_after(), std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 50));
  EXPECT_EQ(c.version(), 3);
  EXPECT_EQ(c.serial_number().size() % 2, 0u);
  EXPECT_EQ(c.fingerprint_sha256().size(), 64u);
  EXPECT_EQ(c.fingerprint_sha256().find_first_not_of("0123456789abcdef"), std::string::npos);
  // Round trip through PEM keeps the identity.
  auto again = x509_certificate::from_pem(c.to_pem());
  EXPECT_EQ(again.fingerprint_sha256(), c.fingerprint_sha256());
  EXPECT_EQ(again.to_der(), c.to_der());
}

TEST(X509, MatchesOpensslCommandLine) {
  // The fingerprint and serial that `openssl x509` prints, computed independently.
  auto c = x509_certificate::load_pem_file(cert("server-ec.pem"));
  testing_support::process p({"openssl", "x509", "-in", cert("server-ec.pem"), "-noout",
                              "-fingerprint", "-sha256", "-serial"});
  ASSERT_EQ(p.wait(), 0);
  p.drain();
  std::string out = p.output();
  std::string fp;
  for (char ch : out.substr(out.find('=') + 1, 95))
    if (ch != ':') fp += static_cast<char>(std::tolower(ch));
  EXPECT_EQ(fp, c.fingerprint_sha256());
  EXPECT_NE(out.find("serial=" + c.serial_number()), std::string::npos);
}

TEST(X509, Validity) {
  using namespace std::chrono;
  auto expired = x509_certificate::load_pem_file(cert("expired.pem"));
  EXPECT_EQ(expired.not_before(), sys_days{year{2000} / 1 / 1});
  EXPECT_EQ(expired.not_after(), sys_days{year{2001} / 1 / 1});
  auto notyet = x509_certificate::load_pem_file(cert("notyet.pem"));
  EXPECT_EQ(notyet.not_before(), sys_days{year{2090} / 1 / 1});
}

TEST(X509, ChainFile) {
  auto chain = x509_certificate::load_pem_chain(cert("combined.pem"));
  EXPECT_EQ(chain.size(), 1u);  // the key in the file is not a certificate
  EXPECT_EQ(chain[0].subject(), "CN=localhost,O=sslstream tests");
}

TEST(X509, LoadErrorsNameTheFile) {
  auto e =
      expect_throw<config_error>([] { x509_certificate::load_pem_file("/nonexistent/x.pem"); });
  EXPECT_EQ(e.code(), make_error_code(errc::bad_file));
  EXPECT_NE(std::string(e.what()).find("/nonexistent/x.pem"), std::string::npos);
  auto e2 = expect_throw<config_error>([] { x509_certificate::load_pem_file(cert("ca.key")); });
  EXPECT_EQ(e2.code(), make_error_code(errc::bad_certificate));
  EXPECT_NE(std::string(e2.what()).find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST(X509, SelfSignedCertificateIsWhatWasAskedFor) {
  self_signed_options o;
  o.common_name = "test.example";
  o.alt_names = {"test.example", "*.test.example", "192.0.2.7", "2001:db8::1",
                 "DNS:xn--bcher-kva.example"};
  o.days = 10;
  auto pem = make_self_signed_certificate(o);
  auto c = x509_certificate::from_pem(pem);
  EXPECT_EQ(c.subject(), "CN=test.example");
  EXPECT_EQ(c.issuer(), c.subject());
  EXPECT_EQ(c.version(), 3);
  std::vector<x509_certificate::entry> want = {{"DNS", "test.example"},
                                               {"DNS", "*.test.example"},
                                               {"IP", "192.0.2.7"},
                                               {"IP", "2001:db8::1"},
                                               {"DNS", "xn--bcher-kva.example"}};
  EXPECT_EQ(c.subject_alt_names(), want);
  auto days = std::chrono::duration_cast<std::chrono::hours>(c.not_after() - c.not_before()) / 24;
  EXPECT_EQ(days.count(), 10);  // and 5 minutes: notBefore is set back for slow clocks
  EXPECT_NE(pem.find("PRIVATE KEY-----"), std::string::npos);
}

TEST(X509, SelfSignedRejectsWhatNoCertificateShouldSay) {
  // Before: a name with a space or a '!' went into the certificate as a DNS name, and a
  // validity past the year 9999 failed later as "no PEM certificate in the PEM text".
  struct row {
    std::vector<std::string> names;
    int days;
    std::string message;
  } rows[] = {
      {{"bad name"}, 365, "'bad name' is neither a host name"},
      {{"ok.example", "bang!"}, 365, "'bang!'"},
      {{"-lead.example"}, 365, "'-lead.example'"},
      {{"a..b"}, 365, "'a..b'"},
      {{"trail.example."}, 365, "'trail.example.'"},
      {{std::string(64, 'a') + ".example"}, 365, "neither a host name"},
      {{"IP:not-an-address"}, 365, "'not-an-address' is not an IP address"},
      {{"localhost"}, 0, "1 to 36500 days, not 0"},
      {{"localhost"}, 99999999, "1 to 36500 days, not 99999999"},
  };
  for (const auto& r : rows) {
    self_signed_options o;
    o.alt_names = r.names;
    o.days = r.days;
    auto e = expect_throw<config_error>([&] { make_self_signed_certificate(o); });
    EXPECT_NE(std::string(e.what()).find(r.message), std::string::npos) << e.what();
  }
}

TEST(X509, KeyAndSignatureAccessorsMatchOpenssl) {
  auto rsa = x509_certificate::load_pem_file(cert("server-rsa.pem"));
  EXPECT_EQ(rsa.key_type(), "RSA");
  EXPECT_EQ(rsa.key_bits(), 2048);
  EXPECT_EQ(rsa.key_group(), "");
  EXPECT_EQ(rsa.signature_algorithm(), "sha256WithRSAEncryption");  // signed by the RSA CA
  auto ec = x509_certificate::load_pem_file(cert("server-ec.pem"));
  EXPECT_EQ(ec.key_type(), "EC");
  EXPECT_EQ(ec.key_bits(), 256);
  EXPECT_EQ(ec.key_group(), "prime256v1");
  // A self-signed ECDSA certificate is signed with its own key.
  auto self = x509_certificate::from_pem(make_self_signed_certificate({}));
  EXPECT_EQ(self.signature_algorithm(), "ecdsa-with-SHA256");
  EXPECT_EQ(self.key_type(), "EC");

  // SHA-1 and the algorithm names as `openssl x509` prints them.
  testing_support::process p({"openssl", "x509", "-in", cert("server-ec.pem"), "-noout",
                              "-fingerprint", "-sha1", "-text"});
  ASSERT_EQ(p.wait(), 0);
  p.drain();
  std::string out = p.output();
  std::string fp;
  for (char ch : out.substr(out.find('=') + 1, 59))
    if (ch != ':') fp += static_cast<char>(std::tolower(ch));
  EXPECT_EQ(fp, ec.fingerprint_sha1());
  EXPECT_NE(out.find("Signature Algorithm: " + ec.signature_algorithm()), std::string::npos);
  EXPECT_NE(out.find("Public-Key: (256 bit)"), std::string::npos);
  EXPECT_NE(out.find("ASN1 OID: " + ec.key_group()), std::string::npos) << out;
}

TEST(SslStreamAccessors, GroupClientCertificateRequestAndOcspWithoutStaple) {
  for (auto ask : {verify_mode::none, verify_mode::optional}) {
    auto so = tls_server_options("ec");
    so.verify = ask;
    so.ca_file = cert("ca.pem");
    auto co = client_options();
    co.request_ocsp = true;
    auto [server, client] = make_tls_pair(so, co);
    auto o = handshake_both(server, client);
    ASSERT_FALSE(o.client || o.server);
    EXPECT_EQ(client.client_certificate_requested(), ask == verify_mode::optional);
    EXPECT_FALSE(server.client_certificate_requested());  // a server is never asked
    EXPECT_EQ(client.key_exchange_group(), "x25519");
    EXPECT_EQ(server.key_exchange_group(), "x25519");
    EXPECT_EQ(client.ocsp_status(), "none");  // asked, but this server staples nothing
    EXPECT_EQ(server.ocsp_status(), "none");
  }
  // A group chosen by the client's list, in TLS 1.2 as in 1.3.
  for (auto v : {tls_version::tls1_2, tls_version::tls1_3}) {
    auto co = client_options();
    co.max_version = v;
    auto [server, client] = make_tls_pair(tls_server_options(), co);
    ASSERT_FALSE(handshake_both(server, client).client);
    EXPECT_EQ(client.key_exchange_group(), "x25519");
  }
}
