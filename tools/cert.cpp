// sslstream cert: a self-signed certificate followed by its key, ready for `listen --cert`.
#include <iostream>
#include <span>

#include "cli.hpp"
#include "files.hpp"

namespace cli {

using namespace sslstream;

namespace {

struct cert_flags {
  std::string out;
  std::string cn = "localhost";
  std::string san;
  int days = 365;
  // ECDSA P-256, as the library's self_signed_options: a server's handshakes cost several times
  // less CPU than with RSA-2048, and every TLS 1.2/1.3 client supports it.
  std::string key_type = "ec256";
  bool quiet = false;
  bool force = false;
};

int run(const cert_flags& f) {
  phase at = phase::setup;
  return guarded("cert", at, nullptr, [&] {
    self_signed_options o;
    o.common_name = f.cn;
    o.days = f.days;
    o.key = f.key_type == "ec256" ? self_signed_options::key_type::ec256
                                  : self_signed_options::key_type::rsa2048;
    if (!f.san.empty()) {
      o.alt_names.clear();
      // Spaces around a name are allowed; a space inside one is the library's to reject, not
      // ours to remove.
      for (const auto& piece : split(f.san, ',')) {
        auto first = piece.find_first_not_of(' ');
        if (first != std::string::npos)
          o.alt_names.push_back(piece.substr(first, piece.find_last_not_of(' ') - first + 1));
      }
    } else {
      o.alt_names = {f.cn};
    }
    std::string pem = make_self_signed_certificate(o);
    if (f.out == "-") {
      write_stdout(std::as_bytes(std::span(pem)));
    } else {
      // The file holds a private key: mode 0600 from the start, written whole, never through a
      // symlink, and an existing file is only replaced when asked.
      write_file_atomically(f.out, pem, f.force, "--out");
    }
    if (!f.quiet) {
      auto c = x509_certificate::from_pem(pem);
      std::cerr << "wrote " << (f.out == "-" ? "the certificate and its key to stdout" : f.out)
                << ": " << c.subject() << ", valid " << f.days
                << " days, sha256:" << c.fingerprint_sha256() << '\n';
    }
    return ok;
  });
}

}  // namespace

void add_cert(CLI::App& app, command& chosen) {
  auto f = std::make_shared<cert_flags>();
  auto* sub =
      app.add_subcommand("cert", "write a self-signed certificate followed by its key (mode 0600)");
  sub->add_option("--out", f->out,
                  "file to write (mode 0600; an existing one is refused without --force), or - "
                  "for stdout")
      ->required();
  sub->add_flag("--force", f->force,
                "replace an existing --out file (a symlink is replaced, "
                "not followed)");
  sub->add_option("--cn", f->cn, "common name (default localhost)");
  sub->add_option(
      "--san", f->san,
      "subject alternative names, comma-separated: names and IP addresses (default: the CN)");
  sub->add_option("--days", f->days, "validity in days (default 365)")
      ->check(whole_number(1, self_signed_options::max_days));
  sub->add_option(
         "--key-type", f->key_type,
         "ec256 (default: ECDSA P-256, cheaper handshakes) or rsa2048 (for peers that want RSA)")
      ->check(CLI::IsMember({"rsa2048", "ec256"}));
  sub->add_flag("-q,--quiet", f->quiet, "print nothing but errors");
  sub->footer(
      "Examples:\n  sslstream cert --out server.pem --cn myhost --san myhost,127.0.0.1 && "
      "sslstream "
      "listen --cert server.pem\n"
      "  sslstream cert --out server.pem --force     # replace the old one\n"
      "  sslstream cert --out - | ssh host 'umask 077; cat > server.pem'");
  sub->callback([f, &chosen] { chosen = {[f] { return run(*f); }}; });
}

}  // namespace cli
