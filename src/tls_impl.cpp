// The TLS engine: handshake, read, write, close_notify, and the mapping of OpenSSL's errors to
// sslstream's exceptions with messages that say what failed and what to do.
#include "tls_impl.hpp"

#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sslstream::detail {
namespace {

int ssl_ex_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

/// What to do about a verification failure, in words.
std::string verify_hint(long code, const tls_impl& t) {
  std::string side = t.server ? "client" : "server";
  switch (code) {
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return "the " + side +
             "'s certificate is self-signed: trust it explicitly with ssl_options::ca_file";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return "the " + side +
             "'s certificate was issued by a CA that is not trusted here: add that CA with "
             "ssl_options::ca_file";
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "the " + side + "'s certificate has expired: it must be renewed";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "the " + side + "'s certificate is not valid yet: check the clocks";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      if (t.failed_without_san)
        return "the certificate has no subjectAltName, and names are checked against that "
               "alone, never the subject CN (RFC 6125 §6.4.4): reissue it with its names as "
               "subjectAltName entries";
      return "the certificate is not for '" + t.session_key.substr(0, t.session_key.find('|')) +
             "': connect by a name the certificate lists, or set ssl_options::server_name";
    case X509_V_ERR_CERT_REVOKED: return "the certificate has been revoked by its CA";
    case X509_V_ERR_UNABLE_TO_GET_CRL:
      return "no CRL for this CA: add it with ssl_options::crl_file";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG: return "the chain is longer than ssl_options::max_depth";
    case X509_V_ERR_CERT_REJECTED:
      if (t.rejected_by == tls_impl::rejecter::callback)
        return "ssl_options::verify_callback rejected it";
      if (t.rejected_by != tls_impl::rejecter::pin) return "";
      return "its fingerprint sha256:" + t.failed_fingerprint +
             " is none of ssl_options::pinned_sha256: this is not the " + side + " you pinned";
    default: return "";
  }
}

/// A hint for a handshake failure, from OpenSSL's reason text and what this side knows.
std::string handshake_hint(const std::string& q, const tls_impl& t) {
  auto has = [&](const char* s) { return q.find(s) != std::string::npos; };
  const bool own_cert = SSL_get_certificate(t.ssl.get()) != nullptr;
  // A TLS 1.2 server that requires a certificate we do not have says only "handshake failure".
  if (!t.server && t.cert_requested && !own_cert &&
      (has("handshake failure") || has("certificate required")))
    return " (the server asked for a client certificate and we have none: set "
           "ssl_options::certificate)";
  if (has("wrong version number") || has("http request") || has("packet length too long") ||
      has("record layer failure") || has("unknown protocol")) {
    if (!t.bio.read_socket && t.bio.preread_pos > 0)
      return " (the bytes read before TLS started are not TLS: the plain-text exchange before "
             "make_ssl_*_stream, e.g. STARTTLS, was not read to its end)";
    return " (is the peer speaking TLS? it sent something else)";
  }
  if (has("inappropriate fallback"))
    return " (the peer refused a fallback to an older TLS version: raise min_version)";
  if (has("unsupported protocol") || has("no protocols available") || has("protocol version"))
    return " (no TLS version in common: check min_version / max_version)";
  if (has("certificate required") || has("peer did not return a certificate"))
    return t.server ? " (the client sent no certificate, and ssl_options::verify requires one)"
                    : " (a client certificate is required: set ssl_options::certificate)";
  if (has("unknown ca"))
    return " (the peer rejected our certificate: it does not trust its issuer; the peer needs "
           "our CA in its trust store)";
  if (has("certificate expired"))
    return " (the peer rejected our certificate as expired or not yet valid: renew it or check "
           "the clocks)";
  if (has("certificate revoked")) return " (the peer says our certificate is revoked)";
  if (has("bad certificate") || has("certificate unknown") || has("unsupported certificate"))
    return " (the peer rejected our certificate: its name, dates, pin or key did not satisfy "
           "the peer; its own log says which)";
  if (has("no shared cipher") || has("no suitable signature") || has("handshake failure"))
    return " (no cipher suite or signature algorithm in common: check ciphers / ciphersuites)";
  if (has("no application protocol")) return " (no ALPN protocol in common)";
  return "";
}

bool rejected_our_certificate(unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return false;
  switch (ERR_GET_REASON(e)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR: return true;
    default: return false;
  }
}

/// A peer that ended its stream without close_notify (FIN), as SSL_get_error reports it.
bool peer_just_stopped(int err) {
  unsigned long e = ERR_peek_error();
  if (err == SSL_ERROR_SYSCALL) return e == 0;
  return err == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
         ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

const char* op_name(int kind) {
  static const char* names[] = {"TLS handshake", "TLS read", "TLS write", "TLS close"};
  return names[kind];
}

}  // namespace

tls_impl::tls_impl(ssl_context c, connection_parts p, std::string preread)
    : ctx(std::move(c)), parts(std::move(p)), server(ctx.is_server()) {
  bio.fd = parts.fd.get();
  bio.preread = std::move(preread);
  ssl.reset(SSL_new(static_cast<SSL_CTX*>(ctx.native_handle())));
  BIO* b = ssl ? new_socket_bio(&bio) : nullptr;
  if (!b)
    throw tls_error(errc::handshake_failed, "out-of-memory", "cannot create a TLS connection");
  SSL_set_bio(ssl.get(), b, b);
  SSL_set_ex_data(ssl.get(), ssl_ex_index(), this);
  server ? SSL_set_accept_state(ssl.get()) : SSL_set_connect_state(ssl.get());
  if (server) return;

  const ssl_options& o = ctx.options();
  // The name checked and sent: the caller's, else the host the socket connected to, else the
  // address it is connected to.
  std::string name = !o.server_name.empty()     ? o.server_name
                     : !parts.host_name.empty() ? parts.host_name
                                                : parts.remote.host();
  verify_mode mode = o.verify.value_or(verify_mode::required);
  verify_optional = mode == verify_mode::optional;
  if (name.empty() && mode != verify_mode::none && ctx.state()->pins.empty())
    throw config_error(errc::bad_option, "bad-option",
                       "this connection has no host name to check the server's certificate "
                       "against (a Unix-domain socket, or an adopted descriptor): set "
                       "ssl_options::server_name, or pin the certificate");
  bool ip = is_ip_address(name);
  if (!ip && !name.empty())
    SSL_set_tlsext_host_name(ssl.get(), name.c_str());  // SNI is for names only (RFC 6066 §3)
  if (mode != verify_mode::none && !name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    // Names are checked against the SAN only, as RFC 6125 §6.4.4 and browsers require: a
    // certificate naming its host only in the CN is rejected.
    X509_VERIFY_PARAM_set_hostflags(
        param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1)
      throw config_error(errc::bad_option, "bad-option",
                         "cannot verify against server name '" + name + "'");
  }
  verify_name = name;
  const std::string where =
      parts.remote.host().empty() ? parts.remote.display() : parts.remote.host();
  session_key = name + "|" + where + "|" + std::to_string(parts.remote.port());
  auto& st = context_state::of(ssl.get());
  ssl_session_ptr offered = st.take_imported_session(name);
  if (!offered) offered = st.find_session(session_key);
  if (offered) SSL_set_session(ssl.get(), offered.get());
  ERR_clear_error();
}

tls_impl::~tls_impl() = default;

tls_impl* tls_impl::of(const SSL* s) {
  return static_cast<tls_impl*>(SSL_get_ex_data(s, ssl_ex_index()));
}

tls_impl* tls_impl::of(X509_STORE_CTX* store) {
  auto* s =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  return s ? of(s) : nullptr;
}

void tls_impl::record_failure(X509_STORE_CTX* store) {
  if (failed_code != 0) return;  // the first failure is the one to report
  failed_code = X509_STORE_CTX_get_error(store);
  failed_depth = X509_STORE_CTX_get_error_depth(store);
  if (X509* cert = X509_STORE_CTX_get_current_cert(store)) {
    auto c = x509_certificate::from_native(cert);
    failed_subject = c.subject();
    failed_fingerprint = c.fingerprint_sha256();
    failed_without_san = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1) < 0;
  }
}

