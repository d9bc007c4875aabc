// The least resident memory any tetherd can have: this program links the
// libraries tetherd is built on, the way the release preset links them, and
// asks each for the one thing every tetherd needs of it, then waits on an
// event loop as the idle daemon does. None of tetherd's own code is in it.
//
//   one TLS client context   (the cloud's mTLS connection; k3s's probe)
//   one nftables command     (the firewall backend, `list tables`)
//   a watchdog ping and a journal line (libsystemd's sd-daemon, sd-journal)
//   the system bus            (sd-bus, where logind says "sleep")
//   a string stream           (libstdc++'s locale, as yaml-cpp uses it)
//
// It prints "ready" once all are done; bench/rss-floor reads its
// /proc/PID/smaps. Stops on SIGTERM or SIGINT.

#include <cstdio>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <nftables/libnftables.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

int main() {
  namespace asio = boost::asio;
  asio::io_context io;

  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.set_verify_mode(asio::ssl::verify_peer);

  nft_ctx* nft = nft_ctx_new(NFT_CTX_DEFAULT);
  nft_ctx_buffer_output(nft);
  nft_ctx_buffer_error(nft);
  const int listed = nft_run_cmd_from_buffer(nft, "list tables");
  nft_ctx_free(nft);

  sd_notify(0, "WATCHDOG=1");
  sd_journal_print(LOG_INFO, "rss-floor: idle");
  sd_bus* bus = nullptr;
  const int bus_rc = sd_bus_open_system(&bus);

  // Listening before "ready", so that bench/rss-floor's SIGTERM always
  // finds the handler.
  asio::signal_set stop(io, SIGTERM, SIGINT);
  stop.async_wait([&](auto, int) { io.stop(); });

  std::ostringstream line;
  line << "ready (nft " << listed << ", bus " << bus_rc << ", " << 0.5 << ")\n";
  std::fputs(line.str().c_str(), stdout);
  std::fflush(stdout);
  io.run();
  sd_bus_unref(bus);
}
