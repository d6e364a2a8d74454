#ifndef TANDEM_TESTS_INTEGRATION_SCRIPTED_STREAM_H_
#define TANDEM_TESTS_INTEGRATION_SCRIPTED_STREAM_H_

// gRPC code: no <openssl/...> here.
#include <grpcpp/grpcpp.h>

#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/integration/subprocess.h"

namespace tandem::testing {

// The server side of one bidirectional xDS-style gRPC stream that a test scripts: each
// open stream sends what Push() queues, in order, and every request and `authorization`
// header is recorded. `Service` is the generated service base; a fake derives from this
// class and has its stream method return Serve(). `Request` has a response_nonce(), as
// xDS ACKs and NACKs do. Threading: gRPC runs each stream on its thread plus one reader
// thread that Serve() starts; the other methods from any thread.
template <typename Service, typename Request, typename Response>
class ScriptedStream : public Service {
 public:
  // Queues `response` for whichever open stream takes it first.
  void Push(Response response) {
    absl::MutexLock lock(&mu_);
    outbox_.push_back(std::move(response));
  }
  std::vector<Request> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  // Waits up to `timeout` for a request answering `nonce` (an ACK or a NACK of it);
  // nullopt if none came.
  std::optional<Request> AnswerTo(const std::string& nonce, absl::Duration timeout) {
    std::optional<Request> found;
    WaitFor(
        [&] {
          for (const Request& r : requests()) {
            if (r.response_nonce() == nonce) found = r;
          }
          return found.has_value();
        },
        timeout);
    return found;
  }
  std::vector<std::string> authorizations() {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }
  int streams() {
    absl::MutexLock lock(&mu_);
    return streams_;
  }
  int open_streams() {
    absl::MutexLock lock(&mu_);
    return open_streams_;
  }
  // Ends every stream and refuses new ones' pushes; call before Server::Shutdown, which
  // would otherwise wait for the streams until its deadline.
  void Shutdown() {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }

 protected:
  // Runs one stream until the client ends it, a write fails or Shutdown(). Stream thread.
  grpc::Status Serve(grpc::ServerContext* context,
                     grpc::ServerReaderWriter<Response, Request>* stream) {
    bool reader_done = false;
    {
      absl::MutexLock lock(&mu_);
      ++streams_;
      ++open_streams_;
      auto auth = context->client_metadata().find("authorization");
      authorizations_.push_back(
          auth == context->client_metadata().end()
              ? ""
              : std::string(auth->second.data(), auth->second.size()));
    }
    std::thread reader([&] {
      Request r;
      while (stream->Read(&r)) {
        absl::MutexLock lock(&mu_);
        requests_.push_back(r);
      }
      absl::MutexLock lock(&mu_);
      reader_done = true;
    });
    while (true) {
      Response next;
      {
        absl::MutexLock lock(&mu_);
        // Await evaluates it with `mu_` held.
        auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !outbox_.empty() || reader_done || stopping_;
        };
        mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(100));
        if (reader_done || stopping_) break;
        if (outbox_.empty()) continue;
        next = std::move(outbox_.front());
        outbox_.pop_front();
      }
      if (!stream->Write(next)) break;
    }
    context->TryCancel();  // unblocks the reader's Read
    reader.join();
    absl::MutexLock lock(&mu_);
    --open_streams_;
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::deque<Response> outbox_ ABSL_GUARDED_BY(mu_);
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  int open_streams_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_SCRIPTED_STREAM_H_
