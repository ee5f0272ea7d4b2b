#include "hello_peek.hpp"

#include <algorithm>

namespace sslstream::detail {

bool client_hello_whole(std::span<const unsigned char> peeked) noexcept {
  constexpr unsigned char handshake_record = 0x16, client_hello = 0x01;
  constexpr std::size_t header = 5, max_record = 16384 + 256;
  std::size_t pos = 0;
  std::size_t message = 0;      // handshake bytes seen so far, across records
  unsigned char start[4] = {};  // the handshake header: type, 24-bit length
  while (pos + header <= peeked.size()) {
    if (peeked[pos] != handshake_record) return true;  // OpenSSL's to reject
    std::size_t length = (std::size_t{peeked[pos + 3]} << 8) | peeked[pos + 4];
    if (length > max_record) return true;
    std::size_t here = std::min(length, peeked.size() - pos - header);
    for (std::size_t i = 0; i < here && message + i < 4; ++i)
      start[message + i] = peeked[pos + header + i];
    message += here;
    if (message >= 4) {
      if (start[0] != client_hello) return true;
      std::size_t need =
          4 + ((std::size_t{start[1]} << 16) | (std::size_t{start[2]} << 8) | start[3]);
      if (message >= need) return true;
    }
    if (here < length) break;  // this record is still arriving
    pos += header + length;
  }
  if (pos < peeked.size() && peeked[pos] != handshake_record) return true;
  return peeked.size() >= hello_peek_size;
}

}  // namespace sslstream::detail
