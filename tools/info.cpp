// sslstream info: handshake, then describe the connection and the server's chain — in words,
// as JSON (--json, for scripts) or as the PEM the server sent (--show-certs).
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "client.hpp"

namespace cli {

using namespace sslstream;
using json = nlohmann::ordered_json;  // fields in the documented order

namespace {

struct info_flags {
  connect_flags conn;
  bool json = false;
  bool show_certs = false;
};

std::string when(std::chrono::system_clock::time_point t, const char* format) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}
std::string human_time(std::chrono::system_clock::time_point t) {
  return when(t, "%Y-%m-%d %H:%M:%S UTC");
}
std::string iso8601(std::chrono::system_clock::time_point t) {
  return when(t, "%Y-%m-%dT%H:%M:%SZ");
}

/// Whole days until `t` (negative once it has passed), as a renewal check counts them.
long days_left(std::chrono::system_clock::time_point t) {
  return static_cast<long>(
      std::chrono::floor<std::chrono::days>(t - std::chrono::system_clock::now()).count());
}

/// How the server was checked, and the verdict.
struct verdict {
  enum class by { ca, pin, none } method;
  bool ok;
  verify_result_t result;
};

verdict judge(ssl_stream& tls, const tls_flags& f) {
  auto v = tls.verify_result();
  if (!f.pins.empty()) return {verdict::by::pin, true, v};  // a wrong pin fails the handshake
  if (f.insecure || f.verify == "none") return {verdict::by::none, false, v};
  return {verdict::by::ca, v.code == 0, v};
}

json chain_json(const std::vector<x509_certificate>& chain, bool with_pem) {
  json out = json::array();
  for (const auto& c : chain) {
    json sans = json::array();
    for (const auto& [type, value] : c.subject_alt_names()) sans.push_back(type + ":" + value);
    json j = {{"subject", c.subject()},
              {"issuer", c.issuer()},
              {"subject_alt_names", sans},
              {"serial", c.serial_number()},
              {"key_type", c.key_type()},
              {"key_bits", c.key_bits()},
              {"key_group", c.key_group().empty() ? json(nullptr) : json(c.key_group())},
              {"signature_algorithm", c.signature_algorithm()},
              {"not_before", iso8601(c.not_before())},
              {"not_after", iso8601(c.not_after())},
              {"days_left", days_left(c.not_after())},
              {"sha256", c.fingerprint_sha256()},
              {"sha1", c.fingerprint_sha1()}};
    if (with_pem) j["pem"] = c.to_pem();
    out.push_back(std::move(j));
  }
  return out;
}

json to_json(const info_flags& f, ssl_stream& tls, const verdict& v) {
  auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  const char* method = v.method == verdict::by::ca    ? "ca"
                       : v.method == verdict::by::pin ? "pin"
                                                      : "none";
  return {{"host", f.conn.host},
          {"port", f.conn.port},
          {"protocol", tls.protocol_version()},
          {"cipher", tls.cipher()},
          {"group", or_null(tls.key_exchange_group())},
          {"alpn", or_null(tls.alpn_protocol())},
          {"resumed", tls.session_reused()},
          {"verify",
           {{"ok", v.ok}, {"method", method}, {"code", v.result.code}, {"reason", v.result.text}}},
          {"client_certificate_requested", tls.client_certificate_requested()},
          {"ocsp", tls.ocsp_status()},
          {"chain", chain_json(tls.peer_chain(), f.show_certs)}};
}

void print_words(const info_flags& f, ssl_stream& tls, const verdict& v) {
  auto or_none = [](const std::string& s) { return s.empty() ? std::string("(none)") : s; };
  auto ocsp = tls.ocsp_status();
  std::cout << "protocol: " << tls.protocol_version() << '\n'
            << "cipher: " << tls.cipher() << '\n'
            << "key exchange group: " << or_none(tls.key_exchange_group()) << '\n'
            << "alpn: " << or_none(tls.alpn_protocol()) << '\n'
            << "session resumed: " << (tls.session_reused() ? "yes" : "no") << '\n'
            << "client certificate requested: "
            << (tls.client_certificate_requested() ? "yes" : "no") << '\n'
            << "ocsp: " << (ocsp == "none" ? "none stapled" : ocsp) << '\n';
  auto chain = tls.peer_chain();
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const auto& c = chain[i];
    std::cout << "certificate " << i << ":\n"
              << "  subject: " << c.subject() << '\n'
              << "  issuer: " << c.issuer() << '\n';
    std::string sans;
    // Escaped: any server can send a certificate (info shows it even when it does not verify),
    // and a control byte in a name must not move the cursor or forge a line such as "verify: ok".
    for (const auto& [type, value] : c.subject_alt_names())
      sans += (sans.empty() ? "" : ", ") + type + ":" + printable(value);
    long days = days_left(c.not_after());
    std::cout << "  subject alt names: " << or_none(sans) << '\n'
              << "  key: " << c.key_type() << ' ' << c.key_bits() << " bits"
              << (c.key_group().empty() ? "" : " (" + c.key_group() + ")") << '\n'
              << "  signature algorithm: " << c.signature_algorithm() << '\n'
              << "  valid: " << human_time(c.not_before()) << " to " << human_time(c.not_after())
              << (days >= 0 ? " (" + std::to_string(days) + " days left)"
                            : " (EXPIRED " + std::to_string(-days) + " days ago)")
              << '\n'
              << "  serial: " << c.serial_number() << '\n'
              << "  sha256: " << c.fingerprint_sha256() << '\n';
  }
  if (v.method == verdict::by::pin)
    std::cout << "verify: pinned certificate matches\n";
  else if (v.method == verdict::by::none)
    std::cout << "verify: not verified (--insecure)\n";
  else if (v.ok)
    std::cout << "verify: ok (trusted chain, name matches "
              << (f.conn.tls.server_name.empty() ? f.conn.host : f.conn.tls.server_name) << ")\n";
  else
    std::cout << "verify: FAILED (" << v.result.code << "): " << v.result.text << '\n';
}

