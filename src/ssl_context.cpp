// Building an SSL_CTX from ssl_options: certificates, keys, trust, versions, ciphers, ALPN.
// Every problem is reported here as a config_error naming the file or option, before any
// connection exists.
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cert_select.hpp"
#include "context_state.hpp"
#include "tls_impl.hpp"

namespace sslstream {
namespace detail {

int context_state::ex_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

context_state& context_state::of(const SSL* ssl) {
  return *static_cast<context_state*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index()));
}

void context_state::store_session(const std::string& key, SSL_SESSION* s) {
  std::lock_guard lk(sessions_mutex);
  if (sessions.size() >= max_sessions && !sessions.contains(key)) sessions.erase(sessions.begin());
  sessions[key].reset(s);
}

ssl_session_ptr context_state::find_session(const std::string& key) {
  std::lock_guard lk(sessions_mutex);
  auto it = sessions.find(key);
  if (it == sessions.end() || !SSL_SESSION_is_resumable(it->second.get())) return nullptr;
  // A TLS 1.3 ticket is for one connection only (RFC 8446 §C.4: reuse lets a passive observer
  // link the connections): hand it out once. The connection that uses it gets a new one.
  if (SSL_SESSION_get_protocol_version(it->second.get()) >= TLS1_3_VERSION) {
    ssl_session_ptr once = std::move(it->second);
    sessions.erase(it);
    return once;
  }
  SSL_SESSION_up_ref(it->second.get());
  return ssl_session_ptr(it->second.get());
}

ssl_session_ptr context_state::take_imported_session(const std::string& name) {
  std::lock_guard lk(sessions_mutex);
  if (!imported_session) return nullptr;
  // Offered only to the server it came from: to any other it would only link connections.
  const char* made_for = SSL_SESSION_get0_hostname(imported_session.get());
  if (made_for && name != made_for) return nullptr;
  if (SSL_SESSION_get_protocol_version(imported_session.get()) >= TLS1_3_VERSION)
    return std::move(imported_session);  // once only (RFC 8446 §C.4)
  SSL_SESSION_up_ref(imported_session.get());
  return ssl_session_ptr(imported_session.get());
}

}  // namespace detail

