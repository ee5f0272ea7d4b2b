// sslstream info, run as a user runs it, against our own listen and openssl s_server (RSA and
// ECDSA, TLS 1.2 and 1.3, a client certificate asked for or not, a stapled OCSP response, a
// server that speaks only TLS 1.0/1.1): --json parsed with a JSON parser and its chain compared
// with what `openssl x509` says of the same files; --show-certs read back by openssl; the
// words; the bad inputs, each with its exit status and message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_run.hpp"
#include "loopback.hpp"
#include "silent_listener.hpp"
#include "temp_dir.hpp"

using namespace sslstream;
using namespace testing_support;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

std::string ca() { return cert("ca.pem"); }

/// `sslstream args...` with its stdout alone (stderr dropped): what a script reads.
ran stdout_of(std::initializer_list<std::string> args) {
  std::vector<std::string> argv{"bash", "-c", "exec \"$0\" \"$@\" 2>/dev/null", cli_binary};
  argv.insert(argv.end(), args);
  return run(argv);
}

json parsed(const ran& r) {
  try {
    return json::parse(r.output);
  } catch (const json::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << r.output;
    return json::object();
  }
}

/// openssl s_server with `args`, once it accepts; its stdin stays open (it quits at EOF).
struct s_server {
  process p;
  std::string port;
  explicit s_server(std::vector<std::string> args)
      : p([&] {
          std::vector<std::string> v{"openssl", "s_server", "-accept", "0"};
          v.insert(v.end(), args.begin(), args.end());
          return v;
        }()) {
    auto m = p.wait_for_match(R"(ACCEPT .*:(\d+)\n)");
    if (!m) throw std::runtime_error("s_server did not start: " + p.output());
    port = *m;
  }
};

/// What `openssl x509 -noout OPTIONS` prints for `file`, after "PREFIX" (one line, trimmed).
std::string x509_says(const std::string& file, std::vector<std::string> options,
                      const std::string& prefix) {
  std::vector<std::string> argv{"openssl", "x509", "-in", file, "-noout"};
  argv.insert(argv.end(), options.begin(), options.end());
  auto r = run(argv);
  auto at = r.output.find(prefix);
  if (r.status != 0 || at == std::string::npos) return "openssl x509 said: " + r.output;
  auto value = r.output.substr(at + prefix.size());
  return value.substr(0, value.find('\n'));
}

/// "AB:CD:..." -> "abcd...".
std::string plain_hex(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), ':'), s.end());
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// One certificate of --json against openssl's reading of the file it came from.
void expect_matches_openssl(const json& c, const std::string& file) {
  EXPECT_EQ(c["subject"], x509_says(file, {"-subject", "-nameopt", "RFC2253"}, "subject="));
  EXPECT_EQ(c["issuer"], x509_says(file, {"-issuer", "-nameopt", "RFC2253"}, "issuer="));
  EXPECT_EQ(c["serial"], x509_says(file, {"-serial"}, "serial="));
  EXPECT_EQ(c["sha256"], plain_hex(x509_says(file, {"-fingerprint", "-sha256"}, "Fingerprint=")));
  EXPECT_EQ(c["sha1"], plain_hex(x509_says(file, {"-fingerprint", "-sha1"}, "Fingerprint=")));
  // "2126-11-05 11:36:11Z" in openssl's ISO 8601, "2126-11-05T11:36:11Z" in ours.
  auto end = x509_says(file, {"-enddate", "-dateopt", "iso_8601"}, "notAfter=");
  std::replace(end.begin(), end.end(), ' ', 'T');
  EXPECT_EQ(c["not_after"], end);
  EXPECT_EQ(c["signature_algorithm"], x509_says(file, {"-text"}, "Signature Algorithm: "));
  // Appended rather than "(" + std::to_string(...): GCC 12's -O3 warns (-Wrestrict, a false
  // positive) on a literal plus a temporary string, and warnings are errors.
  std::string bits = "(";
  bits += std::to_string(c["key_bits"].get<int>());
  bits += " bit)";
  EXPECT_EQ(bits, x509_says(file, {"-text"}, "Public-Key: "));
}

