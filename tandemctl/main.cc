// tandemctl: the operator's command line. Flags live here only.
//
//   tandemctl kube-inject -f FILE|- [--template=FILE] [--proxy-image=IMAGE]
//                         [--namespace=NS] [--ca-address=HOST:PORT]
//                         [--ca-server-name=NAME] [--control-plane-namespace=NS]
//
//   tandemctl proxy-status [--admin=127.0.0.1:15010]
//   tandemctl check --ca-root=FILE [--admin=127.0.0.1:15010] [--ca-address=HOST:PORT]
//                   [--injector-address=HOST:PORT [--injector-server-name=NAME]]
//                   [--expiry-warning=10m] [--timeout=5s]
//
// kube-inject prints FILE (or stdin) with the tandem sidecar injected into every Pod,
// Deployment, StatefulSet, DaemonSet, Job and ReplicaSet, through the same library the
// admission webhook uses (docs/injection.md). Errors go to stderr, exit code 2.
// proxy-status prints one line per proxy connected to tandem-ca (through its agent):
// identity, certificate, versions, the policy sent and its ACK/NACK; check runs the
// preflight checks and exits 1 when one fails (docs/controlplane.md). Both read
// tandem-ca's loopback admin endpoint, so they run where tandem-ca runs.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "controlplane/injection/injector.h"
#include "controlplane/injection/kube_inject.h"
#include "controlplane/revocation/admin_client.h"
#include "tandemctl/check.h"
#include "tandemctl/proxy_status.h"

