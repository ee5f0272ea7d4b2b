// Several certificates on one server: which ones a handshake serves, from the ClientHello's SNI.
// OpenSSL keeps one certificate per key type and picks among those by what the client can
// verify, so the choice here is only by name: the certificates a name matches are installed on
// the connection, and OpenSSL does the rest.
#include "cert_select.hpp"

#include <openssl/sha.h>
#include <openssl/tls1.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace sslstream::detail {
namespace {

[[noreturn]] void fail(errc code, const char* id, const std::string& message) {
  std::string queue = drain_errors();
  throw config_error(code, id, queue.empty() ? message : message + " [OpenSSL: " + queue + "]");
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Where OpenSSL keeps a key: one certificate per base type (EC keys of every curve share one).
int key_slot(EVP_PKEY* key) { return EVP_PKEY_get_base_id(key); }

/// All subjectAltNames ("DNS:a.example", "IP:127.0.0.1"), lower-cased and sorted: two
/// certificates with the same set are the same server in two key types.
std::set<std::string> alt_names(X509* leaf) {
  std::set<std::string> out;
  for (const auto& [type, value] : x509_certificate::from_native(leaf).subject_alt_names())
    out.insert(type + ":" + lower(value));
  return out;
}

/// A host name as names in certificates are written: lower-case (DNS names ignore case, RFC
/// 4343), without the trailing dot of a fully qualified name ("example.com." is "example.com",
/// and certificates never carry the dot, RFC 6125 §6.4.1).
std::string normalized_host(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  return lower(std::move(name));
}

/// The SNI host name of the ClientHello being processed, normalized; empty when there is none
/// or it is malformed (OpenSSL rejects the latter itself a moment later).
std::string client_hello_server_name(SSL* ssl) {
  const unsigned char* p = nullptr;
  std::size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 2) return {};
  // RFC 6066 §3: a 2-byte list length, then entries of a type byte (0 = host_name), a 2-byte
  // length and the name.
  if ((static_cast<std::size_t>(p[0]) << 8 | p[1]) != len - 2) return {};
  for (std::size_t i = 2; i + 3 <= len;) {
    std::size_t n = static_cast<std::size_t>(p[i + 1]) << 8 | p[i + 2];
    if (i + 3 + n > len) return {};
    if (p[i] == TLSEXT_NAMETYPE_host_name)
      return normalized_host(std::string(reinterpret_cast<const char*>(p + i + 3), n));
    i += 3 + n;
  }
  return {};
}

std::string sha256(const std::string& in) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(in.data()), in.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

}  // namespace

