// sslstream connect: a TLS client relaying stdin to the server and the server to stdout.
// sslstream info: handshake, then describe the connection and the server's chain.
#include <ctime>
#include <iostream>

#include "cli.hpp"
#include "starttls.hpp"

namespace cli {

using namespace sslstream;

namespace {

struct connect_flags {
  std::string host;
  std::uint16_t port = 0;
  double connect_timeout = 30;
  std::string starttls;  ///< --starttls: the protocol whose plaintext exchange comes first
  tls_flags tls;
};

void add_common(CLI::App& sub, connect_flags& f) {
  sub.add_option("HOST", f.host, "server name or address")
      ->required()
      ->check(CLI::Validator(
          [](std::string& host) -> std::string {
            return host.empty() ? "is empty: give the server's name or address" : "";
          },
          "HOST"));
  sub.add_option("PORT", f.port, "server port")->required()->check(whole_number(1, 65535));
  sub.add_option("--connect-timeout", f.connect_timeout,
                 "give up connecting after S seconds (default 30)")
      ->check(seconds_value());
  add_starttls_flag(sub, f.starttls);
  add_tls_flags(sub, f.tls, false);
}

/// Connects and handshakes; `at` follows the phases for the exit status.
ssl_stream open(const connect_flags& f, phase& at, bool verify_optional) {
  auto o = to_options(f.tls, false);
  if (verify_optional && !o.verify) o.verify = verify_mode::optional;
  auto ctx = make_ssl_client_context(o);
  at = phase::connect;
  auto sock = make_socket(active{
      .remote_host = f.host, .remote_port = f.port, .connect_timeout = seconds(f.connect_timeout)});
  at = phase::handshake;
  if (!f.starttls.empty())
    starttls(sock, f.starttls, f.tls.server_name.empty() ? f.host : f.tls.server_name,
             seconds(f.connect_timeout));
  auto tls = make_ssl_client_stream(std::move(sock), ctx);
  tls.set_timeout(seconds(f.connect_timeout));
  tls.do_handshake();  // a --pin is checked inside: a wrong server gets nothing from us
  tls.set_timeout(seconds(f.tls.idle_timeout));
  return tls;
}

std::string when(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

int run_connect(const connect_flags& f) {
  phase at = phase::setup;
  return guarded("connect", at, &f.tls, [&] {
    auto tls = open(f, at, false);
    if (f.tls.verbose) print_handshake(tls, "connect");
    at = phase::transfer;
    relay_stdio(tls, f.tls);
    return ok;
  });
}

int run_info(const connect_flags& f) {
  phase at = phase::setup;
  return guarded("info", at, &f.tls, [&] {
    // Verify, but finish the handshake either way so the verdict can be shown.
    auto tls = open(f, at, true);
    std::cout << "protocol: " << tls.protocol_version() << '\n'
              << "cipher: " << tls.cipher() << '\n'
              << "alpn: " << (tls.alpn_protocol().empty() ? "(none)" : tls.alpn_protocol()) << '\n'
              << "session resumed: " << (tls.session_reused() ? "yes" : "no") << '\n';
    auto chain = tls.peer_chain();
    for (std::size_t i = 0; i < chain.size(); ++i) {
      const auto& c = chain[i];
      std::cout << "certificate " << i << ":\n"
                << "  subject: " << c.subject() << '\n'
                << "  issuer: " << c.issuer() << '\n';
      std::string sans;
      for (const auto& [type, value] : c.subject_alt_names())
        sans += (sans.empty() ? "" : ", ") + type + ":" + value;
      std::cout << "  subject alt names: " << (sans.empty() ? "(none)" : sans) << '\n'
                << "  valid: " << when(c.not_before()) << " to " << when(c.not_after()) << '\n'
                << "  serial: " << c.serial_number() << '\n'
                << "  sha256: " << c.fingerprint_sha256() << '\n';
    }
    auto v = tls.verify_result();
    bool trusted = v.code == 0 && !f.tls.insecure && f.tls.pins.empty() && f.tls.verify != "none";
    if (!f.tls.pins.empty())
      std::cout << "verify: pinned certificate matches\n";
    else if (f.tls.insecure || f.tls.verify == "none")
      std::cout << "verify: not verified (--insecure)\n";
    else if (trusted)
      std::cout << "verify: ok (trusted chain, name matches "
                << (f.tls.server_name.empty() ? f.host : f.tls.server_name) << ")\n";
    else
      std::cout << "verify: FAILED (" << v.code << "): " << v.text << '\n';
    tls.close();
    return (v.code != 0 && !f.tls.insecure && f.tls.pins.empty() && f.tls.verify != "none")
               ? handshake
               : ok;
  });
}

}  // namespace

void add_connect(CLI::App& app, command& chosen) {
  auto f = std::make_shared<connect_flags>();
  auto* sub = app.add_subcommand(
      "connect", "connect with TLS and relay stdin to the server, the server to stdout");
  add_common(*sub, *f);
  add_allow_truncation(*sub, f->tls);
  sub->footer(
      "Examples:\n  printf 'GET / HTTP/1.0\\r\\nHost: example.com\\r\\n\\r\\n' | sslstream connect "
      "example.com 443\n"
      "  sslstream connect localhost 8443 --ca-file server.pem\n"
      "  sslstream connect localhost 8443 --pin sha256:<fingerprint from listen>\n"
      "  sslstream connect myhost 8443 --pin sha256:<current key> --pin sha256:<next key>\n"
      "  sslstream connect db.internal 5433 --cert client.pem --key client.key --ca-file ca.pem\n"
      "  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | sslstream connect old.example 443 "
      "--allow-truncation\n"
      "  sslstream connect mail.example.com 587 --starttls smtp");
  sub->callback([f, &chosen] { chosen = {[f] { return run_connect(*f); }, &f->tls, false}; });
}

void add_info(CLI::App& app, command& chosen) {
  auto f = std::make_shared<connect_flags>();
  auto* sub = app.add_subcommand(
      "info",
      "handshake and show the protocol, cipher, ALPN, the server's chain and the verify result");
  add_common(*sub, *f);
  sub->footer(
      "Examples:\n  sslstream info example.com 443\n"
      "  sslstream info db.example.com 5432 --starttls postgres");
  sub->callback([f, &chosen] { chosen = {[f] { return run_info(*f); }, &f->tls, false}; });
}

}  // namespace cli
