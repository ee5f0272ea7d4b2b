// Shared by the subcommands: TLS flags, exit statuses, one-line errors, the stdio relay.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli.hpp"
#include "files.hpp"

namespace cli {

using namespace sslstream;

std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<long long>(s * 1000));
}

CLI::Validator seconds_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        constexpr long long year = 365LL * 24 * 3600;
        char* end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !(v >= 0 && v <= year))
          return "expects seconds from 0 (no limit) to " + std::to_string(year) +
                 " (a year), not '" + text + "'";
        return {};
      },
      "SECONDS");
}

CLI::Validator whole_number(long long min, long long max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE || v < min || v > max)
          return "expects a whole number from " + std::to_string(min) + " to " +
                 std::to_string(max) + ", not '" + text + "'";
        return {};
      },
      "N");
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

void add_tls_flags(CLI::App& app, tls_flags& f, bool server) {
  app.add_option("--cert", f.cert,
                 server ? "certificate (PEM), optionally followed by its key"
                        : "client certificate (PEM) for mutual TLS");
  auto* cert = app.get_option("--cert");
  // Without --cert there is no key to load: a --key or --password would be silently ignored.
  app.add_option("--key", f.key, "private key (PEM) when it is not in the --cert file")
      ->needs(cert);
  auto* pw = app.add_option("--password", f.password,
                            "password of an encrypted private key (visible in ps: prefer "
                            "--password-file or --password-env)")
                 ->needs(cert);
  auto* pw_file = app.add_option("--password-file", f.password_file,
                                 "read the key's password from the first line of FILE, e.g. "
                                 "--password-file ~/.config/server.pass")
                      ->needs(cert)
                      ->excludes(pw);
  app.add_option("--password-env", f.password_env,
                 "read the key's password from environment variable VAR, e.g. "
                 "KEY_PASS=... sslstream ... --password-env KEY_PASS")
      ->needs(cert)
      ->excludes(pw)
      ->excludes(pw_file);
  if (server)
    app.add_option("--verify", f.verify, "client certificates: none (default), optional, required")
        ->check(CLI::IsMember({"none", "optional", "required"}));
  else
    app.add_option("--verify", f.verify, "verify the server: required (default) or none")
        ->check(CLI::IsMember({"none", "required"}));
  app.add_option("--ca-file", f.ca_file,
                 "trusted CA certificates (PEM) instead of the system store");
  app.add_option("--ca-dir", f.ca_dir, "trusted CA directory (OpenSSL hashed)");
  app.add_option("--min-version", f.min_version, "lowest TLS version: 1.2 (default) or 1.3")
      ->check(CLI::IsMember({"1.2", "1.3"}));
  app.add_option("--max-version", f.max_version, "highest TLS version: 1.2 or 1.3 (default)")
      ->check(CLI::IsMember({"1.2", "1.3"}));
  app.add_option("--ciphers", f.ciphers, "OpenSSL cipher list for TLS 1.2");
  app.add_option("--ciphersuites", f.ciphersuites, "TLS 1.3 cipher suites");
  app.add_option("--alpn", f.alpn, "ALPN protocols, comma-separated, most preferred first");
  app.add_option("--idle-timeout", f.idle_timeout,
                 "drop the connection after S idle seconds (--forward, --exec and --accept: 300 "
                 "when not given)")
      ->check(seconds_value());
  app.add_option("--keylog", f.keylog, "append TLS secrets to FILE (SSLKEYLOGFILE format)");
  app.add_flag("-q,--quiet", f.quiet, "print nothing but errors");
  app.add_flag("-v,--verbose", f.verbose, "print the handshake details on stderr");
  if (server) {
    app.add_option("--ticket-keys", f.ticket_keys,
                   "session ticket keys shared by several servers, so each resumes the others' "
                   "sessions: 80-byte keys, newest first, its owner's only (make one: umask "
                   "077; openssl rand 80 > FILE)")
        ->option_text("FILE");
    app.add_option("--ocsp", f.ocsp,
                   "staple this DER OCSP response of --cert to clients that ask for it")
        ->option_text("FILE");
  }
  if (!server) {
    app.add_flag("--insecure", f.insecure, "do not verify the server (anyone can intercept)");
    app.add_option("--server-name", f.server_name, "name to send (SNI) and verify");
    app.add_option("--pin", f.pins,
                   "accept exactly the certificate with this sha256:HEX fingerprint; repeat it "
                   "to accept any of several (key rotation)")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }
}

