// Internal: the keys that encrypt a server's session tickets (RFC 5077 §4's recommended
// format: a 16-byte key name, AES-256-CBC and HMAC-SHA256, as nginx's ssl_session_ticket_key).
//
// Either a fixed list from ssl_options::ticket_key_file, shared by every process that reads
// the same file (the first key encrypts, all decrypt), or one random key per context that is
// replaced every ssl_options::ticket_lifetime, the one before it still decrypting.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sslstream::detail {

class ticket_keys {
 public:
  static constexpr std::size_t key_size = 80;  // name 16, HMAC 32, AES 32 (nginx's layout)

  /// The keys of a ticket key file, newest first; throws config_error naming the file and how
  /// to make one when it is unreadable, empty or not a whole number of keys.
  static std::shared_ptr<ticket_keys> from_file(const std::string& path);
  /// A random key now, replaced by a new one every `every`; tickets of the one before still
  /// decrypt (so a ticket stays usable for at least `every`), older ones do not.
  static std::shared_ptr<ticket_keys> rotating(std::chrono::milliseconds every);

  ticket_keys(const ticket_keys&) = delete;
  ticket_keys& operator=(const ticket_keys&) = delete;
  ~ticket_keys();

  /// Makes `ctx` encrypt and decrypt its tickets with these keys, and gives its sessions (and
  /// the lifetime hint of its tickets) `lifetime`. The keys are found again through the
  /// context's context_state, which must hold them for as long as `ctx` lives.
  static void install(SSL_CTX* ctx, std::chrono::seconds lifetime);

  /// OpenSSL's ticket callback (SSL_CTX_set_tlsext_ticket_key_evp_cb) for these keys; `renew`
  /// asks for a new ticket after every resumption, not only after one with an older key.
  int on_ticket(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                int enc, bool renew) noexcept;

 private:
  struct key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> hmac;
    std::array<unsigned char, 32> aes;
  };
  ticket_keys();
  static key random_key();
  /// Rotating keys: replaces the current key when its period has passed (under m_).
  void rotate_if_due();

  EVP_CIPHER* aes_ = nullptr;  // fetched once, not on every ticket
  std::mutex m_;               // rotating keys only: the keys change under concurrent handshakes
  std::vector<key> keys_;      // newest (encrypting) first
  std::chrono::milliseconds every_{0};  // 0 = a fixed list (from a file)
  std::chrono::steady_clock::time_point start_;
  std::int64_t period_ = 0;  // which period of `every_` keys_[0] was made for
};

}  // namespace sslstream::detail