/// An OCSP response from our test CA saying `state` (V good, R revoked) for `leaf`, as
/// `openssl ocsp` makes it from a CA index.
std::string ocsp_response(const temp_dir& dir, const std::string& leaf, char state) {
  std::string serial = x509_says(cert(leaf), {"-serial"}, "serial=");
  auto r = sh("printf '" + std::string(1, state) + "\\t491231235959Z\\t" +
              (state == 'R' ? "260101000000Z" : "") + "\\t" + serial +
              "\\tunknown\\t/CN=localhost\\n' > " + dir / "index.txt" + "\nopenssl ocsp -index " +
              dir / "index.txt" + " -rsigner " + ca() + " -rkey " + cert("ca.key") + " -CA " +
              ca() + " -issuer " + ca() + " -cert " + cert(leaf) + " -respout " + dir / "resp.der" +
              " -ndays 1");
  EXPECT_EQ(r.status, 0) << r.output;
  return dir / "resp.der";
}

}  // namespace

TEST(CliInfo, JsonAgainstOurListenMatchesOpenssl) {
  for (bool ask : {false, true}) {
    std::vector<std::string> args{
        "listen", "--cert", cert("server-ec.pem"), "--key", cert("server-ec.key"), "--echo"};
    if (ask) args.insert(args.end(), {"--verify", "optional", "--ca-file", ca()});
    process listen([&] {
      std::vector<std::string> v{cli_binary};
      v.insert(v.end(), args.begin(), args.end());
      return v;
    }());
    auto port = std::to_string(listening(listen));
    auto r = stdout_of({"info", "localhost", port, "--ca-file", ca(), "--json"});
    ASSERT_EQ(r.status, 0) << r.output;
    auto j = parsed(r);
    EXPECT_EQ(j["host"], "localhost");
    EXPECT_EQ(j["port"], std::stoi(port));
    EXPECT_EQ(j["protocol"], "TLSv1.3");
    EXPECT_EQ(j["cipher"], "TLS_AES_256_GCM_SHA384");
    EXPECT_EQ(j["group"], "x25519");
    EXPECT_TRUE(j["alpn"].is_null());
    EXPECT_EQ(j["resumed"], false);
    EXPECT_EQ(j["verify"], json({{"ok", true}, {"method", "ca"}, {"code", 0}, {"reason", "ok"}}));
    EXPECT_EQ(j["client_certificate_requested"], ask);
    EXPECT_EQ(j["ocsp"], "none");
    ASSERT_GE(j["chain"].size(), 1u) << r.output;  // with --ca-file, listen sends the CA too
    const auto& leaf = j["chain"][0];
    EXPECT_EQ(leaf["key_type"], "EC");
    EXPECT_EQ(leaf["key_bits"], 256);
    EXPECT_EQ(leaf["key_group"], "prime256v1");
    EXPECT_EQ(leaf["subject_alt_names"], json::array({"DNS:localhost", "IP:127.0.0.1", "IP:::1"}));
    EXPECT_GT(leaf["days_left"].get<long>(), 36000);
    EXPECT_FALSE(leaf.contains("pem"));
    expect_matches_openssl(leaf, cert("server-ec.pem"));
    EXPECT_EQ(listen.wait(), 0) << listen.output();
  }
}

TEST(CliInfo, JsonAgainstOpensslRsaAndEcdsaTls12And13) {
  for (std::string key : {"rsa", "ec"})
    for (std::string v : {"1.2", "1.3"}) {
      SCOPED_TRACE(key + " TLS " + v);
      s_server srv({"-cert", cert("server-" + key + ".pem"), "-key", cert("server-" + key + ".key"),
                    "-cert_chain", ca(), v == "1.3" ? "-tls1_3" : "-tls1_2"});
      auto r = stdout_of({"info", "localhost", srv.port, "--ca-file", ca(), "--json"});
      ASSERT_EQ(r.status, 0) << r.output;
      auto j = parsed(r);
      EXPECT_EQ(j["protocol"], "TLSv" + v);
      EXPECT_EQ(j["group"], "x25519");
      EXPECT_EQ(j["verify"]["ok"], true);
      EXPECT_EQ(j["client_certificate_requested"], false);
      EXPECT_EQ(j["ocsp"], "none");
      ASSERT_EQ(j["chain"].size(), 2u) << r.output;
      EXPECT_EQ(j["chain"][0]["key_type"], key == "rsa" ? "RSA" : "EC");
      EXPECT_EQ(j["chain"][0]["key_bits"], key == "rsa" ? 2048 : 256);
      expect_matches_openssl(j["chain"][0], cert("server-" + key + ".pem"));
      expect_matches_openssl(j["chain"][1], ca());
      EXPECT_TRUE(j["chain"][1]["subject_alt_names"].empty());
    }
}

