#ifndef TANDEM_CONTROLPLANE_CA_CA_CORE_H_
#define TANDEM_CONTROLPLANE_CA_CA_CORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/auth/token_authenticator.h"

namespace tandem::controlplane {

// How strictly the files in root_dir are checked.
enum class KeyPermissions {
  // The directory 0700 and both files 0600 (or stricter), all owned by the CA's user;
  // a fresh root is generated on first start.
  kOwnerOnly,
  // A Kubernetes Secret volume: files owned by root or the CA's user, at most
  // owner-writable and group-readable (defaultMode 0400/0440 with fsGroup), nothing for
  // others; the kubelet's directory is not checked; the CA never generates a root.
  kSecretVolume,
};

struct CaCoreOptions {
  // Holds ca-key.pem and ca-cert.pem (CA cert first, then its issuers up to the root).
  // Istio's plug-in CA layout (the `cacerts` Secret) works too: ca-cert.pem the signing
  // certificate alone, cert-chain.pem it and its issuers up to the root, root-cert.pem
  // the root(s) to publish (docs/controlplane.md).
  std::string root_dir;
  KeyPermissions key_permissions = KeyPermissions::kOwnerOnly;
  std::string trust_domain = "cluster.local";
  absl::Duration default_ttl = absl::Hours(1);
  absl::Duration max_ttl = absl::Hours(24);
  // Names the CA's own gRPC serving certificate carries, for clients to verify
  // (CaServer issues it with IssueServing and keeps it fresh).
  std::vector<std::string> server_dns_names = {"tandem-ca", "tandem-ca.tandem-system.svc",
                                               "localhost"};
  std::vector<std::string> server_ips = {"127.0.0.1"};
  // Extra trusted roots published with every certificate (root rotation overlap).
  std::string extra_roots_pem;
  // A file of extra roots instead (may be empty), read at Create and at every Reload:
  // the operator edits it during a root rotation (docs/controlplane.md).
  std::string extra_roots_file;
};

// A TLS serving certificate tandem-ca issues to itself, as PEM strings.
struct ServingCertificate {
  std::string key_pem;    // made in memory for this certificate; never written to disk
  std::string chain_pem;  // leaf, then intermediates
  std::string serial_hex;
  absl::Time not_before;
  absl::Time not_after;
};

// The signing core of tandem-ca: CA key material, CSR checks, issuance, and client
// certificate authentication for renewals. The signing material (key, chain, published
// roots) is one immutable snapshot that Reload replaces in one swap when the files
// change; everything else is fixed at Create. Any thread may call any method. The
// header names no BoringSSL type, so gRPC code may include it.
class CaCore {
 public:
  static absl::StatusOr<std::unique_ptr<CaCore>> Create(CaCoreOptions options,
                                                        absl::Time now);
  ~CaCore();

  // Issues a certificate for `account` over the CSR's key. The SPIFFE ID comes from
  // `account` only; the CSR's requested names are ignored. `requested_seconds` <= 0
  // means the default TTL; larger than the maximum is clamped. Returns PEMs: leaf,
  // intermediates, then the trusted root(s). Bad CSRs are kInvalidArgument. Errors
  // carry a refusal reason (refusal_reason.h).
  absl::StatusOr<std::vector<std::string>> Issue(const std::string& csr_pem,
                                                 const ServiceAccount& account,
                                                 int64_t requested_seconds,
                                                 absl::Time now) const;
  // Authenticates a caller by its current certificate chain (PEM, leaf first): it must
  // chain to our roots, be valid now, and name a workload of our trust domain. When
  // `serial_hex` is set it receives the leaf's serial (for revocation checks).
  absl::StatusOr<ServiceAccount> AuthenticatePeer(
      const std::string& chain_pem, absl::Time now,
      std::string* serial_hex = nullptr) const;

  // Issues a fresh serving certificate for the CA's own endpoints (its gRPC port, the
  // injector's webhook) from the signing material in force: a new P-256 key, the URI
  // SAN of tandem-ca's identity, `dns_names` and `ips`, valid for `ttl` (clamped to the
  // CA's own lifetime). kInvalidArgument for a bad name or address.
  absl::StatusOr<ServingCertificate> IssueServing(
      const std::vector<std::string>& dns_names, const std::vector<std::string>& ips,
      absl::Duration ttl, absl::Time now) const;

  // Re-reads ca-key.pem, ca-cert.pem (and Istio's cert-chain.pem and root-cert.pem when
  // present) and the extra roots file (a Kubernetes Secret or ConfigMap update replaces
  // them by a symlink swap) and, when they changed, checks
  // them as Create does and swaps them in: later issuance signs with them and
  // publishes their roots; requests in flight finish with the material they started
  // with. Returns whether it swapped. An error names what is wrong and leaves the
  // material in force; the same error is returned once, then false until the files
  // change again. Any thread (tandem-ca's reload thread).
  absl::StatusOr<bool> Reload(absl::Time now);

  // Every root clients should trust (ours first, then the others of root-cert.pem, then
  // extra roots), as of now.
  std::string trust_bundle_pem() const;
  const std::string& trust_domain() const;

  struct State;

 private:
  struct Signer;
  // The files' contents, as read; root_cert_pem and cert_chain_pem are empty unless the
  // root dir holds Istio's plug-in CA files (root-cert.pem, cert-chain.pem).
  struct Sources {
    std::string key_pem, cert_pem, extra_roots_pem, root_cert_pem, cert_chain_pem;
    bool operator==(const Sources&) const = default;
  };
  static absl::StatusOr<Sources> ReadSources(const CaCoreOptions& options);
  static absl::StatusOr<std::shared_ptr<const Signer>> BuildSigner(
      const CaCoreOptions& options, Sources sources);
  std::shared_ptr<const Signer> CurrentSigner() const;

  explicit CaCore(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tandem::controlplane

#endif  // TANDEM_CONTROLPLANE_CA_CA_CORE_H_
