// make_self_signed_certificate: a throwaway identity for tests and quick servers.
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <sslstream/error.hpp>
#include <sslstream/socket.hpp>
#include <sslstream/x509.hpp>
#include <string>
#include <string_view>

#include "ossl.hpp"

namespace sslstream {
namespace {

[[noreturn]] void fail(const std::string& what) {
  std::string q = detail::drain_errors();
  throw config_error(
      errc::bad_option, "bad-option",
      "cannot make a self-signed certificate: " + what + (q.empty() ? "" : " [" + q + "]"));
}

void add_ext(X509* x, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!e) fail("bad extension value '" + value + "'");
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

/// A host name as certificates carry it (RFC 1123 labels: letters, digits and inner hyphens,
/// 1 to 63 each, 253 in all), optionally "*." and then such a name.
bool is_dns_name(std::string_view n) {
  if (n.rfind("*.", 0) == 0) n.remove_prefix(2);
  if (n.empty() || n.size() > 253) return false;
  std::size_t label = 0;
  char prev = '.';
  for (char c : n) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (c == '.') {
      if (prev == '.' || prev == '-') return false;
      label = 0;
    } else if (alnum || (c == '-' && prev != '.')) {
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return prev != '.' && prev != '-';
}

std::string san_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (n.empty()) continue;
    bool dns = n.rfind("DNS:", 0) == 0, ip = n.rfind("IP:", 0) == 0;
    std::string value = dns ? n.substr(4) : ip ? n.substr(3) : n;
    if (!dns && (ip || is_ip_address(value))) {
      if (!is_ip_address(value)) fail("'" + value + "' is not an IP address");
      ip = true;
    } else if (!is_dns_name(value)) {
      fail("'" + value +
           "' is neither a host name (letters, digits, hyphens and dots) nor an IP address");
    }
    if (!out.empty()) out += ',';
    out += (ip ? "IP:" : "DNS:") + value;
  }
  return out;
}

}  // namespace

std::string make_self_signed_certificate(const self_signed_options& o) {
  constexpr int max_days = self_signed_options::max_days;
  if (o.days < 1 || o.days > max_days)
    fail("the validity must be 1 to " + std::to_string(max_days) + " days, not " +
         std::to_string(o.days));
  std::string sans = san_list(o.alt_names);  // checked before the costly key generation
  detail::evp_pkey_ptr key(o.key == self_signed_options::key_type::rsa2048 ? EVP_RSA_gen(2048)
                                                                           : EVP_EC_gen("P-256"));
  if (!key) fail("key generation failed");
  detail::x509_ptr x(X509_new());
  X509_set_version(x.get(), X509_VERSION_3);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // a positive INTEGER (RFC 5280 §4.1.2.2)
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -300);  // tolerate a peer's slightly slow clock
  if (!X509_time_adj_ex(X509_getm_notAfter(x.get()), o.days, 0, nullptr))
    fail("cannot set the end of validity");
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(o.common_name.c_str()), -1,
                                 -1, 0) != 1)
    fail("bad common name '" + o.common_name + "'");
  X509_set_issuer_name(x.get(), name);
  add_ext(x.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(x.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_ext(x.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(x.get(), NID_subject_key_identifier, "hash");
  if (!sans.empty()) add_ext(x.get(), NID_subject_alt_name, sans);
  if (X509_sign(x.get(), key.get(), EVP_sha256()) <= 0) fail("signing failed");

  detail::bio_ptr b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(b.get(), x.get()) ||
      !PEM_write_bio_PrivateKey(b.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr))
    fail("cannot write the certificate as PEM");
  return detail::bio_to_string(b.get());
}

}  // namespace sslstream
