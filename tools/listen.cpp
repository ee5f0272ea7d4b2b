// sslstream listen: a TLS server for one connection (relayed to stdin/stdout) or, with
// --keep-open, for many at once (each echoed, or its bytes copied to stdout).
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "backend.hpp"
#include "cli.hpp"
#include "files.hpp"
#include "keep_open.hpp"

namespace cli {

using namespace sslstream;

namespace {

struct listen_flags {
  std::string host;
  std::uint16_t port = 0;
  std::string port_file;
  std::string cert_out;
  bool keep_open = false;
  bool echo = false;
  bool exit_on_handshake_failure = false;
  unsigned max_connections = 0;
  double handshake_timeout = 30;
  double drain = 10;
  std::size_t max_workers = 64;
  backend_flags backend;  // --forward, --exec
  tls_flags tls;
};

/// --drain: seconds, where 0 means "close at once" (not "no limit", as for the timeouts).
CLI::Validator drain_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        constexpr double day = 24 * 3600;
        char* end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !(v >= 0 && v <= day))
          return "expects seconds from 0 (close the connections at once) to 86400 (a day), "
                 "not '" +
                 text + "'";
        return {};
      },
      "SECONDS");
}

void write_port_file(const std::string& path, std::uint16_t port) {
  // Written whole then moved into place, so a script polling for the file never reads half of
  // it; a stale file (or a symlink planted at the path) is replaced, never written through.
  write_file_atomically(path, std::to_string(port) + "\n", true, "--port-file");
}

void echo(ssl_stream& s) {
  std::vector<std::byte> buf(1 << 16);
  while (auto n = s.read_some(buf)) s.write_all(std::span(buf).first(n));
  s.close();
}

/// The first connection whose handshake completes. One that fails (a TCP health check that
/// connects and closes, a port scanner, a client that gives up) is reported and the next one
/// is awaited, unless --exit-on-handshake-failure.
ssl_stream first_handshake(passive_socket& listener, const ssl_context& ctx, const listen_flags& f,
                           phase& at) {
  for (;;) {
    at = phase::connect;
    auto sock = listener.accept_connection();
    at = phase::handshake;
    std::string peer = sock.remote_host() + ':' + std::to_string(sock.remote_port());
    auto tls = make_ssl_server_stream(std::move(sock), ctx);
    tls.set_timeout(seconds(f.handshake_timeout));
    try {
      tls.do_handshake();
      return tls;
    } catch (const sslstream::error& e) {
      if (f.exit_on_handshake_failure || dynamic_cast<const config_error*>(&e)) throw;
      if (!f.tls.quiet)
        std::cerr << "sslstream listen: " << peer << ": " << explain("listen", at, e).message
                  << " (waiting for the next connection; --exit-on-handshake-failure stops "
                     "here)\n";
    }
  }
}

int run(const listen_flags& f) {
  phase at = phase::setup;
  return guarded("listen", at, &f.tls, [&]() -> int {
    auto o = to_options(f.tls, true);
    std::string self_signed;  // kept across SIGHUP: clients may have pinned it
    if (f.tls.cert.empty()) {
      self_signed = o.certificate_pem = make_self_signed_certificate({});
      auto c = x509_certificate::from_pem(o.certificate_pem);
      if (!f.tls.quiet)
        std::cerr << "using a fresh self-signed certificate for localhost, 127.0.0.1, ::1: sha256:"
                  << c.fingerprint_sha256()
                  << "\n  (connect --pin sha256:" << c.fingerprint_sha256()
                  << " to trust exactly this certificate)\n";
      // With -q the fingerprint is not printed: the certificate itself (never its key) is
      // saved, so a script can still pin it or trust it with --ca-file.
      if (!f.cert_out.empty()) write_file_atomically(f.cert_out, c.to_pem(), true, "--cert-out");
    }
    auto ctx = make_ssl_server_context(o);
    auto handler = make_backend_handler(f.backend, f.tls);
    at = phase::connect;
    auto listener = make_socket(passive{.local_host = f.host, .local_port = f.port});
    auto port = listener.local_port();
    auto announce = [&] {
      if (!f.tls.quiet)
        std::cerr << "listening on " << (f.host.empty() ? "*" : f.host) << ':' << port << std::endl;
      if (!f.port_file.empty()) write_port_file(f.port_file, port);
    };

    if (!f.keep_open) {
      announce();
      auto tls = first_handshake(listener, ctx, f, at);
      listener.close();
      if (f.tls.verbose) print_handshake(tls, "listen");
      at = phase::transfer;
      tls.set_timeout(seconds(f.tls.idle_timeout));
      if (handler) return handler(tls);
      if (f.echo)
        echo(tls);
      else
        relay_stdio(tls, f.tls);
      return ok;
    }

    keep_open_options k;
    k.max_connections = f.max_connections;
    k.handshake_timeout = seconds(f.handshake_timeout);
    k.idle_timeout = seconds(f.tls.idle_timeout);
    k.drain = seconds(f.drain);
    k.tls = &f.tls;
    // SIGHUP: the same flags read again, so whatever they name (certificate, key, CA, ...) is
    // read from its file anew; a self-signed certificate stays the one already announced.
    k.reload = [&f, self_signed] {
      auto fresh = to_options(f.tls, true);
      if (!self_signed.empty()) fresh.certificate_pem = self_signed;
      return make_ssl_server_context(fresh);
    };
    k.max_workers = f.max_workers;
    keep_open_handler h = f.echo ? echo_handler() : stdout_handler();
    if (handler) h = sslstream::server::blocking_handler([handler](ssl_stream& s) { handler(s); });
    return serve_keep_open(std::move(listener), std::move(ctx), k, std::move(h), announce);
  });
}

}  // namespace