int tls_impl::verify_cb(int ok, X509_STORE_CTX* store) {
  tls_impl* t = of(store);
  if (!t) return ok;
  try {
    // Under verify_mode::none OpenSSL still checks the chain and calls us, but nothing was
    // asked: a failure recorded then would later be blamed for an unrelated one.
    if (!ok && SSL_get_verify_mode(t->ssl.get()) != SSL_VERIFY_NONE) t->record_failure(store);
  } catch (...) {
    t->callback_failed(std::current_exception());
    return 0;
  }
  return t->verify_optional ? 1 : ok;
}

namespace {

/// The certificates of a stack, as x509_certificates.
std::vector<x509_certificate> certificates(STACK_OF(X509) * stack) {
  std::vector<x509_certificate> out;
  for (int i = 0; stack && i < sk_X509_num(stack); ++i)
    out.push_back(x509_certificate::from_native(sk_X509_value(stack, i)));
  return out;
}

/// Fails verification in `store` with "certificate rejected": OpenSSL then sends the peer a
/// bad_certificate alert, which says what happened, where an application failure would say
/// only "handshake failure".
int reject(X509_STORE_CTX* store, X509* leaf, tls_impl* t, tls_impl::rejecter by) {
  X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
  X509_STORE_CTX_set_error_depth(store, 0);
  X509_STORE_CTX_set_current_cert(store, leaf);
  if (t) {
    t->failed_code = 0;  // this is the failure to report, whatever came before
    t->rejected_by = by;
    t->record_failure(store);
  }
  return 0;
}

}  // namespace

