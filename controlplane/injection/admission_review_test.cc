#include "controlplane/injection/admission_review.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "tests/support/injection_test_util.h"

namespace tandem::injection {
namespace {

using testing::ShippedInjector;
using testing::Yaml;

// A Pod as the API server sends it to a mutating webhook: generateName only, the
// namespace in the request.
constexpr char kPodJson[] = R"({
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"generateName": "web-7d4b9-", "labels": {"app": "web"},
               "annotations": {"sidecar.tandem.dev/exclude-outbound-ports": "5432"}},
  "spec": {"serviceAccountName": "web",
           "containers": [{"name": "web", "image": "app",
                           "ports": [{"name": "http", "containerPort": 8080}],
                           "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}}]}
})";

std::string Review(const Json& pod, const std::string& ns = "shop") {
  Json review = {{"apiVersion", "admission.k8s.io/v1"},
                 {"kind", "AdmissionReview"},
                 {"request",
                  {{"uid", "705ab4f5-6393-11e8-b7cc-42010a800002"},
                   {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
                   {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
                   {"namespace", ns},
                   {"operation", "CREATE"},
                   {"object", pod}}}};
  return review.dump();
}

Json Response(const AdmissionResult& result) {
  EXPECT_EQ(result.http_status, 200) << result.body;
  EXPECT_EQ(result.content_type, "application/json");
  Json review = Json::parse(result.body);
  EXPECT_EQ(review["apiVersion"], "admission.k8s.io/v1");
  EXPECT_EQ(review["kind"], "AdmissionReview");
  EXPECT_EQ(review["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
  return review["response"];
}

Json DecodePatch(const Json& response) {
  std::string patch;
  EXPECT_TRUE(absl::Base64Unescape(response["patch"].get<std::string>(), &patch));
  return Json::parse(patch);
}

TEST(AdmissionReviewTest, AllowsThePodWithAJsonPatchThatInjectsIt) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Json::parse(kPodJson);
  Json response = Response(ReviewAdmission(Review(pod), *injector));
  EXPECT_EQ(response["allowed"], true);
  EXPECT_EQ(response["patchType"], "JSONPatch");
  Json patch = DecodePatch(response);
  ASSERT_TRUE(patch.is_array());
  // The patch applied to the pod gives what the injector renders.
  Json expected = pod;
  ASSERT_TRUE(injector->InjectPod(expected, "shop")->injected);
  // Compared as unordered JSON: a patch says what goes where, not in which key order.
  EXPECT_EQ(nlohmann::json::parse(pod.patch(patch).dump()),
            nlohmann::json::parse(expected.dump()));
}

TEST(AdmissionReviewTest, PatchPathsEscapeSlashesInAnnotationNames) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json response = Response(ReviewAdmission(Review(Json::parse(kPodJson)), *injector));
  bool status_added = false;
  for (const Json& op : DecodePatch(response)) {
    if (op["path"] == "/metadata/annotations/sidecar.tandem.dev~1status") {
      status_added = op["op"] == "add";
    }
  }
  EXPECT_TRUE(status_added) << DecodePatch(response).dump();
}

TEST(AdmissionReviewTest, AddsAnnotationsToAPodWithoutAny) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod =
      Yaml("{apiVersion: v1, kind: Pod, spec: {containers: [{name: a, image: b}]}}");
  Json patch = DecodePatch(Response(ReviewAdmission(Review(pod), *injector)));
  Json patched = pod.patch(patch);
  EXPECT_TRUE(patched["metadata"]["annotations"].contains("sidecar.tandem.dev/status"));
}

TEST(AdmissionReviewTest, AnInjectedPodGetsNoPatch) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Json::parse(kPodJson);
  Json patched =
      pod.patch(DecodePatch(Response(ReviewAdmission(Review(pod), *injector))));
  Json second = Response(ReviewAdmission(Review(patched), *injector));
  EXPECT_EQ(second, Json::parse(R"({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                                    "allowed": true})"));
}

TEST(AdmissionReviewTest, SkippedPodsAreAllowedWithoutAPatch) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json host = Json::parse(kPodJson);
  host["spec"]["hostNetwork"] = true;
  for (const std::string& body :
       {Review(host), Review(Json::parse(kPodJson), "tandem-system")}) {
    Json response = Response(ReviewAdmission(body, *injector));
    EXPECT_EQ(response["allowed"], true);
    EXPECT_FALSE(response.contains("patch"));
  }
}

TEST(AdmissionReviewTest, TakesTheNamespaceFromThePodWhenTheRequestHasNone) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Json::parse(kPodJson);
  pod["metadata"]["namespace"] = "tandem-system";
  Json review = Json::parse(Review(pod));
  review["request"].erase("namespace");
  Json response = Response(ReviewAdmission(review.dump(), *injector));
  EXPECT_FALSE(response.contains("patch"));
}

TEST(AdmissionReviewTest, RefusesAPodWithABadAnnotation) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json pod = Json::parse(kPodJson);
  pod["metadata"]["annotations"]["sidecar.tandem.dev/exclude-outbound-cidrs"] =
      "10.0.0.0/40";
  Json response = Response(ReviewAdmission(Review(pod), *injector));
  EXPECT_EQ(response, Json::parse(R"({
    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": false,
    "status": {"code": 400, "message": "tandem sidecar injection: annotation sidecar.tandem.dev/exclude-outbound-cidrs: \"10.0.0.0/40\": \"10.0.0.0/40\" is not a CIDR"}})"));
}

TEST(AdmissionReviewTest, RefusesMalformedReviewsWithTheReason) {
  std::unique_ptr<Injector> injector = ShippedInjector();
  Json good = Json::parse(Review(Json::parse(kPodJson)));
  auto without = [&good](const std::string& pointer) {
    Json review = good;
    Json::json_pointer p(pointer);
    review[p.parent_pointer()].erase(p.back());
    return review.dump();
  };
  auto with = [&good](const std::string& pointer, const Json& value) {
    Json review = good;
    review[Json::json_pointer(pointer)] = value;
    return review.dump();
  };
  struct Case {
    std::string body;
    std::string reason;
  };
  const Case kCases[] = {
      {"", "the body is not JSON"},
      {"{\"apiVersion\":", "the body is not JSON"},
      {std::string(100, '[') + std::string(100, ']'),
       "the body nests deeper than 64 levels"},
      {"[]", "the body is not a JSON object"},
      {with("/apiVersion", "admission.k8s.io/v1beta1"),
       "apiVersion must be admission.k8s.io/v1"},
      {without("/apiVersion"), "apiVersion must be admission.k8s.io/v1"},
      {with("/kind", "Pod"), "kind must be AdmissionReview"},
      {without("/request"), "no request"},
      {with("/request", "x"), "no request"},
      {without("/request/uid"), "request.uid is missing"},
      {with("/request/uid", 7), "request.uid is missing"},
      {with("/request/kind",
            Json{{"group", "apps"}, {"version", "v1"}, {"kind", "Deployment"}}),
       "request.kind is not a core/v1 Pod"},
      {without("/request/kind"), "request.kind is not a core/v1 Pod"},
      {without("/request/object"), "request.object is not a Pod"},
      {with("/request/object", "pod"), "request.object is not a Pod"},
  };
  for (const Case& c : kCases) {
    AdmissionResult result = ReviewAdmission(c.body, *injector);
    EXPECT_EQ(result.http_status, 400) << c.body;
    EXPECT_EQ(result.content_type, "text/plain; charset=utf-8");
    EXPECT_EQ(result.body, "bad AdmissionReview: " + c.reason + "\n");
  }
}

}  // namespace
}  // namespace tandem::injection
