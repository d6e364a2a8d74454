#include "tests/integration/openssl_cli.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::testing {
namespace {

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " was not written"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<std::string> OpensslCli::Run(const std::string& args) const {
  std::string command =
      absl::StrCat("cd '", dir_, "' && openssl ", args, " </dev/null 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("popen failed");
  std::string output;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) output.append(buf, n);
  int rc = pclose(pipe);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("openssl ", args, " failed:\n", output));
  }
  return output;
}

absl::StatusOr<std::string> OpensslCli::GenerateKey(const std::string& name,
                                                    const std::string& algorithm) const {
  std::vector<std::string> parts = absl::StrSplit(algorithm, ':');
  std::string args;
  if (parts[0] == "RSA" && parts.size() == 2) {
    args = absl::StrCat("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:", parts[1]);
  } else if (parts[0] == "EC" && parts.size() == 2) {
    args = absl::StrCat("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:", parts[1],
                        " -pkeyopt ec_param_enc:named_curve");
  } else if (algorithm == "ED25519") {
    args = "genpkey -algorithm ED25519";
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown algorithm ", algorithm));
  }
  if (absl::StatusOr<std::string> out = Run(absl::StrCat(args, " -out ", name, ".key"));
      !out.ok()) {
    return out.status();
  }
  return ReadText(PathOf(name + ".key"));
}

absl::StatusOr<std::string> OpensslCli::MakeCsr(const std::string& name,
                                                const std::string& uri_san) const {
  absl::StatusOr<std::string> out =
      Run(absl::StrCat("req -new -key ", name,
                       ".key -subj /O=cluster.local -addext subjectAltName=URI:", uri_san,
                       " -out ", name, ".csr"));
  if (!out.ok()) return out.status();
  return ReadText(PathOf(name + ".csr"));
}

absl::Status OpensslCli::WriteCaConfig(const std::string& name) const {
  std::ofstream config(PathOf(name + ".cnf"));
  config << "[req]\ndistinguished_name = dn\nprompt = no\n"
         << "[dn]\nO = corp\nCN = " << name << "\n"
         << "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
         << "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
         << "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n";
  return config.good() ? absl::OkStatus() : absl::InternalError("writing the config");
}

absl::StatusOr<std::string> OpensslCli::MakeRoot(const std::string& name) const {
  if (absl::Status s = WriteCaConfig(name); !s.ok()) return s;
  absl::StatusOr<std::string> out =
      Run(absl::StrCat("req -x509 -new -key ", name, ".key -config ", name,
                       ".cnf -extensions v3_ca -days 365 -out ", name, ".crt"));
  if (!out.ok()) return out.status();
  return ReadText(PathOf(name + ".crt"));
}

absl::StatusOr<std::string> OpensslCli::MakeIntermediate(
    const std::string& name, const std::string& issuer) const {
  if (absl::Status s = WriteCaConfig(name); !s.ok()) return s;
  absl::StatusOr<std::string> out = Run(absl::StrCat(
      "req -new -key ", name, ".key -config ", name, ".cnf -out ", name, ".csr"));
  if (!out.ok()) return out.status();
  out = Run(absl::StrCat("x509 -req -in ", name, ".csr -CA ", issuer, ".crt -CAkey ",
                         issuer, ".key -CAcreateserial -extfile ", name,
                         ".cnf -extensions v3_ca -days 365 -out ", name, ".crt"));
  if (!out.ok()) return out.status();
  return ReadText(PathOf(name + ".crt"));
}

}  // namespace tandem::testing