int tls_impl::cert_verify_cb(X509_STORE_CTX* store, void* arg) {
  const auto& st = *static_cast<const context_state*>(arg);
  tls_impl* t = of(store);
  try {
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    if (!leaf) return 0;
    int ok;
    if (!st.pins.empty()) {
      std::string got = x509_certificate::from_native(leaf).fingerprint_sha256();
      if (std::find(st.pins.begin(), st.pins.end(), got) == st.pins.end())
        return reject(store, leaf, t, rejecter::pin);
      X509_STORE_CTX_set_error(store, X509_V_OK);
      ok = 1;
    } else {
      ok = X509_verify_cert(store);  // OpenSSL's checks, verify_cb recording the first failure
    }
    if (!st.options.verify_callback || !t || SSL_get_verify_mode(t->ssl.get()) == SSL_VERIFY_NONE)
      return ok;
    long code = t->failed_code != 0 ? t->failed_code : X509_STORE_CTX_get_error(store);
    if (ok != 1 && code == X509_V_OK) code = X509_V_ERR_UNSPECIFIED;
    verify_info info{x509_certificate::from_native(leaf), {}, {}, {}};
    if (STACK_OF(X509)* verified = code == X509_V_OK ? X509_STORE_CTX_get1_chain(store) : nullptr) {
      info.chain = certificates(verified);
      sk_X509_pop_free(verified, X509_free);
    } else {
      info.chain = certificates(X509_STORE_CTX_get0_untrusted(store));
    }
    info.result = verify_result_of(code);
    const char* sni = SSL_get_servername(t->ssl.get(), TLSEXT_NAMETYPE_host_name);
    info.server_name = t->server ? (sni ? sni : "") : t->verify_name;
    if (!st.options.verify_callback(info)) return reject(store, leaf, t, rejecter::callback);
    X509_STORE_CTX_set_error(store, X509_V_OK);  // accepted: verify_result() says ok
    return 1;
  } catch (...) {
    if (t) t->callback_failed(std::current_exception());
  }
  return 0;
}

int tls_impl::cert_requested_cb(SSL* ssl, void*) {
  if (tls_impl* t = of(ssl)) t->cert_requested = true;
  return 1;
}