TEST(CliInfo, ClientCertificateRequestedByOpenssl) {
  for (std::string v : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(v);
    // -verify asks for a certificate without requiring one, so the handshake completes.
    s_server asks(
        {"-cert", cert("server-rsa.pem"), "-key", cert("server-rsa.key"), "-verify", "1", v});
    auto j = parsed(stdout_of({"info", "localhost", asks.port, "--ca-file", ca(), "--json"}));
    EXPECT_EQ(j["client_certificate_requested"], true);
    auto words = run(cmd({"info", "localhost", asks.port, "--ca-file", ca()}));
    EXPECT_EQ(words.status, 0) << words.output;
    EXPECT_TRUE(says(words, "client certificate requested: yes\n")) << words.output;
  }
}

TEST(CliInfo, StapledOcspGoodRevokedAndNone) {
  temp_dir dir;
  for (auto [leaf, state, expected] :
       {std::tuple{"server-ec", 'V', "good"}, std::tuple{"revoked", 'R', "revoked"}}) {
    SCOPED_TRACE(expected);
    auto resp = ocsp_response(dir, std::string(leaf) + ".pem", state);
    for (std::string v : {"-tls1_2", "-tls1_3"}) {
      s_server srv({"-cert", cert(std::string(leaf) + ".pem"), "-key",
                    cert(std::string(leaf) + ".key"), "-status_file", resp, v});
      auto j = parsed(stdout_of({"info", "localhost", srv.port, "--ca-file", ca(), "--json"}));
      EXPECT_EQ(j["ocsp"], expected) << v;
      auto words = run(cmd({"info", "localhost", srv.port, "--ca-file", ca()}));
      EXPECT_TRUE(says(words, std::string("ocsp: ") + expected + "\n")) << words.output;
    }
  }
  // Our own listen --ocsp staples too.
  process listen(cmd({"listen", "--cert", cert("server-ec.pem"), "--key", cert("server-ec.key"),
                      "--ocsp", ocsp_response(dir, "server-ec.pem", 'V'), "--echo"}));
  auto port = std::to_string(listening(listen));
  auto ours = parsed(stdout_of({"info", "localhost", port, "--ca-file", ca(), "--json"}));
  EXPECT_EQ(ours["ocsp"], "good");
  EXPECT_EQ(listen.wait(), 0) << listen.output();

  s_server none({"-cert", cert("server-ec.pem"), "-key", cert("server-ec.key")});
  auto words = run(cmd({"info", "localhost", none.port, "--ca-file", ca()}));
  EXPECT_EQ(words.status, 0) << words.output;
  EXPECT_TRUE(says(words, "ocsp: none stapled\n")) << words.output;
}

