// Fuzzes the caBundle edit of a MutatingWebhookConfiguration as the Kubernetes API
// server returns it (controlplane/injection/webhook_ca_bundle.h): any input is refused or
// edited without throwing, and an accepted edit is stable: applying it again finds the
// same webhooks and changes nothing.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controlplane/injection/webhook_ca_bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const tandem::controlplane::WebhookService service;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tandem::controlplane::CaBundleEdit> edit =
      tandem::controlplane::SetWebhookCaBundle(input, service, "QUJD");
  if (!edit.ok()) return 0;
  absl::StatusOr<tandem::controlplane::CaBundleEdit> again =
      tandem::controlplane::SetWebhookCaBundle(edit->object_json, service, "QUJD");
  if (!again.ok() || again->matched != edit->matched || again->changed) std::abort();
  return 0;
}