template <class Op>
int tls_impl::attempt(Op op, op_kind kind, int& want) {
  std::lock_guard lk(ssl_mutex_);
  want = 0;
  if (fatal_) std::rethrow_exception(fatal_);
  ERR_clear_error();
  bio.last_errno = 0;
  int ret = op(ssl.get());
  if (callback_error_) {  // a callback of ours failed inside this call: that is the error
    ERR_clear_error();
    fatal_ = callback_error_;
    std::rethrow_exception(fatal_);
  }
  if (ret > 0) {
    if (kind == op_kind::read) read_gave_up_ = false;
    return ret;
  }
  int err = SSL_get_error(ssl.get(), ret);
  // The peer's close_notify is a clean end only for a read of an established connection.
  // During the handshake it is a failure (a 7-byte plaintext alert must never pass for a
  // finished, verified handshake), and for a write or a close it is an error: SSL_get_error
  // says ZERO_RETURN for any failure once close_notify has arrived, EPIPE included.
  if (err == SSL_ERROR_ZERO_RETURN && kind == op_kind::read && SSL_is_init_finished(ssl.get())) {
    read_gave_up_ = false;
    return 0;
  }
  if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
    // Woken by shutdown(input) or close() from another thread: that, not the peer, ended it.
    if (kind == op_kind::read && input_shut.load()) return 0;
    if (gate.closing()) io_gate::throw_closed();
  }
  if (kind == op_kind::read && handshake_done() && ctx.options().allow_truncation &&
      bio.last_errno == 0 && peer_just_stopped(err)) {
    // Asked for: a FIN without close_notify ends the stream (a reset is still an error).
    ERR_clear_error();
    truncated.store(true, std::memory_order_release);
    return 0;
  }
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    if (err == SSL_ERROR_WANT_READ) recvs_at_want_read_ = bio.recvs;
    want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
    return -1;
  }
  fail(err, kind);
}

template <class Op>
int tls_impl::perform(Op op, const deadline& until, op_kind kind) {
  auto pass = gate.enter();
  for (;;) {
    int want = 0;
    int ret = attempt(op, kind, want);
    if (want == 0) return ret;
    if (kind == op_kind::read && input_shut.load()) return 0;
    const char* what = op_name(static_cast<int>(kind));
    try {
      wait_for(parts.fd.get(), static_cast<short>(want), until, what);
    } catch (const socket_error&) {
      // A write or handshake that timed out mid-record cannot be resumed with other data:
      // make it stick. A read that timed out consumed nothing and may be retried.
      std::lock_guard lk(ssl_mutex_);
      if (kind == op_kind::handshake && handshake_limit_ && until == handshake_limit_)
        fatal_ = handshake_timed_out();
      else if (kind != op_kind::read)
        fatal_ = std::current_exception();
      else
        read_gave_up_ = true;
      if (fatal_) std::rethrow_exception(fatal_);
      throw;
    }
    if (gate.closing()) io_gate::throw_closed();
    if (kind == op_kind::read && input_shut.load()) return 0;
  }
}

io_result tls_impl::try_handshake() {
  if (handshake_done()) return {};
  std::lock_guard lk(handshake_mutex_);
  if (handshake_done()) return {};
  auto pass = gate.enter();
  if (!parts.fd) throw std::logic_error("sslstream: the ssl_stream is closed");
  // handshake_timeout bounds a non-blocking handshake too, from its first attempt.
  if (!try_handshake_limit_) try_handshake_limit_ = deadline_after(ctx.options().handshake_timeout);
  if (try_handshake_limit_ && clock::now() >= *try_handshake_limit_) {
    std::lock_guard slk(ssl_mutex_);
    if (!fatal_) fatal_ = handshake_timed_out();
    std::rethrow_exception(fatal_);
  }
  int want = 0;
  attempt([](SSL* s) { return SSL_do_handshake(s); }, op_kind::handshake, want);
  if (want != 0) return {0, want == POLLIN ? io_status::want_read : io_status::want_write};
  finish_handshake();
  return {};
}

io_result tls_impl::try_read_some(std::span<std::byte> out) {
  if (auto h = try_handshake(); h.status != io_status::done) return h;
  auto pass = gate.enter();
  if (input_shut || !parts.fd || truncated.load(std::memory_order_acquire))
    return {0, io_status::eof};
  if (out.empty()) return {};
  if (std::size_t n = buf.take_buffered(out)) return {n, io_status::done};
  std::size_t got = 0;
  int want = 0;
  int r = attempt([&](SSL* s) { return SSL_read_ex(s, out.data(), out.size(), &got); },
                  op_kind::read, want);
  if (want != 0) return {0, want == POLLIN ? io_status::want_read : io_status::want_write};
  return r > 0 ? io_result{got, io_status::done} : io_result{0, io_status::eof};
}