TEST(CliInfo, ShowCertsIsThePemTheServerSent) {
  temp_dir dir;
  s_server srv(
      {"-cert", cert("server-rsa.pem"), "-key", cert("server-rsa.key"), "-cert_chain", ca()});
  auto r = sh("$SSLSTREAM info localhost " + srv.port + " --ca-file $CA --show-certs > " +
              dir / "chain.pem" + " && openssl crl2pkcs7 -nocrl -certfile " + dir / "chain.pem" +
              " | openssl pkcs7 -print_certs -noout | grep -c '^subject='" +
              " && openssl x509 -in " + dir / "chain.pem" + " -noout -fingerprint -sha256" +
              " && openssl x509 -in " + cert("server-rsa.pem") + " -noout -fingerprint -sha256");
  ASSERT_EQ(r.status, 0) << r.output;
  // Two certificates, the first being the server's own (the same fingerprint twice).
  EXPECT_EQ(r.output.substr(0, 2), "2\n") << r.output;
  auto first = r.output.find("Fingerprint=");
  auto second = r.output.find("Fingerprint=", first + 1);
  ASSERT_NE(second, std::string::npos) << r.output;
  EXPECT_EQ(r.output.substr(first, 108), r.output.substr(second, 108)) << r.output;

  // With --json, each certificate carries the same PEM.
  auto j = parsed(
      stdout_of({"info", "localhost", srv.port, "--ca-file", ca(), "--json", "--show-certs"}));
  auto pem = stdout_of({"info", "localhost", srv.port, "--ca-file", ca(), "--show-certs"});
  ASSERT_EQ(j["chain"].size(), 2u);
  EXPECT_EQ(j["chain"][0]["pem"].get<std::string>() + j["chain"][1]["pem"].get<std::string>(),
            pem.output);
}

TEST(CliInfo, WordsShowKeySignatureGroupDaysAndTheFixItHint) {
  s_server srv({"-cert", cert("server-ec.pem"), "-key", cert("server-ec.key")});
  auto r = run(cmd({"info", "localhost", srv.port, "--ca-file", ca()}));
  EXPECT_EQ(r.status, 0) << r.output;
  for (const char* line :
       {"protocol: TLSv1.3\n", "key exchange group: x25519\n", "client certificate requested: no\n",
        "  key: EC 256 bits (prime256v1)\n", "  signature algorithm: sha256WithRSAEncryption\n",
        " days left)\n", "verify: ok (trusted chain, name matches localhost)\n"})
    EXPECT_TRUE(says(r, line)) << line << " in:\n" << r.output;

  // A self-signed server: the verdict, then the hint connect gives, with the pin to use.
  process listen(cmd({"listen", "--echo"}));
  auto port = std::to_string(listening(listen));
  auto self = run(cmd({"info", "localhost", port}));
  EXPECT_EQ(self.status, 4) << self.output;
  EXPECT_TRUE(says(self, "verify: FAILED (18): self-signed certificate\n")) << self.output;
  EXPECT_TRUE(says(self,
                   "sslstream info: certificate verify failed: the server's certificate is "
                   "self-signed (CN=localhost): pass --ca-file FILE to trust it, or --pin "
                   "sha256:"))
      << self.output;
  EXPECT_EQ(listen.wait(), 0) << listen.output();
}

TEST(CliInfo, ControlBytesAndBadUtf8InANameNeverReachTheTerminalRaw) {
  // A server may put anything in its certificate's names: ESC sequences (that would rewrite
  // the user's terminal) and bytes that are not UTF-8 (that a JSON encoder must not choke on).
  temp_dir dir;
  // subjectAltName = dNSName "ok" ESC "[2J" BEL ".example" FF ".x" 9B "y", DER-encoded by hand: the
  // config syntax cannot write these bytes.
  auto made = sh("cd " + dir.path.string() +
                 " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                 "-keyout k.pem -out c.pem -subj /CN=evil -days 2 -addext "
                 "subjectAltName=DER:301682146f6b1b5b324a072e6578616d706c65ff2e789b79");
  ASSERT_EQ(made.status, 0) << made.output;
  s_server srv({"-cert", dir / "c.pem", "-key", dir / "k.pem"});
  auto words = run(cmd({"info", "localhost", srv.port, "--ca-file", dir / "c.pem"}));
  EXPECT_TRUE(says(words, "DNS:ok\\x1b[2J\\x07.example")) << words.output;
  EXPECT_EQ(words.output.find('\x1b'), std::string::npos) << "a raw ESC was printed";
  EXPECT_EQ(words.output.find('\x07'), std::string::npos) << "a raw BEL was printed";
  // 9B (CSI to a Latin-1 terminal) arrives as U+009B, C2 9B in UTF-8: escaped too.
  EXPECT_TRUE(says(words, "\\xc2\\x9by")) << words.output;
  EXPECT_EQ(words.output.find("\xc2\x9b"), std::string::npos) << "a raw C1 CSI was printed";
  auto j = stdout_of({"info", "localhost", srv.port, "--ca-file", dir / "c.pem", "--json"});
  EXPECT_EQ(j.output.find('\x1b'), std::string::npos) << j.output;
  auto parsed_j = parsed(j);
  ASSERT_TRUE(parsed_j.contains("chain")) << j.output;
  auto san = parsed_j["chain"][0]["subject_alt_names"][0].get<std::string>();
  EXPECT_EQ(san.rfind("DNS:ok\x1b[2J\x07.example", 0), 0u) << san;  // JSON escapes them
}

