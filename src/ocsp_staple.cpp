// OCSP stapling: checking the response file once, then handing a copy to each handshake that
// asks for it.
#include "ocsp_staple.hpp"

#include <openssl/crypto.h>
#include <openssl/ocsp.h>
#include <openssl/x509_vfy.h>

#include <ctime>
#include <sslstream/error.hpp>

#include "config_file.hpp"
#include "context_state.hpp"
#include "ossl.hpp"

namespace sslstream::detail {

namespace {

using ocsp_response_ptr = std::unique_ptr<OCSP_RESPONSE, ossl_deleter<OCSP_RESPONSE_free>>;
using ocsp_basic_ptr = std::unique_ptr<OCSP_BASICRESP, ossl_deleter<OCSP_BASICRESP_free>>;

constexpr const char* how_to_get =
    " (ssl_options::ocsp_response_file takes the DER response of the certificate's OCSP "
    "responder, e.g. `openssl ocsp -issuer ca.pem -cert server.pem -url URL -respout "
    "response.der`, fetched again before it expires)";

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  ERR_clear_error();
  throw config_error(errc::bad_file, "bad-file",
                     "the OCSP response file '" + path + "' " + what + how_to_get);
}

/// The certificate of `chain`, or else of `store`, that issued `leaf`; null when neither has it.
x509_ptr find_issuer(X509* leaf, STACK_OF(X509) * chain, X509_STORE* store) {
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    if (X509_check_issued(c, leaf) == X509_V_OK && X509_up_ref(c) == 1) return x509_ptr(c);
  }
  X509* found = nullptr;
  if (store) {
    std::unique_ptr<X509_STORE_CTX, ossl_deleter<X509_STORE_CTX_free>> sctx(X509_STORE_CTX_new());
    if (sctx && X509_STORE_CTX_init(sctx.get(), store, leaf, nullptr) == 1 &&
        X509_STORE_CTX_get1_issuer(&found, sctx.get(), leaf) != 1)
      found = nullptr;
  }
  ERR_clear_error();
  return x509_ptr(found);
}

/// Whether the CertID `id` names `leaf`: its serial number and, hashed with the CertID's own
/// digest, its issuer's name and public key (RFC 6960 §4.1.1). Without the issuer certificate,
/// the serial number and the issuer's name, which `leaf` itself carries.
bool is_about(const OCSP_CERTID* id, X509* leaf, X509* issuer) {
  ASN1_OCTET_STRING* name_hash = nullptr;
  ASN1_OBJECT* digest = nullptr;
  ASN1_INTEGER* serial = nullptr;
  auto* cid = const_cast<OCSP_CERTID*>(id);
  if (OCSP_id_get0_info(&name_hash, &digest, nullptr, &serial, cid) != 1 ||
      ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(leaf)) != 0)
    return false;
  const EVP_MD* md = EVP_get_digestbyobj(digest);
  if (!md) return false;
  if (issuer) {
    std::unique_ptr<OCSP_CERTID, ossl_deleter<OCSP_CERTID_free>> want(
        OCSP_cert_to_id(md, leaf, issuer));
    return want && OCSP_id_cmp(want.get(), cid) == 0;
  }
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  return X509_NAME_digest(X509_get_issuer_name(leaf), md, hash, &len) == 1 &&
         ASN1_STRING_length(name_hash) == static_cast<int>(len) &&
         CRYPTO_memcmp(ASN1_STRING_get0_data(name_hash), hash, len) == 0;
}

