// Internal: the one buffered std::streambuf both stream kinds share. Buffering only; the bytes
// go to and come from a transport (a plain socket or the TLS engine).
//
// Input and output have separate areas, so one thread may read while another writes. Each area
// is a TLS record's worth (16 KiB), allocated on first use. Large reads and writes bypass the
// buffers entirely: read() into the caller's memory, write() straight to the transport.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <streambuf>
#include <string>

namespace sslstream::detail {

class transport {
 public:
  virtual ~transport() = default;
  /// At least one byte, waiting for it; 0 only at a clean end of stream. Throws on failure.
  virtual std::size_t read_some(std::span<std::byte> out) = 0;
  /// Everything or an exception.
  virtual void write_all(std::span<const std::byte> in) = 0;
};

class stream_buffer final : public std::streambuf {
 public:
  static constexpr std::size_t area_size = 16384;  // one full TLS record (RFC 8446 §5.1)

  explicit stream_buffer(transport& t) : t_(&t) {}

  /// Buffered input first, then the transport.
  std::size_t read_some(std::span<std::byte> out);
  /// Buffered output first, then `in`, both straight to the transport.
  void write_all(std::span<const std::byte> in);
  /// Pushes buffered output to the transport.
  void flush_output();
  bool has_output() const noexcept { return pptr() != pbase(); }
  std::span<const std::byte> pending_output() const noexcept {
    return {reinterpret_cast<const std::byte*>(pbase()),
            static_cast<std::size_t>(pptr() - pbase())};
  }
  /// Copies out (and consumes) what is buffered, never touching the transport.
  std::size_t take_buffered(std::span<std::byte> out) noexcept;
  /// Takes the bytes read but not yet consumed (handed to TLS at STARTTLS).
  std::string take_input();
  /// Drops buffered output (after a fatal error, so close does not retry it).
  void discard_output() noexcept;

 protected:
  int_type underflow() override;
  int_type overflow(int_type ch) override;
  int sync() override;
  std::streamsize xsgetn(char* s, std::streamsize n) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  std::streamsize showmanyc() override;

 private:
  transport* t_;
  std::unique_ptr<char[]> in_;
  std::unique_ptr<char[]> out_;
};

}  // namespace sslstream::detail
