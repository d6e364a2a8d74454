// BoringSSL code: never include gRPC headers here.
#include "controlplane/ca/ca_core.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/pki/certificate_authority.h"
#include "common/pki/trust_bundle.h"
#include "controlplane/auth/refusal_reason.h"

namespace tandem::controlplane {
namespace {

absl::Status CheckOwnerOnly(const std::string& path, bool directory) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (directory != S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, directory ? " is not a directory" : " is not a file"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has mode %04o; CA key material must be owner-only (chmod %s %s)", path,
        st.st_mode & 07777, directory ? "700" : "600", path));
  }
  if (st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is owned by another user"));
  }
  return absl::OkStatus();
}

// Kubernetes Secret volumes: files are owned by root, group fsGroup, mode 0440 or
// 0400; the kubelet owns the directory. Refuses anything others can read or anyone
// but the owner can write.
absl::Status CheckSecretVolumeFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(
        path, ": ", std::strerror(errno),
        " (in secret-volume mode the CA never generates a root: create the Secret)"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a file"));
  }
  if ((st.st_mode & 027) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has mode %04o; CA key material must be at most owner-writable and "
        "group-readable (Secret defaultMode 0400 or 0440)",
        path, st.st_mode & 07777));
  }
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is owned by neither root nor the CA's user"));
  }
  return absl::OkStatus();
}

absl::Status WriteOwnerOnly(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat(path, ": ", std::strerror(errno)));
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
            fsync(fd) == 0;
  close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

}  // namespace

struct CaCore::State {
  CaCoreOptions options;
  std::unique_ptr<pki::CertificateAuthority> ca;
  std::unique_ptr<pki::TrustBundle> bundle;
  std::string bundle_pem;
  std::vector<std::string> chain_tail;  // intermediates + roots, as PEM
  std::string server_key_pem;
  std::string server_chain_pem;
};

CaCore::CaCore(std::unique_ptr<State> state) : state_(std::move(state)) {}
CaCore::~CaCore() = default;

absl::StatusOr<std::unique_ptr<CaCore>> CaCore::Create(CaCoreOptions options,
                                                       absl::Time now) {
  auto state = std::make_unique<State>();
  if (absl::Status s = SpiffeId::ValidateTrustDomain(options.trust_domain); !s.ok()) {
    return s;
  }
  if (options.max_ttl <= absl::ZeroDuration() || options.default_ttl > options.max_ttl) {
    return absl::InvalidArgumentError("TTLs: need 0 < default_ttl <= max_ttl");
  }
  const std::string dir = options.root_dir;
  const std::string key_path = dir + "/ca-key.pem", cert_path = dir + "/ca-cert.pem";
  if (dir.empty()) return absl::InvalidArgumentError("root_dir is required");
  struct stat st;
  const bool secret_volume = options.key_permissions == KeyPermissions::kSecretVolume;
  if (secret_volume) {
    for (const std::string& path : {key_path, cert_path}) {
      if (absl::Status s = CheckSecretVolumeFile(path); !s.ok()) return s;
    }
  } else if (stat(key_path.c_str(), &st) != 0) {
    // First start: make a root and keep it, owner-only.
    if (stat(dir.c_str(), &st) != 0 && mkdir(dir.c_str(), 0700) != 0) {
      return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", std::strerror(errno)));
    }
    if (absl::Status s = CheckOwnerOnly(dir, true); !s.ok()) return s;
    pki::CertificateAuthority::RootOptions root;
    root.trust_domain = options.trust_domain;
    absl::StatusOr<pki::CertificateAuthority> ca =
        pki::CertificateAuthority::CreateRoot(root, now);
    if (!ca.ok()) return ca.status();
    absl::StatusOr<std::string> key_pem = ca->key().ToPem();
    if (!key_pem.ok()) return key_pem.status();
    if (absl::Status s = WriteOwnerOnly(cert_path, ca->certificate().ToPem()); !s.ok()) {
      return s;
    }
    if (absl::Status s = WriteOwnerOnly(key_path, *key_pem); !s.ok()) return s;
  }
  for (auto [path, is_dir] :
       {std::pair{dir, true}, std::pair{key_path, false}, std::pair{cert_path, false}}) {
    if (secret_volume) break;
    if (absl::Status s = CheckOwnerOnly(path, is_dir); !s.ok()) return s;
  }
  absl::StatusOr<std::string> key_pem = ReadFileToString(key_path);
  absl::StatusOr<std::string> cert_pem = ReadFileToString(cert_path);
  if (!key_pem.ok()) return key_pem.status();
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<pki::CertificateAuthority> ca =
      pki::CertificateAuthority::FromPem(*key_pem, *cert_pem);
  if (!ca.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("CA files in ", dir, ": ", ca.status().message()));
  }
  state->ca = std::make_unique<pki::CertificateAuthority>(*std::move(ca));
  std::vector<pki::Certificate> roots = {state->ca->root()};
  if (!options.extra_roots_pem.empty()) {
    absl::StatusOr<std::vector<pki::Certificate>> extra =
        pki::Certificate::ChainFromPem(options.extra_roots_pem);
    if (!extra.ok()) return extra.status();
    roots.insert(roots.end(), extra->begin(), extra->end());
  }
  absl::StatusOr<pki::TrustBundle> bundle = pki::TrustBundle::FromCertificates(roots);
  if (!bundle.ok()) return bundle.status();
  state->bundle = std::make_unique<pki::TrustBundle>(*std::move(bundle));
  state->bundle_pem = state->bundle->ToPem();
  for (const pki::Certificate& c : state->ca->IntermediatesForLeaf()) {
    state->chain_tail.push_back(c.ToPem());
  }
  for (const pki::Certificate& c : roots) state->chain_tail.push_back(c.ToPem());

  // The CA's own gRPC serving certificate, valid as long as the CA.
  state->options = std::move(options);
  auto core = std::unique_ptr<CaCore>(new CaCore(std::move(state)));
  absl::StatusOr<ServingCertificate> server =
      core->IssueServingWithIps(core->state_->options.server_dns_names,
                         core->state_->options.server_ips, absl::Hours(24 * 365), now);
  if (!server.ok()) return server.status();
  core->state_->server_key_pem = std::move(server->key_pem);
  core->state_->server_chain_pem = std::move(server->chain_pem);
  return core;
}

