// tandemctl: the operator's command line. Flags live here only.
//
//   tandemctl kube-inject -f FILE|- [--template=FILE] [--proxy-image=IMAGE]
//                         [--namespace=NS] [--ca-address=HOST:PORT]
//                         [--ca-server-name=NAME] [--control-plane-namespace=NS]
//
// kube-inject prints FILE (or stdin) with the tandem sidecar injected into every Pod,
// Deployment, StatefulSet, DaemonSet, Job and ReplicaSet, through the same library the
// admission webhook uses (docs/injection.md). Errors go to stderr, exit code 2.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_util.h"
#include "common/flags.h"
#include "controlplane/injection/injector.h"
#include "controlplane/injection/kube_inject.h"

namespace {

constexpr char kUsage[] =
    "usage: tandemctl kube-inject -f FILE|- [--template=FILE] [--proxy-image=IMAGE]\n"
    "                             [--namespace=NS] [--ca-address=HOST:PORT]\n"
    "                             [--ca-server-name=NAME] "
    "[--control-plane-namespace=NS]\n"
    "  --template defaults to /etc/tandem/injection/sidecar-template.yaml\n"
    "  (deploy/kubernetes/injection/sidecar-template.yaml in the repository)\n";

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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help" ||
      std::string_view(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::string_view(argv[1]) == "kube-inject") return KubeInject(argc, argv);
  std::fputs(kUsage, stderr);
  return Fail(std::string("unknown command ") + argv[1]);
}
