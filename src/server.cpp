// sslstream::server and async_stream: the public face of the engine (engine.cpp).
#include <poll.h>

#include "engine.hpp"

namespace sslstream {

using detail::engine_connection;

// --- async_stream ---------------------------------------------------------------------------

async_stream::read_op async_stream::read_some(std::span<std::byte> b) { return {c_, b}; }
async_stream::write_op async_stream::write_all(std::span<const std::byte> d) { return {c_, d}; }
async_stream::close_op async_stream::close() { return close_op(c_); }
std::string async_stream::remote_host() const { return c_.stream.remote_host(); }
std::uint16_t async_stream::remote_port() const { return c_.stream.remote_port(); }
ssl_stream& async_stream::stream() noexcept { return c_.stream; }

bool async_op_base::run_attempt() {
  try {
    return attempt();
  } catch (...) {
    error_ = std::current_exception();
    return true;
  }
}

bool async_op_base::await_ready() { return run_attempt(); }

void async_op_base::await_suspend(std::coroutine_handle<> h) {
  // Parked in the connection's event loop until the socket is ready (or the deadline).
  c_.waiter = h;
  c_.pending = this;
  auto limit = writing_ ? c_.owner->options().write_timeout : c_.owner->options().idle_timeout;
  c_.deadline = limit.count() > 0 ? detail::clock::now() + limit : detail::clock::time_point::max();
  c_.owner->arm(c_, want_);
}

void async_op_base::rethrow_if_failed() {
  c_.deadline = detail::clock::time_point::max();
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

namespace {
short wanted(io_status s) { return s == io_status::want_write ? POLLOUT : POLLIN; }
}  // namespace

bool async_stream::read_op::attempt() {
  auto r = c_.stream.try_read_some(buf_);
  if (r.status == io_status::done || r.status == io_status::eof) {
    got_ = r.bytes;
    return true;
  }
  want_ = wanted(r.status);
  return false;
}

bool async_stream::write_op::attempt() {
  while (!data_.empty()) {
    auto r = c_.stream.try_write_some(data_);  // the same bytes again after a want_*
    if (r.status != io_status::done) {
      want_ = wanted(r.status);
      return false;
    }
    data_ = data_.subspan(r.bytes);
  }
  return true;
}

bool async_stream::close_op::attempt() {
  auto r = c_.stream.try_shutdown();
  if (r.status == io_status::done) return true;
  want_ = wanted(r.status);
  return false;
}

// --- server ---------------------------------------------------------------------------------

server::server(passive_socket l, ssl_context ctx, blocking_handler h, server_options o)
    : e_(std::make_unique<detail::engine>(std::move(l), std::move(ctx), std::move(h), nullptr, o)) {
}
server::server(passive_socket l, ssl_context ctx, coroutine_handler h, server_options o)
    : e_(std::make_unique<detail::engine>(std::move(l), std::move(ctx), nullptr, std::move(h), o)) {
}
server::~server() = default;
void server::run() { e_->run(); }
void server::start() { e_->start(); }
void server::stop() { e_->stop(); }
void server::stop(std::chrono::milliseconds drain) { e_->stop(drain); }
void server::stop_accepting() { e_->stop_accepting(); }
void server::reload(ssl_context c) { e_->reload(std::move(c)); }
std::uint16_t server::local_port() const noexcept { return e_->local_port(); }
server_stats server::stats() const noexcept { return e_->stats(); }

}  // namespace sslstream
