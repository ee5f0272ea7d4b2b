// Small writes: write_all sends before it returns (one TLS record and one syscall per call),
// so many small write_all calls cost a record each; the iostream (`<<`, write()) gathers them
// into full 16 KiB records and sends on flush(). This measures both against write_all with
// whole records, on one loopback TLS 1.3 connection (TLS_AES_256_GCM_SHA384, X25519, same for
// every row), the reader counting and summing every byte. Ratios are against the first row of
// the same run (these machines are noisy).
//
//   build/bench/bench_small_writes [MiB per row, default 128]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <numeric>
#include <sslstream/sslstream.hpp>
#include <string>
#include <vector>

using namespace sslstream;
using clock_type = std::chrono::steady_clock;

namespace {

struct row {
  const char* name;
  std::size_t piece;
  bool iostream;
};

double run(const row& r, std::size_t total, const ssl_context& sctx, const ssl_context& cctx) {
  auto listener = make_socket(passive{.local_host = "127.0.0.1"});
  active to;
  to.remote_host = "127.0.0.1";
  to.remote_port = listener.local_port();
  auto reader = std::async(std::launch::async, [&] {
    auto s = make_ssl_server_stream(listener.accept_connection(), sctx);
    std::vector<std::byte> buf(1 << 16);
    std::size_t got = 0;
    std::uint64_t sum = 0;
    for (std::size_t n; (n = s.read_some(buf)) > 0; got += n)
      for (std::size_t i = 0; i < n; ++i) sum += static_cast<std::uint8_t>(buf[i]);
    return std::pair{got, sum};
  });
  auto c = make_ssl_client_stream(make_socket(to), cctx);
  c.do_handshake();
  std::vector<char> piece(r.piece);
  for (std::size_t i = 0; i < piece.size(); ++i) piece[i] = static_cast<char>(i * 7 + 1);
  const std::uint64_t piece_sum =
      std::accumulate(piece.begin(), piece.end(), std::uint64_t{0},
                      [](std::uint64_t a, char b) { return a + static_cast<std::uint8_t>(b); });
  const std::size_t count = total / r.piece;
  auto t0 = clock_type::now();
  for (std::size_t i = 0; i < count; ++i) {
    if (r.iostream)
      c.write(piece.data(), static_cast<std::streamsize>(piece.size()));
    else
      c.write_all(std::as_bytes(std::span(piece)));
  }
  c.flush();
  c.close();
  auto [got, sum] = reader.get();
  double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (got != count * r.piece || sum != piece_sum * count) {
    std::fprintf(stderr, "%s: %zu of %zu bytes arrived, or wrong bytes\n", r.name, got,
                 count * r.piece);
    std::exit(1);
  }
  return static_cast<double>(got) / secs / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 128;
  ssl_options so;
  so.certificate = SSLSTREAM_SAMPLE_PEM;
  so.ciphersuites = "TLS_AES_256_GCM_SHA384";
  so.min_version = tls_version::tls1_3;
  ssl_options co;
  co.ca_file = SSLSTREAM_SAMPLE_PEM;
  co.ciphersuites = "TLS_AES_256_GCM_SHA384";
  co.min_version = tls_version::tls1_3;
  auto sctx = make_ssl_server_context(so);
  auto cctx = make_ssl_client_context(co);
  const row rows[] = {{"write_all, 16 KiB pieces (baseline)", 16384, false},
                      {"write_all, 1 KiB pieces", 1024, false},
                      {"iostream write(), 1 KiB pieces", 1024, true},
                      {"write_all, 64 B pieces", 64, false},
                      {"iostream write(), 64 B pieces", 64, true}};
  std::printf("%-40s %10s %8s   (%zu MiB per row, TLS 1.3 AES-256-GCM)\n", "row", "GB/s", "ratio",
              mib);
  double base = 0;
  for (const auto& r : rows) {
    double gbps = run(r, mib << 20, sctx, cctx);
    if (base == 0) base = gbps;
    std::printf("%-40s %10.3f %7.2fx\n", r.name, gbps, gbps / base);
  }
}
