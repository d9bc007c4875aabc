#pragma once
// The node's client certificate, renewed by the daemon (issue 21), as
// client-go's certificate manager renews the kubelet's, and then some:
//
//   - at a random point between 70% and 90% of its life, judged on the wall
//     clock (core/client_cert.h), looked at again at least every `recheck`
//     and at once on a resume or a change of the credential files, so a
//     suspend cannot skip it;
//   - a new P-256 key (node.key.next, 0600) and a CSR authenticated by the
//     certificate in force, the same request `tetherctl enroll` makes, for
//     the same life as the current certificate; its name is kept
//     (node.csr.next) so that a restart waits for the same request: never
//     more than one pending;
//   - the CSR watched (a field selector on its name), so that an approval
//     is taken within a round trip; once issued, checked (its CN, its key,
//     its life, in force now) and installed (node_credentials.h): the
//     daemon follows node.crt and node.key and hands them to the session's
//     new connections while its watch and Lease go on;
//   - denied, failed, or a wrong certificate: refused with the reason, the
//     certificate in force kept, the next request after a backoff (at least
//     a minute, at most an hour); a request seen to exist and gone
//     before it was fetched
//     (kube-controller-manager deletes issued ones after an hour, which a
//     sleep can outlast) is asked for again at once, the first time;
//   - expired (a suspend longer than its remaining life): never used; with
//     controlPlane.bootstrapKubeconfig, a new CSR with that credential (as
//     kubelet does), a try that failed on the network or the server's load
//     again within 10 s to 5 minutes (the node is cut off meanwhile);
//     without, the fix (`tetherctl enroll ...`) is said;
//   - while the clock is known to be wrong (ClockSynchronized False) a
//     certificate is renewed once; one it installed that looks due at once
//     is not renewed again until the clock is synchronized or stepped: no
//     storm. And never more than one renewal a minute.
//
// Only a kubeconfig that names node.crt and node.key (what enroll writes)
// is renewed; any other is someone else's to renew (state kUnmanaged).
//
// The files are written under the lock `tetherctl enroll` holds for its
// whole run (CredentialsLock): while enroll runs, the renewal writes and
// asks nothing (RenewalFailed, saying so) and tries again after the backoff.
//
// One coroutine on the daemon's loop; what it finds is a CredentialReport,
// which the daemon shows as CredentialsValid, in status.certificates (so in
// the metrics and `tetherctl status`), and uses to hold the session back
// while the certificate is expired.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/app/node_credentials.h"
#include "agent/config/config.h"
#include "agent/config/kubeconfig.h"
#include "agent/core/backoff.h"
#include "agent/core/certificate.h"
#include "agent/core/clock.h"
#include "agent/core/csr_status.h"
#include "agent/core/log.h"
#include "agent/core/node_conditions.h"
#include "agent/core/timer.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"

namespace tetherd {

enum class CredentialState {
  kUnmanaged,       // not enroll's kubeconfig (or unreadable): not renewed here
  kValid,           // in force, renewal not yet due
  kRenewalPending,  // a CSR is asked for and not yet issued
  kRenewalRefused,  // the last request was denied, failed or wrongly issued; retried later
  kRenewalFailed,   // the last attempt could not reach the server; retried later
  kRenewalHeld,     // due again right after a renewal, the clock not synchronized
  kNotYetValid,     // the certificate starts after this node's clock
  kExpired,         // never used; renewed with the bootstrap credential, if any
};
// The state's name, which is CredentialsValid's reason: NotRenewed,
// CertificateValid, RenewalPending, ..., CertificateExpired.
std::string_view to_string(CredentialState state);

struct CredentialReport {
  CredentialState state = CredentialState::kUnmanaged;
  std::string message;  // one line: what is so, and what is done or to do
  std::string csr;      // the request under way, if any
  std::string subject;  // the certificate in force
  std::optional<WallTime> not_after;
  std::optional<WallTime> renew_at;
  // False while the certificate is expired: the session must not use it.
  bool usable = true;
  friend bool operator==(const CredentialReport&, const CredentialReport&) = default;
};

struct RenewalTiming {
  std::function<double()> random;  // uniform in [0, 1); empty: a random device
  // Before a new request after a refusal or a failure: full jitter, at
  // least `base`.
  BackoffPolicy backoff{.base = std::chrono::minutes(1), .cap = std::chrono::hours(1)};
  // The same, for a failure (not a refusal) while the certificate is
  // expired and the node cut off from the control plane: at most this long
  // after the network is back (an outage through the expiry).
  BackoffPolicy cut_off_backoff{.base = std::chrono::seconds(10), .cap = std::chrono::minutes(5)};
  // The longest wait between two looks at the wall clock: a resume whose
  // signal was lost is noticed this late at most.
  Duration recheck = std::chrono::minutes(10);
  // Each watch of the CSR asks for between this and twice it (drawn with
  // `random`); then the CSR is read again and watched anew.
  std::chrono::seconds watch_timeout{300};
  kube::ClientLimits limits;
  // The client a renewal asks with (the certificate in force, or the
  // bootstrap credential); empty: kube::HttpsClient::create with `limits`.
  // The simulation's (test/simulation/) is answered in process.
  kube::ClientMaker connect;
};

class CredentialRenewal {
 public:
  // `conditions`: read for ClockSynchronized only. Judges the files now
  // (report() is right from the start); start() begins the renewal.
  CredentialRenewal(boost::asio::any_io_executor executor, const Clock& clock, Log& log,
                    const NodeConditions& conditions, const Config& config,
                    RenewalTiming timing = {});
  ~CredentialRenewal();
  CredentialRenewal(const CredentialRenewal&) = delete;
  CredentialRenewal& operator=(const CredentialRenewal&) = delete;

