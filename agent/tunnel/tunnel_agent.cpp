#include "agent/tunnel/tunnel_agent.h"

#include <algorithm>
#include <cmath>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/core/duration.h"

namespace tetherd::tunnel {

namespace asio = boost::asio;
using asio::awaitable;

namespace {

std::string held(std::size_t n, int wanted) {
  return std::to_string(n) + " of " + std::to_string(wanted) + " server" + (wanted == 1 ? "" : "s");
}

RelayStats& operator+=(RelayStats& a, const RelayStats& b) {
  a.connections += b.connections;
  a.dials += b.dials;
  a.dials_refused += b.dials_refused;
  a.dials_failed += b.dials_failed;
  a.bytes_to_destinations += b.bytes_to_destinations;
  a.bytes_to_server += b.bytes_to_server;
  a.bytes_waiting += b.bytes_waiting;
  return a;
}

}  // namespace

TunnelAgent::TunnelAgent(asio::any_io_executor executor, const Clock& clock, Log& log,
                         TunnelSettings settings, std::shared_ptr<asio::ssl::context> tls,
                         std::function<double()> random)
    : executor_(std::move(executor)),
      clock_(clock),
      log_(log),
      settings_(std::move(settings)),
      tls_(std::move(tls)),
      random_(std::move(random)),
      timer_(executor_, clock),
      grace_(executor_, clock) {
  if (settings_.connect_ids) next_connect_id_ = settings_.connect_ids;
  if (!random_) random_ = seeded_unit_random();
}

// The coroutines hold `this`: the owner keeps the agent until finished()
// (the daemon's retired parts), after stop().
TunnelAgent::~TunnelAgent() = default;

void TunnelAgent::start() {
  ++running_;
  asio::co_spawn(executor_, run(), [this](std::exception_ptr e) {
    --running_;
    if (e) std::rethrow_exception(e);
  });
}

awaitable<void> TunnelAgent::wait(Duration d) {
  if (d == Duration::max())
    timer_.expires_never();
  else
    timer_.expires_after(std::max(d, Duration::zero()));
  co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
}

awaitable<void> TunnelAgent::run() {
  while (!stopped_) {
    if (static_cast<int>(links_.size()) >= wanted_) {
      co_await wait(Duration::max());  // a connection's end, a resume or a stop
      continue;
    }
    if (const MonoTime now = clock_.monotonic(); now < next_dial_) {
      co_await wait(next_dial_ - now);
      continue;
    }
    auto connection = TunnelConnection::make(executor_, clock_, tls_, settings_.connection);
    auto relay = std::make_shared<TunnelRelay>(
        executor_, clock_, connection, settings_.destinations, next_connect_id_, settings_.relay);
    // Weak: the connection holds its handlers, and the relay the connection.
    TunnelConnection::Handlers handlers;
    handlers.packet = [weak = std::weak_ptr<TunnelRelay>(relay)](Packet p, std::size_t wire) {
      if (auto r = weak.lock()) r->on_packet(std::move(p), wire);
    };
    handlers.writable = [weak = std::weak_ptr<TunnelRelay>(relay)] {
      if (auto r = weak.lock()) r->on_writable();
    };
    dialling_ = connection;
    kube::ServerAddress address = settings_.server;
    AgentIdentity identity = settings_.identity;
    auto hello = co_await connection->open(address, identity, std::move(handlers));
    dialling_.reset();
    if (stopped_) {
      connection->close("tetherd is stopping");
      relay->close_all();  // a dial that came with the answer is not left open
      break;
    }
    if (!hello) {
      const Duration delay = failed();
      if (hello.error().message != problem_)
        log_.warning("tunnel-dial-failed",
                     "cannot connect the tunnel to " + settings_.server_url + ": " +
                         hello.error().message + "; next try in " + format_duration(delay),
                     {{"TUNNEL_SERVER", settings_.server_url}});
      problem_ = hello.error().message;
      changed();
      continue;
    }
    wanted_ = hello->server_count;
    const std::string id = hello->server_id;
    if (links_.contains(id)) {
      // The balancer sent this dial to a server already held: closed, and
      // the next dial a little later, for it to pick another.
      connection->close("a second connection to server " + id);
      relay->close_all();
      // Growing by half to the cap, the exponent bounded (a long run of
      // duplicates must not overflow the wait into the past).
      const double growth = std::pow(1.5, std::min(duplicates_, 32u));
      const Duration delay = std::min<Duration>(
          settings_.duplicate_wait_cap,
          std::chrono::duration_cast<Duration>(std::chrono::duration<double, Duration::period>(
              static_cast<double>(settings_.duplicate_wait.count()) * growth)));
      ++duplicates_;
      next_dial_ = clock_.monotonic() + delay;
      continue;
    }
    // failures_ is reset only once a connection has lasted (serve()): a
    // server that takes the call and drops it is backed off from.
    duplicates_ = 0;
    relay->on_refused([this, id](const std::string& why) { dial_refused(id, why); });
    Link link{connection, relay, clock_.monotonic()};
    links_[id] = link;
    if (connected_now()) problem_.clear();
    log_.notice("tunnel-connected",
                "the tunnel to konnectivity server " + id + " is up (" +
                    held(links_.size(), wanted_) + " at " + settings_.server_url + ")",
                {{"TUNNEL_SERVER", settings_.server_url}, {"TUNNEL_SERVER_ID", id}});
    ++running_;
    asio::co_spawn(executor_, serve(id, link), [this](std::exception_ptr e) {
      --running_;
      if (e) std::rethrow_exception(e);
    });
    changed();
  }
}

// One failure more: the next dial waits a full-jitter backoff (at least
// half its base, so never at once).
Duration TunnelAgent::failed() {
  ++failures_;
  const Duration delay = std::max(settings_.backoff.base / 2,
                                  full_jitter(settings_.backoff, failures_ - 1, random_()));
  next_dial_ = clock_.monotonic() + delay;
  return delay;
}

bool TunnelAgent::connected_now() const {
  return static_cast<int>(links_.size()) >= wanted_;
}

awaitable<void> TunnelAgent::serve(std::string id, Link link) {
  const std::string why = co_await link.connection->serve();
  link.relay->close_all();
  retired_ += link.relay->stats();
  // Not ours any more when a resume or a stop closed it: nothing to say.
  const auto it = links_.find(id);
  if (it == links_.end() || it->second.connection != link.connection) co_return;
  links_.erase(it);
  if (stopped_) {
    if (links_.empty()) grace_.cancel();  // every server ended its half: no need to wait
    co_return;
  }
  problem_ = "server " + id + ": " + why;
  if (clock_.monotonic() - link.since >= settings_.stable_after) {
    failures_ = 0;
  } else {
    failed();
  }
  log_.warning("tunnel-disconnected",
               "the tunnel to konnectivity server " + id + " ended: " + why + " (" +
                   held(links_.size(), wanted_) + " held); dialling again",
               {{"TUNNEL_SERVER", settings_.server_url}, {"TUNNEL_SERVER_ID", id}});
  timer_.cancel();
  changed();
}

void TunnelAgent::resumed() {
  if (stopped_) return;
  auto links = std::move(links_);
  links_.clear();
  for (auto& [id, link] : links)
    link.connection->close("resumed from suspend: the connection died in the sleep");
  if (dialling_) dialling_->close("resumed from suspend");
  failures_ = 0;
  duplicates_ = 0;
  next_dial_ = MonoTime{};
  timer_.cancel();
  if (!links.empty())
    log_.info("tunnel-resumed",
              "resumed from suspend: dialling the tunnel's " + std::to_string(links.size()) +
                  " server(s) again",
              {{"TUNNEL_SERVER", settings_.server_url}});
  changed();
}

void TunnelAgent::use_tls(std::shared_ptr<asio::ssl::context> tls) {
  tls_ = std::move(tls);
}

void TunnelAgent::stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  if (dialling_) dialling_->close("tetherd is stopping");
  if (links_.empty()) return;
  // DRAIN first (no new dials here, please), then the calls end; a server
  // that does not end its half within the grace is cut.
  // Serving goes on after DRAIN: a server with no connection through it
  // is done with at once; the others have the grace for theirs, then
  // tetherd ends its half of each call, and a server that does not end
  // its own within another moment is cut.
  for (auto& [id, link] : links_) {
    link.relay->drain();
    if (link.relay->stats().connections == 0) link.connection->finish();
  }
  log_.info("tunnel-draining",
            "stopping: DRAIN sent to the tunnel's " + std::to_string(links_.size()) + " server(s)",
            {{"TUNNEL_SERVER", settings_.server_url}});
  grace_.expires_after(settings_.drain_grace);
  ++running_;
  grace_.async_wait([this](boost::system::error_code e) {
    if (!e && !links_.empty()) {
      for (auto& [id, link] : links_)
        link.connection->finish();
      grace_.expires_after(std::chrono::seconds(2));
      grace_.async_wait([this](boost::system::error_code) {
        for (auto& [id, link] : links_)
          link.connection->close("tetherd stopped");
        links_.clear();
        --running_;
      });
      return;
    }
    for (auto& [id, link] : links_)
      link.connection->close("tetherd stopped");
    links_.clear();
    --running_;
  });
}

