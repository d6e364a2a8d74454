#ifndef TANDEM_PROXY_WORKER_H_
#define TANDEM_PROXY_WORKER_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "proxy/connection.h"
#include "proxy/event_loop.h"

namespace tandem::proxy {

// One worker thread: its own epoll loop, its own SO_REUSEPORT listening sockets for the
// outbound and inbound listeners (the kernel spreads new connections across workers,
// so accepting needs no cross-thread handoff), and the connections it accepted, which
// never move to another thread. Public methods: any thread unless noted.
class Worker {
 public:
  Worker(const ProxyOptions* options, TlsContextManager* tls, MeshPolicyHolder* policy,
         std::atomic<int>* global_connections, std::atomic<uint64_t>* next_id,
         PeerLabelTable* peer_labels);
  ~Worker();

  // Main thread, before Start(): opens this worker's listening sockets.
  absl::Status Listen();
  void Start();
  // Main thread, after Listen(): the address the `direction` listener is bound to.
  SocketAddress ListenAddress(Direction direction) const;
  // Stops accepting (closes the listeners); open connections continue.
  void StopAccepting();
  // Ends the loop; remaining connections are closed when the Worker is destroyed.
  void Stop();
  void Join();
  // Closes, on the loop thread soon, the open connections whose peer `policy` revokes
  // with close_open_connections.
  void CloseRevoked(std::shared_ptr<const MeshPolicy> policy);

  const WorkerStats& stats() const { return stats_; }
  // istio_tcp_* cells, read by scrapes. Any thread.
  const PeerCache& peers() const { return peers_; }
  int open_connections() const { return open_.load(std::memory_order_relaxed); }

 private:
  struct Listener : public EventHandler {
    Worker* worker = nullptr;
    Direction direction = Direction::kOutbound;
    int fd = -1;
    bool paused = false;  // out of descriptors: not polled until the next tick
    void OnEvents(uint32_t) override { worker->Accept(*this); }
  };

  void Run();
  void Accept(Listener& listener);  // loop thread
  // Loop thread: stops polling `listener` after accept() ran out of descriptors
  // (`error`), counted and logged; ResumeAccepting polls it again.
  void PauseAccepting(Listener& listener, int error);
  void ResumeAccepting();                           // loop thread, every tick
  void CloseListeners();                            // loop thread
  std::vector<Connection*> ConnectionList() const;  // loop thread

  const ProxyOptions* options_;
  TlsContextManager* tls_;
  MeshPolicyHolder* policy_;
  std::atomic<int>* global_connections_;
  std::atomic<uint64_t>* next_id_;
  EventLoop loop_;
  WorkerStats stats_;
  PeerCache peers_;  // cache: loop thread; cells: written by it, read by scrapes
  Listener outbound_;
  Listener inbound_;
  std::thread thread_;
  std::atomic<int> open_{0};
  // Loop thread only.
  absl::flat_hash_map<Connection*, std::unique_ptr<Connection>> connections_;
  log::RateLimiter log_limiter_{20, absl::Seconds(1)};
  WorkerContext context_;
};

// Opens a non-blocking listening socket on `address` with SO_REUSEPORT.
absl::StatusOr<int> OpenListener(const SocketAddress& address, bool reuse_port);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_WORKER_H_
