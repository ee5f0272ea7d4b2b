// Session ticket keys: loading a shared key file, rotating random keys, and the OpenSSL
// callback that picks the key for each ticket.
#include "ticket_keys.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <sslstream/error.hpp>

#include "config_file.hpp"
#include "context_state.hpp"

namespace sslstream::detail {

namespace {

constexpr const char* how_to_make =
    " (a ticket key file holds one or more 80-byte keys, newest first: make one with "
    "`(umask 077; openssl rand 80 > ticket.key)`, its owner's only, and rotate by putting a "
    "new key in front of the old ones)";

int ticket_cb(SSL* ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
              EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  auto& keys = context_state::of(ssl).tickets;
  // TLS 1.3 sends a resumed client a new ticket only when asked to renew: without one, the
  // client, which uses each ticket once (RFC 8446 §C.4), could not resume again.
  const bool renew = SSL_version(ssl) >= TLS1_3_VERSION;
  return keys ? keys->on_ticket(name, iv, cipher, mac, enc, renew) : -1;
}

}  // namespace

ticket_keys::ticket_keys() : aes_(EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr)) {
  if (!aes_)
    throw config_error(errc::bad_option, "bad-option",
                       "OpenSSL has no AES-256-CBC, which session tickets need");
}

ticket_keys::~ticket_keys() {
  if (!keys_.empty()) OPENSSL_cleanse(keys_.data(), keys_.size() * sizeof(key));
  EVP_CIPHER_free(aes_);
}

std::shared_ptr<ticket_keys> ticket_keys::from_file(const std::string& path) {
  std::string bytes =
      read_secret_file(path, "session ticket key", "ssl_options::ticket_key_file", how_to_make);
  std::shared_ptr<ticket_keys> k(new ticket_keys());
  const bool whole = bytes.size() % key_size == 0;
  if (bytes.empty() || !whole) {
    std::string size = std::to_string(bytes.size());
    OPENSSL_cleanse(bytes.data(), bytes.size());
    throw config_error(errc::bad_file, "bad-file",
                       "the session ticket key file '" + path + "' has " + size +
                           " bytes: " + (whole ? "no key" : "not a multiple of 80") + how_to_make);
  }
  for (std::size_t at = 0; at < bytes.size(); at += key_size) {
    key one{};
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + at;
    std::copy_n(p, 16, one.name.begin());
    std::copy_n(p + 16, 32, one.hmac.begin());
    std::copy_n(p + 48, 32, one.aes.begin());
    k->keys_.push_back(one);
    OPENSSL_cleanse(&one, sizeof one);
  }
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return k;
}

ticket_keys::key ticket_keys::random_key() {
  key k{};
  if (RAND_bytes(k.name.data(), k.name.size()) != 1 ||
      RAND_bytes(k.hmac.data(), k.hmac.size()) != 1 || RAND_bytes(k.aes.data(), k.aes.size()) != 1)
    throw config_error(errc::bad_option, "bad-option",
                       "OpenSSL's random generator failed to make a session ticket key");
  return k;
}

std::shared_ptr<ticket_keys> ticket_keys::rotating(std::chrono::milliseconds every) {
  std::shared_ptr<ticket_keys> k(new ticket_keys());
  k->every_ = every;
  k->start_ = std::chrono::steady_clock::now();
  k->keys_.reserve(2);  // rotation then never allocates (inside OpenSSL's callback)
  k->keys_.push_back(random_key());
  return k;
}

void ticket_keys::rotate_if_due() {
  auto period = (std::chrono::steady_clock::now() - start_) / every_;
  if (period == period_) return;
  key fresh{};
  try {
    fresh = random_key();
  } catch (...) {
    return;  // keep the current key rather than fail the handshake
  }
  // Keys live two periods: the one just ended still decrypts. After a whole period with no
  // handshake, the current key is older than that too and goes with the rest.
  std::size_t keep = period == period_ + 1 ? 1 : 0;
  if (keys_.size() > keep) {
    OPENSSL_cleanse(keys_.data() + keep, (keys_.size() - keep) * sizeof(key));
    keys_.resize(keep);
  }
  keys_.insert(keys_.begin(), fresh);
  OPENSSL_cleanse(&fresh, sizeof fresh);
  period_ = period;
}

int ticket_keys::on_ticket(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                           EVP_MAC_CTX* mac, int enc, bool renew) noexcept {
  key k{};  // a copy, so that the lock of rotating keys is not held through the key setup
  bool newest = true;
  {
    std::unique_lock<std::mutex> lk;
    if (every_.count() > 0) {
      lk = std::unique_lock(m_);
      rotate_if_due();
    }
    auto it = keys_.begin();
    if (!enc) {
      it = std::find_if(keys_.begin(), keys_.end(), [&](const key& c) {
        return CRYPTO_memcmp(c.name.data(), name, c.name.size()) == 0;
      });
      if (it == keys_.end()) return 0;  // rotated out or another fleet's: a full handshake
    }
    k = *it;
    newest = it == keys_.begin();
  }
  int result = -1;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac.data(), k.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (enc) {
    std::memcpy(name, k.name.data(), k.name.size());
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes_)) == 1 &&
        EVP_MAC_CTX_set_params(mac, params) == 1 &&
        EVP_EncryptInit_ex(cipher, aes_, nullptr, k.aes.data(), iv) == 1)
      result = 1;
  } else if (EVP_MAC_CTX_set_params(mac, params) == 1 &&
             EVP_DecryptInit_ex(cipher, aes_, nullptr, k.aes.data(), iv) == 1) {
    // A ticket of an older key is accepted and replaced by one of the newest (2 = renew).
    result = newest && !renew ? 1 : 2;
  }
  OPENSSL_cleanse(&k, sizeof k);
  return result;
}

void ticket_keys::install(SSL_CTX* ctx, std::chrono::seconds lifetime) {
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
  // The session timeout is also the lifetime hint of each ticket (RFC 5077 §3.3, RFC 8446
  // §4.6.1): clients stop offering a ticket when the server would refuse it anyway.
  SSL_CTX_set_timeout(ctx, static_cast<long>(lifetime.count()));
}

}  // namespace sslstream::detail
