// See deterministic_rand.hpp. RAND_set_rand_method is deprecated in OpenSSL 3.0 but still the
// simplest way to replace every draw (a provider's test RNG would also need the private and
// public DRBGs of every library context replaced).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "deterministic_rand.hpp"

#include <openssl/rand.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace fuzzing {
namespace {

/// splitmix64 over a counter: a different stream per label, the same stream for the same label.
struct generator {
  std::uint64_t state = 0;

  void reset(std::string_view label) {
    state = 0xcbf29ce484222325u;  // FNV-1a of the label
    for (char c : label) state = (state ^ static_cast<unsigned char>(c)) * 0x100000001b3u;
  }
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
};

generator& this_thread() {
  thread_local generator g = [] {
    generator fresh;
    fresh.reset("");
    return fresh;
  }();
  return g;
}

int bytes(unsigned char* buf, int num) {
  auto& g = this_thread();
  for (int i = 0; i < num; i += 8) {
    std::uint64_t v = g.next();
    std::memcpy(buf + i, &v, static_cast<std::size_t>(num - i < 8 ? num - i : 8));
  }
  return 1;
}
int seed(const void*, int) { return 1; }
int add(const void*, int, double) { return 1; }
int status() { return 1; }

const RAND_METHOD method = {seed, bytes, nullptr, add, bytes, status};

}  // namespace

void deterministic_random(std::string_view label) {
  static std::once_flag installed;
  std::call_once(installed, [] {
    if (RAND_set_rand_method(&method) != 1)
      throw std::runtime_error("fuzzing: RAND_set_rand_method failed");
  });
  this_thread().reset(label);
}

}  // namespace fuzzing