namespace {

using detail::context_state;

[[noreturn]] void fail(errc code, const char* id, const std::string& message) {
  std::string queue = detail::drain_errors();
  throw config_error(code, id, queue.empty() ? message : message + " [OpenSSL: " + queue + "]");
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  struct stat st {};
  if (!in || (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
    int err = in ? EISDIR : errno;
    throw config_error(
        errc::bad_file, "bad-file",
        std::string("cannot open ") + what + " file '" + path + "': " + std::strerror(err));
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// OpenSSL's default asks on the terminal; sslstream never prompts.
int password_cb(char* buf, int size, int, void* user) {
  const auto* pw = static_cast<const std::string*>(user);
  if (!pw || pw->empty() || static_cast<int>(pw->size()) > size) return -1;
  std::memcpy(buf, pw->data(), pw->size());
  return static_cast<int>(pw->size());
}

int tls_number(tls_version v) {
  switch (v) {
    case tls_version::tls1_0: return TLS1_VERSION;
    case tls_version::tls1_1: return TLS1_1_VERSION;
    case tls_version::tls1_2: return TLS1_2_VERSION;
    case tls_version::tls1_3: return TLS1_3_VERSION;
  }
  return 0;
}

/// Every certificate in PEM text, in order.
std::vector<detail::x509_ptr> read_certificates(const std::string& pem) {
  std::vector<detail::x509_ptr> out;
  detail::bio_ptr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the loop ends with "no start line"
  return out;
}

}  // namespace

/// Reads and checks one certificate with its chain and key; `option` prefixes the names of the
/// settings the errors point at ("ssl_options::" or "ssl_options::more_certificates[1].").
detail::key_pair detail::read_key_pair(const certificate_files& f, const std::string& option,
                                       const char* password_field) {
  const bool in_memory = !f.certificate_pem.empty();
  detail::key_pair out;
  out.certificate = in_memory ? option + "certificate_pem" : f.certificate;
  const std::string& cert = out.certificate;
  std::string pem = in_memory ? f.certificate_pem : read_file(cert, "certificate");
  auto chain = read_certificates(pem);
  if (chain.empty())
    fail(errc::bad_certificate, "bad-certificate",
         "no usable PEM certificate in '" + cert +
             "' (expected a '-----BEGIN CERTIFICATE-----' block)");
  out.leaf = std::move(chain[0]);
  out.chain.reset(sk_X509_new_null());
  if (!out.chain) fail(errc::bad_certificate, "bad-certificate", "out of memory reading " + cert);
  for (std::size_t i = 1; i < chain.size(); ++i) {
    if (sk_X509_push(out.chain.get(), chain[i].get()) == 0)
      fail(errc::bad_certificate, "bad-certificate", "out of memory reading " + cert);
    chain[i].release();  // the stack owns it now
  }

  out.key_file = f.key.empty() ? cert : f.key;
  const std::string& key_path = out.key_file;
  std::string key_pem = f.key.empty() ? pem : read_file(key_path, "key");
  if (key_pem.find("PRIVATE KEY-----") == std::string::npos)
    throw config_error(
        errc::bad_key, "bad-key",
        "no private key in '" + key_path +
            (f.key.empty() ? "' (append the key to the certificate file, or set the key file: " +
                                 option + "key)"
                           : std::string("' (expected a '-----BEGIN PRIVATE KEY-----' block)")));
  bool encrypted = key_pem.find("ENCRYPTED") != std::string::npos;
  detail::bio_ptr b(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  out.key.reset(PEM_read_bio_PrivateKey(b.get(), nullptr, password_cb,
                                        const_cast<std::string*>(&f.password)));
  if (!out.key) {
    if (encrypted && f.password.empty())
      fail(errc::bad_password, "bad-password",
           "the private key in '" + key_path + "' is encrypted: give its password (" + option +
               password_field + ")");
    if (encrypted)
      fail(errc::bad_password, "bad-password",
           "cannot decrypt the private key in '" + key_path + "': wrong password");
    fail(errc::bad_key, "bad-key", "cannot read the private key in '" + key_path + "'");
  }
  if (X509_check_private_key(out.leaf.get(), out.key.get()) != 1)
    fail(errc::key_mismatch, "key-mismatch", detail::key_mismatch_message(out));
  return out;
}

std::string detail::key_mismatch_message(const key_pair& p) {
  return "the private key in '" + p.key_file + "' does not match the certificate in '" +
         p.certificate + "' (use the key the certificate was made for)";
}

namespace {

void load_certificate_and_key(SSL_CTX* ctx, const ssl_options& o) {
  auto pair =
      detail::read_key_pair({o.certificate, o.key, o.certificate_password, o.certificate_pem},
                            "ssl_options::", "certificate_password");
  if (SSL_CTX_use_certificate(ctx, pair.leaf.get()) != 1)
    fail(errc::bad_certificate, "bad-certificate",
         "no usable PEM certificate in '" + pair.certificate +
             "' (expected a '-----BEGIN CERTIFICATE-----' block)");
  for (int i = 0; i < sk_X509_num(pair.chain.get()); ++i)
    SSL_CTX_add1_chain_cert(ctx, sk_X509_value(pair.chain.get(), i));
  for (const auto& extra : o.other_certificates) {
    read_file(extra, "chain certificate");
    for (const auto& c : x509_certificate::load_pem_chain(extra))
      if (SSL_CTX_add1_chain_cert(ctx, static_cast<X509*>(c.native_handle())) != 1)
        fail(errc::bad_certificate, "bad-certificate",
             "cannot add chain certificate from '" + extra + "'");
  }
  if (SSL_CTX_use_PrivateKey(ctx, pair.key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    fail(errc::key_mismatch, "key-mismatch", detail::key_mismatch_message(pair));
}

/// Whether `name` is a certificate's name in an OpenSSL hashed directory: 8 hex digits, a dot
/// and a sequence number ("4cead61e.0"); CRLs are "4cead61e.r0".
bool hashed_certificate_name(const std::string& name) {
  auto dot = name.find('.');
  return dot == 8 && name.size() > 9 && name.find_first_not_of("0123456789abcdef") == dot &&
         name.find_first_not_of("0123456789", dot + 1) == std::string::npos;
}

/// Reads every certificate of a hashed CA directory into the store now. OpenSSL would load each
/// one lazily, during the first verification that needs it, and then fill its cached
/// extensions while other threads verifying on the same context already read them (a race TSan
/// sees in 3.0). Files it cannot read are skipped, as OpenSSL's own lookup skips them.
void preload_ca_directory(X509_STORE* store, const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!hashed_certificate_name(entry.path().filename().string())) continue;
    if (X509_STORE_load_file(store, entry.path().c_str()) != 1) ERR_clear_error();
  }
}

void load_trust(SSL_CTX* ctx, const ssl_options& o, bool server) {
  if (!o.ca_pem.empty()) {
    auto cas = read_certificates(o.ca_pem);
    if (cas.empty())
      throw config_error(errc::bad_certificate, "bad-certificate",
                         "no PEM certificate in ssl_options::ca_pem");
    for (auto& ca : cas) {
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca.get());
      if (server) SSL_CTX_add_client_CA(ctx, ca.get());
    }
  }
  if (!o.ca_file.empty() || !o.ca_directory.empty()) {
    if (!o.ca_file.empty()) read_file(o.ca_file, "CA");
    if (!o.ca_directory.empty()) {
      struct stat st {};
      if (::stat(o.ca_directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw config_error(errc::bad_file, "bad-file",
                           "CA directory '" + o.ca_directory + "' is not a directory");
    }
    if (SSL_CTX_load_verify_locations(ctx, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                      o.ca_directory.empty() ? nullptr : o.ca_directory.c_str()) !=
        1)
      fail(
          errc::bad_certificate, "bad-certificate",
          "no usable CA certificate in '" + (o.ca_file.empty() ? o.ca_directory : o.ca_file) + "'");
    if (!o.ca_directory.empty()) preload_ca_directory(SSL_CTX_get_cert_store(ctx), o.ca_directory);
    if (server && !o.ca_file.empty()) {
      // Tell clients which CAs we accept, so they pick the right certificate.
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str()))
        SSL_CTX_set_client_CA_list(ctx, names);
    }
  } else if (o.ca_pem.empty() && SSL_CTX_set_default_verify_paths(ctx) != 1) {
    fail(errc::bad_file, "bad-file", "cannot load the system trust store");
  }
  if (!o.crl_file.empty()) {
    std::string pem = read_file(o.crl_file, "CRL");
    detail::bio_ptr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    int count = 0;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(b.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_crl(SSL_CTX_get_cert_store(ctx), crl);
      X509_CRL_free(crl);
      ++count;
    }
    ERR_clear_error();
    if (count == 0)
      throw config_error(
          errc::bad_certificate, "bad-certificate",
          "no PEM CRL in '" + o.crl_file + "' (expected '-----BEGIN X509 CRL-----')");
  }
  if (o.crl_check) X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), X509_V_FLAG_CRL_CHECK);
}

/// A pinned fingerprint as fingerprint_sha256() prints it: 64 lower-case hex digits.
std::string normalized_pin(const std::string& pin) {
  std::string p = pin.rfind("sha256:", 0) == 0 ? pin.substr(7) : pin;
  std::string hex;
  for (char c : p)
    if (c != ':') hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw config_error(errc::bad_option, "bad-option",
                       "ssl_options::pinned_sha256 takes SHA-256 fingerprints: 64 hex digits, "
                       "optionally after sha256: (as `sslstream info` prints them), not '" +
                           pin + "'");
  return hex;
}

std::string alpn_wire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const auto& p : protocols) {
    if (p.empty() || p.size() > 255)
      throw config_error(errc::bad_option, "bad-option",
                         "ALPN protocol names must be 1 to 255 bytes long: '" + p + "'");
    wire += static_cast<char>(p.size());
    wire += p;
  }
  return wire;
}

