// See scenario_peer.hpp.
#include "scenario_peer.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <optional>
#include <stdexcept>
#include <utility>

#include "configs.hpp"
#include "credentials.hpp"
#include "deterministic_rand.hpp"

namespace fuzzing {
namespace {

template <auto F>
struct deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    F(p);
  }
};
using ctx_ptr = std::unique_ptr<SSL_CTX, deleter<SSL_CTX_free>>;
using bio_ptr = std::unique_ptr<BIO, deleter<BIO_free>>;
using x509_ptr = std::unique_ptr<X509, deleter<X509_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY_free>>;

void use_credentials(SSL_CTX* ctx, const char* pem) {
  bio_ptr b(BIO_new_mem_buf(pem, -1));
  x509_ptr cert(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  pkey_ptr key(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!cert || !key || SSL_CTX_use_certificate(ctx, cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key.get()) != 1)
    throw std::runtime_error("fuzzing: the peer's credentials do not load");
}

int select_first(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                 unsigned inlen, void*) {
  if (inlen < 1 || in[0] + 1u > inlen) return SSL_TLSEXT_ERR_NOACK;
  *out = in + 1;
  *outlen = in[0];
  return SSL_TLSEXT_ERR_OK;
}

SSL_CTX* make_peer_context(bool server, unsigned config, bool tls12) {
  deterministic_random("peer context");  // its ticket keys
  ctx_ptr c(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!c) throw std::runtime_error("fuzzing: SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(c.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c.get(), tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  // No state from one input to the next: tickets are issued, never taken back.
  SSL_CTX_set_session_cache_mode(c.get(), SSL_SESS_CACHE_OFF);
  if (server) {
    use_credentials(c.get(), credentials::server_ecdsa);
    SSL_CTX_set_alpn_select_cb(c.get(), select_first, nullptr);
    if (config == 3 || config == 6)
      SSL_CTX_set_verify(c.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
  } else {
    SSL_CTX_set_verify(c.get(), SSL_VERIFY_NONE, nullptr);
    if (config == 2 || config == 6) use_credentials(c.get(), credentials::client_ecdsa);
    if (config == 3)
      SSL_CTX_set_alpn_protos(c.get(), reinterpret_cast<const unsigned char*>("\x08http/1.1"), 9);
  }
  return c.release();
}

/// One input's peer: the script, the SSL object's memory BIOs and the wire.
class driver {
 public:
  driver(SSL* ssl, sslstream::socket_stream& raw, std::span<const std::uint8_t> script)
      : ssl_(ssl), raw_(raw), script_(script) {
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out);  // the SSL object owns both
    in_ = in;
    out_ = out;
  }

  void run() {
    try {
      // Damage first in the script hits the handshake's flights.
      while (pos_ < script_.size() && (script_[pos_] % 16 == static_cast<unsigned>(op::cut) ||
                                       script_[pos_] % 16 == static_cast<unsigned>(op::corrupt)))
        execute(static_cast<op>(u8() % 16));
      if (handshake())
        while (pos_ < script_.size() && execute(static_cast<op>(u8() % 16))) {
        }
      flush();
      end_output();
      drain();
    } catch (const sslstream::error&) {
      // our side closed or reset the connection, or stopped reading for the whole timeout
    }
    try {
      raw_.close();
    } catch (const sslstream::error&) {
    }
    ERR_clear_error();
  }

 private:
  std::uint8_t u8() { return pos_ < script_.size() ? script_[pos_++] : 0; }
  unsigned u16() {
    unsigned lo = u8();
    return lo | unsigned{u8()} << 8;
  }
  std::span<const std::uint8_t> take(std::size_t n) {
    n = std::min(n, script_.size() - pos_);
    auto s = script_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  /// Moves what our side sent into the peer's input BIO: waiting for it (bounded by the raw
  /// socket's timeout) or only what has already arrived. False at end of stream.
  bool pull(bool wait) {
    std::array<std::byte, 16384> buf;
    for (int i = 0; i < 64; ++i) {  // at most 1 MiB a call
      if (!wait || i > 0) {
        pollfd p{raw_.native_handle(), POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) return true;
      }
      auto n = raw_.read_some(buf);
      if (n == 0) return false;
      BIO_write(in_, buf.data(), static_cast<int>(n));
    }
    return true;
  }

  /// Sends what the peer's SSL object wrote, with the pending damage applied.
  void flush() {
    char* p = nullptr;
    long len = BIO_get_mem_data(out_, &p);
    if (len <= 0) return;
    std::string bytes(p, static_cast<std::size_t>(len));
    (void)BIO_reset(out_);
    if (!output_open_) return;
    if (corrupt_) {
      bytes[corrupt_->first % bytes.size()] ^= static_cast<char>(corrupt_->second);
      corrupt_.reset();
    }
    if (cut_) {
      bytes.resize(std::min(*cut_, bytes.size()));
      send(bytes);
      end_output();
      return;
    }
    pull(false);  // take our side's output first, so both never wait on full buffers
    send(bytes);
  }
  void send(std::string_view bytes) {
    raw_.write_all(std::as_bytes(std::span(bytes.data(), bytes.size())));
  }
  void end_output() {
    if (!output_open_) return;
    output_open_ = false;
    raw_.shutdown(sslstream::direction::output);
  }

  bool handshake() {
    for (int round = 0; round < 64; ++round) {
      ERR_clear_error();
      int r = SSL_do_handshake(ssl_);
      flush();
      if (r == 1) return true;
      if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ || !pull(true)) return false;
    }
    return false;
  }

  /// The peer reads everything our side has sent so far and answers what needs an answer.
  void read_ours() {
    pull(false);
    std::array<char, 16384> buf;
    for (int i = 0; i < 1024; ++i)
      if (SSL_read(ssl_, buf.data(), static_cast<int>(buf.size())) <= 0) break;
    ERR_clear_error();
    flush();
  }

  void write(std::span<const char> data) {
    if (!data.empty()) SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
    ERR_clear_error();
  }
  void write_pattern(std::size_t n) {
    n = std::min(n, data_budget_);
    data_budget_ -= n;
    static constexpr std::string_view words = "some words of a line\nand more\r\n  ";
    std::string text(n, ' ');
    for (std::size_t i = 0; i < n; ++i) text[i] = words[i % words.size()];
    write(text);
  }
  bool flood() {
    if (flood_budget_ == 0) return false;
    --flood_budget_;
    return true;
  }
  void key_update(bool requested) {
    SSL_key_update(ssl_, requested ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED);
    SSL_do_handshake(ssl_);
    ERR_clear_error();
  }
  void ticket() {
    if (SSL_is_server(ssl_))
      SSL_new_session_ticket(ssl_);
    else if (SSL_version(ssl_) == TLS1_2_VERSION)
      SSL_renegotiate(ssl_);  // our side must refuse it
    SSL_do_handshake(ssl_);
    ERR_clear_error();
  }

  /// One command; false when the script ends here.
  bool execute(op o) {
    switch (o) {
      case op::data: write_pattern(u16()); break;
      case op::data_from_input: {
        auto b = take(u8());
        write(std::span(reinterpret_cast<const char*>(b.data()), b.size()));
        break;
      }
      case op::fragment: SSL_set_max_send_fragment(ssl_, 512 + u16() % (16384 - 512 + 1)); break;
      case op::key_update: key_update(u8() & 1); break;
      case op::key_updates:
        for (unsigned i = 0, n = u8(); i < n && flood(); ++i) key_update(i & 1);
        break;
      case op::ticket: ticket(); break;
      case op::tickets:
        for (unsigned i = 0, n = u8(); i < n && flood(); ++i) ticket();
        break;
      case op::close_notify:
        SSL_shutdown(ssl_);
        ERR_clear_error();
        break;
      case op::fin:
        flush();
        end_output();
        return false;
      case op::rst: {
        flush();
        linger abort{1, 0};
        ::setsockopt(raw_.native_handle(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
        output_open_ = false;
        raw_.close();
        return false;
      }
      case op::raw: {
        auto b = take(u8());
        flush();
        if (output_open_) send({reinterpret_cast<const char*>(b.data()), b.size()});
        break;
      }
      case op::cut: cut_ = u16(); break;
      case op::corrupt: {
        std::size_t at = u16();
        corrupt_ = {at, static_cast<std::uint8_t>(u8() | 1)};
        break;
      }
      case op::read: read_ours(); break;
      case op::alert: {
        // A record the peer cannot accept (a bad MAC, or an unknown type) behind what it
        // has received: it answers with a fatal alert, encrypted under its current keys.
        const std::uint8_t type = u8();
        const std::uint8_t bogus[] = {type, 3, 3, 0,  17, 1,  2,  3,  4,  5,  6,
                                      7,    8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
        BIO_write(in_, bogus, sizeof bogus);
        read_ours();
        break;
      }
      case op::tiny_records:
        for (unsigned i = 0, n = u8(); i < n && data_budget_ > 0; ++i, --data_budget_) {
          static constexpr char one_of[] = "x\n";
          write(std::span(one_of + i % 2, 1));
        }
        break;
    }
    flush();
    return output_open_ && raw_.native_handle() >= 0;
  }

  /// After the peer's output ended: read until our side closes, so that its writes finish.
  void drain() {
    std::array<std::byte, 16384> buf;
    for (int i = 0; i < 4096; ++i)
      if (raw_.native_handle() < 0 || raw_.read_some(buf) == 0) return;
  }

  SSL* ssl_;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
  sslstream::socket_stream& raw_;
  std::span<const std::uint8_t> script_;
  std::size_t pos_ = 0;
  bool output_open_ = true;
  std::optional<std::size_t> cut_;
  std::optional<std::pair<std::size_t, std::uint8_t>> corrupt_;
  std::size_t data_budget_ = 1 << 20;  // bytes of application data an input may send
  unsigned flood_budget_ = 2048;       // KeyUpdates and tickets an input may send
};

}  // namespace

SSL_CTX* peer_context(bool peer_is_server, unsigned config, bool tls12) {
  static std::array<ctx_ptr, 2 * configurations * 2> made;
  config %= configurations;
  auto& c = made[(peer_is_server ? configurations * 2 : 0) + config * 2 + (tls12 ? 1 : 0)];
  if (!c) c.reset(make_peer_context(peer_is_server, config, tls12));
  return c.get();
}

void run_peer(SSL* ssl, sslstream::socket_stream& raw, std::span<const std::uint8_t> script) {
  driver(ssl, raw, script).run();
}

}  // namespace fuzzing
