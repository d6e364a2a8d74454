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
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
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

// What the CA signs with and publishes, built from one reading of its files. Immutable;
// requests hold a shared_ptr for as long as they use it, so a reload never changes
// the material under a request.
struct CaCore::Signer {
  Sources sources;  // as read: a reload compares them to notice a change
  std::unique_ptr<pki::CertificateAuthority> ca;
  std::unique_ptr<pki::TrustBundle> bundle;
  std::string bundle_pem;
  std::vector<std::string> chain_tail;  // intermediates + roots, as PEM
};

struct CaCore::State {
  CaCoreOptions options;
  mutable absl::Mutex mu;
  std::shared_ptr<const Signer> signer ABSL_GUARDED_BY(mu);
  // The refusal last reported by Reload, so a file left bad is reported once.
  std::string last_refusal ABSL_GUARDED_BY(mu);
};

CaCore::CaCore(std::unique_ptr<State> state) : state_(std::move(state)) {}
CaCore::~CaCore() = default;

absl::StatusOr<CaCore::Sources> CaCore::ReadSources(const CaCoreOptions& options) {
  const std::string& dir = options.root_dir;
  const std::string key_path = dir + "/ca-key.pem", cert_path = dir + "/ca-cert.pem";
  const std::string root_cert_path = dir + "/root-cert.pem";
  const std::string cert_chain_path = dir + "/cert-chain.pem";
  // Istio's two files are optional; present, they are checked as the key is: they
  // come in the same Secret, and a chain someone else could write is a chain they
  // choose.
  std::vector<std::string> files = {key_path, cert_path};
  struct stat st;
  for (const std::string& path : {root_cert_path, cert_chain_path}) {
    if (stat(path.c_str(), &st) == 0) files.push_back(path);
  }
  if (options.key_permissions == KeyPermissions::kSecretVolume) {
    for (const std::string& path : files) {
      if (absl::Status s = CheckSecretVolumeFile(path); !s.ok()) return s;
    }
  } else {
    if (absl::Status s = CheckOwnerOnly(dir, true); !s.ok()) return s;
    for (const std::string& path : files) {
      if (absl::Status s = CheckOwnerOnly(path, false); !s.ok()) return s;
    }
  }
  Sources sources;
  for (auto [path, pem] : {std::pair{root_cert_path, &sources.root_cert_pem},
                           std::pair{cert_chain_path, &sources.cert_chain_pem}}) {
    if (std::find(files.begin(), files.end(), path) == files.end()) continue;
    absl::StatusOr<std::string> text = ReadFileToString(path);
    if (!text.ok()) return text.status();
    *pem = *std::move(text);
  }
  absl::StatusOr<std::string> key_pem = ReadFileToString(key_path);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> cert_pem = ReadFileToString(cert_path);
  if (!cert_pem.ok()) return cert_pem.status();
  sources.key_pem = *std::move(key_pem);
  sources.cert_pem = *std::move(cert_pem);
  sources.extra_roots_pem = options.extra_roots_pem;
  if (!options.extra_roots_file.empty()) {
    absl::StatusOr<std::string> extra = ReadFileToString(options.extra_roots_file);
    if (!extra.ok()) return extra.status();
    sources.extra_roots_pem = *std::move(extra);
  }
  return sources;
}

absl::StatusOr<std::shared_ptr<const CaCore::Signer>> CaCore::BuildSigner(
    const CaCoreOptions& options, Sources sources) {
  auto signer = std::make_shared<Signer>();
  auto refused = [&](absl::string_view why) {
    return absl::FailedPreconditionError(
        absl::StrCat("CA files in ", options.root_dir, ": ", why));
  };
  auto blank = [](const std::string& pem) {
    return absl::StripAsciiWhitespace(pem).empty();
  };
  // Istio's layout: ca-cert.pem holds the signing certificate alone and cert-chain.pem
  // it and its issuers up to the root (empty when ca-cert.pem is the root itself).
  const std::string* chain_pem = &sources.cert_pem;
  if (!blank(sources.cert_chain_pem)) {
    absl::StatusOr<std::vector<pki::Certificate>> signing =
        pki::Certificate::ChainFromPem(sources.cert_pem);
    absl::StatusOr<std::vector<pki::Certificate>> chain =
        pki::Certificate::ChainFromPem(sources.cert_chain_pem);
    if (!signing.ok())
      return refused(absl::StrCat("ca-cert.pem: ", signing.status().message()));
    if (!chain.ok()) {
      return refused(absl::StrCat("cert-chain.pem: ", chain.status().message()));
    }
    if (signing->front().ToDer() != chain->front().ToDer()) {
      return refused(
          "cert-chain.pem must start with the certificate in ca-cert.pem (Istio's "
          "layout: "
          "the signing certificate, then its issuers up to the root)");
    }
    chain_pem = &sources.cert_chain_pem;
  }
  absl::StatusOr<pki::CertificateAuthority> ca =
      pki::CertificateAuthority::FromPem(sources.key_pem, *chain_pem);
  if (!ca.ok()) return refused(ca.status().message());
  signer->ca = std::make_unique<pki::CertificateAuthority>(*std::move(ca));
  std::vector<pki::Certificate> roots = {signer->ca->root()};
  // The next root may be listed before the switch and the old one after: publish each
  // root once.
  auto publish = [&roots](const std::vector<pki::Certificate>& more) {
    for (const pki::Certificate& root : more) {
      bool listed = false;
      for (const pki::Certificate& have : roots) listed |= have.ToDer() == root.ToDer();
      if (!listed) roots.push_back(root);
    }
  };
  if (!blank(sources.root_cert_pem)) {
    // Istio's root-cert.pem: the roots workloads trust, several during a rotation.
    absl::StatusOr<std::vector<pki::Certificate>> listed =
        pki::Certificate::ChainFromPem(sources.root_cert_pem);
    if (!listed.ok()) {
      return refused(absl::StrCat("root-cert.pem: ", listed.status().message()));
    }
    bool has_ours = false;
    for (const pki::Certificate& root : *listed) {
      has_ours |= root.ToDer() == signer->ca->root().ToDer();
    }
    if (!has_ours) {
      return refused(
          absl::StrCat("root-cert.pem does not hold the root the CA chain ends "
                       "with (\"",
                       signer->ca->root().Subject(), "\")"));
    }
    publish(*listed);
  }
  if (!blank(sources.extra_roots_pem)) {
    absl::StatusOr<std::vector<pki::Certificate>> extra =
        pki::Certificate::ChainFromPem(sources.extra_roots_pem);
    if (!extra.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("extra roots: ", extra.status().message()));
    }
    publish(*extra);
  }
  absl::StatusOr<pki::TrustBundle> bundle = pki::TrustBundle::FromCertificates(roots);
  if (!bundle.ok()) return bundle.status();
  signer->bundle = std::make_unique<pki::TrustBundle>(*std::move(bundle));
  signer->bundle_pem = signer->bundle->ToPem();
  for (const pki::Certificate& c : signer->ca->IntermediatesForLeaf()) {
    signer->chain_tail.push_back(c.ToPem());
  }
  for (const pki::Certificate& c : roots) signer->chain_tail.push_back(c.ToPem());
  signer->sources = std::move(sources);
  return signer;
}

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
  if (options.key_permissions == KeyPermissions::kOwnerOnly &&
      stat(key_path.c_str(), &st) != 0) {
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
  absl::StatusOr<Sources> sources = ReadSources(options);
  if (!sources.ok()) return sources.status();
  absl::StatusOr<std::shared_ptr<const Signer>> signer =
      BuildSigner(options, *std::move(sources));
  if (!signer.ok()) return signer.status();
  {
    absl::MutexLock lock(&state->mu);
    state->signer = *std::move(signer);
  }
  state->options = std::move(options);
  return std::unique_ptr<CaCore>(new CaCore(std::move(state)));
}

