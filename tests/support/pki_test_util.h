#ifndef TANDEM_TESTS_SUPPORT_PKI_TEST_UTIL_H_
#define TANDEM_TESTS_SUPPORT_PKI_TEST_UTIL_H_

// Helpers for tests that need a CA and workload certificates minted in-process.

#include "common/pki/certificate_authority.h"
#include "common/pki/certificate_request.h"
#include "common/pki/private_key.h"
#include "common/pki/workload_credentials.h"
#include "gtest/gtest.h"

namespace tandem::pki::testing {

inline CertificateAuthority MakeRoot(std::string cn = "test root",
                                     absl::Time now = absl::Now(),
                                     std::string trust_domain = "cluster.local") {
  CertificateAuthority::RootOptions options;
  options.common_name = std::move(cn);
  options.trust_domain = std::move(trust_domain);
  absl::StatusOr<CertificateAuthority> ca =
      CertificateAuthority::CreateRoot(options, now);
  EXPECT_TRUE(ca.ok()) << ca.status();
  return *std::move(ca);
}

// Mints key + leaf for `id` from `ca`; the bundle holds `ca`'s root.
inline WorkloadCredentials MakeWorkload(const CertificateAuthority& ca,
                                        std::string_view id,
                                        absl::Duration ttl = absl::Hours(1),
                                        absl::Time now = absl::Now()) {
  PrivateKey key = *PrivateKey::GenerateP256();
  SpiffeId spiffe = *SpiffeId::Parse(id);
  CertificateRequest csr = *CertificateRequest::Create(key, spiffe);
  absl::StatusOr<Certificate> leaf = ca.IssueWorkload(csr, spiffe, ttl, now);
  EXPECT_TRUE(leaf.ok()) << leaf.status();
  std::vector<Certificate> chain = {*leaf};
  for (const Certificate& c : ca.IntermediatesForLeaf()) chain.push_back(c);
  return WorkloadCredentials{key, chain, *TrustBundle::FromCertificates({ca.root()})};
}

}  // namespace tandem::pki::testing

#endif  // TANDEM_TESTS_SUPPORT_PKI_TEST_UTIL_H_
