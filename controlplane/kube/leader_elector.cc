#include "controlplane/kube/leader_elector.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"

namespace tandem::controlplane {

std::string FormatMicroTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<std::unique_ptr<LeaderElector>> LeaderElector::Create(Options options) {
  if (options.client == nullptr || options.identity.empty() || options.ns.empty() ||
      options.name.empty()) {
    return absl::InvalidArgumentError(
        "leader election: a client, the Lease's namespace and name and our identity are "
        "required");
  }
  if (options.renew_deadline >= options.lease_duration ||
      options.retry_period >= options.renew_deadline) {
    return absl::InvalidArgumentError(
        "leader election: retry period < renew deadline < lease duration");
  }
  return std::unique_ptr<LeaderElector>(new LeaderElector(std::move(options)));
}

LeaderElector::LeaderElector(Options options)
    : options_(std::move(options)),
      collection_(absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/", options_.ns,
                               "/leases")) {}

LeaderElector::~LeaderElector() { Stop(); }

absl::StatusOr<bool> LeaderElector::TryAcquireOrRenew(absl::Time now) {
  bool may_write = true;
  absl::StatusOr<nlohmann::json> stored = options_.client->Update(
      collection_, options_.name,
      [&](nlohmann::json* lease) -> absl::StatusOr<bool> {
        nlohmann::json spec;
        if (!lease->is_null()) {
          auto it = lease->find("spec");
          if (it != lease->end() && it->is_object()) spec = *it;
        }
        std::string holder;
        if (auto h = spec.find("holderIdentity"); h != spec.end() && h->is_string()) {
          holder = h->get<std::string>();
        }
        // The record as a whole: any change (a renewal) restarts the holder's clock.
        std::string record = spec.dump();
        if (record != observed_record_) {
          observed_record_ = record;
          observed_at_ = now;
        }
        if (!holder.empty() && holder != options_.identity &&
            now < observed_at_ + options_.lease_duration) {
          may_write = false;  // held, and renewed recently enough
          return false;
        }
        int64_t transitions = 0;
        if (auto t = spec.find("leaseTransitions");
            t != spec.end() && t->is_number_integer()) {
          transitions = t->get<int64_t>();
        }
        if (holder != options_.identity) {
          spec["acquireTime"] = FormatMicroTime(now);
          // Creating the Lease is not a transition; taking it from someone is.
          if (!lease->is_null()) ++transitions;
        }
        spec["holderIdentity"] = options_.identity;
        spec["leaseDurationSeconds"] = absl::ToInt64Seconds(options_.lease_duration);
        spec["renewTime"] = FormatMicroTime(now);
        spec["leaseTransitions"] = transitions;
        if (lease->is_null()) {
          *lease = {{"apiVersion", "coordination.k8s.io/v1"},
                    {"kind", "Lease"},
                    {"metadata", {{"name", options_.name}, {"namespace", options_.ns}}}};
        }
        (*lease)["spec"] = spec;
        return true;
      },
      /*max_conflicts=*/1);
  if (!may_write) return false;
  if (!stored.ok()) {
    // Another candidate wrote between our read and our write: it got there first.
    if (stored.status().code() == absl::StatusCode::kAborted ||
        stored.status().code() == absl::StatusCode::kAlreadyExists) {
      return false;
    }
    return stored.status();
  }
  observed_record_ = (*stored)["spec"].dump();
  observed_at_ = now;
  return true;
}

void LeaderElector::SetLeader(bool leading) {
  if (leader_.exchange(leading) == leading) return;
  log::Info("ca",
            leading ? "leader election: now leading" : "leader election: stopped leading",
            {{"lease", absl::StrCat(options_.ns, "/", options_.name)},
             {"identity", options_.identity}});
  if (options_.registry != nullptr) {
    options_.registry
        ->GetGauge(
            "tandem_ca_leader",
            "1 while this replica holds the Lease and writes the trust-root ConfigMaps.")
        .Set(leading ? 1 : 0);
  }
}

void LeaderElector::Release() {
  absl::StatusOr<nlohmann::json> released = options_.client->Update(
      collection_, options_.name,
      [&](nlohmann::json* lease) -> absl::StatusOr<bool> {
        if (lease->is_null() || !lease->contains("spec") ||
            (*lease)["spec"].value("holderIdentity", "") != options_.identity) {
          return false;  // no longer ours
        }
        (*lease)["spec"]["holderIdentity"] = "";
        (*lease)["spec"]["leaseDurationSeconds"] = 1;
        (*lease)["spec"]["renewTime"] = FormatMicroTime(absl::Now());
        return true;
      },
      /*max_conflicts=*/1);
  if (!released.ok()) {
    log::Warn("ca", "leader election: could not release the Lease",
              {{"error", std::string(released.status().message())}});
  }
}

void LeaderElector::Run() {
  absl::Time last_renewal = absl::InfinitePast();
  while (true) {
    const absl::Time now = absl::Now();
    absl::StatusOr<bool> held = TryAcquireOrRenew(now);
    if (held.ok() && *held) {
      last_renewal = now;
      SetLeader(true);
    } else if (is_leader() &&
               (held.ok() || now - last_renewal >= options_.renew_deadline)) {
      // Someone else holds it now, or we could not renew in time: another replica may
      // take over once the lease lapses, so stop writing before it can.
      SetLeader(false);
    }
    if (!held.ok()) {
      log::Warn("ca", "leader election: Lease not read or written",
                {{"error", std::string(held.status().message())}});
    }
    absl::MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + options_.retry_period;
    while (!stop_requested_ && absl::Now() < until)
      stop_cv_.WaitWithDeadline(&mu_, until);
    if (stop_requested_) return;
  }
}

void LeaderElector::Start() {
  thread_ = std::thread([this] { Run(); });
}

void LeaderElector::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_requested_ = true;
    stop_cv_.Signal();
  }
  if (!thread_.joinable()) return;
  thread_.join();
  if (is_leader()) {
    SetLeader(false);
    Release();
  }
}

}  // namespace tandem::controlplane
