// Several certificates on one server (ssl_options::more_certificates): chosen by the client's
// SNI (exact name, then wildcard, else ssl_options::certificate), then by what the client can
// verify (ECDSA or RSA), as openssl s_client, gnutls-cli and our own client see it, TLS 1.2 and
// 1.3; sessions never resume across certificates; bad pairs are config errors naming the file.
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>

#include "loopback.hpp"
#include "temp_dir.hpp"

using namespace sslstream;
using namespace testing_support;

namespace {

using key_type = self_signed_options::key_type;

/// A fresh self-signed certificate, CN=`cn` with these subjectAltNames, followed by its key.
std::string make(const std::string& cn, std::vector<std::string> names, key_type key) {
  self_signed_options o;
  o.common_name = cn;
  o.alt_names = std::move(names);
  o.key = key;
  return make_self_signed_certificate(o);
}

/// The test's certificates, made once (RSA keys take a while). Each has its own CN, which is
/// how the tests tell which one a client got.
struct test_certs {
  std::string main_ec = make("default-ec", {"default.example", "127.0.0.1"}, key_type::ec256);
  std::string main_rsa = make("default-rsa", {"default.example", "127.0.0.1"}, key_type::rsa2048);
  std::string exact = make("exact", {"a.example.com"}, key_type::ec256);
  std::string wildcard = make("wildcard", {"*.example.com"}, key_type::ec256);
  std::string dual_ec = make("dual-ec", {"dual.example"}, key_type::ec256);
  std::string dual_rsa = make("dual-rsa", {"dual.example"}, key_type::rsa2048);
};
const test_certs& certs() {
  static const test_certs c;
  return c;
}

certificate_files pem(const std::string& text) { return {.certificate_pem = text}; }

/// A server with all of them: the ECDSA default, its RSA twin, an exact name, a wildcard, and
/// one name with both key types (RSA listed first: the choice is by key type, not order).
ssl_options many_certificates(tls_version v) {
  const auto& c = certs();
  ssl_options o;
  o.certificate_pem = c.main_ec;
  o.more_certificates = {pem(c.exact), pem(c.wildcard), pem(c.dual_rsa), pem(c.dual_ec),
                         pem(c.main_rsa)};
  o.min_version = o.max_version = v;
  return o;
}

/// The certificate alone (no key), as a CA to trust.
std::string certificate_only(const std::string& pem_text) {
  return x509_certificate::from_pem(pem_text).to_pem();
}

class Certificates : public ::testing::TestWithParam<std::string> {
 protected:
  tls_version version() const {
    return GetParam() == "1.3" ? tls_version::tls1_3 : tls_version::tls1_2;
  }
  std::string s_client_flag() const { return GetParam() == "1.3" ? "-tls1_3" : "-tls1_2"; }

  /// What one real client got from `ctx`: the CN of the certificate it was served (empty when
  /// none), and whether the server resumed a session.
  struct served {
    std::string cn;
    bool reused = false;
    bool failed = false;  // the server's handshake failed
    std::string output;
  };

  /// Runs `argv` (a client connecting to the port it is given) against one connection of `ctx`,
  /// and reads the served CN from its output with `cn_pattern`. The client has reported its
  /// handshake once its output matches `done`: only then does the server close, since a
  /// client that meets the close_notify first may exit without printing what it got.
  served serve_one(const ssl_context& ctx,
                   const std::function<std::vector<std::string>(std::uint16_t)>& argv,
                   const std::string& who, const std::string& cn_pattern, const std::string& done) {
    auto listener = make_socket(passive{.local_host = "127.0.0.1"});
    process cli(argv(listener.local_port()));
    auto tls = make_ssl_server_stream(accept_within(listener, who), ctx);
    tls.set_timeout(std::chrono::seconds(20));
    served out;
    try {
      tls.do_handshake();
      out.reused = tls.session_reused();
      EXPECT_TRUE(cli.wait_for_match("(" + done + ")", std::chrono::seconds(20)))
          << who << " did not report its handshake: " << cli.output();
      tls.close();  // close_notify: the client sees the end and exits
    } catch (const std::exception& e) {
      out.failed = true;
      out.output = e.what();
    }
    cli.close_stdin();
    EXPECT_TRUE(cli.wait(std::chrono::seconds(20))) << who << " did not exit: " << cli.output();
    out.output += cli.output();
    std::smatch m;
    if (std::regex_search(out.output, m, std::regex(cn_pattern))) out.cn = m[1];
    return out;
  }

