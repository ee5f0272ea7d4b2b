// x509_certificate: read-only accessors over an X509*.
#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <sslstream/error.hpp>
#include <sslstream/x509.hpp>

#include "ossl.hpp"

namespace sslstream {
namespace {

X509* raw(const std::shared_ptr<void>& p) { return static_cast<X509*>(p.get()); }

std::shared_ptr<void> adopt(X509* x) {
  return std::shared_ptr<void>(x, [](void* p) { X509_free(static_cast<X509*>(p)); });
}

std::string utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) return {};
  std::string r(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return r;
}

std::string name_line(const X509_NAME* name) {
  detail::bio_ptr b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  return detail::bio_to_string(b.get());
}

std::vector<x509_certificate::entry> name_entries(const X509_NAME* name) {
  std::vector<x509_certificate::entry> out;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    const char* sn = nid == NID_undef ? nullptr : OBJ_nid2sn(nid);
    char oid[80];
    if (!sn) {
      OBJ_obj2txt(oid, sizeof oid, X509_NAME_ENTRY_get_object(e), 1);
      sn = oid;
    }
    out.emplace_back(sn, utf8(X509_NAME_ENTRY_get_data(e)));
  }
  return out;
}

std::chrono::system_clock::time_point to_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string hex(const unsigned char* p, std::size_t n, bool upper) {
  static const char* lower_digits = "0123456789abcdef";
  static const char* upper_digits = "0123456789ABCDEF";
  const char* d = upper ? upper_digits : lower_digits;
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += d[p[i] >> 4];
    out += d[p[i] & 15];
  }
  return out;
}

std::vector<x509_certificate> read_pem(BIO* b, const std::string& origin) {
  std::vector<x509_certificate> out;
  while (X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) {
    auto c = x509_certificate::from_native(x);
    X509_free(x);
    out.push_back(std::move(c));
  }
  ERR_clear_error();  // the loop always ends with a "no start line" error
  if (out.empty())
    throw config_error(
        errc::bad_certificate, "bad-certificate",
        "no PEM certificate in " + origin + " (expected a '-----BEGIN CERTIFICATE-----' block)");
  return out;
}

}  // namespace

x509_certificate x509_certificate::from_native(void* x509) {
  X509_up_ref(static_cast<X509*>(x509));
  return x509_certificate(adopt(static_cast<X509*>(x509)));
}

std::vector<x509_certificate> x509_certificate::load_pem_chain(const std::string& path) {
  detail::bio_ptr b(BIO_new_file(path.c_str(), "r"));
  if (!b) {
    int err = errno;
    ERR_clear_error();
    throw config_error(errc::bad_file, "bad-file",
                       "cannot open certificate file '" + path + "': " + std::strerror(err));
  }
  return read_pem(b.get(), "'" + path + "'");
}

x509_certificate x509_certificate::load_pem_file(const std::string& path) {
  return load_pem_chain(path).front();
}

x509_certificate x509_certificate::from_pem(const std::string& pem) {
  detail::bio_ptr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return read_pem(b.get(), "the PEM text").front();
}

std::string x509_certificate::subject() const {
  return name_line(X509_get_subject_name(raw(cert_)));
}
std::string x509_certificate::issuer() const { return name_line(X509_get_issuer_name(raw(cert_))); }
std::vector<x509_certificate::entry> x509_certificate::subject_entries() const {
  return name_entries(X509_get_subject_name(raw(cert_)));
}
std::vector<x509_certificate::entry> x509_certificate::issuer_entries() const {
  return name_entries(X509_get_issuer_name(raw(cert_)));
}

std::string x509_certificate::serial_number() const {
  const ASN1_INTEGER* s = X509_get0_serialNumber(raw(cert_));
  return hex(s->data, static_cast<std::size_t>(s->length), true);
}

std::chrono::system_clock::time_point x509_certificate::not_before() const {
  return to_time(X509_get0_notBefore(raw(cert_)));
}
std::chrono::system_clock::time_point x509_certificate::not_after() const {
  return to_time(X509_get0_notAfter(raw(cert_)));
}

std::vector<x509_certificate::entry> x509_certificate::subject_alt_names() const {
  std::vector<entry> out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(raw(cert_), NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    switch (g->type) {
      case GEN_DNS: out.emplace_back("DNS", utf8(g->d.dNSName)); break;
      case GEN_EMAIL: out.emplace_back("email", utf8(g->d.rfc822Name)); break;
      case GEN_URI: out.emplace_back("URI", utf8(g->d.uniformResourceIdentifier)); break;
      case GEN_IPADD: {
        char text[INET6_ADDRSTRLEN] = "";
        const ASN1_OCTET_STRING* ip = g->d.iPAddress;
        if (ip->length == 4) inet_ntop(AF_INET, ip->data, text, sizeof text);
        if (ip->length == 16) inet_ntop(AF_INET6, ip->data, text, sizeof text);
        out.emplace_back("IP", text);
        break;
      }
      default: break;
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string x509_certificate::fingerprint_sha256() const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(raw(cert_), EVP_sha256(), md, &n);
  return hex(md, n, false);
}

std::string x509_certificate::fingerprint_sha1() const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(raw(cert_), EVP_sha1(), md, &n);
  return hex(md, n, false);
}

std::string x509_certificate::key_type() const {
  // get0: the key stays owned by the certificate.
  EVP_PKEY* k = X509_get0_pubkey(raw(cert_));
  const char* name = k ? EVP_PKEY_get0_type_name(k) : nullptr;
  ERR_clear_error();
  return name ? name : "";
}

int x509_certificate::key_bits() const {
  EVP_PKEY* k = X509_get0_pubkey(raw(cert_));
  ERR_clear_error();
  return k ? EVP_PKEY_get_bits(k) : 0;
}

std::string x509_certificate::key_group() const {
  EVP_PKEY* k = X509_get0_pubkey(raw(cert_));
  char name[80] = "";
  std::size_t len = 0;
  // Only EC keys have a named group worth showing (DH/FFC groups never sign certificates).
  if (!k || !EVP_PKEY_is_a(k, "EC") || EVP_PKEY_get_group_name(k, name, sizeof name, &len) != 1)
    name[0] = '\0';
  ERR_clear_error();
  return name;
}

std::string x509_certificate::signature_algorithm() const {
  int nid = X509_get_signature_nid(raw(cert_));
  if (nid != NID_undef) return OBJ_nid2ln(nid);
  // An algorithm OpenSSL has no name for: its OID in dotted form.
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(nullptr, &alg, raw(cert_));
  const ASN1_OBJECT* oid = nullptr;
  X509_ALGOR_get0(&oid, nullptr, nullptr, alg);
  char text[80] = "";
  if (oid) OBJ_obj2txt(text, sizeof text, oid, 1);
  return text;
}

int x509_certificate::version() const { return static_cast<int>(X509_get_version(raw(cert_))) + 1; }

std::string x509_certificate::to_pem() const {
  detail::bio_ptr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), raw(cert_));
  return detail::bio_to_string(b.get());
}

std::string x509_certificate::to_der() const {
  unsigned char* out = nullptr;
  int n = i2d_X509(raw(cert_), &out);
  if (n < 0) return {};
  std::string r(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return r;
}

}  // namespace sslstream
