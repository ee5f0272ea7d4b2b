// How much heap OpenSSL itself keeps for one server connection, without sslstream: at SSL_new
// and after a TLS 1.3 handshake (ECDSA P-256, X25519, AES-256-GCM, SSL_MODE_RELEASE_BUFFERS,
// the settings sslstream uses), with the ticket and session-cache settings that could matter.
// It is the floor under the engine's bytes per idle connection (issue 11 asked for 12 KiB).
//
//   bench_openssl_floor CERT.pem KEY.pem [CONNECTIONS]
//
// Each handshake runs over a socketpair (kernel buffers, not heap); the clients are freed
// before the count, so it is the servers' heap alone (mallinfo2, glibc).
#include <malloc.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::size_t heap_in_use() { return mallinfo2().uordblks; }

struct variant {
  const char* name;
  int tickets;
  bool cache_off;
  bool no_ticket;
};

SSL_CTX* server_context(const char* cert, const char* key, const variant& v) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    std::fprintf(stderr, "bench_openssl_floor: cannot read %s / %s\n", cert, key);
    std::exit(2);
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | (v.no_ticket ? SSL_OP_NO_TICKET : 0));
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set1_groups_list(ctx, "X25519");
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_num_tickets(ctx, static_cast<std::size_t>(v.tickets));
  if (v.cache_off) SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  return ctx;
}

/// Heap per server SSL after a handshake (and one byte of data each way), in bytes.
double after_handshake(SSL_CTX* sctx, SSL_CTX* cctx, int n) {
  std::vector<SSL*> servers(static_cast<std::size_t>(n)), clients(servers.size());
  std::vector<int> fds;
  auto base = heap_in_use();
  for (std::size_t i = 0; i < servers.size(); ++i) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) std::exit(3);
    fds.insert(fds.end(), {sv[0], sv[1]});
    servers[i] = SSL_new(sctx);
    clients[i] = SSL_new(cctx);
    SSL_set_fd(servers[i], sv[0]);
    SSL_set_fd(clients[i], sv[1]);
    SSL_set_accept_state(servers[i]);
    SSL_set_connect_state(clients[i]);
    for (int k = 0;
         k < 20 && !(SSL_is_init_finished(servers[i]) && SSL_is_init_finished(clients[i])); ++k) {
      SSL_do_handshake(clients[i]);
      SSL_do_handshake(servers[i]);
    }
    char b[64];
    SSL_write(servers[i], "x", 1);
    SSL_read(clients[i], b, sizeof b);  // the tickets, then the byte
    if (!SSL_is_init_finished(servers[i])) {
      std::fprintf(stderr, "bench_openssl_floor: a handshake did not finish\n");
      std::exit(4);
    }
  }
  for (auto* c : clients) SSL_free(c);
  auto per = static_cast<double>(heap_in_use() - base) / n;
  for (auto* s : servers) SSL_free(s);
  for (int fd : fds) ::close(fd);
  return per;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_openssl_floor CERT.pem KEY.pem [CONNECTIONS]\n");
    return 2;
  }
  int n = argc > 3 ? std::atoi(argv[3]) : 2000;
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  if (static_cast<rlim_t>(2 * n + 64) > r.rlim_cur) n = static_cast<int>((r.rlim_cur - 64) / 2);

  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, nullptr);
  const variant variants[] = {{"1 ticket (sslstream's default)", 1, false, false},
                              {"2 tickets (nginx's)", 2, false, false},
                              {"no tickets, session cache off", 0, true, true}};
  std::printf("OpenSSL %s, %d server connections, heap per server SSL (bytes):\n",
              OpenSSL_version(OPENSSL_VERSION), n);
  {
    SSL_CTX* sctx = server_context(argv[1], argv[2], variants[0]);
    std::vector<SSL*> fresh(static_cast<std::size_t>(n));
    auto base = heap_in_use();
    for (auto& s : fresh) s = SSL_new(sctx);
    std::printf("  at SSL_new %-47s %8.0f\n", "", static_cast<double>(heap_in_use() - base) / n);
    for (auto* s : fresh) SSL_free(s);
    SSL_CTX_free(sctx);
  }
  for (const auto& v : variants) {
    SSL_CTX* sctx = server_context(argv[1], argv[2], v);
    std::printf("  after a TLS 1.3 handshake, %-31s %8.0f\n", v.name,
                after_handshake(sctx, cctx, n));
    SSL_CTX_free(sctx);
  }
  SSL_CTX_free(cctx);
  return 0;
}
