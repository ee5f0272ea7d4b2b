// ssl_stream: the std::iostream face of the TLS engine, its factories and its accessors.
#include <arpa/inet.h>
#include <openssl/pem.h>
#include <poll.h>
#include <sys/socket.h>

#include <ostream>
#include <stdexcept>

#include "tls_impl.hpp"

namespace sslstream {

using detail::tls_impl;

namespace {

constexpr std::chrono::seconds default_close_timeout{10};

ssl_stream make_stream(socket_stream&& socket, const ssl_context& ctx) {
  auto& s = socket.impl_for_handover();
  s.buf.flush_output();  // plain-text bytes written before STARTTLS go out first, in order
  std::string preread = s.buf.take_input();
  auto impl = std::make_unique<tls_impl>(ctx, std::move(s.parts), std::move(preread));
  return ssl_stream(std::move(impl));
}

}  // namespace

ssl_stream make_ssl_server_stream(socket_stream&& socket, const ssl_context& context) {
  if (!context.is_server())
    throw std::invalid_argument("sslstream: make_ssl_server_stream needs a server context");
  return make_stream(std::move(socket), context);
}

ssl_stream make_ssl_server_stream(socket_stream&& socket, const ssl_options& options) {
  return make_stream(std::move(socket), make_ssl_server_context(options));
}

ssl_stream make_ssl_client_stream(socket_stream&& socket, const ssl_context& context) {
  if (context.is_server())
    throw std::invalid_argument("sslstream: make_ssl_client_stream needs a client context");
  return make_stream(std::move(socket), context);
}

ssl_stream make_ssl_client_stream(socket_stream&& socket, const ssl_options& options) {
  return make_stream(std::move(socket), make_ssl_client_context(options));
}

ssl_stream::ssl_stream(std::unique_ptr<tls_impl> impl)
    : duplex_iostream(&impl->buf), impl_(std::move(impl)) {
  exceptions(std::ios::badbit);  // I/O failures reach the caller as the exception itself
}

ssl_stream::ssl_stream(ssl_stream&& o) noexcept
    : duplex_iostream(std::move(o)), impl_(std::move(o.impl_)) {
  set_rdbuf(impl_ ? &impl_->buf : nullptr);
  o.exceptions(std::ios::goodbit);
  o.rdbuf(nullptr);
}

ssl_stream& ssl_stream::operator=(ssl_stream&& o) noexcept {
  if (this != &o) {
    std::iostream::swap(o);
    std::swap(impl_, o.impl_);
    set_rdbuf(impl_ ? &impl_->buf : nullptr);
    o.exceptions(std::ios::goodbit);
    o.rdbuf(o.impl_ ? &o.impl_->buf : nullptr);
    if (o.impl_) o.impl_->close_noexcept();
    o.impl_.reset();  // moved-from: every operation is a logic_error, not the old stream
    o.rdbuf(nullptr);
  }
  return *this;
}

ssl_stream::~ssl_stream() {
  if (impl_) impl_->close_noexcept();
}

static tls_impl& checked(const std::unique_ptr<tls_impl>& p) {
  if (!p) throw std::logic_error("sslstream: use of a moved-from ssl_stream");
  return *p;
}

void ssl_stream::do_handshake() { checked(impl_).handshake(); }
bool ssl_stream::is_server() const noexcept { return impl_ && impl_->server; }

// Each accessor reads the connection under the stream's lock: a reader on another thread may
// be inside SSL_read, which can replace the session (a TLS 1.3 ticket) the accessor looks at.

std::optional<x509_certificate> ssl_stream::peer_certificate() {
  do_handshake();
  detail::x509_ptr x(impl_->locked([](SSL* s) { return SSL_get1_peer_certificate(s); }));
  if (!x) return std::nullopt;
  return x509_certificate::from_native(x.get());
}

std::vector<x509_certificate> ssl_stream::peer_chain() {
  do_handshake();
  return impl_->locked([&](SSL* s) {
    std::vector<x509_certificate> certs;
    // The server side's chain lacks the leaf (SSL_get_peer_cert_chain(3)); put it first.
    if (impl_->server)
      if (X509* leaf = SSL_get0_peer_certificate(s))
        certs.push_back(x509_certificate::from_native(leaf));
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(s);
    for (int i = 0; chain && i < sk_X509_num(chain); ++i)
      certs.push_back(x509_certificate::from_native(sk_X509_value(chain, i)));
    return certs;
  });
}

verify_result_t ssl_stream::verify_result() {
  do_handshake();
  long code = impl_->locked([](SSL* s) { return SSL_get_verify_result(s); });
  return detail::verify_result_of(code);
}

std::string ssl_stream::protocol_version() {
  do_handshake();
  return impl_->locked([](SSL* s) { return std::string(SSL_get_version(s)); });
}

std::string ssl_stream::cipher() {
  do_handshake();
  return impl_->locked([](SSL* s) {
    const char* c = SSL_get_cipher_name(s);
    return std::string(c ? c : "");
  });
}

std::string ssl_stream::alpn_protocol() {
  do_handshake();
  return impl_->locked([](SSL* s) {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(s, &p, &n);
    return std::string(reinterpret_cast<const char*>(p), n);
  });
}

bool ssl_stream::session_reused() {
  do_handshake();
  return impl_->locked([](SSL* s) { return SSL_session_reused(s) == 1; });
}

std::string ssl_stream::server_name() {
  do_handshake();
  return impl_->locked([](SSL* s) {
    const char* n = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    return std::string(n ? n : "");
  });
}

std::string ssl_stream::key_exchange_group() {
  do_handshake();
  return impl_->locked([](SSL* s) {
    int nid = static_cast<int>(SSL_get_negotiated_group(s));
    const char* name = nid > 0 ? SSL_group_to_name(s, nid) : nullptr;
    ERR_clear_error();
    return std::string(name ? name : "");
  });
}

bool ssl_stream::client_certificate_requested() {
  do_handshake();
  // Set by the certificate callback, which OpenSSL runs only after a CertificateRequest.
  return !impl_->server && impl_->cert_requested;
}

std::string ssl_stream::ocsp_status() {
  do_handshake();
  return impl_->locked([](SSL* s) -> std::string {
    const unsigned char* der = nullptr;
    long n = SSL_get_tlsext_status_ocsp_resp(s, &der);
    X509* leaf = SSL_get0_peer_certificate(s);
    if (!der || n <= 0 || !leaf) return "none";
    detail::ocsp_response_ptr resp(d2i_OCSP_RESPONSE(nullptr, &der, n));
    detail::ocsp_basic_ptr basic;
    if (resp && OCSP_response_status(resp.get()) == OCSP_RESPONSE_STATUS_SUCCESSFUL)
      basic.reset(OCSP_response_get1_basic(resp.get()));
    std::string status = "invalid";
    // The entry for our certificate, by serial number: a CertID's hashes depend on the
    // algorithm the responder chose, the serial does not (and the chain's issuer is optional).
    for (int i = 0; basic && i < OCSP_resp_count(basic.get()); ++i) {
      OCSP_SINGLERESP* single = OCSP_resp_get0(basic.get(), i);
      ASN1_INTEGER* serial = nullptr;
      OCSP_id_get0_info(nullptr, nullptr, nullptr, &serial,
                        const_cast<OCSP_CERTID*>(OCSP_SINGLERESP_get0_id(single)));
      if (!serial || ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(leaf)) != 0) continue;
      int reason = 0;
      ASN1_GENERALIZEDTIME *revoked = nullptr, *this_update = nullptr, *next_update = nullptr;
      int st = OCSP_single_get0_status(single, &reason, &revoked, &this_update, &next_update);
      // Five minutes of clock skew, as `openssl ocsp` allows; no limit on the response's age.
      if (!OCSP_check_validity(this_update, next_update, 300, -1)) break;
      status = st == V_OCSP_CERTSTATUS_GOOD      ? "good"
               : st == V_OCSP_CERTSTATUS_REVOKED ? "revoked"
                                                 : "unknown";
      break;
    }
    ERR_clear_error();
    return status;
  });
}

