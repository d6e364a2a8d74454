#include "tests/integration/fake_policy_service.h"

#include <thread>

#include "tests/integration/subprocess.h"

namespace tandem::testing {

void FakePolicyService::Push(policy::v1::PolicyResponse response) {
  absl::MutexLock lock(&mu_);
  outbox_.push_back(std::move(response));
}

std::vector<policy::v1::PolicyRequest> FakePolicyService::requests() {
  absl::MutexLock lock(&mu_);
  return requests_;
}

std::optional<policy::v1::PolicyRequest> FakePolicyService::AnswerTo(
    const std::string& nonce, absl::Duration timeout) {
  std::optional<policy::v1::PolicyRequest> found;
  WaitFor(
      [&] {
        for (const auto& r : requests()) {
          if (r.response_nonce() == nonce) found = r;
        }
        return found.has_value();
      },
      timeout);
  return found;
}

std::vector<std::string> FakePolicyService::authorizations() {
  absl::MutexLock lock(&mu_);
  return authorizations_;
}

int FakePolicyService::streams() {
  absl::MutexLock lock(&mu_);
  return streams_;
}

int FakePolicyService::open_streams() {
  absl::MutexLock lock(&mu_);
  return open_streams_;
}

void FakePolicyService::Shutdown() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

grpc::Status FakePolicyService::StreamPolicy(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<policy::v1::PolicyResponse, policy::v1::PolicyRequest>*
        stream) {
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
    policy::v1::PolicyRequest r;
    while (stream->Read(&r)) {
      absl::MutexLock lock(&mu_);
      requests_.push_back(r);
    }
    absl::MutexLock lock(&mu_);
    reader_done = true;
  });
  while (true) {
    policy::v1::PolicyResponse next;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
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
  context->TryCancel();
  reader.join();
  absl::MutexLock lock(&mu_);
  --open_streams_;
  return grpc::Status::OK;
}

absl::Status RecordingPolicySink::ApplyPolicy(const policy::v1::WorkloadPolicy& policy,
                                              const std::string& version) {
  absl::MutexLock lock(&mu_);
  for (const config::InboundPort& port : policy.inbound_ports()) {
    for (const std::string& id : port.allowed_identities()) {
      if (id == kBad) return absl::InvalidArgumentError("cannot apply " + id);
    }
  }
  version_ = version;
  ++applied_;
  return absl::OkStatus();
}

std::string RecordingPolicySink::version() {
  absl::MutexLock lock(&mu_);
  return version_;
}

int RecordingPolicySink::applied() {
  absl::MutexLock lock(&mu_);
  return applied_;
}

policy::v1::PolicyResponse PolicyResponseFor(const std::string& version,
                                             const std::string& nonce,
                                             const std::string& allowed_identity) {
  policy::v1::PolicyResponse response;
  response.set_version_info(version);
  response.set_nonce(nonce);
  config::InboundPort* port = response.mutable_policy()->add_inbound_ports();
  port->set_port(8080);
  if (!allowed_identity.empty()) port->add_allowed_identities(allowed_identity);
  return response;
}

}  // namespace tandem::testing