io_result tls_impl::try_write_some(std::span<const std::byte> in) {
  if (auto h = try_handshake(); h.status != io_status::done) return h;
  auto pass = gate.enter();
  if (!parts.fd) throw std::logic_error("sslstream: write on a closed ssl_stream");
  if (output_shut) throw std::logic_error("sslstream: write after shutdown(direction::output)");
  if (buf.has_output())
    throw std::logic_error("sslstream: try_write_some with bytes `<<` buffered: flush() first");
  if (in.empty()) return {};
  std::size_t done = 0;
  int want = 0;
  attempt([&](SSL* s) { return SSL_write_ex(s, in.data(), in.size(), &done); }, op_kind::write,
          want);
  if (want != 0) return {0, want == POLLIN ? io_status::want_read : io_status::want_write};
  return {done, io_status::done};
}

void tls_impl::fail(int ssl_error, op_kind kind) {
  // Not SSL_is_init_finished(): after a fatal error OpenSSL's state machine is in its error
  // state, so a record that breaks an established connection would count as a handshake.
  bool in_handshake = kind == op_kind::handshake || !handshake_done();
  unsigned long first = ERR_peek_error();
  std::string queue = drain_errors();
  const char* what = op_name(static_cast<int>(kind));
  const int saved_errno = bio.last_errno;
  const bool close_notify = ssl_error == SSL_ERROR_ZERO_RETURN;  // the peer's, already received
  bool eof = ssl_error == SSL_ERROR_SYSCALL || (close_notify && kind != op_kind::handshake) ||
             (ERR_GET_LIB(first) == ERR_LIB_SSL &&
              ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
  if (eof && kind != op_kind::read && (saved_errno == EPIPE || saved_errno == ECONNRESET)) {
    // A peer that rejects us sends an alert, then closes; our write then fails with EPIPE. The
    // alert says why, so read it (without consuming application data) and report that instead.
    ERR_clear_error();
    char b;
    std::size_t n = 0;
    if (SSL_peek_ex(ssl.get(), &b, 1, &n) != 1) {
      unsigned long e = ERR_peek_error();
      if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET) {
        first = e;
        queue = drain_errors();
        eof = false;
      }
    }
    ERR_clear_error();
  }
  try {
    if (close_notify && in_handshake)
      throw tls_error(errc::handshake_failed, "handshake-failed",
                      std::string(what) +
                          " failed: the peer sent close_notify before the handshake finished, "
                          "so no secure connection exists (is it speaking TLS, and does it "
                          "accept ours?)");
    if (close_notify && saved_errno == 0)
      throw tls_error(errc::protocol_error, "protocol-error",
                      std::string(what) + " failed after the peer's close_notify: " +
                          (queue.empty() ? "unknown error" : queue));
    if (eof && saved_errno != 0) {
      throw_socket_error(saved_errno,
                         std::string(what) + (in_handshake ? "" : " after the handshake"));
    } else if (eof && in_handshake) {
      throw tls_error(errc::handshake_failed, "handshake-failed",
                      std::string(what) +
                          " failed: the peer closed the connection during the "
                          "handshake (is it speaking TLS, and does it accept ours?)");
    } else if (eof) {
      throw tls_error(errc::truncated, "truncated",
                      "the peer closed the connection without a TLS close_notify: the data may "
                      "be truncated");
    }
    long v = SSL_get_verify_result(ssl.get());
    if (in_handshake && v != X509_V_OK && failed_code != 0 && !verify_optional) {
      std::string text = X509_verify_cert_error_string(v);
      std::string hint = verify_hint(v, *this);
      throw verify_error(v, text, failed_subject, failed_fingerprint,
                         "certificate verify failed: " + text + " (certificate '" + failed_subject +
                             "')" + (hint.empty() ? "" : ": " + hint));
    }
    if (in_handshake)
      throw tls_error(errc::handshake_failed, "handshake-failed",
                      std::string(what) + " failed: " + (queue.empty() ? "unknown error" : queue) +
                          handshake_hint(queue, *this));
    // In TLS 1.3 a client's handshake ends before the server has judged the client's
    // certificate; a rejection arrives as an alert on the first read. It is still the
    // handshake that failed (RFC 8446 §4.4.2.4).
    if (!server && rejected_our_certificate(first))
      throw tls_error(errc::handshake_failed, "handshake-failed",
                      "TLS handshake failed: " + queue + handshake_hint(queue, *this));
    throw tls_error(errc::protocol_error, "protocol-error",
                    std::string(what) + " failed: " + (queue.empty() ? "unknown error" : queue));
  } catch (...) {
    fatal_ = std::current_exception();
    throw;
  }
}