int status_cb(SSL* ssl, void*) {
  const auto& staple = context_state::of(ssl).ocsp;
  return staple ? staple->on_status_request(ssl) : SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::shared_ptr<ocsp_staple> ocsp_staple::from_file(const std::string& path, X509* leaf,
                                                    STACK_OF(X509) * chain, X509_STORE* store) {
  auto out = std::make_shared<ocsp_staple>();
  out->der_ =
      read_config_file(path, "OCSP response", "ssl_options::ocsp_response_file", how_to_get);
  out->leaf_ = leaf;
  const auto* p = reinterpret_cast<const unsigned char*>(out->der_.data());
  ocsp_response_ptr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(out->der_.size())));
  if (!resp || p != reinterpret_cast<const unsigned char*>(out->der_.data()) + out->der_.size())
    bad(path, "is not a DER OCSP response");
  if (int st = OCSP_response_status(resp.get()); st != OCSP_RESPONSE_STATUS_SUCCESSFUL)
    bad(path, std::string("reports no certificate status: the responder said '") +
                  OCSP_response_status_str(st) + "'");
  ocsp_basic_ptr basic(OCSP_response_get1_basic(resp.get()));
  if (!basic) bad(path, "has no basic OCSP response");
  if (!leaf) bad(path, "is given, but the context has no certificate for it to be about");
  // The response must be about our certificate: a client rejects the handshake on a staple
  // for another one, and a serial number alone is only unique per issuer.
  x509_ptr issuer = find_issuer(leaf, chain, store);
  OCSP_SINGLERESP* ours = nullptr;
  for (int i = 0; i < OCSP_resp_count(basic.get()) && !ours; ++i) {
    OCSP_SINGLERESP* single = OCSP_resp_get0(basic.get(), i);
    if (is_about(OCSP_SINGLERESP_get0_id(single), leaf, issuer.get())) ours = single;
  }
  if (!ours)
    bad(path, issuer ? "is not about the server's certificate (no status for its issuer and "
                       "serial number)"
                     : "is not about the server's certificate (no status for its issuer's name "
                       "and its serial number)");
  ASN1_GENERALIZEDTIME *this_update = nullptr, *next_update = nullptr;
  int status = OCSP_single_get0_status(ours, nullptr, nullptr, &this_update, &next_update);
  // Clients refuse a certificate whose staple says anything but good: better not to start.
  if (status != V_OCSP_CERTSTATUS_GOOD)
    bad(path, std::string("says the server's certificate is ") + OCSP_cert_status_str(status));
  if (next_update) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(next_update, &tm) != 1) bad(path, "has a malformed nextUpdate");
    out->next_update_ = timegm(&tm);
  }
  // Five minutes of clock skew for thisUpdate, as OpenSSL's own `ocsp` command allows; none
  // for nextUpdate, past which clients take the response for stale.
  if (OCSP_check_validity(this_update, next_update, 300, -1) != 1 ||
      !out->current_at(std::time(nullptr)))
    bad(path, "is out of date (its nextUpdate has passed, or its thisUpdate is in the future)");
  ERR_clear_error();
  return out;
}

bool ocsp_staple::current_at(std::time_t now) const noexcept {
  // Without a nextUpdate the responder promises nothing about fresher information (RFC 6960
  // §2.4): the response never goes stale by itself.
  return !next_update_ || now < *next_update_;
}

void ocsp_staple::install(SSL_CTX* ctx) { SSL_CTX_set_tlsext_status_cb(ctx, status_cb); }

int ocsp_staple::on_status_request(SSL* ssl) const noexcept {
  // Another certificate of the context (another key type or name) has no response here.
  if (SSL_get_certificate(ssl) != leaf_) return SSL_TLSEXT_ERR_NOACK;
  // A context outlives its response's nextUpdate unless reloaded in time: a stale staple is
  // no proof of status, and a client may fail the handshake on it, so none is better.
  if (!current_at(std::time(nullptr))) return SSL_TLSEXT_ERR_NOACK;
  void* copy = OPENSSL_memdup(der_.data(), der_.size());
  if (!copy) return SSL_TLSEXT_ERR_NOACK;
  if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(der_.size())) != 1) {
    OPENSSL_free(copy);
    return SSL_TLSEXT_ERR_NOACK;
  }
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace sslstream::detail
