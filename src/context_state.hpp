// Internal: what an ssl_context shares among its streams — the SSL_CTX, the options it was built
// from, and (client side) the session cache that makes repeat handshakes cheap.
#pragma once

#include <memory>
#include <mutex>
#include <sslstream/ssl_context.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "ocsp_staple.hpp"
#include "ossl.hpp"
#include "ticket_keys.hpp"

namespace sslstream::detail {

class certificate_selection;

struct context_state {
  ssl_ctx_ptr ctx;
  ssl_options options;
  bool server = false;
  std::string alpn_wire;          // ALPN list in wire format (RFC 7301 §3.1)
  std::vector<std::string> pins;  // pinned_sha256, as lower-case hex without colons
  /// Server with more_certificates: which certificates each SNI name gets (cert_select.hpp).
  std::shared_ptr<const certificate_selection> certificates;

  /// Client sessions by "server_name|address|port": one per server, replaced as new tickets
  /// arrive. Bounded, so a client talking to many servers does not grow without limit.
  std::mutex sessions_mutex;
  std::unordered_map<std::string, ssl_session_ptr> sessions;
  static constexpr std::size_t max_sessions = 1024;

  void store_session(const std::string& key, SSL_SESSION* s);
  ssl_session_ptr find_session(const std::string& key);
  /// ssl_options::session, parsed when the context was built; offered by the first stream
  /// (TLS 1.3) or by every stream (TLS 1.2) of this context before the cache is asked.
  ssl_session_ptr imported_session;
  /// The imported session if it was made for `name` (SNI), else nothing.
  ssl_session_ptr take_imported_session(const std::string& name);

  /// Server: the keys of its session tickets, and the OCSP response it staples (or none).
  std::shared_ptr<ticket_keys> tickets;
  std::shared_ptr<ocsp_staple> ocsp;

  static int ex_index();  // SSL_CTX ex_data slot pointing back here
  static context_state& of(const SSL* ssl);
};

}  // namespace sslstream::detail
