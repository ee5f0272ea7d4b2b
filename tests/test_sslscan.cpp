// Secure configuration, proved from outside: sslscan (and openssl s_client for what this
// sslscan build cannot test) against `sslstream listen`. Only TLS 1.2 and 1.3, only
// forward-secret AEAD suites, no compression, secure renegotiation (RFC 5746) and no
// client-initiated renegotiation; and only TLS 1.3 with --min-version 1.3.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "loopback.hpp"

using namespace testing_support;

namespace {

const std::string bin = SSLSTREAM_CLI;

struct listening {
  process proc;
  std::string port;
  explicit listening(std::vector<std::string> extra)
      : proc([&] {
          std::vector<std::string> argv{bin, "listen", "--keep-open", "--echo"};
          argv.insert(argv.end(), extra.begin(), extra.end());
          return argv;
        }()) {
    auto p = proc.wait_for_match(R"(listening on \S*:(\d+)\n)");
    if (!p) throw std::runtime_error("listen did not start: " + proc.output());
    port = *p;
  }
};

std::string sslscan(const std::string& port) {
  process scan({"sslscan", "--no-colour", "127.0.0.1:" + port});
  scan.drain(120s);
  EXPECT_EQ(scan.wait(10s), 0) << scan.output();
  return scan.output();
}

/// The protocol lines ("TLSv1.2   enabled") as {name, enabled}.
std::map<std::string, bool> protocols(const std::string& out) {
  std::map<std::string, bool> m;
  std::regex line(R"((SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled))");
  for (std::sregex_iterator it(out.begin(), out.end(), line), end; it != end; ++it)
    m[(*it)[1]] = (*it)[2] == "enabled";
  return m;
}

/// The accepted suites ("Accepted  TLSv1.2  256 bits  ECDHE-RSA-AES256-GCM-SHA384 ...").
std::vector<std::pair<std::string, std::string>> suites(const std::string& out) {
  std::vector<std::pair<std::string, std::string>> v;
  std::regex line(R"((?:Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+))");
  for (std::sregex_iterator it(out.begin(), out.end(), line), end; it != end; ++it)
    v.emplace_back((*it)[1], (*it)[2]);
  return v;
}

bool forward_secret_aead(const std::string& protocol, const std::string& suite) {
  if (protocol == "TLSv1.3") return true;  // every TLS 1.3 suite is both
  bool fs = suite.rfind("ECDHE-", 0) == 0 || suite.rfind("DHE-", 0) == 0;
  bool aead = suite.find("GCM") != std::string::npos ||
              suite.find("CHACHA20-POLY1305") != std::string::npos;
  return fs && aead;
}

/// What openssl s_client reports of a TLS 1.2 handshake: compression and RFC 5746.
std::string s_client_tls12(const std::string& port) {
  process c({"openssl", "s_client", "-connect", "127.0.0.1:" + port, "-tls1_2"});
  c.close_stdin();
  c.drain(20s);
  c.wait(10s);
  return c.output();
}

void expect_secure(const std::vector<std::string>& listen_args, const std::string& what) {
  listening srv(listen_args);
  auto out = sslscan(srv.port);
  auto p = protocols(out);
  ASSERT_EQ(p.size(), 6u) << what << out;
  EXPECT_FALSE(p["SSLv2"] || p["SSLv3"] || p["TLSv1.0"] || p["TLSv1.1"]) << what << out;
  EXPECT_TRUE(p["TLSv1.2"] && p["TLSv1.3"]) << what << out;
  auto s = suites(out);
  ASSERT_FALSE(s.empty()) << what << out;
  for (auto& [protocol, suite] : s)
    EXPECT_TRUE(forward_secret_aead(protocol, suite)) << what << ": " << protocol << ' ' << suite;
  EXPECT_EQ(out.find("Insecure session renegotiation"), std::string::npos) << what << out;
  EXPECT_EQ(out.find("Compression enabled"), std::string::npos) << what << out;
  EXPECT_NE(out.find("not vulnerable to heartbleed"), std::string::npos) << what << out;

  auto tls12 = s_client_tls12(srv.port);
  EXPECT_NE(tls12.find("Secure Renegotiation IS supported"), std::string::npos) << what << tls12;
  EXPECT_NE(tls12.find("Compression: NONE"), std::string::npos) << what << tls12;
}

}  // namespace

TEST(Sslscan, DefaultsWithTheSelfSignedEcdsaCertificate) { expect_secure({}, "self-signed ECDSA"); }

TEST(Sslscan, DefaultsWithAnRsaCertificate) {
  expect_secure({"--cert", cert("server-rsa.pem"), "--key", cert("server-rsa.key")}, "RSA");
}

TEST(Sslscan, MinVersionThirteenOffersOnlyTls13) {
  listening srv({"--min-version", "1.3"});
  auto out = sslscan(srv.port);
  auto p = protocols(out);
  ASSERT_EQ(p.size(), 6u) << out;
  for (auto& [name, enabled] : p) EXPECT_EQ(enabled, name == "TLSv1.3") << name << '\n' << out;
  for (auto& [protocol, suite] : suites(out)) EXPECT_EQ(protocol, "TLSv1.3") << suite;
}
