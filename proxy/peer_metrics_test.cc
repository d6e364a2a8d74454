#include "proxy/peer_metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

constexpr char kClient[] = "spiffe://cluster.local/ns/shop/sa/frontend";
constexpr char kServer[] = "spiffe://cluster.local/ns/pay/sa/billing";

std::map<std::string, std::string> AsMap(const metrics::Labels& labels) {
  return std::map<std::string, std::string>(labels.begin(), labels.end());
}

WorkloadLabels Self() {
  WorkloadLabels self;
  self.name = "frontend-v1";
  self.namespace_ = "shop";
  self.app = "frontend";
  self.version = "v1";
  self.canonical_service = "frontend";
  self.canonical_revision = "v1";
  self.cluster = "east";
  return self;
}

TEST(IstioTcpLabelsTest, CarriesIstiosLabelSetInItsOrder) {
  metrics::Labels labels = IstioTcpLabels(Self(), Direction::kOutbound, Mode::kMtls,
                                          ResponseFlags::kNone, kClient, kServer);
  std::vector<std::string> names;
  for (const auto& [name, value] : labels) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "reporter",
                       "source_workload",
                       "source_workload_namespace",
                       "source_principal",
                       "source_app",
                       "source_version",
                       "destination_workload",
                       "destination_workload_namespace",
                       "destination_principal",
                       "destination_app",
                       "destination_version",
                       "destination_service",
                       "destination_service_name",
                       "destination_service_namespace",
                       "request_protocol",
                       "connection_security_policy",
                       "response_flags",
                       "source_canonical_service",
                       "source_canonical_revision",
                       "destination_canonical_service",
                       "destination_canonical_revision",
                       "source_cluster",
                       "destination_cluster",
                   }));
}

TEST(IstioTcpLabelsTest, SourceReporterIsUsAndThePeerIsTheServer) {
  auto labels = AsMap(IstioTcpLabels(Self(), Direction::kOutbound, Mode::kMtls,
                                     ResponseFlags::kNone, kClient, kServer));
  EXPECT_EQ(labels["reporter"], "source");
  EXPECT_EQ(labels["source_principal"], kClient);
  EXPECT_EQ(labels["source_workload"], "frontend-v1");
  EXPECT_EQ(labels["source_workload_namespace"], "shop");
  EXPECT_EQ(labels["source_app"], "frontend");
  EXPECT_EQ(labels["source_version"], "v1");
  EXPECT_EQ(labels["source_canonical_service"], "frontend");
  EXPECT_EQ(labels["source_cluster"], "east");
  EXPECT_EQ(labels["destination_principal"], kServer);
  // The peer's service account and namespace, from its SPIFFE ID.
  EXPECT_EQ(labels["destination_workload"], "billing");
  EXPECT_EQ(labels["destination_workload_namespace"], "pay");
  EXPECT_EQ(labels["destination_app"], "unknown");
  EXPECT_EQ(labels["destination_cluster"], "unknown");
  EXPECT_EQ(labels["destination_service"], "unknown");
  // Istio: the source cannot know the security policy.
  EXPECT_EQ(labels["connection_security_policy"], "unknown");
  EXPECT_EQ(labels["request_protocol"], "tcp");
  EXPECT_EQ(labels["response_flags"], "-");
}

TEST(IstioTcpLabelsTest, DestinationReporterIsUsAndThePeerIsTheClient) {
  auto labels = AsMap(IstioTcpLabels(Self(), Direction::kInbound, Mode::kMtls,
                                     ResponseFlags::kNone, kServer, kClient));
  EXPECT_EQ(labels["reporter"], "destination");
  EXPECT_EQ(labels["source_principal"], kClient);
  EXPECT_EQ(labels["source_workload"], "frontend");
  EXPECT_EQ(labels["source_workload_namespace"], "shop");
  EXPECT_EQ(labels["source_app"], "unknown");
  EXPECT_EQ(labels["destination_principal"], kServer);
  EXPECT_EQ(labels["destination_workload"], "frontend-v1");
  EXPECT_EQ(labels["destination_app"], "frontend");
  EXPECT_EQ(labels["destination_canonical_revision"], "v1");
  EXPECT_EQ(labels["destination_cluster"], "east");
  EXPECT_EQ(labels["connection_security_policy"], "mutual_tls");
}