void ssl_stream::shutdown(direction d) {
  auto& t = checked(impl_);
  if (!t.parts.fd) throw std::logic_error("sslstream: shutdown on a closed ssl_stream");
  if (d == direction::output) {
    t.shutdown_output(detail::deadline_after(
        t.parts.write_timeout.count() > 0 ? t.parts.write_timeout : default_close_timeout));
  } else {
    t.input_shut = true;
    t.gate.wake(t.parts.fd.get(), SHUT_RD);  // a reader blocked on another thread returns 0
  }
}

void ssl_stream::close() {
  checked(impl_);
  auto t = impl_->parts.write_timeout.count() > 0
               ? impl_->parts.write_timeout
               : std::chrono::milliseconds(default_close_timeout);
  impl_->close(detail::deadline_after(t));
}

io_result ssl_stream::try_handshake() { return checked(impl_).try_handshake(); }
io_result ssl_stream::try_read_some(std::span<std::byte> b) {
  return checked(impl_).try_read_some(b);
}
io_result ssl_stream::try_write_some(std::span<const std::byte> d) {
  return checked(impl_).try_write_some(d);
}
io_result ssl_stream::try_shutdown() { return checked(impl_).try_shutdown(); }

std::vector<std::byte> ssl_stream::export_keying_material(std::string_view label,
                                                          std::span<const std::byte> context,
                                                          std::size_t length) {
  return checked(impl_).export_keying_material(label, context, length);
}

bool ssl_stream::truncated() const noexcept {
  return impl_ && impl_->truncated.load(std::memory_order_acquire);
}

std::string ssl_stream::session() {
  do_handshake();
  return impl_->locked([](SSL* s) {
    SSL_SESSION* ss = SSL_get0_session(s);
    if (!ss || !SSL_SESSION_is_resumable(ss)) return std::string();
    detail::bio_ptr b(BIO_new(BIO_s_mem()));
    if (!b || PEM_write_bio_SSL_SESSION(b.get(), ss) != 1) throw std::bad_alloc();
    return detail::bio_to_string(b.get());
  });
}

