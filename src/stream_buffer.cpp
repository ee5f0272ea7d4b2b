#include "stream_buffer.hpp"

#include <algorithm>
#include <cstring>

namespace sslstream::detail {

namespace {
std::span<std::byte> bytes(char* p, std::size_t n) { return {reinterpret_cast<std::byte*>(p), n}; }
std::span<const std::byte> bytes(const char* p, std::size_t n) {
  return {reinterpret_cast<const std::byte*>(p), n};
}
}  // namespace

std::size_t stream_buffer::take_buffered(std::span<std::byte> out) noexcept {
  auto n = std::min(static_cast<std::size_t>(egptr() - gptr()), out.size());
  if (n == 0) return 0;
  std::memcpy(out.data(), gptr(), n);
  gbump(static_cast<int>(n));
  return n;
}

std::size_t stream_buffer::read_some(std::span<std::byte> out) {
  if (out.empty()) return 0;
  if (auto n = take_buffered(out)) return n;
  return t_->read_some(out);
}

void stream_buffer::write_all(std::span<const std::byte> in) {
  // write_all sends before it returns. A small write that fits after what `<<` buffered joins it,
  // so both leave in one record (one syscall); anything else goes after the buffered bytes.
  if (in.size() < area_size && out_ && static_cast<std::size_t>(epptr() - pptr()) >= in.size()) {
    std::memcpy(pptr(), in.data(), in.size());
    pbump(static_cast<int>(in.size()));
    flush_output();
    return;
  }
  flush_output();
  if (!in.empty()) t_->write_all(in);
}

void stream_buffer::flush_output() {
  auto n = static_cast<std::size_t>(pptr() - pbase());
  if (n == 0) return;
  // Reset before writing: if the transport throws, the bytes are not sent twice by a later flush.
  setp(out_.get(), out_.get() + area_size);
  t_->write_all(bytes(out_.get(), n));
}

void stream_buffer::discard_output() noexcept {
  if (out_) setp(out_.get(), out_.get() + area_size);
}

std::string stream_buffer::take_input() {
  std::string rest(gptr(), egptr());
  setg(nullptr, nullptr, nullptr);
  return rest;
}

stream_buffer::int_type stream_buffer::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  if (!in_) in_ = std::make_unique<char[]>(area_size);
  auto n = t_->read_some(bytes(in_.get(), area_size));
  if (n == 0) {
    setg(in_.get(), in_.get(), in_.get());
    return traits_type::eof();
  }
  setg(in_.get(), in_.get(), in_.get() + n);
  return traits_type::to_int_type(*gptr());
}

stream_buffer::int_type stream_buffer::overflow(int_type ch) {
  if (!out_) {
    out_ = std::make_unique<char[]>(area_size);
    setp(out_.get(), out_.get() + area_size);
  } else {
    flush_output();
  }
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return traits_type::not_eof(ch);
}

int stream_buffer::sync() {
  flush_output();  // throws on failure; the stream turns that into badbit and rethrows
  return 0;
}

std::streamsize stream_buffer::xsgetn(char* s, std::streamsize n) {
  std::streamsize got = 0;
  while (got < n) {
    auto want = static_cast<std::size_t>(n - got);
    std::size_t r;
    if (gptr() < egptr() || want < area_size) {
      if (gptr() == egptr() && traits_type::eq_int_type(underflow(), traits_type::eof())) break;
      r = std::min(want, static_cast<std::size_t>(egptr() - gptr()));
      std::memcpy(s + got, gptr(), r);
      gbump(static_cast<int>(r));
    } else {
      r = t_->read_some(bytes(s + got, want));  // large read: straight into the caller's memory
      if (r == 0) break;
    }
    got += static_cast<std::streamsize>(r);
  }
  return got;
}

std::streamsize stream_buffer::xsputn(const char* s, std::streamsize n) {
  auto len = static_cast<std::size_t>(n);
  if (out_ && static_cast<std::size_t>(epptr() - pptr()) >= len) {
    std::memcpy(pptr(), s, len);
    pbump(static_cast<int>(len));
    return n;
  }
  if (len >= area_size) {  // large write: after the buffered bytes, straight to the transport
    flush_output();
    t_->write_all(bytes(s, len));
    return n;
  }
  std::streamsize done = 0;
  while (done < n) {
    if (!out_ || pptr() == epptr()) overflow(traits_type::eof());
    auto k =
        std::min(static_cast<std::size_t>(n - done), static_cast<std::size_t>(epptr() - pptr()));
    std::memcpy(pptr(), s + done, k);
    pbump(static_cast<int>(k));
    done += static_cast<std::streamsize>(k);
  }
  return n;
}

std::streamsize stream_buffer::showmanyc() { return egptr() - gptr(); }

}  // namespace sslstream::detail