TunnelReport TunnelAgent::report() const {
  TunnelReport r;
  r.servers_wanted = wanted_;
  for (const auto& [id, link] : links_) {
    r.servers.push_back(id);
    r.totals += link.relay->stats();
  }
  r.totals += retired_;
  r.problem = problem_;
  return r;
}

void TunnelAgent::changed() {
  TunnelReport r = report();
  r.totals = {};  // a change is of the servers held and the problem, not of the bytes
  if (r == last_) return;
  last_ = r;
  if (listener_) listener_(report());
}

void TunnelAgent::dial_refused(const std::string& server, const std::string& why) {
  constexpr Duration kEvery = std::chrono::minutes(1);
  const MonoTime now = clock_.monotonic();
  if (refusal_said_ && now - *refusal_said_ < kEvery) {
    ++refusals_unsaid_;
    return;
  }
  std::string text = "konnectivity server " + server + " asked for a dial, refused: " + why;
  if (refusals_unsaid_ > 0)
    text += " (" + std::to_string(refusals_unsaid_) + " more refused since the last such line)";
  log_.warning("tunnel-dial-refused", text,
               {{"TUNNEL_SERVER", settings_.server_url}, {"TUNNEL_SERVER_ID", server}});
  refusal_said_ = now;
  refusals_unsaid_ = 0;
}

}  // namespace tetherd::tunnel