certificate_selection::certificate_selection(SSL_CTX* ctx, const ssl_options& o,
                                             const std::string& session_id_context) {
  // ssl_options::certificate, as load_certificate_and_key left it in the context.
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  EVP_PKEY* key = SSL_CTX_get0_privatekey(ctx);
  if (!leaf || !key)
    fail(errc::bad_certificate, "bad-certificate",
         "ssl_options::more_certificates needs ssl_options::certificate as well");
  key_pair main;
  X509_up_ref(leaf);
  main.leaf.reset(leaf);
  EVP_PKEY_up_ref(key);
  main.key.reset(key);
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  main.chain.reset(chain ? X509_chain_up_ref(chain) : sk_X509_new_null());
  if (!main.chain) fail(errc::bad_certificate, "bad-certificate", "out of memory");
  main.certificate = o.certificate_pem.empty() ? o.certificate : "ssl_options::certificate_pem";
  pairs_.push_back(std::move(main));
  for (std::size_t i = 0; i < o.more_certificates.size(); ++i)
    pairs_.push_back(read_key_pair(o.more_certificates[i],
                                   "ssl_options::more_certificates[" + std::to_string(i) + "].",
                                   "password"));
  auto label = [&](std::size_t i) {
    return (i == 0 ? std::string("ssl_options::certificate")
                   : "ssl_options::more_certificates[" + std::to_string(i - 1) + "]") +
           " ('" + pairs_[i].certificate + "')";
  };

  // Each pair must be one OpenSSL will serve (key strength, signature): tried now on a
  // connection of this context, as every handshake that chooses it will. This also fills each
  // certificate's cached extensions while the context is not shared yet (OpenSSL 3.0 fills
  // them on first use, racing between threads).
  ssl_ptr probe(SSL_new(ctx));
  if (!probe) fail(errc::bad_option, "bad-option", "cannot create an OpenSSL connection");
  for (std::size_t i = 1; i < pairs_.size(); ++i) {
    const key_pair& p = pairs_[i];
    if (SSL_use_cert_and_key(probe.get(), p.leaf.get(), p.key.get(), p.chain.get(), 1) != 1)
      fail(errc::bad_certificate, "bad-certificate", "OpenSSL will not serve " + label(i));
  }

  // Those with exactly the names of `certificate` serve beside it in the context: without SNI,
  // or for a name nothing else has, a client still gets the key type it can verify.
  std::vector<std::set<std::string>> names;
  for (const auto& p : pairs_) names.push_back(alt_names(p.leaf.get()));
  std::map<int, std::size_t> own;  // key type → the context's certificate of that type
  own[key_slot(pairs_[0].key.get())] = 0;
  for (std::size_t i = 1; i < pairs_.size(); ++i) {
    if (names[i] != names[0]) continue;
    const key_pair& p = pairs_[i];
    auto [it, added] = own.emplace(key_slot(p.key.get()), i);
    if (!added)
      throw config_error(errc::bad_certificate, "bad-certificate",
                         label(i) + " has the same names and key type as " + label(it->second) +
                             ": only the first would ever be served; remove one");
    if (SSL_CTX_use_cert_and_key(ctx, p.leaf.get(), p.key.get(), p.chain.get(), 1) != 1)
      fail(errc::bad_certificate, "bad-certificate", "OpenSSL will not serve " + label(i));
  }
  SSL_CTX_select_current_cert(ctx, pairs_[0].leaf.get());  // what the context's users expect
  std::set<std::size_t> context_own;
  for (const auto& [slot, i] : own) context_own.insert(i);

  // Every DNS name, exact or "*." and one label, with the certificates it matches in order.
  std::map<std::string, std::vector<std::size_t>> exact, wildcard;
  for (std::size_t i = 0; i < pairs_.size(); ++i)
    for (const auto& n : names[i]) {
      if (n.rfind("DNS:", 0) != 0) continue;
      std::string dns = n.substr(4);
      if (dns.rfind("*.", 0) == 0)
        wildcard[dns.substr(2)].push_back(i);
      else
        exact[dns].push_back(i);
    }
  // Each name's certificates, the first of each key type, are one group; names with the same
  // certificates share it, and the context's own need no group of their own (index 0).
  std::map<std::set<std::size_t>, std::size_t> group_of{{context_own, 0}};
  groups_.push_back({});  // 0: nothing to change
  std::set<std::size_t> served = context_own;
  auto plan = [&](const std::map<std::string, std::vector<std::size_t>>& in,
                  std::unordered_map<std::string, std::size_t>& out) {
    for (const auto& [name, matches] : in) {
      std::map<int, std::size_t> first;
      for (std::size_t i : matches) first.emplace(key_slot(pairs_[i].key.get()), i);
      std::set<std::size_t> set;
      for (const auto& [slot, i] : first) set.insert(i);
      served.insert(set.begin(), set.end());
      auto [it, added] = group_of.emplace(set, groups_.size());
      if (added) {
        group g;
        std::string id = session_id_context + "|more_certificates";
        for (std::size_t i : set) {
          g.pairs.push_back(&pairs_[i]);
          unsigned char md[EVP_MAX_MD_SIZE];
          unsigned int len = 0;
          X509_digest(pairs_[i].leaf.get(), EVP_sha256(), md, &len);
          id.append(reinterpret_cast<const char*>(md), len);
        }
        // Bound to these very certificates: a session made with others never resumes here.
        g.session_id_context = sha256(id);  // 32 bytes, SSL_MAX_SID_CTX_LENGTH
        groups_.push_back(std::move(g));
      }
      out[name] = it->second;
    }
  };
  plan(exact, exact_);
  plan(wildcard, wildcard_);

  for (std::size_t i = 1; i < pairs_.size(); ++i) {
    if (served.contains(i)) continue;
    bool has_dns = std::any_of(names[i].begin(), names[i].end(),
                               [](const std::string& n) { return n.rfind("DNS:", 0) == 0; });
    throw config_error(
        errc::bad_certificate, "bad-certificate",
        label(i) +
            (has_dns ? " would never be served: for each of its DNS names an earlier certificate "
                       "of the same key type is chosen; give each name one certificate per key "
                       "type"
                     : " has no DNS name in its subjectAltName, so no client's SNI can choose "
                       "it, and its names differ from ssl_options::certificate's, so it does "
                       "not serve beside it either"));
  }
}

const certificate_selection::group* certificate_selection::group_for(
    const std::string& server_name) const {
  if (server_name.empty()) return nullptr;
  auto it = exact_.find(server_name);
  if (it == exact_.end()) {
    // A wildcard covers exactly one label, which must not be empty.
    auto dot = server_name.find('.');
    if (dot == 0 || dot == std::string::npos) return nullptr;
    it = wildcard_.find(server_name.substr(dot + 1));
    if (it == wildcard_.end()) return nullptr;
  }
  return it->second == 0 ? nullptr : &groups_[it->second];
}

bool certificate_selection::select(SSL* ssl) const {
  const group* g = group_for(client_hello_server_name(ssl));
  if (!g) return true;  // the context's own certificates and session-ID context
  SSL_certs_clear(ssl);
  for (const key_pair* p : g->pairs)
    if (SSL_use_cert_and_key(ssl, p->leaf.get(), p->key.get(), p->chain.get(), 1) != 1)
      return false;
  return SSL_set_session_id_context(
             ssl, reinterpret_cast<const unsigned char*>(g->session_id_context.data()),
             static_cast<unsigned int>(g->session_id_context.size())) == 1;
}

}  // namespace sslstream::detail
