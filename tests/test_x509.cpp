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
