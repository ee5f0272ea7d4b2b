// OCSP stapling: checking the response file once, then handing a copy to each handshake that
// asks for it.
#include "ocsp_staple.hpp"

#include <openssl/crypto.h>
#include <openssl/ocsp.h>

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

int status_cb(SSL* ssl, void*) {
  const auto& staple = context_state::of(ssl).ocsp;
  return staple ? staple->on_status_request(ssl) : SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::shared_ptr<ocsp_staple> ocsp_staple::from_file(const std::string& path, X509* leaf) {
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
  // for another one. The serial number is enough to catch a mixed-up file.
  OCSP_SINGLERESP* ours = nullptr;
  for (int i = 0; i < OCSP_resp_count(basic.get()); ++i) {
    OCSP_SINGLERESP* single = OCSP_resp_get0(basic.get(), i);
    ASN1_INTEGER* serial = nullptr;
    if (OCSP_id_get0_info(nullptr, nullptr, nullptr, &serial,
                          const_cast<OCSP_CERTID*>(OCSP_SINGLERESP_get0_id(single))) == 1 &&
        ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(leaf)) == 0)
      ours = single;
  }
  if (!ours) bad(path, "is not about the server's certificate (no status for its serial number)");
  ASN1_GENERALIZEDTIME *this_update = nullptr, *next_update = nullptr;
  int status = OCSP_single_get0_status(ours, nullptr, nullptr, &this_update, &next_update);
  // Clients refuse a certificate whose staple says anything but good: better not to start.
  if (status != V_OCSP_CERTSTATUS_GOOD)
    bad(path, std::string("says the server's certificate is ") + OCSP_cert_status_str(status));
  // Five minutes of clock skew, as OpenSSL's own `ocsp` command allows.
  if (OCSP_check_validity(this_update, next_update, 300, -1) != 1)
    bad(path, "is out of date (its nextUpdate has passed, or its thisUpdate is in the future)");
  ERR_clear_error();
  return out;
}

void ocsp_staple::install(SSL_CTX* ctx) { SSL_CTX_set_tlsext_status_cb(ctx, status_cb); }

int ocsp_staple::on_status_request(SSL* ssl) const noexcept {
  // Another certificate of the context (another key type or name) has no response here.
  if (SSL_get_certificate(ssl) != leaf_) return SSL_TLSEXT_ERR_NOACK;
  void* copy = OPENSSL_memdup(der_.data(), der_.size());
  if (!copy) return SSL_TLSEXT_ERR_NOACK;
  if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(der_.size())) != 1) {
    OPENSSL_free(copy);
    return SSL_TLSEXT_ERR_NOACK;
  }
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace sslstream::detail
