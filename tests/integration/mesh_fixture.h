#ifndef TANDEM_TESTS_INTEGRATION_MESH_FIXTURE_H_
#define TANDEM_TESTS_INTEGRATION_MESH_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"
#include "tests/integration/tcp_forwarder.h"
#include "tests/integration/traffic.h"

namespace tandem::testing {

// One pod of the loopback mesh: its agent and proxy processes and the ports they bound
// (port 0, read back from their logs).
struct Pod {
  std::string name;
  int outbound = 0, inbound = 0, metrics = 0, admin = 0, agent_metrics = 0;
  // The SDS socket the proxy dials when not the agent's own (a relay in between).
  std::string proxy_sds_socket;
  std::unique_ptr<Subprocess> agent, proxy;
};

// The mesh with its three real processes on loopback: tandem-ca (3-second
// certificates unless cert_validity_ says otherwise), and per pod a tandem-agent and a
// tandem-proxy, in a temp dir removed afterwards; logs are printed when a test fails.
// Every process binds port 0 and the fixture reads the ports back from its log; the
// agents reach the CA through a stable forwarder (like a Kubernetes Service), so a
// restarted CA may bind a new port. Main test thread only.
class MeshTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  static void Write(const std::string& path, const std::string& text);
  // Starts tandem-ca with its root in dir_/<root_dir> (made on first start), also
  // publishing the roots in `extra_roots` (a PEM file) when set. Writes the bundle it
  // serves to dir_/ca-root.pem unless `keep_ca_root`.
  void StartCa(const std::string& root_dir = "ca", const std::string& extra_roots = "",
               bool keep_ca_root = false);
  // Starts the pod's agent and proxy; `config` is appended to the proxy's JSON config
  // (", \"field\": value" pairs). The proxy dials pod.proxy_sds_socket when set.
  void StartPod(Pod& pod, const std::string& ns, const std::string& sa,
                const std::string& config);
  // Starts (or restarts) the pod's proxy with the config StartPod wrote, its command
  // line prefixed by `wrapper` (e.g. prlimit) when given, and reads its ports back: a
  // restarted proxy has new ones.
  void StartProxy(Pod& pod, const std::vector<std::string>& wrapper = {});
  // Starts the CA, a server pod in front of the echo server and a client pod routed
  // to it (plus `server_config` for the server's proxy), and waits until both are ready.
  void StartMesh(const std::string& server_config = "");
  bool Ready(const Pod& pod);
  double Metric(const Pod& pod, const std::string& sample);
  double AgentMetric(const Pod& pod, const std::string& sample);

  std::string dir_, signing_key_;
  // The root dir StartMesh starts tandem-ca with (under dir_); a test may install a root
  // of its own there first.
  std::string mesh_root_dir_ = "ca";
  // The lifetime the CA gives by default and every agent asks for.
  absl::Duration cert_validity_ = absl::Seconds(3);
  // One more flag for every agent (a no-op default unless a test sets it).
  std::string extra_agent_flag_ = "--renew-fraction=0.5";
  // More tandem-ca flags, and more fields for every proxy's config (", \"name\": value").
  std::vector<std::string> extra_ca_args_;
  std::string extra_proxy_json_;
  TcpForwarder ca_service_;  // the agents' CA address; relays to the running CA
  int ca_metrics_ = 0;       // the running CA's
  std::unique_ptr<Subprocess> ca_;
  EchoServer echo_;
  Pod client_, server_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_INTEGRATION_MESH_FIXTURE_H_
