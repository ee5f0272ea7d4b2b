// sslstream connect: a TLS client relaying stdin to the server and the server to stdout.
#include <iostream>

#include "client.hpp"
#include "starttls.hpp"
#include "tunnel.hpp"

namespace cli {

using namespace sslstream;

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

socket_stream dial(const connect_flags& f, phase& at) {
  at = phase::connect;
  auto sock = make_socket(active{
      .remote_host = f.host, .remote_port = f.port, .connect_timeout = seconds(f.connect_timeout)});
  at = phase::handshake;
  if (!f.starttls.empty())
    starttls(sock, f.starttls, f.tls.server_name.empty() ? f.host : f.tls.server_name,
             seconds(f.connect_timeout));
  return sock;
}

ssl_stream open(const connect_flags& f, phase& at, bool verify_optional, bool request_ocsp) {
  auto o = to_options(f.tls, false);
  if (verify_optional && !o.verify) o.verify = verify_mode::optional;
  o.request_ocsp = request_ocsp;
  auto ctx = make_ssl_client_context(o);
  auto sock = dial(f, at);
  auto tls = make_ssl_client_stream(std::move(sock), ctx);
  tls.set_timeout(seconds(f.connect_timeout));
  tls.do_handshake();  // a --pin is checked inside: a wrong server gets nothing from us
  tls.set_timeout(seconds(f.tls.idle_timeout));
  return tls;
}

namespace {

int run_connect(const connect_flags& f) {
  if (!f.accept.accept.empty())
    return serve_tunnel(f.accept, f.host, f.port, seconds(f.connect_timeout), f.tls);
  phase at = phase::setup;
  return guarded("connect", at, &f.tls, [&] {
    auto tls = open(f, at, false);
    if (f.tls.verbose) print_handshake(tls, "connect");
    at = phase::transfer;
    relay_stdio(tls, f.tls);
    return ok;
  });
}

}  // namespace

void add_connect(CLI::App& app, command& chosen) {
  auto f = std::make_shared<connect_flags>();
  auto* sub = app.add_subcommand(
      "connect", "connect with TLS and relay stdin to the server, the server to stdout");
  add_common(*sub, *f);
  add_allow_truncation(*sub, f->tls);
  add_accept_flags(*sub, f->accept);
  sub->footer(
      "Examples:\n  printf 'GET / HTTP/1.0\\r\\nHost: example.com\\r\\n\\r\\n' | sslstream connect "
      "example.com 443\n"
      "  sslstream connect localhost 8443 --ca-file server.pem\n"
      "  sslstream connect localhost 8443 --pin sha256:<fingerprint from listen>\n"
      "  sslstream connect myhost 8443 --pin sha256:<current key> --pin sha256:<next key>\n"
      "  sslstream connect db.internal 5433 --cert client.pem --key client.key --ca-file ca.pem\n"
      "  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | sslstream connect old.example 443 "
      "--allow-truncation\n"
      "  sslstream connect mail.example.com 587 --starttls smtp\n"
      "  sslstream connect mail.example 993 --accept 1143   # then: curl imap://127.0.0.1:1143/\n"
      "  sslstream connect localhost 8443 --ca-file ca.pem --accept 127.0.0.1:0 --port-file p");
  sub->callback([f, &chosen] { chosen = {[f] { return run_connect(*f); }, &f->tls, false}; });
}

}  // namespace cli