absl::StatusOr<ServingCertificate> CaCore::IssueServing(
    const std::vector<std::string>& dns_names, absl::Duration ttl, absl::Time now) const {
  return IssueServingWithIps(dns_names, {}, ttl, now);
}

absl::StatusOr<ServingCertificate> CaCore::IssueServingWithIps(
    const std::vector<std::string>& dns_names, const std::vector<std::string>& ips,
    absl::Duration ttl, absl::Time now) const {
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::GenerateP256();
  if (!key.ok()) return key.status();
  absl::StatusOr<SpiffeId> id =
      SpiffeId::ForWorkload(state_->options.trust_domain, "tandem-system", "tandem-ca");
  if (!id.ok()) return id.status();
  absl::StatusOr<pki::Certificate> cert =
      state_->ca->IssueServer(*key, *id, dns_names, ips, ttl, now);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key_pem = key->ToPem();
  if (!key_pem.ok()) return key_pem.status();
  ServingCertificate serving{*std::move(key_pem), cert->ToPem(), cert->SerialHex(),
                             cert->not_before(), cert->not_after()};
  for (const pki::Certificate& c : state_->ca->IntermediatesForLeaf()) {
    serving.chain_pem += c.ToPem();
  }
  return serving;
}

absl::StatusOr<std::vector<std::string>> CaCore::Issue(const std::string& csr_pem,
                                                       const ServiceAccount& account,
                                                       int64_t requested_seconds,
                                                       absl::Time now) const {
  absl::StatusOr<pki::CertificateRequest> csr = pki::CertificateRequest::FromPem(csr_pem);
  if (!csr.ok()) {
    return WithRefusalReason(csr.status(), "bad_csr");  // "CSR refused: <why>"
  }
  absl::StatusOr<SpiffeId> id =
      SpiffeId::ForWorkload(state_->options.trust_domain, account.ns, account.name);
  if (!id.ok()) {
    return WithRefusalReason(
        absl::InvalidArgumentError(absl::StrCat(
            "authenticated identity is not a valid SPIFFE ID: ", id.status().message())),
        "invalid_identity");
  }
  absl::Duration ttl = requested_seconds > 0 ? absl::Seconds(requested_seconds)
                                             : state_->options.default_ttl;
  ttl = std::min(ttl, state_->options.max_ttl);
  absl::StatusOr<pki::Certificate> leaf = state_->ca->IssueWorkload(*csr, *id, ttl, now);
  if (!leaf.ok()) {
    bool bad_csr = leaf.status().code() == absl::StatusCode::kInvalidArgument;
    return WithRefusalReason(leaf.status(), bad_csr ? "bad_csr" : "internal");
  }
  std::vector<std::string> chain = {leaf->ToPem()};
  chain.insert(chain.end(), state_->chain_tail.begin(), state_->chain_tail.end());
  return chain;
}

absl::StatusOr<ServiceAccount> CaCore::AuthenticatePeer(const std::string& chain_pem,
                                                        absl::Time now,
                                                        std::string* serial_hex) const {
  absl::StatusOr<std::vector<pki::Certificate>> chain =
      pki::Certificate::ChainFromPem(chain_pem);
  if (!chain.ok()) {
    return WithRefusalReason(
        absl::UnauthenticatedError("client certificate is malformed"),
        "bad_client_certificate");
  }
  absl::StatusOr<SpiffeId> id = state_->bundle->Verify(*chain, now);
  if (!id.ok()) {
    return WithRefusalReason(absl::UnauthenticatedError(absl::StrCat(
                                 "client certificate refused: ", id.status().message())),
                             "bad_client_certificate");
  }
  if (id->trust_domain() != state_->options.trust_domain ||
      id->KubernetesNamespace().empty()) {
    return WithRefusalReason(
        absl::UnauthenticatedError(absl::StrCat("client certificate identity ",
                                                id->ToString(), " is not a workload")),
        "bad_client_certificate");
  }
  if (serial_hex != nullptr) *serial_hex = chain->front().SerialHex();
  return ServiceAccount{id->KubernetesNamespace(), id->KubernetesServiceAccount()};
}

const std::string& CaCore::server_key_pem() const { return state_->server_key_pem; }
const std::string& CaCore::server_chain_pem() const { return state_->server_chain_pem; }
const std::string& CaCore::trust_bundle_pem() const { return state_->bundle_pem; }
const std::string& CaCore::trust_domain() const { return state_->options.trust_domain; }

}  // namespace tandem::controlplane