/// The hint `connect` would give for this verification failure, on stderr.
void explain_failure(ssl_stream& tls, const verdict& v) {
  std::string subject, fingerprint;
  if (auto leaf = tls.peer_certificate()) {
    subject = leaf->subject();
    fingerprint = leaf->fingerprint_sha256();
  }
  verify_error e(
      v.result.code, v.result.text, subject, fingerprint,
      "certificate verify failed: " + v.result.text + " (certificate '" + subject + "')");
  std::cerr << "sslstream info: " << explain("info", phase::handshake, e).message << '\n';
}

/// Failures that a server speaking only TLS 1.0/1.1 causes in a TLS 1.2+ handshake: an alert,
/// or a server that just closes.
bool maybe_old_protocol(const tls_error& e) {
  std::string what = e.what();
  for (const char* s : {"protocol version", "unsupported protocol", "wrong version number",
                        "closed the connection during the handshake"})
    if (what.find(s) != std::string::npos) return true;
  return false;
}

/// After a failed handshake: asks the server again, offering only TLS 1.0/1.1, to say which
/// version it speaks. Never sends data; "" when it is not an old-protocol server.
std::string probe_old_protocol(const connect_flags& f) {
  try {
    phase ignored = phase::connect;
    return probe_legacy_version(dial(f, ignored),
                                f.tls.server_name.empty() ? f.host : f.tls.server_name,
                                seconds(f.connect_timeout));
  } catch (const std::exception&) {
    return "";  // the probe explains nothing: the original error stands
  }
}

int refuse_old_protocol(const info_flags& f, const std::string& version) {
  std::string name = version == "TLSv1" ? "TLS 1.0" : "TLS 1.1";
  std::string msg = "the server speaks only " + name +
                    ": insecure, refused (sslstream needs TLS 1.2 or later; the server must be "
                    "upgraded)";
  if (f.json)
    std::cout << json{{"host", f.conn.host},
                      {"port", f.conn.port},
                      {"protocol", version},
                      {"error", msg}}
                     .dump(2)
              << '\n';
  std::cerr << "sslstream info: " << msg << '\n';
  return handshake;
}

int run_info(const info_flags& f) {
  phase at = phase::setup;
  return guarded("info", at, &f.conn.tls, [&]() -> int {
    std::optional<ssl_stream> tls;
    try {
      // Verify, but finish the handshake either way so the verdict can be shown.
      tls.emplace(open(f.conn, at, true, true));
    } catch (const tls_error& e) {
      if (at != phase::handshake || dynamic_cast<const verify_error*>(&e) || !maybe_old_protocol(e))
        throw;
      auto version = probe_old_protocol(f.conn);
      if (version.empty()) throw;
      return refuse_old_protocol(f, version);
    }
    auto v = judge(*tls, f.conn.tls);
    if (f.json)
      std::cout << to_json(f, *tls, v).dump(2) << '\n';
    else if (f.show_certs)
      for (const auto& c : tls->peer_chain()) std::cout << c.to_pem();
    else if (!f.conn.tls.quiet)
      print_words(f, *tls, v);
    bool failed = v.method == verdict::by::ca && !v.ok;
    if (failed) explain_failure(*tls, v);
    tls->close();
    std::cout.flush();
    if (!std::cout) throw std::runtime_error("cannot write to standard output");
    return failed ? handshake : ok;
  });
}

}  // namespace

void add_info(CLI::App& app, command& chosen) {
  auto f = std::make_shared<info_flags>();
  auto* sub = app.add_subcommand(
      "info",
      "handshake and show the protocol, cipher, ALPN, the server's chain and the verify result");
  add_common(*sub, f->conn);
  sub->add_flag("--json", f->json,
                "print one JSON object (fields in docs/sslstream.md); with --show-certs each "
                "certificate also has its PEM");
  sub->add_flag("--show-certs", f->show_certs,
                "print the chain the server sent as PEM, leaf first (alone: nothing else)");
  sub->footer(
      "Examples:\n  sslstream info example.com 443\n"
      "  sslstream info example.com 443 --json | jq '.chain[0].days_left'\n"
      "  sslstream info example.com 443 --show-certs > chain.pem\n"
      "  sslstream info localhost 8443 --ca-file ca.pem --json --show-certs\n"
      "  sslstream info db.example.com 5432 --starttls postgres");
  sub->callback([f, &chosen] { chosen = {[f] { return run_info(*f); }, &f->conn.tls, false}; });
}

}  // namespace cli