  void start();
  // Ends the coroutine (a request under way is kept on disk for the next).
  void stop();
  bool finished() const { return running_ == 0; }
  // Look again now: a credential file changed. `resumed`: the machine woke,
  // and a backoff under way is cut short too.
  void wake(bool resumed = false);
  // The wall clock was stepped (set by hand, by NTP, by a bad RTC read): a
  // renewal held "until the clock is synchronized" is the old clock's
  // verdict, and is judged again now (once per step: no storm), as is an
  // issued certificate the old clock refused (not yet valid: the backoff
  // after it is cut to a minute from that attempt, when the new clock
  // falls within its life). A node
  // without NTP, whose kernel calls its clock unsynchronized for ever, is
  // otherwise never renewed again after one refusal the clock caused.
  void clock_stepped();
  // On the daemon's tick: a certificate said expired that the wall clock
  // now puts within its life is judged again at once (the attempt under
  // way, a recovery waiting for an approval, is cut). The clock was put
  // right by a step the daemon's check could not see: one ahead and one
  // back between two of its looks (across a sleep), with the verdict
  // taken in between; the node was otherwise cut off, its certificate
  // valid, until that attempt ended (an approval hours late).
  void check_clock();

  const CredentialReport& report() const { return report_; }
  const CredentialPaths& paths() const { return paths_; }
  const std::string& bootstrap_kubeconfig() const { return bootstrap_; }
  const std::string& node() const { return node_; }
  // Called on each change of report().
  void on_report(std::function<void(const CredentialReport&)> listener) {
    listener_ = std::move(listener);
  }

 private:
  enum class Action { kWait, kRenew, kRecover };
  struct Assessment {
    Action action = Action::kWait;
    Duration wait{};
    std::optional<Kubeconfig> kubeconfig;  // the node's, when managed
    CertificateInfo current;
  };
  Assessment assess();
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<Duration> renew(const Kubeconfig& with, const CertificateInfo& current,
                                         const std::string& via);
  // Until the CSR is issued, denied or gone, or `until` (the certificate
  // in force expires) passes.
  boost::asio::awaitable<kube::ApiResult<CsrStatus>> wait_for(kube::KubeClient& kube,
                                                              kube::HttpsClient& http,
                                                              const std::string& name,
                                                              WallTime until);
  // `may_pass`: the network or the server's load (ApiError::retryable),
  // which the short backoff is for while the certificate is expired.
  Duration failed(CredentialState state, const std::string& message, const CertificateInfo& current,
                  bool may_pass = false);
  void set(CredentialReport report);
  CredentialReport base(const CertificateInfo& current) const;
  std::string fix_command(const Kubeconfig& k) const;

  boost::asio::any_io_executor executor_;
  const Clock& clock_;
  Log& log_;
  const NodeConditions& conditions_;
  std::string node_;
  CredentialPaths paths_;
  std::string bootstrap_;
  RenewalTiming timing_;
  Timer timer_;
  CredentialReport report_;
  std::function<void(const CredentialReport&)> listener_;
  std::string serial_;              // the certificate whose renewal point was drawn
  std::string installed_unsynced_;  // renewed while the clock was not synchronized
  double draw_ = 0.0;
  unsigned failures_ = 0;    // attempts in a row that did not renew
  bool refused_ = false;     // the last of them was refused (denied, wrong)
  bool gone_ = false;        // a request was gone (deleted) since the last installed certificate
  MonoTime last_attempt_{};  // when the last attempt began
  // The last issued certificate this node's clock alone refused: its life.
  std::optional<std::pair<WallTime, WallTime>> refused_window_;
  std::string seen_name_;  // the last request known to exist (made, or read)
  // The request this process made, and when (boottime: sleeps count).
  std::optional<std::pair<std::string, MonoTime>> asked_at_;
  MonoTime retry_after_{};             // no new attempt before (monotonic)
  kube::HttpsClient* http_ = nullptr;  // the attempt's, while one runs (stop() closes it)
  bool woken_ = false;
  bool interrupted_ = false;  // a resume or a file change cut the attempt's connections
  bool waiting_ = false;      // the attempt waits for its request's answer
  bool stopped_ = false;
  int running_ = 0;
};

}  // namespace tetherd