TEST(CliInfo, ServerSpeakingOnlyTls10Or11IsReportedAndRefused) {
  for (auto [flag, name, version] :
       {std::tuple{"-tls1", "TLS 1.0", "TLSv1"}, std::tuple{"-tls1_1", "TLS 1.1", "TLSv1.1"}}) {
    SCOPED_TRACE(name);
    s_server old({"-cert", cert("server-rsa.pem"), "-key", cert("server-rsa.key"), flag, "-cipher",
                  "ALL@SECLEVEL=0"});
    auto r = run(cmd({"info", "localhost", old.port, "--ca-file", ca()}));
    EXPECT_EQ(r.status, 4) << r.output;
    EXPECT_TRUE(says(
        r, std::string("sslstream info: the server speaks only ") + name + ": insecure, refused"))
        << r.output;
    auto j = parsed(stdout_of({"info", "localhost", old.port, "--ca-file", ca(), "--json"}));
    EXPECT_EQ(j["protocol"], version);
    EXPECT_TRUE(j["error"].get<std::string>().find("insecure, refused") != std::string::npos);
    EXPECT_FALSE(j.contains("chain"));
  }
}

TEST(CliInfo, BadInputs) {
  // A TLS 1.3-only server that we limit to 1.2: no version in common, and no old-protocol
  // server either, so the original error stands.
  s_server modern({"-cert", cert("server-rsa.pem"), "-key", cert("server-rsa.key"), "-tls1_3"});
  auto nothing =
      run(cmd({"info", "localhost", modern.port, "--ca-file", ca(), "--max-version", "1.2"}));
  EXPECT_EQ(nothing.status, 4) << nothing.output;
  EXPECT_TRUE(says(nothing, "no TLS version in common")) << nothing.output;
  EXPECT_FALSE(says(nothing, "speaks only")) << nothing.output;

  auto unknown = run(cmd({"info", "no-such-host.invalid", "443", "--json"}));
  EXPECT_EQ(unknown.status, 3) << unknown.output;
  EXPECT_TRUE(says(unknown, "cannot resolve host 'no-such-host.invalid'")) << unknown.output;
  EXPECT_EQ(stdout_of({"info", "no-such-host.invalid", "443", "--json"}).output, "")
      << "a failure prints no half-made JSON";

  auto closed = make_socket(passive{.local_host = "127.0.0.1"});
  auto port = std::to_string(closed.local_port());
  closed.close();
  auto refused = run(cmd({"info", "127.0.0.1", port, "--show-certs"}));
  EXPECT_EQ(refused.status, 3) << refused.output;
  EXPECT_TRUE(says(refused, "Connection refused")) << refused.output;

  auto zero = run(cmd({"info", "localhost", "0"}));
  EXPECT_EQ(zero.status, 2) << zero.output;
  EXPECT_TRUE(says(zero, "expects a whole number from 1 to 65535, not '0'")) << zero.output;

  auto valued = run(cmd({"info", "localhost", "443", "--json=maybe"}));
  EXPECT_EQ(valued.status, 2) << valued.output;
  EXPECT_TRUE(says(valued, "Could not convert: --json = maybe")) << valued.output;

  auto missing = run(cmd({"info", "--show-certs"}));
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_TRUE(says(missing, "HOST is required")) << missing.output;

  // A closed stdout is an error, not a silent success.
  s_server srv({"-cert", cert("server-rsa.pem"), "-key", cert("server-rsa.key")});
  auto shut = sh("$SSLSTREAM info localhost " + srv.port + " --ca-file $CA --json >&-");
  EXPECT_NE(shut.status, 0) << shut.output;
}
