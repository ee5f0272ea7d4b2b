// Fuzz target: certificate, key, CA and CRL files of arbitrary content, loaded the way a user's
// configuration loads them (a file on disk named in ssl_options, or PEM text). The first byte
// picks the role the file plays. A bad file must be a config_error that names it; anything
// else is a finding.
#include <unistd.h>

#include <fstream>
#include <sslstream/sslstream.hpp>
#include <string>

#include "credentials.hpp"

namespace {

using namespace sslstream;

/// One scratch file per fuzzing process, in memory when /dev/shm exists.
const std::string& scratch() {
  static const std::string path = [] {
    std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return dir + "/sslstream-fuzz-files-" + std::to_string(::getpid()) + ".pem";
  }();
  return path;
}

void load(unsigned role, const std::string& path, const std::string& text) {
  ssl_options o;
  switch (role % 9) {
    case 0: (void)x509_certificate::load_pem_chain(path); break;
    case 1: {
      auto c = x509_certificate::from_pem(text);
      (void)c.subject();
      (void)c.issuer();
      (void)c.subject_alt_names();
      (void)c.not_before();
      (void)c.serial_number();
      (void)c.to_der();
      break;
    }
    case 2:  // certificate and key in one file
      o.certificate = path;
      (void)make_ssl_server_context(o);
      break;
    case 3:  // a good certificate, the fuzzed file as its key
      o.certificate_pem = fuzzing::credentials::server_ecdsa;
      o.certificate_pem.erase(o.certificate_pem.find("-----BEGIN PRIVATE KEY-----"));
      o.key = path;
      o.certificate_password = "secret";
      (void)make_ssl_server_context(o);
      break;
    case 4:  // the fuzzed file as the trusted CAs
      o.ca_file = path;
      (void)make_ssl_client_context(o);
      break;
    case 5:  // ... and as a CRL
      o.ca_pem = fuzzing::credentials::server_ecdsa;
      o.crl_check = true;
      o.crl_file = path;
      (void)make_ssl_client_context(o);
      break;
    case 6:  // as extra chain certificates
      o.certificate_pem = fuzzing::credentials::server_ecdsa;
      o.other_certificates = {path};
      (void)make_ssl_server_context(o);
      break;
    case 7:  // as in-memory PEM: certificate and key
      o.certificate_pem = text;
      (void)make_ssl_server_context(o);
      break;
    case 8:  // as in-memory trusted CAs
      o.ca_pem = text;
      (void)make_ssl_client_context(o);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  {
    std::ofstream f(scratch(), std::ios::binary | std::ios::trunc);
    f << text;
  }
  try {
    load(data[0], scratch(), text);
  } catch (const sslstream::config_error&) {
    // the expected outcome of a bad file
  }
  return 0;
}
