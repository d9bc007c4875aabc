#pragma once
// The session and the firewall in one simulation (issue 23, its fourth
// step): the real Daemon (its start, reload, tick, watchdog, resume and
// stop) with the real Tether (its Reflector, Lease, status writer and spec
// intake), FirewallKeeper (its state file, an in-memory kernel),
// NodeHealth and ResumeDetector as its parts, their HTTP client answered in
// process by the test API server's REST semantics (test/support/api_server:
// its store, its watches with bookmarks, timeouts and 410 after
// compaction). Everything runs on simulated time (test/support/sim_clock.h).
// The daemon makes the Tether itself, from the kubeconfig `tetherctl
// enroll` would have written (the node's certificate made by the cloud's
// CA on simulated time, and a bootstrap kubeconfig), and renews that
// certificate with the real CredentialRenewal on the same in-process
// clients (issue 21's events): the cloud judges what each client presents
// (401 out of its validity), approves the node's CSRs within a minute and
// deletes issued ones an hour later. Its answers carry a Date (true time),
// the daemon's witness of its own clock.
//
// linkerd in the node's k3s (the same REST semantics, in process): the
// Daemon's IssuerRotation (DaemonParts::issuer, its triggers the daemon's
// own: start, resume, hourly, a clock step, the control plane's Date,
// spec.linkerd) mints a week's issuer from the anchor's key while
// spec.linkerd names none, and takes the cloud's (real issuers
// cert-manager renews there) while it names one; the identity controller
// says IssuerUpdated 5 to 90 s after each write.
//
// The world: the cloud's operator changing the node's spec (valid, and
// refused by the node's limits), the control plane's faults (the session
// simulation's mix: refused, reset, stalled, 500/503/429 with and without
// Retry-After, 410, slow, cut after the 200, someone else writing the
// Lease, a NAT forgetting the watch), a node that sleeps (logind's
// PrepareForSleep, or the signal lost and only the resume seen), and
// linkerd's objects in the cloud: spec.linkerd's references changed by the
// operator, the issuer Secrets renewed by cert-manager and the trust
// bundle's ConfigMap rewritten by trust-manager (or deleted), which the
// Tether's followers must track on their own client.
//
// The invariants, checked every simulated minute and after every event,
// are judged from the world (the store, the kernel, the state file), not
// from what the code says of itself.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "test/simulation/session_sim.h"

