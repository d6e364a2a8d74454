#ifndef TANDEM_CONTROLPLANE_INJECTION_ADMISSION_REVIEW_H_
#define TANDEM_CONTROLPLANE_INJECTION_ADMISSION_REVIEW_H_

#include <string>

#include "absl/strings/string_view.h"
#include "controlplane/injection/injector.h"

namespace tandem::injection {

// What the webhook's HTTPS server sends back.
struct AdmissionResult {
  int http_status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// Answers one AdmissionReview v1 request body (the POST to /inject) for a Pod CREATE:
// - 200 + a review whose response has the request's uid and allowed:true, with
//   patchType JSONPatch and patch = base64 of the RFC 6902 diff between the pod and
//   the injected pod; no patch when a skip rule applies;
// - 200 + allowed:false, status {code: 400, message} when the injector refuses the
//   pod (a bad annotation, an unknown probe port);
// - 400 + a text/plain reason when the body is not an AdmissionReview v1 about a Pod.
// Never throws; any thread (the Injector is immutable).
AdmissionResult ReviewAdmission(absl::string_view request_body, const Injector& injector);

}  // namespace tandem::injection

#endif  // TANDEM_CONTROLPLANE_INJECTION_ADMISSION_REVIEW_H_