void tls_impl::handshake() {
  if (handshake_done()) return;
  std::lock_guard lk(handshake_mutex_);
  if (handshake_done()) return;
  if (!parts.fd) throw std::logic_error("sslstream: the ssl_stream is closed");
  // The handshake is bounded by the read timeout (it mostly waits for the peer) and as a
  // whole by handshake_timeout.
  deadline until = deadline_after(parts.read_timeout);
  handshake_limit_ = deadline_after(ctx.options().handshake_timeout);
  if (handshake_limit_ && (!until || *handshake_limit_ <= *until)) until = handshake_limit_;
  perform([](SSL* s) { return SSL_do_handshake(s); }, until, op_kind::handshake);
  finish_handshake();
}

void tls_impl::check_resumed_session() {
  // A resumed handshake verifies nothing: it trusts the session's stored certificate and
  // verdict. A session from our own cache was verified by these rules for this name; one
  // brought in through ssl_options::session may have been made anywhere (without
  // verification, for another name), so it must pass this stream's checks now.
  if (SSL_get_verify_mode(ssl.get()) == SSL_VERIFY_NONE) return;
  X509* leaf = SSL_get0_peer_certificate(ssl.get());
  const auto& st = *ctx.state();
  std::string why;
  if (!leaf) {
    why = "it carries no server certificate";
  } else if (!st.pins.empty()) {
    auto fp = x509_certificate::from_native(leaf).fingerprint_sha256();
    if (std::find(st.pins.begin(), st.pins.end(), fp) == st.pins.end())
      why = "its certificate is none of ssl_options::pinned_sha256";
  } else if (long v = SSL_get_verify_result(ssl.get()); v != X509_V_OK && !verify_optional) {
    why = std::string("its certificate did not verify when it was made (") +
          X509_verify_cert_error_string(v) + ")";
  } else if (!verify_name.empty() &&
             (is_ip_address(verify_name)
                  ? X509_check_ip_asc(leaf, verify_name.c_str(), 0) != 1
                  : X509_check_host(
                        leaf, verify_name.data(), verify_name.size(),
                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                        nullptr) != 1)) {
    why = "its certificate is not for '" + verify_name + "'";
  } else if (st.options.verify_callback) {
    verify_info info{x509_certificate::from_native(leaf), {}, {}, verify_name};
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());
    for (int i = 0; chain && i < sk_X509_num(chain); ++i)
      info.chain.push_back(x509_certificate::from_native(sk_X509_value(chain, i)));
    long code = SSL_get_verify_result(ssl.get());
    info.result = verify_result_of(code);
    bool ok = false;
    try {
      ok = st.options.verify_callback(info);
    } catch (...) {
      fatal_ = std::current_exception();
      std::rethrow_exception(fatal_);
    }
    if (!ok) why = "ssl_options::verify_callback rejected its certificate";
  }
  if (why.empty()) return;
  auto subject = leaf ? x509_certificate::from_native(leaf).subject() : std::string();
  auto fp = leaf ? x509_certificate::from_native(leaf).fingerprint_sha256() : std::string();
  fatal_ = std::make_exception_ptr(verify_error(
      X509_V_ERR_CERT_REJECTED, "certificate rejected", subject, fp,
      "certificate verify failed: the resumed session was refused: " + why +
          " (a session given in ssl_options::session must come from a verified connection to "
          "this server)"));
  std::rethrow_exception(fatal_);
}

io_result tls_impl::try_shutdown() {
  if (close_notify_sent_) return {};
  if (auto h = try_handshake(); h.status != io_status::done) return h;
  auto pass = gate.enter();
  if (buf.has_output())
    throw std::logic_error("sslstream: try_shutdown with bytes `<<` buffered: flush() first");
  int want = 0;
  attempt(
      [](SSL* s) {
        int r = SSL_shutdown(s);
        return r < 0 ? r : 1;
      },
      op_kind::shutdown, want);
  if (want != 0) return {0, want == POLLIN ? io_status::want_read : io_status::want_write};
  close_notify_sent_ = true;
  output_shut = true;
  return {};
}

