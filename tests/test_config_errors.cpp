// Configuration failures: raised when the context is built, as config_error with the right code,
// naming the file and saying what to do.
#include <gtest/gtest.h>

#include "loopback.hpp"

using namespace sslstream;
using namespace testing_support;

namespace {

config_error server_error(const ssl_options& o) {
  return expect_throw<config_error>([&] { make_ssl_server_context(o); });
}

bool says(const std::exception& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

}  // namespace

TEST(ConfigErrors, MissingCertificateFile) {
  auto o = tls_server_options();
  o.certificate = "/nonexistent/server.pem";
  auto e = server_error(o);
  EXPECT_EQ(e.code(), make_error_code(errc::bad_file));
  EXPECT_EQ(e.identifier(), "bad-file");
  EXPECT_TRUE(says(e, "/nonexistent/server.pem")) << e.what();
  EXPECT_TRUE(says(e, "No such file")) << e.what();
}

TEST(ConfigErrors, MissingKeyFile) {
  auto o = tls_server_options();
  o.key = "/nonexistent/server.key";
  auto e = server_error(o);
  EXPECT_EQ(e.code(), make_error_code(errc::bad_file));
  EXPECT_TRUE(says(e, "/nonexistent/server.key")) << e.what();
}

TEST(ConfigErrors, ServerWithoutCertificate) {
  auto e = server_error(ssl_options{});
  EXPECT_EQ(e.code(), make_error_code(errc::bad_certificate));
  EXPECT_TRUE(says(e, "ssl_options::certificate")) << e.what();
}

TEST(ConfigErrors, NotACertificate) {
  auto o = tls_server_options();
  o.certificate = cert("server-rsa.key");
  auto e = server_error(o);
  EXPECT_EQ(e.code(), make_error_code(errc::bad_certificate));
  EXPECT_TRUE(says(e, "server-rsa.key")) << e.what();
}

TEST(ConfigErrors, CertificateWithoutKey) {
  ssl_options o;
  o.certificate = cert("server-rsa.pem");
  auto e = server_error(o);
  EXPECT_EQ(e.code(), make_error_code(errc::bad_key));
  EXPECT_TRUE(says(e, "no private key in")) << e.what();
  EXPECT_TRUE(says(e, "ssl_options::key")) << e.what();
}

TEST(ConfigErrors, MismatchedKey) {
  auto o = tls_server_options();
  o.key = cert("client.key");
  auto e = server_error(o);
  EXPECT_EQ(e.code(), make_error_code(errc::key_mismatch));
  EXPECT_EQ(e.identifier(), "key-mismatch");
  EXPECT_TRUE(says(e, "does not match")) << e.what();
  EXPECT_TRUE(says(e, "client.key")) << e.what();
}

TEST(ConfigErrors, WrongPassword) {
  auto o = tls_server_options();
  o.key = cert("server-enc.key");
  o.certificate_password = "not the password";
  auto e = server_error(o);
  EXPECT_EQ(e.code(), make_error_code(errc::bad_password));
  EXPECT_TRUE(says(e, "wrong password")) << e.what();
}

TEST(ConfigErrors, MissingPasswordNeverPrompts) {
  auto o = tls_server_options();
  o.key = cert("server-enc.key");
  auto e = server_error(o);  // must not read the terminal
  EXPECT_EQ(e.code(), make_error_code(errc::bad_password));
  EXPECT_TRUE(says(e, "encrypted")) << e.what();
  EXPECT_TRUE(says(e, "certificate_password")) << e.what();
}

TEST(ConfigErrors, BadCipherLists) {
  auto o = tls_server_options();
  o.ciphers = "NO-SUCH-CIPHER";
  auto e = server_error(o);
  EXPECT_EQ(e.code(), make_error_code(errc::bad_option));
  EXPECT_TRUE(says(e, "NO-SUCH-CIPHER")) << e.what();
  o = tls_server_options();
  o.ciphersuites = "TLS_NOPE";
  EXPECT_TRUE(says(server_error(o), "ciphersuites"));
}

TEST(ConfigErrors, VersionBoundsInverted) {
  auto o = client_options();
  o.min_version = tls_version::tls1_3;
  o.max_version = tls_version::tls1_2;
  auto e = expect_throw<config_error>([&] { make_ssl_client_context(o); });
  EXPECT_EQ(e.code(), make_error_code(errc::bad_option));
  EXPECT_TRUE(says(e, "min_version")) << e.what();
}

TEST(ConfigErrors, BadCaFileAndDirectory) {
  auto o = client_options();
  o.ca_file = "/nonexistent/ca.pem";
  auto e = expect_throw<config_error>([&] { make_ssl_client_context(o); });
  EXPECT_EQ(e.code(), make_error_code(errc::bad_file));
  EXPECT_TRUE(says(e, "/nonexistent/ca.pem")) << e.what();
  o = client_options();
  o.ca_file = cert("ca.key");
  EXPECT_EQ(expect_throw<config_error>([&] { make_ssl_client_context(o); }).code(),
            make_error_code(errc::bad_certificate));
  o = client_options();
  o.ca_directory = "/nonexistent-dir";
  EXPECT_TRUE(
      says(expect_throw<config_error>([&] { make_ssl_client_context(o); }), "/nonexistent-dir"));
}

TEST(ConfigErrors, BadCrlFile) {
  auto o = client_options();
  o.crl_file = cert("ca.pem");
  o.crl_check = true;
  auto e = expect_throw<config_error>([&] { make_ssl_client_context(o); });
  EXPECT_TRUE(says(e, "CRL")) << e.what();
}

TEST(ConfigErrors, BadAlpnName) {
  auto o = client_options();
  o.alpn = {""};
  EXPECT_EQ(expect_throw<config_error>([&] { make_ssl_client_context(o); }).code(),
            make_error_code(errc::bad_option));
}

TEST(ConfigErrors, ContextKindMustMatchStreamKind) {
  auto [s, c] = socket_pair();
  auto client_ctx = make_ssl_client_context(client_options());
  EXPECT_THROW(make_ssl_server_stream(std::move(s), client_ctx), std::invalid_argument);
}
