#pragma once
// tetherd as a konnectivity agent: it holds one connection to each server
// behind the configured address and serves their packets (TunnelRelay).
//
// As upstream's agent (pkg/agent/clientset.go): the servers are told apart
// only by the ID each gives when it takes the call; the address is dialled
// again until as many distinct IDs are held as the servers' count says
// (a load balancer spreads the dials); a second connection to a server
// already held is closed, and the next dial waits a little (1 s, growing
// by half to 10 s: the balancer needs other dials to pick another).
// A failed dial, or a connection that ends within a minute of its start,
// waits a full-jitter backoff (1 s base, 60 s cap); a resume from suspend
// closes every connection (they died in the sleep) and dials at once.
// Stopping sends DRAIN on each connection and ends the calls.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/core/backoff.h"
#include "agent/core/log.h"
#include "agent/core/timer.h"
#include "agent/tunnel/tunnel_relay.h"

namespace tetherd::tunnel {

struct TunnelSettings {
  kube::ServerAddress server;  // the servers' agent port
  std::string server_url;      // as configured, for messages
  AgentIdentity identity;
  std::vector<Destination> destinations;
  ConnectionLimits connection;
  RelayLimits relay;
  BackoffPolicy backoff{std::chrono::seconds(1), std::chrono::seconds(60)};
  Duration duplicate_wait = std::chrono::seconds(1);
  Duration duplicate_wait_cap = std::chrono::seconds(10);
  // A connection that ends sooner than this counts as a failure (a server
  // that takes the call and drops it at once is not dialled in a loop).
  Duration stable_after = std::chrono::minutes(1);
  // stop(): how long connections under way may go on after DRAIN.
  Duration drain_grace = std::chrono::seconds(10);
  // The connectID counter: one across agents (a reload's new agent and the
  // old one draining share the agentID, and a server keys by both).
  std::shared_ptr<std::int64_t> connect_ids;
};

struct TunnelReport {
  int servers_wanted = 1;            // the servers' count, as last said
  std::vector<std::string> servers;  // the IDs held
  std::string problem;               // why the last dial or connection failed ("" when none)
  RelayStats totals;                 // over the connections held now and before
  bool connected() const { return static_cast<int>(servers.size()) >= servers_wanted; }
  friend bool operator==(const TunnelReport&, const TunnelReport&) = default;
};

class TunnelAgent {
 public:
  TunnelAgent(boost::asio::any_io_executor executor, const Clock& clock, Log& log,
              TunnelSettings settings, std::shared_ptr<boost::asio::ssl::context> tls,
              std::function<double()> random = {});
  ~TunnelAgent();
  TunnelAgent(const TunnelAgent&) = delete;
  TunnelAgent& operator=(const TunnelAgent&) = delete;

  void start();
  // Resumed from suspend: every connection closed, the servers dialled now.
  void resumed();
  // New credentials: new connections use them (those held go on).
  void use_tls(std::shared_ptr<boost::asio::ssl::context> tls);
  // DRAIN on every connection, then the calls end (at most drain_grace).
  void stop();
  bool finished() const { return running_ == 0; }

  // Called on every change of the report (servers held, the problem).
  void on_report(std::function<void(const TunnelReport&)> listener) {
    listener_ = std::move(listener);
  }
  TunnelReport report() const;

 private:
  struct Link {
    std::shared_ptr<TunnelConnection> connection;
    std::shared_ptr<TunnelRelay> relay;
    MonoTime since{};
  };
  boost::asio::awaitable<void> run();
  // A journal line for a refused dial: the first at once, then at most one
  // a minute, saying how many went unsaid (the metrics count them all).
  void dial_refused(const std::string& server, const std::string& why);
  boost::asio::awaitable<void> serve(std::string id, Link link);
  boost::asio::awaitable<void> wait(Duration d);
  void changed();
  bool connected_now() const;
  Duration failed();

  boost::asio::any_io_executor executor_;
  const Clock& clock_;
  Log& log_;
  TunnelSettings settings_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::function<double()> random_;
  std::shared_ptr<std::int64_t> next_connect_id_ = std::make_shared<std::int64_t>(0);
  std::map<std::string, Link> links_;
  int wanted_ = 1;
  unsigned failures_ = 0;
  unsigned duplicates_ = 0;
  MonoTime next_dial_{};
  std::optional<MonoTime> refusal_said_;
  std::uint64_t refusals_unsaid_ = 0;
  std::string problem_;
  RelayStats retired_;  // the totals of connections that ended
  std::shared_ptr<TunnelConnection> dialling_;
  Timer timer_;
  Timer grace_;  // stop(): how long the servers have to end the calls
  bool stopped_ = false;
  int running_ = 0;
  std::function<void(const TunnelReport&)> listener_;
  TunnelReport last_;
};

}  // namespace tetherd::tunnel
