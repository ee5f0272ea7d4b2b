// A deterministic random source for OpenSSL, for the fuzz targets and record_seeds only (never
// the library or a normal build). With it, the same fuzz input replays the same handshake: the
// randoms, session IDs, key shares, signature nonces and ticket keys our side draws are the
// ones it drew when the seed was recorded, so a recorded peer's Finished and records verify.
//
// Each thread has its own generator, reset by name: the server's draws do not depend on how
// the client's thread interleaves with it when recording, nor on a concurrent writer thread
// when fuzzing. The generator is not cryptographic; no key made with it protects anything.
#pragma once

#include <string_view>

namespace fuzzing {

/// Makes every OpenSSL random byte of the process come from the calling thread's deterministic
/// generator (installed on first use through RAND_set_rand_method, which OpenSSL 3.0 honours in
/// RAND_bytes_ex and RAND_priv_bytes_ex), and resets this thread's generator to the state named
/// by `label`. A thread that never called this draws from the state named "".
void deterministic_random(std::string_view label);

}  // namespace fuzzing
