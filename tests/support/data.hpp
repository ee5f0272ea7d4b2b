// Test support: test data and how it is checked — seeded random bytes, SHA-256, and reading an
// exact count through read_some.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <random>
#include <span>
#include <string>

namespace testing_support {

/// `n` bytes from a generator seeded with `seed`: the same bytes for the same seed.
inline std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline std::string sha256(const std::string& data) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), n);
}

/// Reads `n` bytes with read_some; fewer only if the stream ends cleanly first.
template <class Stream>
std::string read_exactly(Stream& s, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    auto k = s.read_some(std::as_writable_bytes(std::span(out)).subspan(got));
    if (k == 0) break;
    got += k;
  }
  out.resize(got);
  return out;
}

}  // namespace testing_support