TEST(IstioTcpLabelsTest, PlaintextPeerIsUnknownAndPolicyNone) {
  auto labels = AsMap(IstioTcpLabels(Self(), Direction::kInbound, Mode::kPlaintext,
                                     ResponseFlags::kNone, "", ""));
  EXPECT_EQ(labels["source_principal"], "unknown");
  EXPECT_EQ(labels["source_workload"], "unknown");
  EXPECT_EQ(labels["source_workload_namespace"], "unknown");
  EXPECT_EQ(labels["destination_principal"], "unknown");
  EXPECT_EQ(labels["destination_workload"], "frontend-v1");
  EXPECT_EQ(labels["connection_security_policy"], "none");
}

TEST(IstioTcpLabelsTest, UpstreamFailureIsFlaggedUf) {
  auto labels = AsMap(IstioTcpLabels(Self(), Direction::kOutbound, Mode::kMtls,
                                     ResponseFlags::kUpstreamFailure, "", ""));
  EXPECT_EQ(labels["response_flags"], "UF");
  EXPECT_EQ(labels["destination_principal"], "unknown");
}

TEST(IstioTcpLabelsTest, NonKubernetesSpiffeIdKeepsPrincipalOnly) {
  auto labels =
      AsMap(IstioTcpLabels(Self(), Direction::kInbound, Mode::kMtls, ResponseFlags::kNone,
                           kServer, "spiffe://example.org/batch/nightly"));
  EXPECT_EQ(labels["source_principal"], "spiffe://example.org/batch/nightly");
  EXPECT_EQ(labels["source_workload"], "unknown");
  EXPECT_EQ(labels["source_workload_namespace"], "unknown");
}

class PeerCacheTest : public ::testing::Test {
 protected:
  PeerCell* Resolve(PeerCache& cache, const std::string& peer) {
    return cache.Resolve(Direction::kInbound, Mode::kMtls, ResponseFlags::kNone, 1, &own_,
                         peer, &stats_);
  }
  SpiffeId own_ = *SpiffeId::Parse(kServer);
  WorkerStats stats_;
};

TEST_F(PeerCacheTest, SamePeerGetsTheSameCellOnEveryWorker) {
  PeerLabelTable table(Self(), 10);
  PeerCache a(&table), b(&table);
  PeerCell* first = Resolve(a, kClient);
  EXPECT_EQ(Resolve(a, kClient), first);
  Resolve(b, kClient);
  EXPECT_EQ(table.size(), 3u);  // two overflow series + one
  EXPECT_EQ(stats_.peer_overflow.load(), 0u);
}

TEST_F(PeerCacheTest, FoldsPeersPastTheLimitIntoOneOverflowSeriesAndCountsThem) {
  PeerLabelTable table(Self(), 2);
  PeerCache cache(&table);
  PeerCell* a = Resolve(cache, "spiffe://cluster.local/ns/n/sa/a");
  PeerCell* b = Resolve(cache, "spiffe://cluster.local/ns/n/sa/b");
  PeerCell* c = Resolve(cache, "spiffe://cluster.local/ns/n/sa/c");
  PeerCell* d = Resolve(cache, "spiffe://cluster.local/ns/n/sa/d");
  EXPECT_NE(a, b);
  EXPECT_EQ(c, d);
  EXPECT_EQ(c, &cache.cell(PeerLabelTable::OverflowId(Direction::kInbound)));
  EXPECT_TRUE(table.full());
  EXPECT_EQ(table.size(), 4u);
  EXPECT_EQ(stats_.peer_overflow.load(), 2u);
  // A peer admitted before the limit keeps its own series.
  EXPECT_EQ(Resolve(cache, "spiffe://cluster.local/ns/n/sa/a"), a);
  auto overflow = AsMap(table.Labels()[PeerLabelTable::OverflowId(Direction::kInbound)]);
  EXPECT_EQ(overflow["source_principal"], "overflow");
  EXPECT_EQ(overflow["source_workload"], "overflow");
  EXPECT_EQ(overflow["destination_workload"], "frontend-v1");
}

