// sslstream/x509.hpp — a read-only view of an X.509 certificate (Allegro's x509-certificate).
//
//   if (auto cert = stream.peer_certificate())
//     std::cout << cert->subject() << " expires " << cert->not_after() << '\n';
//
// A cheap, copyable handle (it shares the underlying certificate, which never changes), safe to
// read from any number of threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sslstream {

class x509_certificate {
 public:
  using entry = std::pair<std::string, std::string>;  ///< ("CN", "localhost"), ("DNS", "a.b")

  /// The first certificate of a PEM file. Throws config_error if there is none.
  static x509_certificate load_pem_file(const std::string& path);
  /// Every certificate of a PEM file, in order.
  static std::vector<x509_certificate> load_pem_chain(const std::string& path);
  /// The first certificate of PEM text.
  static x509_certificate from_pem(const std::string& pem);

  std::string subject() const;  ///< RFC 2253 one-line form, e.g. "CN=localhost,O=Example"
  std::string issuer() const;
  std::vector<entry> subject_entries() const;  ///< attribute/value pairs, in certificate order
  std::vector<entry> issuer_entries() const;
  std::string serial_number() const;  ///< upper-case hex, as `openssl x509 -serial` shows it
  std::chrono::system_clock::time_point not_before() const;
  std::chrono::system_clock::time_point not_after() const;
  /// ("DNS", name), ("IP", address), ("email", ...), ("URI", ...), in certificate order.
  std::vector<entry> subject_alt_names() const;
  std::string fingerprint_sha256() const;  ///< lower-case hex of SHA-256 over the DER form
  /// Lower-case hex of SHA-1 over the DER form: only to match older tools and inventories
  /// that still name certificates this way (SHA-1 is broken; pins use SHA-256).
  std::string fingerprint_sha1() const;
  /// The public key's algorithm as OpenSSL names it: "RSA", "EC", "ED25519", "ED448",
  /// "RSA-PSS", "DSA"; "" when the key cannot be decoded.
  std::string key_type() const;
  /// The public key's size in bits (2048 for RSA-2048, 256 for P-256, 253 for Ed25519);
  /// 0 when the key cannot be decoded.
  int key_bits() const;
  /// The curve of an EC key as OpenSSL names it ("prime256v1", "secp384r1"); "" for others.
  std::string key_group() const;
  /// The algorithm the issuer signed this certificate with, as `openssl x509 -text` names it:
  /// "ecdsa-with-SHA256", "sha256WithRSAEncryption", "ED25519", "rsassaPss".
  std::string signature_algorithm() const;
  int version() const;  ///< 1, 2 or 3
  std::string to_pem() const;
  std::string to_der() const;

  /// The OpenSSL X509* (still owned by this object); the one escape hatch.
  void* native_handle() const noexcept { return cert_.get(); }
  /// Adopts a reference to an X509* (the caller keeps its own reference).
  static x509_certificate from_native(void* x509);

 private:
  explicit x509_certificate(std::shared_ptr<void> cert) : cert_(std::move(cert)) {}
  std::shared_ptr<void> cert_;  // X509*, freed with X509_free
};

/// What make_self_signed_certificate makes.
struct self_signed_options {
  std::string common_name = "localhost";
  /// Host names and IP addresses for the subjectAltName ("DNS:" / "IP:" prefixes optional).
  std::vector<std::string> alt_names = {"localhost", "127.0.0.1", "::1"};
  /// 100 years: far past any use, well inside X.509's year 9999.
  static constexpr int max_days = 36500;
  int days = 365;  ///< 1 to max_days
  enum class key_type { rsa2048, ec256 } key = key_type::ec256;
};

/// A fresh key and a self-signed certificate for it (v3, SHA-256, serverAuth and clientAuth),
/// as PEM text: the certificate followed by its unencrypted private key — the form
/// ssl_options::certificate_pem and the `certificate` file take. Throws config_error for a bad
/// name (an alt name must be a host name, "*." and a host name, or an IP address), a validity
/// out of range, or a failure to make the key.
std::string make_self_signed_certificate(const self_signed_options& options);

}  // namespace sslstream
