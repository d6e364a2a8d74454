#ifndef TANDEM_COMMON_HTTP_SERVER_H_
#define TANDEM_COMMON_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace tandem {

struct HttpRequest {
  std::string method;
  std::string path;
  std::string query;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
};

// A minimal HTTP/1.1 server for metrics, health and admin endpoints: one background
// thread, one request per connection, bounded request size (8 KiB) and a 2 s read
// deadline per request so a slow client cannot hold it long. Not for data traffic.
// Handle() before Start(); Stop() from any thread (joins).
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Binds `host_port` ("127.0.0.1:15000"; port 0 picks one).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(const std::string& host_port);
  ~HttpServer();

  void Handle(const std::string& path, Handler handler);
  void Start();
  void Stop();
  int port() const { return port_; }

 private:
  HttpServer(int fd, int port) : listen_fd_(fd), port_(port) {}
  void Run();
  void Serve(int fd);

  int listen_fd_;
  int port_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  absl::Mutex mu_;
  std::map<std::string, Handler> handlers_ ABSL_GUARDED_BY(mu_);
};

// Escapes a Prometheus label value (\\, \", \n).
std::string EscapeLabelValue(const std::string& value);

}  // namespace tandem

#endif  // TANDEM_COMMON_HTTP_SERVER_H_
