// Fuzzes the webhook's AdmissionReview handler with raw request bodies: it answers 200
// or 400, never throws, and a patch it returns applies to the pod it came from and
// yields a pod the next review leaves alone (idempotence).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "controlplane/injection/admission_review.h"
#include "tests/fuzz/injection_fuzz_util.h"

using tandem::injection::AdmissionResult;
using tandem::injection::Json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const auto& injector = tandem::injection::FuzzInjector();
  AdmissionResult result = tandem::injection::ReviewAdmission(body, injector);
  if (result.http_status == 400) return 0;
  if (result.http_status != 200) std::abort();
  Json review = Json::parse(result.body, nullptr, false);
  if (review.is_discarded() || !review.contains("response")) std::abort();
  const Json& response = review["response"];
  if (!response.contains("patch")) return 0;
  std::string patch_text;
  if (!absl::Base64Unescape(response["patch"].get<std::string>(), &patch_text))
    std::abort();
  Json patch = Json::parse(patch_text, nullptr, false);
  if (!patch.is_array()) std::abort();
  Json request = Json::parse(body, nullptr, false)["request"];
  Json patched;
  try {
    patched = request["object"].patch(patch);
  } catch (...) {
    std::abort();  // our patch must apply to the pod it was computed from
  }
  request["object"] = patched;
  Json again = {{"apiVersion", "admission.k8s.io/v1"},
                {"kind", "AdmissionReview"},
                {"request", request}};
  AdmissionResult second = tandem::injection::ReviewAdmission(
      again.dump(-1, ' ', false, Json::error_handler_t::replace), injector);
  Json second_review = Json::parse(second.body, nullptr, false);
  if (second.http_status != 200 || second_review["response"].contains("patch"))
    std::abort();
  return 0;
}
