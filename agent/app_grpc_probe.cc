#include "agent/app_grpc_probe.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace tandem::agent {
namespace {

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return absl::StrCat("code ", static_cast<int>(code));
  }
}

}  // namespace

AppProbeResult RunGrpcProbe(const AppProbeSpec& spec, absl::Time deadline) {
  grpc::ChannelArguments args;
  // A probe of the app next door: never through an HTTP proxy from the environment,
  // and on a connection of its own, as the kubelet opens one per probe.
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::string target = spec.host.find(':') == std::string::npos
                           ? absl::StrCat("ipv4:", spec.host, ":", spec.port)
                           : absl::StrCat("ipv6:[", spec.host, "]:", spec.port);
  std::unique_ptr<grpc::health::v1::Health::Stub> stub =
      grpc::health::v1::Health::NewStub(
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(spec.grpc_service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return {AppProbeOutcome::kTimeout, "Health/Check: timed out"};
  }
  if (!status.ok()) {
    return {AppProbeOutcome::kGrpcError,
            absl::StrCat("Health/Check: ", CodeName(status.error_code()), ": ",
                         status.error_message())};
  }
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return {AppProbeOutcome::kNotServing,
            absl::StrCat("Health/Check: ",
                         grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                             response.status()))};
  }
  return {AppProbeOutcome::kSuccess, "SERVING"};
}

}  // namespace tandem::agent