namespace {

constexpr char kUsage[] =
    "usage: tandemctl kube-inject -f FILE|- [--template=FILE] [--proxy-image=IMAGE]\n"
    "                             [--namespace=NS] [--ca-address=HOST:PORT]\n"
    "                             [--ca-server-name=NAME] "
    "[--control-plane-namespace=NS]\n"
    "       tandemctl proxy-status [--admin=127.0.0.1:15010]\n"
    "       tandemctl check --ca-root=FILE [--admin=127.0.0.1:15010]\n"
    "                       [--ca-address=127.0.0.1:15012]\n"
    "                       [--injector-address=HOST:PORT "
    "[--injector-server-name=NAME]]\n"
    "                       [--expiry-warning=10m] [--timeout=5s]\n"
    "  kube-inject's --template defaults to /etc/tandem/injection/sidecar-template.yaml\n"
    "  (deploy/kubernetes/injection/sidecar-template.yaml in the repository);\n"
    "  proxy-status and check read tandem-ca's loopback admin endpoint "
    "(docs/controlplane.md)\n";

int Fail(absl::string_view message) {
  std::fprintf(stderr, "tandemctl: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return 2;
}

int KubeInject(int argc, char** argv) {
  // -f FILE is kubectl's spelling; Flags takes only --name=value, so it is taken out
  // here.
  std::string file;
  bool has_file = false;
  std::vector<char*> rest = {argv[0]};
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "-f" || arg == "--filename") {
      if (i + 1 >= argc) return Fail("-f needs a file name (or - for stdin)");
      file = argv[++i];
      has_file = true;
    } else if (arg.rfind("--filename=", 0) == 0) {
      file = std::string(arg.substr(11));
      has_file = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  absl::StatusOr<tandem::Flags> flags =
      tandem::Flags::Parse(static_cast<int>(rest.size()), rest.data(), 1,
                           {"template", "proxy-image", "namespace", "ca-address",
                            "ca-server-name", "control-plane-namespace"});
  if (!flags.ok()) {
    std::fputs(kUsage, stderr);
    return Fail(flags.status().message());
  }
  if (!has_file) {
    std::fputs(kUsage, stderr);
    return Fail("kube-inject needs -f FILE (or -f - for stdin)");
  }

  tandem::injection::InjectorOptions options;
  options.template_name =
      flags->Get("template", "/etc/tandem/injection/sidecar-template.yaml");
  absl::StatusOr<std::string> template_text =
      tandem::ReadFileToString(options.template_name);
  if (!template_text.ok())
    return Fail("--template: " + std::string(template_text.status().message()));
  options.template_yaml = *std::move(template_text);
  options.proxy_image = flags->Get("proxy-image", options.proxy_image);
  options.ca_address = flags->Get("ca-address", options.ca_address);
  options.ca_server_name = flags->Get("ca-server-name", options.ca_server_name);
  options.control_plane_namespace =
      flags->Get("control-plane-namespace", options.control_plane_namespace);
  absl::StatusOr<std::unique_ptr<tandem::injection::Injector>> injector =
      tandem::injection::Injector::Create(std::move(options));
  if (!injector.ok()) return Fail(injector.status().message());

  std::string input;
  if (file == "-") {
    input.assign(std::istreambuf_iterator<char>(std::cin),
                 std::istreambuf_iterator<char>());
  } else {
    absl::StatusOr<std::string> text = tandem::ReadFileToString(file);
    if (!text.ok()) return Fail(text.status().message());
    input = *std::move(text);
  }
  absl::StatusOr<std::string> output =
      tandem::injection::KubeInject(input, file == "-" ? "<stdin>" : file,
                                    flags->Get("namespace", "default"), **injector);
  if (!output.ok()) return Fail(output.status().message());
  std::fwrite(output->data(), 1, output->size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

int ProxyStatus(int argc, char** argv) {
  absl::StatusOr<tandem::Flags> flags = tandem::Flags::Parse(argc, argv, 2, {"admin"});
  if (!flags.ok()) {
    std::fputs(kUsage, stderr);
    return Fail(flags.status().message());
  }
  std::string admin = flags->Get("admin", "127.0.0.1:15010");
  absl::StatusOr<tandem::controlplane::AdminClient::Reply> reply =
      tandem::controlplane::AdminClient::Call(admin, "GET", "/policy-streams", "");
  if (!reply.ok()) return Fail("proxy-status: " + std::string(reply.status().message()));
  if (reply->status != 200) {
    return Fail("proxy-status: " + admin + " answered " + std::to_string(reply->status) +
                (reply->status == 404
                     ? " (tandem-ca serves the policy streams with --policy-file or "
                       "--state-dir)"
                     : ": " + reply->body));
  }
  absl::StatusOr<std::vector<tandem::tandemctl::ProxyStatus>> streams =
      tandem::tandemctl::ParseProxyStatus(reply->body);
  if (!streams.ok())
    return Fail("proxy-status: " + std::string(streams.status().message()));
  std::string table = tandem::tandemctl::FormatProxyStatus(*streams, absl::Now());
  std::fwrite(table.data(), 1, table.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

int Check(int argc, char** argv) {
  absl::StatusOr<tandem::Flags> flags =
      tandem::Flags::Parse(argc, argv, 2,
                           {"admin", "ca-address", "ca-root", "injector-address",
                            "injector-server-name", "expiry-warning", "timeout"});
  if (!flags.ok()) {
    std::fputs(kUsage, stderr);
    return Fail(flags.status().message());
  }
  tandem::tandemctl::CheckOptions options;
  options.admin = flags->Get("admin", options.admin);
  options.ca_address = flags->Get("ca-address", options.ca_address);
  options.injector_address = flags->Get("injector-address", "");
  options.injector_server_name =
      flags->Get("injector-server-name", options.injector_server_name);
  options.ca_root_name = flags->Get("ca-root", "");
  if (options.ca_root_name.empty()) {
    std::fputs(kUsage, stderr);
    return Fail("check needs --ca-root=FILE: the roots the workloads trust");
  }
  absl::StatusOr<std::string> root = tandem::ReadFileToString(options.ca_root_name);
  if (!root.ok()) return Fail("--ca-root: " + std::string(root.status().message()));
  options.ca_root_pem = *std::move(root);
  absl::StatusOr<absl::Duration> warning =
      flags->GetDuration("expiry-warning", options.expiry_warning, absl::ZeroDuration());
  if (!warning.ok()) return Fail(warning.status().message());
  options.expiry_warning = *warning;
  absl::StatusOr<absl::Duration> timeout =
      flags->GetDuration("timeout", options.timeout, absl::Milliseconds(1));
  if (!timeout.ok()) return Fail(timeout.status().message());
  options.timeout = *timeout;
  bool all_ok = true;
  for (const tandem::tandemctl::CheckResult& result :
       tandem::tandemctl::RunChecks(options, absl::Now())) {
    std::printf("%s\n", tandem::tandemctl::FormatCheck(result).c_str());
    all_ok = all_ok && result.ok;
  }
  return std::fflush(stdout) == 0 && all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help" ||
      std::string_view(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::string_view(argv[1]) == "kube-inject") return KubeInject(argc, argv);
  if (std::string_view(argv[1]) == "proxy-status") return ProxyStatus(argc, argv);
  if (std::string_view(argv[1]) == "check") return Check(argc, argv);
  std::fputs(kUsage, stderr);
  return Fail(std::string("unknown command ") + argv[1]);
}