namespace {

tls_version version(const std::string& v) {
  return v == "1.3" ? tls_version::tls1_3 : tls_version::tls1_2;
}

}  // namespace

std::size_t raise_descriptor_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
    ::getrlimit(RLIMIT_NOFILE, &r);
  }
  return static_cast<std::size_t>(r.rlim_cur);
}

ssl_options to_options(const tls_flags& f, bool server) {
  ssl_options o;
  o.certificate = f.cert;
  o.key = f.key;
  o.certificate_password = f.password;
  if (!f.password_file.empty())
    o.certificate_password = read_first_line(f.password_file, "--password-file");
  if (!f.password_env.empty()) {
    const char* v = std::getenv(f.password_env.c_str());
    if (!v)
      throw config_error(
          errc::bad_password, "bad-password",
          "--password-env: the environment variable '" + f.password_env + "' is not set");
    o.certificate_password = v;
  }
  o.ca_file = f.ca_file;
  o.ca_directory = f.ca_dir;
  if (!f.min_version.empty()) o.min_version = version(f.min_version);
  if (!f.max_version.empty()) o.max_version = version(f.max_version);
  o.ciphers = f.ciphers;
  o.ciphersuites = f.ciphersuites;
  o.alpn = split(f.alpn, ',');
  o.server_name = f.server_name;
  if (f.verify == "none") o.verify = verify_mode::none;
  if (f.verify == "optional") o.verify = verify_mode::optional;
  if (f.verify == "required") o.verify = verify_mode::required;
  if (!server && f.insecure) o.verify = verify_mode::none;
  o.pinned_sha256 = f.pins;
  o.ticket_key_file = f.ticket_keys;
  o.ocsp_response_file = f.ocsp;
  if (!f.keylog.empty()) {
    // The secrets decrypt every captured session: a private file, never through a symlink.
    auto fd = open_private_append(f.keylog, "--keylog");
    auto m = std::make_shared<std::mutex>();
    o.keylog = [fd, m](std::string_view line) {
      std::string text(line);
      text += '\n';
      std::lock_guard lk(*m);
      // One write per line (O_APPEND): lines of concurrent writers never interleave.
      (void)!::write(*fd, text.data(), text.size());
    };
  }
  return o;
}

namespace {

// The library names its options; the tool's users know its flags, which differ by side: the
// server has no --pin or --server-name, and each side limits its handshake with its own flag.
std::string in_flag_words(std::string s, bool server, phase at) {
  const char* timeout = at == phase::transfer ? "--idle-timeout"
                        : server              ? "--handshake-timeout"
                                              : "--connect-timeout";
  const std::pair<const char*, const char*> words[] = {
      {"ssl_options::ca_file", "--ca-file"},
      {"ssl_options::server_name", "--server-name"},
      {"ssl_options::certificate_password", "--password, --password-file or --password-env"},
      {"ssl_options::certificate", "--cert"},
      {"ssl_options::key", "--key"},
      {"ssl_options::crl_file", "a CRL"},
      {"ssl_options::ciphersuites", "--ciphersuites"},
      {"ssl_options::ciphers", "--ciphers"},
      {"ssl_options::max_depth", "the maximum chain depth"},
      {"min_version / max_version", "--min-version / --max-version"},
      {"ciphers / ciphersuites", "--ciphers / --ciphersuites"},
      {"min_version", "--min-version"},
      {"the stream's timeout: set_timeout", timeout},
      {"active::connect_timeout", "--connect-timeout"},
      {"ssl_options::pinned_sha256", "--pin"},
      {"ssl_options::ticket_key_file", "--ticket-keys"},
      {"ssl_options::ocsp_response_file", "--ocsp"},
  };
  for (auto [from, to] : words)
    for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos))
      s.replace(pos, std::strlen(from), to);
  return s;
}

}  // namespace

