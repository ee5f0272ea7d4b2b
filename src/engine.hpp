// Internal: the server engine behind sslstream::server — event loops (one epoll set each) that
// accept and handshake without blocking and run coroutine handlers, and a worker pool for
// blocking handlers. It sits on ssl_stream's non-blocking calls (try_handshake, try_read_some,
// try_write_some, try_shutdown) and nothing else of the stream's insides.
#pragma once

#include <atomic>
#include <condition_variable>
#include <list>
#include <mutex>
#include <sslstream/server.hpp>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fd.hpp"
#include "worker_pool.hpp"

namespace sslstream::detail {

class event_loop;

struct engine_connection {
  engine_connection(ssl_stream s, event_loop& loop) : stream(std::move(s)), owner(&loop) {}
  ssl_stream stream;
  event_loop* owner;
  enum class phase { handshake, coroutine, worker } state = phase::handshake;
  clock::time_point deadline = clock::time_point::max();
  bool registered = false;     // in the loop's epoll set
  bool hello_started = false;  // the first try_handshake ran (the whole ClientHello had come)
  clock::time_point accepted_at = clock::now();
  std::list<engine_connection*>::iterator in_handshake;  // its place in the loop's handshakes_
  async_op_base* pending = nullptr;
  std::coroutine_handle<> waiter;
  std::optional<task<>> root;
  async_stream facade{*this};
};

class engine {
 public:
  engine(passive_socket listener, ssl_context ctx, server::blocking_handler b,
         server::coroutine_handler c, server_options o);
  ~engine();

  void start();
  void run();
  void stop();
  void stop(std::chrono::milliseconds drain);
  void stop_accepting();
  void reload(ssl_context ctx);
  std::uint16_t local_port() const noexcept { return port_; }
  server_stats stats() const noexcept;

  // For the event loops and the workers.
  ssl_context context();
  void hand_to_worker(std::unique_ptr<engine_connection> c);
  void connection_ended();
  bool accepting() const noexcept;
  /// Full, but not stopping: a loop may take a new client in place of a stalled handshake.
  bool full_and_open() const noexcept;
  void retry_workers() { pool_.retry(); }

  const server_options opts;
  passive_socket listener;
  server::blocking_handler blocking;
  server::coroutine_handler coroutine;
  std::atomic<std::uint64_t> accepted{0}, handshakes{0}, handshake_failures{0}, active{0},
      rejected{0}, timed_out{0}, evicted{0};
  std::atomic<bool> stopping{false}, draining{false};

 private:
  void join_all();
  std::uint16_t port_;
  std::mutex ctx_m_;
  ssl_context ctx_;
  std::vector<std::unique_ptr<event_loop>> loops_;
  std::vector<std::thread> threads_;
  worker_pool pool_;
  std::mutex busy_m_;
  std::unordered_set<ssl_stream*> busy_;  // streams in blocking handlers, for stop()
  std::mutex run_m_;
  std::condition_variable stopped_cv_;
  bool started_ = false, joined_ = false;
};

class event_loop {
 public:
  explicit event_loop(engine& e);
  ~event_loop();
  void run();
  void wake() noexcept;
  /// Waits for `c` to become ready for `events` (POLLIN / POLLOUT), until its deadline.
  void arm(engine_connection& c, short events);
  const server_options& options() const noexcept { return e_.opts; }
  /// Held while the loop accepts: engine::stop_accepting() takes it to know no accept is under
  /// way.
  std::mutex accept_m;

 private:
  void accept_some();
  void on_ready(engine_connection& c);
  void advance_handshake(engine_connection& c);
  bool first_record_complete(engine_connection& c);
  void start_handler(engine_connection& c);
  void resume(engine_connection& c);
  void end(engine_connection& c);
  void sweep();
  void manage_listening();
  bool can_evict() const;
  void left_handshake(engine_connection& c);
  void report_failure(engine_connection& c, std::string reason, bool timed_out);

  engine& e_;
  unique_fd ep_;
  unique_fd wake_fd_;
  bool listening_ = false;
  clock::time_point accept_paused_until_{};
  std::unordered_map<engine_connection*, std::unique_ptr<engine_connection>> conns_;
  std::vector<engine_connection*> ready_now_;  // data already buffered: no wait needed
  // Connections in their handshake, oldest first: when the server is full, the oldest that has
  // lasted evict_after makes room for a new client (stalled handshakes must not fill it).
  std::list<engine_connection*> handshakes_;
};

}  // namespace sslstream::detail
