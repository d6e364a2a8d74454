#include "controlplane/injection/workload_identity.h"

#include "gtest/gtest.h"

namespace tandem::injection {
namespace {

struct Case {
  const char* what;
  const char* pod_json;
  const char* owner;
  WorkloadIdentity want;
};

TEST(WorkloadIdentityTest, DerivesIstiosWorkloadAndCanonicalLabels) {
  const Case cases[] = {
      {"a Deployment's pod: the ReplicaSet's hash is dropped",
       R"({"metadata": {"generateName": "web-7d4b9c-", "labels": {"app": "web",
           "version": "v2", "pod-template-hash": "7d4b9c"}, "ownerReferences": [
           {"kind": "ReplicaSet", "name": "web-7d4b9c", "controller": true}]}})",
       "",
       {"web", "web", "v2", "web", "v2"}},
      {"a bare ReplicaSet (no hash label) keeps its name",
       R"({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "api",
           "controller": true}]}})",
       "",
       {"api", "", "", "api", "latest"}},
      {"a StatefulSet's pod is named after it",
       R"({"metadata": {"name": "db-0", "ownerReferences": [{"kind": "StatefulSet",
           "name": "db", "controller": true}]}})",
       "",
       {"db", "", "", "db", "latest"}},
      {"a non-controller owner does not count",
       R"({"metadata": {"name": "solo", "ownerReferences": [{"kind": "Thing",
           "name": "other"}]}})",
       "",
       {"solo", "", "", "solo", "latest"}},
      {"kube-inject names the workload it renders",
       R"({"metadata": {"labels": {"app.kubernetes.io/name": "shop",
           "app.kubernetes.io/version": "1.4"}}})",
       "frontend",
       {"frontend", "", "", "shop", "1.4"}},
      {"canonical labels win",
       R"({"metadata": {"name": "p", "labels": {"app": "a", "version": "v1",
           "service.istio.io/canonical-name": "svc",
           "service.istio.io/canonical-revision": "r9"}}})",
       "",
       {"p", "a", "v1", "svc", "r9"}},
      {"generateName alone",
       R"({"metadata": {"generateName": "job-x-"}})",
       "",
       {"job-x", "", "", "job-x", "latest"}},
      {"no metadata at all", R"({"spec": {}})", "", {"", "", "", "", "latest"}},
  };
  for (const Case& c : cases) {
    WorkloadIdentity got = DeriveWorkloadIdentity(Json::parse(c.pod_json), c.owner);
    EXPECT_EQ(got.name, c.want.name) << c.what;
    EXPECT_EQ(got.app, c.want.app) << c.what;
    EXPECT_EQ(got.version, c.want.version) << c.what;
    EXPECT_EQ(got.canonical_service, c.want.canonical_service) << c.what;
    EXPECT_EQ(got.canonical_revision, c.want.canonical_revision) << c.what;
  }
}

}  // namespace
}  // namespace tandem::injection