std::exception_ptr tls_impl::handshake_timed_out() const {
  return std::make_exception_ptr(
      socket_error(std::error_code(ETIMEDOUT, std::system_category()), "timeout",
                   "TLS handshake did not finish within " +
                       std::to_string(ctx.options().handshake_timeout.count()) +
                       " ms: the peer stalled (the limit is ssl_options::handshake_timeout)"));
}

verify_result_t verify_result_of(long code) {
  return {code, code == X509_V_OK ? "ok" : X509_verify_cert_error_string(code)};
}

void tls_impl::finish_handshake() {
  // Done only when OpenSSL says so: nothing short of its Finished check may pass for a
  // handshake (belt and braces behind the ZERO_RETURN rule in attempt()).
  std::lock_guard slk(ssl_mutex_);
  if (!SSL_is_init_finished(ssl.get())) {
    fatal_ = std::make_exception_ptr(
        tls_error(errc::handshake_failed, "handshake-failed",
                  "TLS handshake failed: OpenSSL returned before the handshake finished"));
    std::rethrow_exception(fatal_);
  }
  if (!server && SSL_session_reused(ssl.get())) check_resumed_session();
  handshake_done_.store(true, std::memory_order_release);
}

std::size_t tls_impl::read_some(std::span<std::byte> out) {
  if (out.empty() || truncated.load(std::memory_order_acquire)) return 0;
  // Enter first, then look: a shutdown(input) after this point finds us inside and wakes us.
  auto pass = gate.enter();
  if (input_shut || !parts.fd) return 0;
  handshake();
  std::size_t got = 0;
  int r = perform([&](SSL* s) { return SSL_read_ex(s, out.data(), out.size(), &got); },
                  deadline_after(parts.read_timeout), op_kind::read);
  return r > 0 ? got : 0;
}

std::vector<std::byte> tls_impl::export_keying_material(std::string_view label,
                                                        std::span<const std::byte> context,
                                                        std::size_t length) {
  handshake();
  std::vector<std::byte> out(length);
  std::string l(label);
  int ok = locked([&](SSL* s) {
    ERR_clear_error();
    return SSL_export_keying_material(s, reinterpret_cast<unsigned char*>(out.data()), length,
                                      l.c_str(), l.size(),
                                      reinterpret_cast<const unsigned char*>(context.data()),
                                      context.size(), context.empty() ? 0 : 1);
  });
  if (ok != 1)
    throw tls_error(errc::protocol_error, "protocol-error",
                    "export_keying_material failed: " + drain_errors() +
                        " (the label may be reserved, or the length too large)");
  return out;
}

void tls_impl::write_all(std::span<const std::byte> in) {
  auto pass = gate.enter();
  if (!parts.fd) throw std::logic_error("sslstream: write on a closed ssl_stream");
  if (output_shut) throw std::logic_error("sslstream: write after shutdown(direction::output)");
  // The write timeout is for a peer that stops reading: each record that goes out restarts
  // it, so a slow but steady reader gets a large write whole.
  write_until(in, deadline_after(parts.write_timeout), parts.write_timeout);
}

void tls_impl::write_until(std::span<const std::byte> in, deadline until,
                           std::chrono::milliseconds restart) {
  handshake();
  // One record per SSL_write_ex, each sent with MSG_MORE but the last: the kernel then packs
  // a large write into full-sized segments, so the reader wakes and recv()s once per several
  // records instead of once per record. The last record goes out at once, as always.
  constexpr std::size_t record = 16384;
  while (!in.empty()) {
    std::size_t done = 0;  // SSL_write_ex succeeds whole (no partial writes are enabled)
    auto chunk = in.first(std::min(in.size(), record));
    perform(
        [&](SSL* s) {
          bio.more = in.size() > chunk.size();
          int r = SSL_write_ex(s, chunk.data(), chunk.size(), &done);
          bio.more = false;
          return r;
        },
        until, op_kind::write);
    if (done == 0) throw std::logic_error("sslstream: TLS write made no progress");
    in = in.subspan(done);
    if (restart.count() > 0) until = deadline_after(restart);
  }
}