failure explain(const std::string& cmd, phase at, const std::exception& e) {
  bool server = cmd == "listen";
  int status = other;
  std::string msg = in_flag_words(e.what(), server, at);
  if (auto* v = dynamic_cast<const verify_error*>(&e)) {
    status = handshake;
    long c = v->verify_code();
    if (c == 18 || c == 19) {  // self-signed leaf / self-signed root in the chain
      if (server)
        msg = "certificate verify failed: the client's certificate is self-signed (" +
              v->certificate_subject() +
              "): pass --ca-file FILE with it (or the CA that issued it) to trust it";
      else
        msg = "certificate verify failed: the server's certificate is self-signed (" +
              v->certificate_subject() + "): pass --ca-file FILE to trust it, or --pin sha256:" +
              v->certificate_fingerprint() + " to pin it";
    }
  } else if (dynamic_cast<const config_error*>(&e) ||
             dynamic_cast<const std::invalid_argument*>(&e)) {
    status = usage;
  } else if (auto* t = dynamic_cast<const tls_error*>(&e)) {
    bool handshake_error = t->code() == make_error_code(errc::handshake_failed) ||
                           t->code() == make_error_code(errc::verify_failed);
    status = handshake_error ? handshake : at == phase::transfer ? broken : handshake;
  } else if (dynamic_cast<const socket_error*>(&e)) {
    status = at == phase::transfer ? broken : at == phase::handshake ? handshake : no_connect;
  }
  return {status, msg};
}

int report(const std::string& cmd, phase at, const std::exception& e, const tls_flags*) {
  auto f = explain(cmd, at, e);
  std::cerr << "sslstream " << cmd << ": " << f.message << '\n';
  return f.status;
}

int guarded(const std::string& cmd, const phase& at, const tls_flags* flags,
            const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return report(cmd, at, e, flags);
  }
}

void print_handshake(ssl_stream& s, const std::string& who) {
  std::cerr << who << ": " << s.protocol_version() << ' ' << s.cipher();
  if (auto a = s.alpn_protocol(); !a.empty()) std::cerr << ", ALPN " << a;
  if (s.session_reused()) std::cerr << ", resumed";
  std::cerr << '\n';
  if (auto c = s.peer_certificate())
    std::cerr << who << ": peer " << c->subject() << " (issuer " << c->issuer()
              << ", sha256:" << c->fingerprint_sha256() << ")\n";
  else
    std::cerr << who << ": the peer sent no certificate\n";
  auto v = s.verify_result();
  std::cerr << who << ": verify result " << v.code << " (" << v.text << ")\n";
}

void write_stdout(std::span<const std::byte> data) {
  while (!data.empty()) {
    auto w = ::write(1, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "write to standard output");
    }
    data = data.subspan(static_cast<std::size_t>(w));
  }
}

void abort_connection(ssl_stream& s) noexcept {
  int fd = s.native_handle();
  if (fd < 0) return;
  // The FIN goes out before any close_notify can (the stream's destructor would send one on a
  // healthy connection), and closing with a zero linger then resets the connection.
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::shutdown(fd, SHUT_RDWR);
}

void add_allow_truncation(CLI::App& app, tls_flags& f) {
  app.add_flag("--allow-truncation", f.allow_truncation,
               "accept a peer that closes without close_notify after ours (gnutls-cli, some "
               "HTTP/1.0 servers); otherwise that is exit 5, the data may be truncated");
}

// relay_stdio: relay.cpp, on the relay that --forward, --exec and --accept use too.

std::string printable(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto u = static_cast<unsigned char>(s[i]);
    auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    auto prev = i > 0 ? static_cast<unsigned char>(s[i - 1]) : 0;
    bool c1_utf8 = u == 0xc2 && next >= 0x80 && next < 0xa0;
    // A continuation byte after an ASCII byte (or first) is no UTF-8: a Latin-1 terminal would
    // take 80..9F as C1 controls (9B is CSI).
    bool c1_bare = u >= 0x80 && u < 0xa0 && prev < 0x80;
    if (u < 0x20 || u == 0x7f || c1_utf8 || c1_bare) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
      if (c1_utf8) {  // the pair is one character: show its second byte escaped too
        ++i;
        out += "\\x";
        out += hex[next >> 4];
        out += hex[next & 15];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace cli