  /// `openssl s_client` with these extra arguments (-servername, -sigalgs, -sess_in ...).
  served s_client(const ssl_context& ctx, std::vector<std::string> args) {
    return serve_one(
        ctx,
        [&](std::uint16_t port) {
          std::vector<std::string> argv{"openssl", "s_client", "-connect",
                                        "127.0.0.1:" + std::to_string(port), s_client_flag()};
          argv.insert(argv.end(), args.begin(), args.end());
          return argv;
        },
        "openssl s_client", R"(subject=CN = ([^,\n]+))", "(New|Reused), TLS");
  }

  /// gnutls-cli sending SNI `name`, limited to the signature algorithms in `sign` (gnutls
  /// priority names, e.g. "+SIGN-ECDSA-SHA256").
  served gnutls_cli(const ssl_context& ctx, const std::string& name, const std::string& sign) {
    std::string priority = "--priority=NORMAL:-VERS-ALL:+VERS-TLS" + GetParam() + sign;
    return serve_one(
        ctx,
        [&](std::uint16_t port) {
          return std::vector<std::string>{
              "gnutls-cli", "--insecure", "--sni-hostname=" + name, "-p", std::to_string(port),
              priority,     "127.0.0.1"};
        },
        "gnutls-cli", R"(subject `CN=([^',]+))", "Handshake was completed");
  }
};

std::string param_name(const ::testing::TestParamInfo<std::string>& i) {
  return i.param == "1.3" ? "TLS13" : "TLS12";
}

const std::vector<std::string> rsa_only = {"-sigalgs", "rsa_pss_rsae_sha256:rsa_pkcs1_sha256"};
const std::vector<std::string> ecdsa_only = {"-sigalgs", "ecdsa_secp256r1_sha256"};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_P(Certificates, SClientGetsTheCertificateItsNameMatches) {
  auto ctx = make_ssl_server_context(many_certificates(version()));
  EXPECT_EQ(s_client(ctx, {"-servername", "a.example.com"}).cn, "exact");
  EXPECT_EQ(s_client(ctx, {"-servername", "A.Example.COM"}).cn, "exact");  // names ignore case
  EXPECT_EQ(s_client(ctx, {"-servername", "b.example.com"}).cn, "wildcard");
  // A wildcard covers one label: neither two nor none.
  EXPECT_EQ(s_client(ctx, {"-servername", "x.a.example.com"}).cn, "default-ec");
  EXPECT_EQ(s_client(ctx, {"-servername", "example.com"}).cn, "default-ec");
  EXPECT_EQ(s_client(ctx, {"-servername", "nothing.example"}).cn, "default-ec");
  EXPECT_EQ(s_client(ctx, {"-servername", "default.example"}).cn, "default-ec");
  EXPECT_EQ(s_client(ctx, {"-noservername"}).cn, "default-ec");
}

// A fully qualified name ends in a dot ("example.com."), which certificates never carry: it is
// the same name, exact or under a wildcard, in any case — not an unknown one that gets the
// default certificate. One dot only: "a.example.com.." names nothing.
TEST_P(Certificates, SClientWithATrailingDotGetsTheSameCertificate) {
  auto ctx = make_ssl_server_context(many_certificates(version()));
  EXPECT_EQ(s_client(ctx, {"-servername", "a.example.com."}).cn, "exact");
  EXPECT_EQ(s_client(ctx, {"-servername", "A.Example.COM."}).cn, "exact");
  EXPECT_EQ(s_client(ctx, {"-servername", "b.example.com."}).cn, "wildcard");
  EXPECT_EQ(s_client(ctx, {"-servername", "dual.example."}).cn, "dual-ec");
  EXPECT_EQ(s_client(ctx, {"-servername", "a.example.com.."}).cn, "default-ec");
  EXPECT_EQ(s_client(ctx, {"-servername", "x.a.example.com."}).cn, "default-ec");
  EXPECT_EQ(s_client(ctx, {"-servername", "."}).cn, "default-ec");
}

TEST_P(Certificates, SClientGetsTheKeyTypeItCanVerify) {
  auto ctx = make_ssl_server_context(many_certificates(version()));
  // ECDSA is preferred when the client can verify both, though RSA is listed first.
  EXPECT_EQ(s_client(ctx, {"-servername", "dual.example"}).cn, "dual-ec");
  EXPECT_EQ(s_client(ctx, std::vector<std::string>{"-servername", "dual.example"} + rsa_only).cn,
            "dual-rsa");
  EXPECT_EQ(s_client(ctx, std::vector<std::string>{"-servername", "dual.example"} + ecdsa_only).cn,
            "dual-ec");
  // Without SNI: ssl_options::certificate and its twin of the other key type.
  EXPECT_EQ(s_client(ctx, std::vector<std::string>{"-noservername"} + rsa_only).cn, "default-rsa");
  EXPECT_EQ(s_client(ctx, std::vector<std::string>{"-noservername"} + ecdsa_only).cn, "default-ec");
  EXPECT_EQ(s_client(ctx, std::vector<std::string>{"-servername", "x.example"} + rsa_only).cn,
            "default-rsa");
  // A client that can verify none of its name's certificates is not served another name's.
  auto none = s_client(ctx, std::vector<std::string>{"-servername", "a.example.com"} + rsa_only);
  EXPECT_TRUE(none.failed) << none.output;
  EXPECT_EQ(none.cn, "");
}

TEST_P(Certificates, GnutlsCliGetsTheKeyTypeItCanVerify) {
  auto ctx = make_ssl_server_context(many_certificates(version()));
  // TLS 1.2 and 1.3 name ECDSA signatures differently; each version ignores the other's.
  const std::string ecdsa = ":-SIGN-ALL:+SIGN-ECDSA-SHA256:+SIGN-ECDSA-SECP256R1-SHA256";
  const std::string rsa = ":-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256:+SIGN-RSA-SHA256";
  auto r = gnutls_cli(ctx, "dual.example", rsa);
  EXPECT_EQ(r.cn, "dual-rsa") << r.output;
  r = gnutls_cli(ctx, "dual.example", ecdsa);
  EXPECT_EQ(r.cn, "dual-ec") << r.output;
  r = gnutls_cli(ctx, "b.example.com", "");
  EXPECT_EQ(r.cn, "wildcard") << r.output;
  r = gnutls_cli(ctx, "default.example", rsa);
  EXPECT_EQ(r.cn, "default-rsa") << r.output;
}

TEST_P(Certificates, OurClientVerifiesTheCertificateForItsName) {
  auto server = make_ssl_server_context(many_certificates(version()));
  const auto& c = certs();
  for (auto [name, expected] : {std::pair{"a.example.com", "CN=exact"},
                                {"b.example.com", "CN=wildcard"},
                                {"dual.example", "CN=dual-ec"},
                                {"default.example", "CN=default-ec"}}) {
    auto co = client_options();
    co.ca_file.clear();
    co.ca_pem = certificate_only(c.exact) + certificate_only(c.wildcard) +
                certificate_only(c.dual_ec) + certificate_only(c.main_ec);
    co.server_name = name;
    auto p = make_tls_pair(server, make_ssl_client_context(co));
    auto r = handshake_both(p.server, p.client);
    ASSERT_FALSE(r.client) << name << ": " << rethrow_as<error>(r.client).what();
    ASSERT_FALSE(r.server) << name;
    ASSERT_TRUE(p.client.peer_certificate());
    EXPECT_EQ(p.client.peer_certificate()->subject(), expected) << name;
    EXPECT_EQ(p.client.verify_result().code, 0) << name;
    EXPECT_EQ(p.server.server_name(), name);
  }
  // A name that only the wildcard covers is checked as such: trusting only the exact
  // certificate, a client asking for b.example.com fails verification.
  auto co = client_options();
  co.ca_file.clear();
  co.ca_pem = certificate_only(c.exact);
  co.server_name = "b.example.com";
  auto p = make_tls_pair(server, make_ssl_client_context(co));
  auto r = handshake_both(p.server, p.client);
  EXPECT_TRUE(r.client);
}

// sslstream::server runs handshakes non-blocking on its event loops: the same choice there.
TEST_P(Certificates, TheServerEngineChoosesTheSame) {
  const auto& c = certs();
  server srv(
      make_socket(passive{.local_host = "127.0.0.1"}),
      make_ssl_server_context(many_certificates(version())),
      [](async_stream& s) -> task<> {
        std::array<std::byte, 64> b{};
        while (auto n = co_await s.read_some(b)) co_await s.write_all(std::span(b).first(n));
      },
      server_options{.threads = 1});
  srv.start();
  for (auto [name, expected] :
       {std::pair{"b.example.com", "CN=wildcard"}, {"default.example", "CN=default-ec"}}) {
    auto co = client_options();
    co.ca_file.clear();
    co.ca_pem = certificate_only(c.wildcard) + certificate_only(c.main_ec);
    co.server_name = name;
    auto tls = make_ssl_client_stream(
        make_socket(active{.remote_host = "127.0.0.1", .remote_port = srv.local_port()}),
        make_ssl_client_context(co));
    tls.set_timeout(std::chrono::seconds(20));
    tls << "ping" << std::endl;
    std::string line;
    std::getline(tls, line);
    EXPECT_EQ(line, "ping") << name;
    ASSERT_TRUE(tls.peer_certificate());
    EXPECT_EQ(tls.peer_certificate()->subject(), expected) << name;
    tls.close();
  }
  srv.stop();
}

// A session is bound to the certificates it was made with: offered under another name, it is
// refused and the client gets a full handshake with that name's certificate. s_client offers
// what it is given (our own client would not offer a session to another name at all).
TEST_P(Certificates, SessionsDoNotResumeAcrossCertificates) {
  auto ctx = make_ssl_server_context(many_certificates(version()));
  auto dir = std::filesystem::temp_directory_path() /
             ("sslstream-certificates-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string exact_session = (dir / "exact.pem").string();
  const std::string default_session = (dir / "default.pem").string();

  auto made = s_client(ctx, {"-servername", "a.example.com", "-sess_out", exact_session});
  ASSERT_EQ(made.cn, "exact");
  ASSERT_TRUE(std::filesystem::exists(exact_session)) << made.output;
  made = s_client(ctx, {"-noservername", "-sess_out", default_session});
  ASSERT_EQ(made.cn, "default-ec");
  ASSERT_TRUE(std::filesystem::exists(default_session)) << made.output;

  // Within one certificate, sessions resume (so the refusals below are not a broken cache).
  auto same = s_client(ctx, {"-servername", "a.example.com", "-sess_in", exact_session});
  EXPECT_TRUE(same.reused) << same.output;
  same = s_client(ctx, {"-noservername", "-sess_in", default_session});
  EXPECT_TRUE(same.reused) << same.output;

  auto crossed = s_client(ctx, {"-servername", "b.example.com", "-sess_in", exact_session});
  EXPECT_FALSE(crossed.reused) << crossed.output;
  EXPECT_EQ(crossed.cn, "wildcard");
  crossed = s_client(ctx, {"-noservername", "-sess_in", exact_session});
  EXPECT_FALSE(crossed.reused) << crossed.output;
  EXPECT_EQ(crossed.cn, "default-ec");
  crossed = s_client(ctx, {"-servername", "a.example.com", "-sess_in", default_session});
  EXPECT_FALSE(crossed.reused) << crossed.output;
  EXPECT_EQ(crossed.cn, "exact");
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Versions, Certificates, ::testing::Values("1.2", "1.3"), param_name);

// ---- bad configurations: config_error when the context is built, naming the file ----

namespace {

std::string key_only(const std::string& pem_text) {
  return pem_text.substr(pem_text.find("-----BEGIN PRIVATE KEY-----"));
}

config_error build_fails(const ssl_options& o) {
  return expect_throw<config_error>([&] { make_ssl_server_context(o); });
}

bool says(const std::exception& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

}  // namespace

TEST(CertificatesConfig, KeyThatDoesNotMatchNamesItsFile) {
  const auto& c = certs();
  temp_dir d;
  auto o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back({.certificate = d.write("exact.pem", certificate_only(c.exact)),
                                 .key = d.write("dual.key", key_only(c.dual_ec))});
  auto e = build_fails(o);
  EXPECT_EQ(e.identifier(), "key-mismatch");
  EXPECT_TRUE(says(e, "dual.key")) << e.what();
  EXPECT_TRUE(says(e, "exact.pem")) << e.what();

  o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back(pem(certificate_only(c.exact) + key_only(c.dual_ec)));
  e = build_fails(o);
  EXPECT_EQ(e.identifier(), "key-mismatch");
  EXPECT_TRUE(says(e, "ssl_options::more_certificates[5].certificate_pem")) << e.what();
}

TEST(CertificatesConfig, FilesAndPasswordsAreCheckedAsCertificatesAre) {
  const auto& c = certs();
  auto o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back({.certificate = "/nonexistent/more.pem"});
  auto e = build_fails(o);
  EXPECT_EQ(e.identifier(), "bad-file");
  EXPECT_TRUE(says(e, "/nonexistent/more.pem")) << e.what();

  o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back(pem(certificate_only(c.exact)));
  e = build_fails(o);
  EXPECT_EQ(e.identifier(), "bad-key");
  EXPECT_TRUE(says(e, "ssl_options::more_certificates[5].key")) << e.what();

  // The tests' CA-signed localhost certificate with its AES-encrypted key (password "secret").
  o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back(
      {.certificate = cert("server-rsa.pem"), .key = cert("server-enc.key")});
  e = build_fails(o);
  EXPECT_EQ(e.identifier(), "bad-password");
  EXPECT_TRUE(says(e, "ssl_options::more_certificates[5].password")) << e.what();
  o.more_certificates.back().password = "wrong";
  e = build_fails(o);
  EXPECT_EQ(e.identifier(), "bad-password");
  EXPECT_TRUE(says(e, "server-enc.key")) << e.what();
  o.more_certificates.back().password = "secret";
  EXPECT_NO_THROW(make_ssl_server_context(o));
}

TEST(CertificatesConfig, KeyOpenSslWillNotServe) {
  // Debian's OpenSSL (security level 2) refuses RSA keys under 2048 bits.
  temp_dir d;
  const std::string file = (d.path / "weak.pem").string();
  process req({"openssl", "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-subj", "/CN=weak",
               "-addext", "subjectAltName=DNS:weak.example", "-keyout", file, "-out", file});
  ASSERT_EQ(req.wait(std::chrono::seconds(30)), 0) << req.output();
  auto o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back({.certificate = file});
  auto e = build_fails(o);
  EXPECT_EQ(e.identifier(), "bad-certificate");
  EXPECT_TRUE(says(e, "more_certificates[5] ('" + file + "')")) << e.what();
  EXPECT_TRUE(says(e, "too small")) << e.what();
}

TEST(CertificatesConfig, CertificatesThatWouldNeverBeServed) {
  // The same names and key type as ssl_options::certificate.
  auto o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back(
      pem(make("again", {"default.example", "127.0.0.1"}, key_type::ec256)));
  auto e = build_fails(o);
  EXPECT_EQ(e.identifier(), "bad-certificate");
  EXPECT_TRUE(says(e, "more_certificates[5]")) << e.what();
  EXPECT_TRUE(says(e, "same names and key type")) << e.what();

  // Every name already has a certificate of its key type.
  o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back(pem(make("hidden", {"a.example.com"}, key_type::ec256)));
  e = build_fails(o);
  EXPECT_TRUE(says(e, "more_certificates[5]")) << e.what();
  EXPECT_TRUE(says(e, "would never be served")) << e.what();

  // No DNS name for SNI to match, and not the default's names.
  o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back(pem(make("ip", {"10.1.2.3"}, key_type::ec256)));
  e = build_fails(o);
  EXPECT_TRUE(says(e, "more_certificates[5]")) << e.what();
  EXPECT_TRUE(says(e, "no DNS name")) << e.what();

  // Hidden for one name (a.example.com has `exact` first) but served for another: fine.
  o = many_certificates(tls_version::tls1_3);
  o.more_certificates.push_back(pem(make("more", {"a.example.com", "c.example"}, key_type::ec256)));
  EXPECT_NO_THROW(make_ssl_server_context(o));
}

TEST(CertificatesConfig, ClientContextRefusesMoreCertificates) {
  auto o = client_options();
  o.more_certificates.push_back(pem(certs().exact));
  auto e = expect_throw<config_error>([&] { make_ssl_client_context(o); });
  EXPECT_EQ(e.identifier(), "bad-option");
  EXPECT_TRUE(says(e, "more_certificates")) << e.what();
}
