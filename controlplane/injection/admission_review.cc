#include "controlplane/injection/admission_review.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tandem::injection {
namespace {

constexpr absl::string_view kApiVersion = "admission.k8s.io/v1";

AdmissionResult BadRequest(absl::string_view reason) {
  return AdmissionResult{400, "text/plain; charset=utf-8",
                         absl::StrCat("bad AdmissionReview: ", reason, "\n")};
}

std::string StringAt(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

AdmissionResult Respond(Json response) {
  Json review = {{"apiVersion", kApiVersion},
                 {"kind", "AdmissionReview"},
                 {"response", std::move(response)}};
  return AdmissionResult{200, "application/json", DumpJson(review)};
}

}  // namespace

AdmissionResult ReviewAdmission(absl::string_view request_body,
                                const Injector& injector) {
  absl::StatusOr<Json> review = ParseJson(request_body);
  if (!review.ok())
    return BadRequest(absl::StrCat("the body ", review.status().message()));
  if (!review->is_object()) return BadRequest("the body is not a JSON object");
  if (StringAt(*review, "apiVersion") != kApiVersion) {
    return BadRequest(absl::StrCat("apiVersion must be ", kApiVersion));
  }
  if (StringAt(*review, "kind") != "AdmissionReview") {
    return BadRequest("kind must be AdmissionReview");
  }
  auto request = review->find("request");
  if (request == review->end() || !request->is_object()) {
    return BadRequest("no request");
  }
  std::string uid = StringAt(*request, "uid");
  if (uid.empty()) return BadRequest("request.uid is missing");
  auto kind = request->find("kind");
  if (kind == request->end() || StringAt(*kind, "kind") != "Pod" ||
      StringAt(*kind, "group") != "" || StringAt(*kind, "version") != "v1") {
    return BadRequest("request.kind is not a core/v1 Pod");
  }
  auto object = request->find("object");
  if (object == request->end() || !object->is_object()) {
    return BadRequest("request.object is not a Pod");
  }
  std::string ns = StringAt(*request, "namespace");
  if (ns.empty()) {
    // Read-only lookups: the original must stay as the API server sent it, since the
    // patch is its diff.
    const Json& original = *object;
    if (auto metadata = original.find("metadata"); metadata != original.end()) {
      ns = StringAt(*metadata, "namespace");
    }
  }
  if (ns.empty()) ns = "default";

  Json pod = *object;
  absl::StatusOr<InjectionOutcome> outcome = injector.InjectPod(pod, ns);
  Json response = {{"uid", uid}};
  if (!outcome.ok()) {
    int code = outcome.status().code() == absl::StatusCode::kInvalidArgument ? 400 : 500;
    response["allowed"] = false;
    response["status"] = {{"code", code},
                          {"message", absl::StrCat("tandem sidecar injection: ",
                                                   outcome.status().message())}};
    return Respond(std::move(response));
  }
  response["allowed"] = true;
  if (outcome->injected) {
    // RFC 6902: nlohmann's diff escapes '~' and '/' in keys (~0, ~1), as annotation
    // names with a '/' need.
    Json patch = Json::diff(*object, pod);
    response["patchType"] = "JSONPatch";
    response["patch"] = absl::Base64Escape(DumpJson(patch));
  }
  return Respond(std::move(response));
}

}  // namespace tandem::injection