namespace tetherd::sim::node {

enum class Kind {
  kSleep,
  kOutage,
  kSpec,
  kRestart,
  kReload,
  kLinkerdRefs,
  kLinkerdObject,
  kK3sDown,  // the node's k3s refuses (or, `stalled`, takes and never answers) for `length`
  // The node's wall clock stepped by `offset` (an admin's `date -s`, a
  // bad RTC read at boot), and stepped right again `length` later (NTP).
  kClockWrong,
};

struct Event {
  Duration at{};
  Kind kind = Kind::kSpec;
  Duration length{};                 // kSleep, kOutage, kK3sDown; kReload: the heartbeat
  bool logind_lost = false;          // kSleep
  Fault fault = Fault::kRefused;     // kOutage
  Duration retry_after{};            // kOutage: 500, 503, 429
  std::vector<std::string> sources;  // kSpec
  bool valid = true;                 // kSpec: within the node's limits; kReload: parses
  int allow = 0;                     // kReload: which static source the file has
  // kLinkerdRefs: the issuer Secret spec.linkerd names (0: none, 1, 2) and
  // whether it names the bundle's ConfigMap. kLinkerdObject: the object
  // rewritten (1, 2: an issuer Secret; 3: the ConfigMap), deleted if !valid.
  int linkerd = 0;
  bool bundle = false;
  bool stalled = false;  // kK3sDown: requests taken, no answer (etcd stuck)
  // kReload: no SIGHUP; the daemon's FileWatch sees the file's edit.
  bool by_edit = false;
  Duration offset{};  // kClockWrong: how far off (ahead if positive)
};

Event sleep_event(Duration at, Duration length, bool logind_lost = false);
Event outage_event(Duration at, Duration length, Fault fault, Duration retry_after = {});
Event spec_event(Duration at, std::vector<std::string> sources, bool valid = true);
Event linkerd_refs_event(Duration at, int issuer, bool bundle);
Event linkerd_object_event(Duration at, int object, bool deleted = false);
Event k3s_down_event(Duration at, Duration length, bool stalled = false);
Event clock_wrong_event(Duration at, Duration length, Duration offset);

// What the cloud does with one of the node's CSRs: approves it, or denies
// it, `after` it was made (zero: at the world's next minute). One still
// pending a day after it was made is deleted first, as
// kube-controller-manager's cleaner deletes them.
struct Approval {
  Duration after{};
  bool denied = false;
};

// The node's CSRs are decided as `first` says, in the order they are made,
// then drawn (from the run's generator): a share `denied` (a policy that
// refuses, an admin's slip), a share approved `late` (an admin who
// approves by hand, 1 to 30 hours on: those past a day are deleted
// pending), the rest at the next minute.
struct Approver {
  std::vector<Approval> first;
  double denied = 0;
  double late = 0;
};

struct Scenario {
  int days = 0;
  std::uint64_t seed = 0;     // the session's jitter
  std::vector<Event> events;  // in time order
  // The node's client certificate's life (enroll's and each renewal's).
  Duration certificate_life = std::chrono::hours(24 * 20);
  Approver approver{};
};

// The session simulation's sleeps and outages for `days`, the cloud's
// spec changes (1500 a year, one in eight refused by the node's limits),
// 200 reloads a year (the static source and the heartbeat changed; one in
// four a bad file; half by SIGHUP, half by the edit alone), 20 restarts of tetherd (the kernel
// keeps the rules), spec.linkerd's references changed 24 times a year and its objects rewritten 300
// times (one in ten a deletion), the node's k3s down 50 times, and its wall clock wrong 24 times
// (seconds to 10 days, ahead or behind, for 10 s to a day). One CSR of the node's in ten is denied,
// three in twenty approved late.
Scenario generate(std::uint64_t seed, int days);

struct Totals {
  std::size_t checks = 0;
  std::size_t requests = 0;
  std::size_t watches = 0;        // opened
  std::size_t specs_applied = 0;  // the Tether's count
  std::size_t specs_rejected = 0;
  std::size_t status_writes = 0;
  std::size_t health_rounds = 0;  // NodeHealth's
  std::size_t k3s_outages = 0;
  std::size_t clock_steps = 0;      // kClockWrong's, each stepped back right too
  std::size_t k3s_requests = 0;     // the health rounds' probes of k3s
  std::size_t k3s_down_judged = 0;  // checks of K3sReady while k3s was down
  std::size_t sleeps = 0, outages = 0, specs = 0, restarts = 0, reloads = 0;
  std::size_t reloads_by_edit = 0;  // of `reloads`, seen by the daemon's FileWatch
  std::size_t linkerd_changes = 0;  // references and objects
  std::size_t busiest_minute = 0;
  // The node's client certificate: signed by the cloud, expired (each
  // judged by certificate-renewed-in-time), asked for with the bootstrap
  // token (after an expiry), and requests the cloud refused as
  // unauthenticated (an expired certificate).
  std::size_t certificates_signed = 0;
  std::size_t certificates_expired = 0;
  // The node's CSRs denied, approved late, and deleted still pending.
  std::size_t requests_denied = 0;
  std::size_t approvals_late = 0;
  std::size_t requests_expired = 0;
  std::size_t renewals_with_token = 0;
  std::size_t unauthorized = 0;
  // linkerd's issuer in k3s: written by tetherd, minted here or the
  // cloud's taken, and restarts of the identity controller it made.
  std::size_t issuers_minted = 0;
  std::size_t cloud_issuers_taken = 0;
  std::size_t identity_restarts = 0;
};

struct Verdict {
  std::optional<std::string> violation;  // the first invariant that failed, and why
  std::size_t step = 0;                  // the last event before it
  Totals totals;
};

// The checker's own tests: the world forgets to tell the Tether of a
// sleep and a resume (the daemon is given no resume detector), or
// the daemon gives the Tether no client for spec.linkerd's objects.
// kNoK3sClient: the health rounds are given no client of k3s.
// kNoWatchdog: the daemon is not told of systemd's watchdog, so it never
// pings it.
// kNoRenewal: the renewal of the node's certificate cannot make a client.
// kNoIssuer: the daemon is given no rotation of linkerd's issuer.
// kNoFileWatch: the daemon is given no FileWatch (an edit is not seen).
enum class Sabotage {
  kNone,
  kForgetResumes,
  kNoObjectsClient,
  kNoK3sClient,
  kNoWatchdog,
  kNoRenewal,
  kNoIssuer,
  kNoFileWatch
};

// A violation's invariant is named by the session simulation's
// sim::invariant().
Verdict run(const Scenario& scenario, Sabotage sabotage = Sabotage::kNone);
Scenario shrink(const Scenario& scenario, Sabotage sabotage = Sabotage::kNone, int runs = 120);
std::string describe(const Scenario& scenario);

}  // namespace tetherd::sim::node