TEST_F(PeerCacheTest, ANewOwnIdentityStartsNewLabelSets) {
  PeerLabelTable table(Self(), 10);
  PeerCache cache(&table);
  PeerCell* before = Resolve(cache, kClient);
  SpiffeId renamed = *SpiffeId::Parse("spiffe://cluster.local/ns/pay/sa/billing-v2");
  PeerCell* after = cache.Resolve(Direction::kInbound, Mode::kMtls, ResponseFlags::kNone,
                                  2, &renamed, kClient, &stats_);
  EXPECT_NE(before, after);
  auto labels = AsMap(table.Labels().back());
  EXPECT_EQ(labels["destination_principal"],
            "spiffe://cluster.local/ns/pay/sa/billing-v2");
}

TEST_F(PeerCacheTest, RendersFoldedCountsOfEveryWorker) {
  PeerLabelTable table(Self(), 10);
  PeerCache a(&table), b(&table);
  for (PeerCache* cache : {&a, &b}) {
    PeerCell* cell = Resolve(*cache, kClient);
    WorkerStats::Add(cell->opened, 1);
    WorkerStats::Add(cell->received, 5);
    WorkerStats::Add(cell->sent, 7);
  }
  std::string text = RenderPeerMetrics(table, {&a, &b});
  EXPECT_NE(text.find("# TYPE istio_tcp_connections_opened_total counter\n"
                      "istio_tcp_connections_opened_total{reporter=\"destination\","
                      "source_workload=\"frontend\",source_workload_namespace=\"shop\","
                      "source_principal=\"spiffe://cluster.local/ns/shop/sa/frontend\","),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("destination_cluster=\"east\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("destination_cluster=\"east\"} 10\n"), std::string::npos) << text;
  EXPECT_NE(text.find("destination_cluster=\"east\"} 14\n"), std::string::npos) << text;
  // Overflow series appear only once something folded into them.
  EXPECT_EQ(text.find("overflow"), std::string::npos) << text;
}

TEST_F(PeerCacheTest, PromtoolAcceptsTheRendering) {
#ifndef TANDEM_PROMTOOL
  GTEST_SKIP() << "promtool not found at configure time (Debian package prometheus)";
#else
  PeerLabelTable table(Self(), 1);
  PeerCache cache(&table);
  for (const char* peer : {kClient, "spiffe://cluster.local/ns/x/sa/\"odd\\name"}) {
    PeerCell* cell = Resolve(cache, peer);
    WorkerStats::Add(cell->opened, 1);
    WorkerStats::Add(cell->closed, 1);
  }
  PeerCell* plain =
      cache.Resolve(Direction::kOutbound, Mode::kPlaintext,
                    ResponseFlags::kUpstreamFailure, 0, nullptr, "", &stats_);
  WorkerStats::Add(plain->opened, 1);
  std::string path = ::testing::TempDir() + "/peer_metrics_" + std::to_string(getpid());
  std::ofstream(path + ".prom") << RenderPeerMetrics(table, {&cache});
  std::string cmd = std::string(TANDEM_PROMTOOL) + " check metrics < " + path +
                    ".prom > " + path + ".out 2>&1";
  int rc = std::system(cmd.c_str());
  std::stringstream report;
  report << std::ifstream(path + ".out").rdbuf();
  std::remove((path + ".prom").c_str());
  std::remove((path + ".out").c_str());
  ASSERT_TRUE(WIFEXITED(rc)) << cmd;
  EXPECT_EQ(WEXITSTATUS(rc), 0) << report.str();
#endif
}

}  // namespace
}  // namespace tandem::proxy