bool tls_impl::input_pending() {
  if (buf.in_avail() > 0) return true;
  std::lock_guard lk(ssl_mutex_);
  if (bio.preread_pos < bio.preread.size() || SSL_pending(ssl.get()) > 0) return true;
  // Unprocessed bytes in OpenSSL's read-ahead buffer count only if no read has wanted more
  // since they arrived: after want_read they are a partial record, and only the socket can
  // complete it (counting them would make an event loop spin on a peer that sent half a record).
  return SSL_has_pending(ssl.get()) == 1 && bio.recvs != recvs_at_want_read_;
}

void tls_impl::shutdown_output(const deadline& until) {
  if (close_notify_sent_) return;
  if (buf.has_output()) {
    // What `<<` buffered goes first, within this deadline (not the stream's timeout, which a
    // reader thread may be using).
    auto pending = buf.pending_output();
    std::vector<std::byte> copy(pending.begin(), pending.end());
    buf.discard_output();
    write_until(copy, until);
  }
  handshake();
  // SSL_shutdown returns 0 once our close_notify is out but the peer's is not in yet: that is
  // all we wait for (the peer may go on sending: TLS half close).
  perform(
      [](SSL* s) {
        int r = SSL_shutdown(s);
        return r < 0 ? r : 1;
      },
      until, op_kind::shutdown);
  close_notify_sent_ = true;
  output_shut = true;
}

void tls_impl::close(const deadline& until) {
  if (!parts.fd) return;
  struct closer {
    tls_impl& t;
    ~closer() {
      t.gate.close(t.parts.fd.get());  // a reader on another thread leaves first
      close_gracefully(t.parts.fd);
    }
  } c{*this};
  bool broken;
  {
    std::lock_guard lk(ssl_mutex_);
    broken = static_cast<bool>(fatal_);
  }
  if (broken) {
    buf.discard_output();
    return;
  }
  // Never handshake just to say goodbye: with nothing sent, there is nothing to close.
  if (!handshake_done() && !buf.has_output()) return;
  const bool nothing_pending = !buf.has_output();
  if (!server && handshake_done()) take_arrived_tickets();
  try {
    shutdown_output(until);
  } catch (const socket_error&) {
    // The peer said close_notify and closed the whole connection, so ours cannot reach it:
    // both sides said everything, and nothing of ours was waiting, so nothing was lost.
    if (nothing_pending &&
        locked([](SSL* s) { return SSL_get_shutdown(s); }) & SSL_RECEIVED_SHUTDOWN)
      return;
    throw;
  }
}

void tls_impl::take_arrived_tickets() noexcept {
  // A TLS 1.3 client that only writes never reads the server's ticket, which arrives after the
  // handshake, and so would never resume. Whatever has arrived by now is processed (a peek
  // consumes no application data) without waiting for anything.
  std::lock_guard lk(ssl_mutex_);
  if (fatal_ || SSL_version(ssl.get()) < TLS1_3_VERSION) return;
  char b;
  std::size_t n = 0;
  ERR_clear_error();
  bio.last_errno = 0;
  if (SSL_peek_ex(ssl.get(), &b, 1, &n) != 1) {
    int err = SSL_get_error(ssl.get(), 0);
    // An alert that arrived (a server rejecting our certificate after our Finished) is the
    // stream's error from now on, with its real reason; close() then reports it.
    if (err == SSL_ERROR_SSL) try {
        fail(err, op_kind::read);
      } catch (...) {
      }
  }
  if (callback_error_ && !fatal_) fatal_ = callback_error_;
  ERR_clear_error();
}

void tls_impl::close_noexcept() noexcept {
  if (!parts.fd) return;
  try {
    std::unique_lock lk(ssl_mutex_);
    if (!fatal_ && !read_gave_up_ && handshake_done() && !close_notify_sent_) {
      // One attempt each, no waiting. Only if every buffered byte went out is close_notify sent;
      // otherwise the peer sees a truncation error rather than silently short data.
      ERR_clear_error();
      auto pending = buf.pending_output();
      std::size_t n = 0;
      if (pending.empty() || SSL_write_ex(ssl.get(), pending.data(), pending.size(), &n) == 1)
        SSL_shutdown(ssl.get());
      ERR_clear_error();
    }
  } catch (...) {
  }
  buf.discard_output();
  close_gracefully(parts.fd);
}

}  // namespace sslstream::detail