bool ssl_stream::is_open() const noexcept { return impl_ && impl_->parts.fd; }
void ssl_stream::set_timeout(std::chrono::milliseconds t) {
  auto& p = checked(impl_).parts;
  p.read_timeout = p.write_timeout = t;
}
void ssl_stream::set_read_timeout(std::chrono::milliseconds t) {
  checked(impl_).parts.read_timeout = t;
}
void ssl_stream::set_write_timeout(std::chrono::milliseconds t) {
  checked(impl_).parts.write_timeout = t;
}
bool ssl_stream::input_pending() { return checked(impl_).input_pending(); }

std::size_t ssl_stream::read_some(std::span<std::byte> b) {
  return checked(impl_).buf.read_some(b);
}
void ssl_stream::write_all(std::span<const std::byte> d) { checked(impl_).buf.write_all(d); }
std::string ssl_stream::local_host() const { return checked(impl_).parts.local.host(); }
std::uint16_t ssl_stream::local_port() const { return checked(impl_).parts.local.port(); }
std::string ssl_stream::remote_host() const { return checked(impl_).parts.remote.host(); }
std::uint16_t ssl_stream::remote_port() const { return checked(impl_).parts.remote.port(); }
int ssl_stream::native_handle() const noexcept { return is_open() ? impl_->parts.fd.get() : -1; }
void* ssl_stream::native_ssl() const noexcept { return impl_ ? impl_->ssl.get() : nullptr; }

namespace {

/// Notes the version in the server's hello (TLS 1.0-1.2 name it there) during a legacy probe.
void note_server_hello(int write_p, int, int content_type, const void* buf, std::size_t len, SSL*,
                       void* version) {
  const auto* p = static_cast<const unsigned char*>(buf);
  if (!write_p && content_type == SSL3_RT_HANDSHAKE && len >= 6 && p[0] == SSL3_MT_SERVER_HELLO)
    *static_cast<int*>(version) = (p[4] << 8) | p[5];
}

}  // namespace

std::string probe_legacy_version(socket_stream&& socket, const std::string& server_name,
                                 std::chrono::milliseconds timeout) {
  auto& si = socket.impl_for_handover();
  si.buf.flush_output();
  detail::connection_parts parts = std::move(si.parts);
  detail::socket_bio_state bio;
  bio.fd = parts.fd.get();
  bio.preread = si.buf.take_input();
  // A context of its own, never shared: the only place TLS 1.0/1.1 and security level 0 exist.
  detail::ssl_ctx_ptr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), TLS1_1_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx.get(), "ALL:@SECLEVEL=0") != 1) {
    ERR_clear_error();
    return "";
  }
  SSL_CTX_set_security_level(ctx.get(), 0);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  int version = 0;
  detail::ssl_ptr ssl(SSL_new(ctx.get()));
  BIO* b = ssl ? detail::new_socket_bio(&bio) : nullptr;
  if (!b) {
    ERR_clear_error();
    return "";
  }
  SSL_set_bio(ssl.get(), b, b);
  SSL_set_msg_callback(ssl.get(), note_server_hello);
  SSL_set_msg_callback_arg(ssl.get(), &version);
  SSL_set_connect_state(ssl.get());
  unsigned char addr[16];
  bool is_address = inet_pton(AF_INET, server_name.c_str(), addr) == 1 ||
                    inet_pton(AF_INET6, server_name.c_str(), addr) == 1;
  if (!server_name.empty() && !is_address)  // SNI carries host names only (RFC 6066 §3)
    SSL_set_tlsext_host_name(ssl.get(), server_name.c_str());
  auto until = detail::deadline_after(timeout);
  // Handshake only until the server's hello has been read: nothing of ours follows it.
  while (version == 0) {
    int r = SSL_do_handshake(ssl.get());
    if (r == 1) break;
    int err = SSL_get_error(ssl.get(), r);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0 || detail::poll_until(bio.fd, events, until) == 0) break;
  }
  ERR_clear_error();
  ssl.reset();
  detail::close_gracefully(parts.fd);
  if (version == TLS1_VERSION) return "TLSv1";
  if (version == TLS1_1_VERSION) return "TLSv1.1";
  return "";
}

std::ostream& operator<<(std::ostream& os, const ssl_stream& s) {
  if (!s.impl_) return os << "#<ssl stream (moved from)>";
  const auto& t = *s.impl_;
  os << "#<ssl " << (t.server ? "server" : "client") << " stream "
     << (t.parts.fd ? "connected" : "closed, but was connected") << " from "
     << t.parts.local.display() << " to " << t.parts.remote.display();
  if (t.handshake_done())
    os << ", " << t.locked([](SSL* ssl) {
      return std::string(SSL_get_version(ssl)) + ' ' + SSL_get_cipher_name(ssl);
    });
  else
    os << ", handshake pending";
  return os << '>';
}

}  // namespace sslstream