absl::StatusOr<bool> CaCore::Reload(absl::Time now) {
  absl::StatusOr<Sources> sources = ReadSources(state_->options);
  absl::StatusOr<std::shared_ptr<const Signer>> signer =
      absl::InternalError("unreachable: replaced below");
  if (!sources.ok()) {
    signer = sources.status();
  } else {
    std::shared_ptr<const Signer> current = CurrentSigner();
    if (*sources == current->sources) {
      absl::MutexLock lock(&state_->mu);
      state_->last_refusal.clear();
      return false;
    }
    signer = BuildSigner(state_->options, *std::move(sources));
    if (signer.ok() && (*signer)->ca->certificate().not_after() <= now) {
      signer = absl::FailedPreconditionError(absl::StrCat(
          "CA files in ", state_->options.root_dir, ": the CA certificate has expired"));
    }
  }
  absl::MutexLock lock(&state_->mu);
  if (!signer.ok()) {
    // Reported once per distinct refusal; the material in force stays.
    std::string why(signer.status().message());
    if (why == state_->last_refusal) return false;
    state_->last_refusal = why;
    return signer.status();
  }
  state_->last_refusal.clear();
  state_->signer = *std::move(signer);
  return true;
}

std::shared_ptr<const CaCore::Signer> CaCore::CurrentSigner() const {
  absl::MutexLock lock(&state_->mu);
  return state_->signer;
}

absl::StatusOr<ServingCertificate> CaCore::IssueServing(
    const std::vector<std::string>& dns_names, const std::vector<std::string>& ips,
    absl::Duration ttl, absl::Time now) const {
  absl::StatusOr<pki::PrivateKey> key = pki::PrivateKey::GenerateP256();
  if (!key.ok()) return key.status();
  absl::StatusOr<SpiffeId> id =
      SpiffeId::ForWorkload(state_->options.trust_domain, "tandem-system", "tandem-ca");
  if (!id.ok()) return id.status();
  std::shared_ptr<const Signer> signer = CurrentSigner();
  absl::StatusOr<pki::Certificate> cert =
      signer->ca->IssueServer(*key, *id, dns_names, ips, ttl, now);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key_pem = key->ToPem();
  if (!key_pem.ok()) return key_pem.status();
  ServingCertificate serving{*std::move(key_pem), cert->ToPem(), cert->SerialHex(),
                             cert->not_before(), cert->not_after()};
  for (const pki::Certificate& c : signer->ca->IntermediatesForLeaf()) {
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
  std::shared_ptr<const Signer> signer = CurrentSigner();
  absl::StatusOr<pki::Certificate> leaf = signer->ca->IssueWorkload(*csr, *id, ttl, now);
  if (!leaf.ok()) {
    bool bad_csr = leaf.status().code() == absl::StatusCode::kInvalidArgument;
    return WithRefusalReason(leaf.status(), bad_csr ? "bad_csr" : "internal");
  }
  std::vector<std::string> chain = {leaf->ToPem()};
  chain.insert(chain.end(), signer->chain_tail.begin(), signer->chain_tail.end());
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
  absl::StatusOr<SpiffeId> id = CurrentSigner()->bundle->Verify(*chain, now);
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

std::string CaCore::trust_bundle_pem() const { return CurrentSigner()->bundle_pem; }
const std::string& CaCore::trust_domain() const { return state_->options.trust_domain; }

}  // namespace tandem::controlplane