int alpn_select(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) noexcept {
  const auto& st = context_state::of(ssl);  // nothing here allocates or throws
  unsigned char* sel = nullptr;
  // Server preference order; no overlap is a fatal no_application_protocol (RFC 7301 §3.2).
  if (SSL_select_next_proto(
          &sel, outlen, reinterpret_cast<const unsigned char*>(st.alpn_wire.data()),
          static_cast<unsigned int>(st.alpn_wire.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

// Callbacks run inside OpenSSL's C frames, which an exception must never cross: each catches
// everything, hands it to the stream (which fails the SSL call and rethrows it) and fails.
void keylog_cb(const SSL* ssl, const char* line) {
  try {
    const auto& st = context_state::of(ssl);
    if (st.options.keylog) st.options.keylog(line);
  } catch (...) {
    if (auto* tls = detail::tls_impl::of(ssl)) tls->callback_failed(std::current_exception());
  }
}

int new_session_cb(SSL* ssl, SSL_SESSION* session) {
  auto* tls = detail::tls_impl::of(ssl);
  if (!tls || tls->session_key.empty()) return 0;
  try {
    context_state::of(ssl).store_session(tls->session_key, session);
  } catch (...) {
    tls->callback_failed(std::current_exception());
    return 0;  // OpenSSL keeps (and frees) the session
  }
  return 1;  // we keep the reference
}

/// RFC 7507 §3: a ClientHello below our lowest version that carries TLS_FALLBACK_SCSV is a
/// downgrade in progress and gets inappropriate_fallback, not protocol_version. OpenSSL checks
/// the SCSV only against versions it supports, so the check below min_version is ours.
bool inappropriate_fallback(SSL* ssl, const context_state& st) {
  if (static_cast<int>(SSL_client_hello_get0_legacy_version(ssl)) >=
      tls_number(st.options.min_version))
    return false;
  const unsigned char* suites = nullptr;
  std::size_t n = SSL_client_hello_get0_ciphers(ssl, &suites);
  for (std::size_t i = 0; i + 1 < n; i += 2)
    if (suites[i] == 0x56 && suites[i + 1] == 0x00)  // TLS_FALLBACK_SCSV
      return true;
  return false;
}

/// Everything decided from the ClientHello before OpenSSL acts on it: the fallback check above,
/// and with more_certificates, which certificates this client's SNI gets (cert_select.hpp).
int client_hello_cb(SSL* ssl, int* alert, void*) {
  const auto& st = context_state::of(ssl);
  if (inappropriate_fallback(ssl, st)) {
    *alert = SSL_AD_INAPPROPRIATE_FALLBACK;
    ERR_raise(ERR_LIB_SSL, SSL_R_INAPPROPRIATE_FALLBACK);
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (st.certificates && !st.certificates->select(ssl)) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return 1;
}

/// The session-ID context of a server: a digest of everything that decides whether a client
/// is accepted (verify mode, trusted CAs, CRLs, depth, pins), so that a session made under
/// one set of client requirements never resumes under another (SSL_CTX_set_session_id_context).
std::string session_id_context(SSL_CTX* ctx, const context_state& st, verify_mode mode) {
  std::string in = "sslstream|" + std::to_string(static_cast<int>(mode)) + "|" +
                   std::to_string(st.options.max_depth) + "|" +
                   std::to_string(st.options.crl_check) + "|";
  for (const auto& pin : st.pins) in += pin + ",";
  STACK_OF(X509_OBJECT)* objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
  for (int i = 0; i < sk_X509_OBJECT_num(objs); ++i) {
    X509_OBJECT* o = sk_X509_OBJECT_value(objs, i);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509* x = X509_OBJECT_get0_X509(o); x && X509_digest(x, EVP_sha256(), md, &len) == 1)
      in.append(reinterpret_cast<const char*>(md), len);
    else if (X509_CRL* c = X509_OBJECT_get0_X509_CRL(o);
             c && X509_CRL_digest(c, EVP_sha256(), md, &len) == 1)
      in.append(reinterpret_cast<const char*>(md), len);
  }
  in += "|" + st.options.ca_directory;  // certificates OpenSSL may still find there lazily
  if (st.options.verify_callback) {
    // A callback's rules cannot be compared: sessions resume only within this context.
    unsigned char salt[16];
    RAND_bytes(salt, sizeof salt);
    in.append(reinterpret_cast<const char*>(salt), sizeof salt);
  }
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(in.data()), in.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);  // 32 = the maximum
}

/// Server: the ticket keys (ssl_options::ticket_key_file, or rotating random ones) and the
/// OCSP staple (ssl_options::ocsp_response_file); see ticket_keys.hpp and ocsp_staple.hpp.
void install_tickets_and_staple(SSL_CTX* ctx, context_state& st) {
  const auto lifetime = st.options.ticket_lifetime;
  if (lifetime < std::chrono::seconds(1) || lifetime > std::chrono::days(7))
    throw config_error(errc::bad_option, "bad-option",
                       "ssl_options::ticket_lifetime must lie between 1 s and 7 days (604800 "
                       "s, the longest a TLS 1.3 ticket may live), not " +
                           std::to_string(lifetime.count()) + " s");
  st.tickets = st.options.ticket_key_file.empty()
                   ? detail::ticket_keys::rotating(lifetime)
                   : detail::ticket_keys::from_file(st.options.ticket_key_file);
  detail::ticket_keys::install(ctx, lifetime);
  if (!st.options.ocsp_response_file.empty()) {
    STACK_OF(X509)* chain = nullptr;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    st.ocsp =
        detail::ocsp_staple::from_file(st.options.ocsp_response_file, SSL_CTX_get0_certificate(ctx),
                                       chain, SSL_CTX_get_cert_store(ctx));
    detail::ocsp_staple::install(ctx);
  }
}

ssl_context make_context(const ssl_options& o, bool server) {
  auto st = std::make_shared<context_state>();
  st->options = o;
  st->server = server;
  st->ctx.reset(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!st->ctx) fail(errc::bad_option, "bad-option", "cannot create an OpenSSL context");
  SSL_CTX* ctx = st->ctx.get();
  SSL_CTX_set_ex_data(ctx, context_state::ex_index(), st.get());
  SSL_CTX_set_default_passwd_cb(ctx, password_cb);  // never a terminal prompt

  if (tls_number(o.min_version) > tls_number(o.max_version))
    throw config_error(errc::bad_option, "bad-option",
                       "min_version is above max_version: no TLS version is allowed");
  if (SSL_CTX_set_min_proto_version(ctx, tls_number(o.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, tls_number(o.max_version)) != 1)
    fail(errc::bad_option, "bad-option", "unsupported TLS version bounds");

  // No renegotiation (a DoS and injection risk; TLS 1.3 has none), no compression (CRIME).
  uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
  if (server && o.prefer_server_cipher_order) opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  SSL_CTX_set_options(ctx, opts);
  // One read() per record where possible: OpenSSL reads ahead into its buffer.
  SSL_CTX_set_read_ahead(ctx, 1);
  // Idle connections give their record buffers back (they are allocated again on use): memory
  // per idle connection is what lets a server hold many.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // A write retried after want_write may pass the same bytes at another address (a vector
  // that grew, a ring buffer compacted); OpenSSL would otherwise fail it ("bad write retry").
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read ahead up to four records per recv(): fewer syscalls for bulk data. Released buffers
  // make this cost nothing on idle connections.
  SSL_CTX_set_default_read_buffer_len(ctx, 4 * 16384 + 512);
  SSL_CTX_set_dh_auto(ctx, 1);

  // TLS <= 1.2: forward secrecy and AEAD only, unless the caller says otherwise.
  const std::string ciphers =
      o.ciphers.empty() ? "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL" : o.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1)
    fail(errc::bad_option, "bad-option",
         "no usable cipher in the list '" + ciphers + "' (ssl_options::ciphers)");
  if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str()) != 1)
    fail(errc::bad_option, "bad-option",
         "no usable TLS 1.3 suite in '" + o.ciphersuites + "' (ssl_options::ciphersuites)");

  if (server && o.certificate.empty() && o.certificate_pem.empty())
    throw config_error(errc::bad_certificate, "bad-certificate",
                       "a TLS server needs a certificate: set ssl_options::certificate");
  if (!o.certificate.empty() || !o.certificate_pem.empty()) load_certificate_and_key(ctx, o);
  if (!server && !o.more_certificates.empty())
    throw config_error(errc::bad_option, "bad-option",
                       "ssl_options::more_certificates is for servers; a client has one "
                       "certificate (ssl_options::certificate)");

  for (const auto& pin : o.pinned_sha256) st->pins.push_back(normalized_pin(pin));
  verify_mode mode = o.verify.value_or(server ? verify_mode::none : verify_mode::required);
  if (!st->pins.empty()) mode = verify_mode::required;  // by the pins, not by a CA
  if (server && mode != verify_mode::none && st->pins.empty() && o.ca_file.empty() &&
      o.ca_directory.empty() && o.ca_pem.empty())
    throw config_error(errc::bad_option, "bad-option",
                       "a server that verifies client certificates must be told which CAs "
                       "issue them: set ssl_options::ca_file (or ca_directory / ca_pem); the "
                       "system trust store would accept any publicly issued certificate");
  if (o.handshake_timeout.count() < 0)
    throw config_error(errc::bad_option, "bad-option",
                       "ssl_options::handshake_timeout is negative (0 means no limit)");
  if ((mode != verify_mode::none && st->pins.empty()) || !o.ca_file.empty() ||
      !o.ca_directory.empty() || !o.ca_pem.empty()) {
    load_trust(ctx, o, server);
    // OpenSSL fills each certificate's cached extensions (key identifiers, purposes) the first
    // time a verification looks at it, and in 3.0 that write races between threads sharing the
    // store. Fill them now, while the context is not shared yet.
    STACK_OF(X509_OBJECT)* objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objs); ++i)
      if (X509* x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i)))
        X509_check_purpose(x, -1, 0);
  }
  int flags = SSL_VERIFY_NONE;
  if (mode != verify_mode::none) flags = SSL_VERIFY_PEER;
  if (server && mode == verify_mode::required) flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, flags, detail::tls_impl::verify_cb);
  SSL_CTX_set_verify_depth(ctx, o.max_depth);
  // Pins and the caller's verify_callback are checked where OpenSSL verifies the chain, so a
  // wrong peer is refused inside the handshake (with an alert), before our own certificate or
  // any data goes to it.
  if (!st->pins.empty() || o.verify_callback)
    SSL_CTX_set_cert_verify_callback(ctx, detail::tls_impl::cert_verify_cb, st.get());

  st->alpn_wire = alpn_wire(o.alpn);
  if (!st->alpn_wire.empty()) {
    if (server)
      SSL_CTX_set_alpn_select_cb(ctx, alpn_select, nullptr);
    else
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(st->alpn_wire.data()),
                              static_cast<unsigned int>(st->alpn_wire.size()));
  }
  if (o.keylog) SSL_CTX_set_keylog_callback(ctx, keylog_cb);

  if (server) {
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, nullptr);
    // Needed for resumption when client certificates are requested, and it must differ
    // wherever the client requirements differ (see session_id_context).
    std::string sid = session_id_context(ctx, *st, mode);
    SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(sid.data()),
                                   static_cast<unsigned int>(sid.size()));
    if (!o.more_certificates.empty())
      st->certificates = std::make_shared<detail::certificate_selection>(ctx, o, sid);
    // Resumption by tickets only (TLS 1.3, and 1.2 with the ticket extension): the server keeps
    // no per-client state, so a thousand clients do not leave a thousand sessions (up to
    // 20,480 by default) in its memory after they are gone.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    // One TLS 1.3 ticket per handshake, not OpenSSL's two: a client resumes with one, and gets
    // a fresh one each time it does. Each ticket costs the server an encryption and a MAC.
    SSL_CTX_set_num_tickets(ctx, 1);
    install_tickets_and_staple(ctx, *st);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    SSL_CTX_set_cert_cb(ctx, detail::tls_impl::cert_requested_cb, nullptr);
    if (o.request_ocsp) SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp);
    if (!o.session.empty()) {
      detail::bio_ptr b(BIO_new_mem_buf(o.session.data(), static_cast<int>(o.session.size())));
      st->imported_session.reset(PEM_read_bio_SSL_SESSION(b.get(), nullptr, nullptr, nullptr));
      if (!st->imported_session)
        fail(errc::bad_option, "bad-option",
             "ssl_options::session is not a saved TLS session (expected the PEM text "
             "ssl_stream::session() returns, '-----BEGIN SSL SESSION PARAMETERS-----')");
    }
  }
  ERR_clear_error();
  return ssl_context(std::move(st));
}

}  // namespace

ssl_context make_ssl_server_context(const ssl_options& options) {
  return make_context(options, true);
}
ssl_context make_ssl_client_context(const ssl_options& options) {
  return make_context(options, false);
}

bool ssl_context::is_server() const noexcept { return s_->server; }
const ssl_options& ssl_context::options() const noexcept { return s_->options; }
void* ssl_context::native_handle() const noexcept { return s_->ctx.get(); }

}  // namespace sslstream