void add_listen(CLI::App& app, command& chosen) {
  auto f = std::make_shared<listen_flags>();
  auto* sub = app.add_subcommand(
      "listen",
      "serve TLS on a port: relay one connection to stdin/stdout, or many with --keep-open");
  sub->add_option("--host", f->host, "address to listen on (default: all, IPv6 and IPv4)");
  sub->add_option("--port", f->port, "port (default 0: chosen by the system)")
      ->check(whole_number(0, 65535));
  sub->add_option("--port-file", f->port_file, "write the port to FILE once listening");
  auto* keep_open =
      sub->add_flag("--keep-open", f->keep_open,
                    "serve connections concurrently until SIGTERM or SIGINT (see --drain); SIGHUP "
                    "re-reads the certificate, key and CA files for new connections");
  auto* echo = sub->add_flag("--echo", f->echo, "send each connection's bytes back to it");
  add_backend_flags(*sub, f->backend, echo);
  sub->add_option("--max-workers", f->max_workers,
                  "with --keep-open: threads that serve --forward/--exec connections at once "
                  "(default 64; more wait for one), e.g. --max-workers 256")
      ->check(whole_number(1, 4096))
      ->needs(keep_open);
  sub->add_option("--max-connections", f->max_connections,
                  "with --keep-open: stop after N connections")
      ->check(whole_number(0, 4294967295))
      ->needs(keep_open);
  sub->add_option("--drain", f->drain,
                  "with --keep-open: on SIGTERM or SIGINT, stop accepting and let connections "
                  "finish within S seconds, then close them and exit 0 (default 10)")
      ->check(drain_value())
      ->needs(keep_open);
  sub->add_flag("--exit-on-handshake-failure", f->exit_on_handshake_failure,
                "without --keep-open: exit 4 if the first connection's handshake fails, instead "
                "of waiting for a client that completes one")
      ->excludes(keep_open);
  sub->add_option("--handshake-timeout", f->handshake_timeout,
                  "drop clients that take longer than S seconds to handshake (default 30)")
      ->check(seconds_value());
  add_tls_flags(*sub, f->tls, true);
  sub->add_option("--cert-out", f->cert_out,
                  "without --cert: save the fresh self-signed certificate (PEM, without its "
                  "key) to FILE, replacing it")
      ->excludes(sub->get_option("--cert"));
  // Only the stdin/stdout relay of one connection sends close_notify first.
  add_allow_truncation(*sub, f->tls);
  sub->get_option("--allow-truncation")->excludes(keep_open)->excludes(echo);
  sub->footer(
      "Examples:\n  sslstream listen --port 8443 --echo --keep-open\n"
      "  sslstream listen --cert server.pem --port 8443 < reply.txt\n"
      "  sslstream listen --cert server.pem --verify required --ca-file clients-ca.pem\n"
      "  sslstream listen --cert server.pem --allow-truncation < reply.txt   # for gnutls-cli\n"
      "  sslstream listen --cert server.pem --exit-on-handshake-failure < reply.txt\n"
      "  sslstream listen -q --port 8443 --cert-out listen.pem   # then, elsewhere:\n"
      "    sslstream connect localhost 8443 --ca-file listen.pem\n"
      "  sslstream listen --cert server.pem --port 443 --keep-open --forward 127.0.0.1:8080\n"
      "  sslstream listen --cert server.pem --verify required --ca-file ca.pem --keep-open \\\n"
      "      --exec 'echo \"hello $SSLSTREAM_PEER_SUBJECT\"'\n"
      "  sslstream listen --cert server.pem --keep-open --echo --ticket-keys ticket.key "
      "--ocsp server.ocsp.der");
  sub->callback([f, &chosen] { chosen = {[f] { return run(*f); }, &f->tls, true}; });
}

}  // namespace cli
