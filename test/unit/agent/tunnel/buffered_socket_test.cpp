#include "agent/tunnel/buffered_socket.h"

#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

namespace tetherd::tunnel {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A connected pair on loopback: `peer` writes, `reader` reads through the
// buffer.
class BufferedSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    reader_.socket().connect(acceptor.local_endpoint());
    acceptor.accept(peer_);
  }
  // One read of up to `n` bytes, run to its end.
  std::pair<boost::system::error_code, std::string> read(std::size_t n) {
    std::string out(n, '\0');
    std::optional<std::pair<boost::system::error_code, std::size_t>> got;
    reader_.async_read_some(asio::buffer(out), [&](boost::system::error_code ec, std::size_t k) {
      got.emplace(ec, k);
    });
    EXPECT_FALSE(got) << "completed inside the call";
    io_.restart();
    while (!got && io_.run_one() > 0) {
    }
    out.resize(got ? got->second : 0);
    return {got ? got->first : asio::error::timed_out, out};
  }

  asio::io_context io_;
  BufferedSocket reader_{io_.get_executor(), 64 << 10};
  tcp::socket peer_{io_};
};

TEST_F(BufferedSocketTest, OneSocketReadServesManySmallReadsInOrder) {
  std::string sent(100 << 10, '\0');
  for (std::size_t i = 0; i < sent.size(); ++i)
    sent[i] = static_cast<char>('a' + i % 26);
  asio::write(peer_, asio::buffer(sent));
  std::string received;
  auto [ec, first] = read(16 << 10);
  ASSERT_FALSE(ec) << ec.message();
  received += first;
  EXPECT_EQ(first.size(), 16u << 10);
  EXPECT_GT(reader_.buffered(), 0u) << "one read took more from the socket than was asked for";
  while (received.size() < sent.size()) {
    auto [e, more] = read(16 << 10);
    ASSERT_FALSE(e) << e.message();
    ASSERT_FALSE(more.empty());
    received += more;
  }
  EXPECT_EQ(received, sent);
  EXPECT_EQ(reader_.buffered(), 0u);
}

TEST_F(BufferedSocketTest, AZeroLengthReadCompletesLaterWithNothing) {
  asio::write(peer_, asio::buffer(std::string("hello")));
  auto [ec, none] = read(0);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(none.empty());
  auto [ec2, hello] = read(64);
  EXPECT_FALSE(ec2);
  EXPECT_EQ(hello, "hello");
}

TEST_F(BufferedSocketTest, WhatIsBufferedIsReadBeforeTheEndOfTheStream) {
  asio::write(peer_, asio::buffer(std::string("last words")));
  peer_.shutdown(tcp::socket::shutdown_send);
  auto [ec, a] = read(4);
  EXPECT_EQ(a, "last");
  auto [ec2, b] = read(64);
  EXPECT_EQ(b, " words");
  auto [ec3, c] = read(64);
  EXPECT_EQ(ec3, asio::error::eof);
  EXPECT_TRUE(c.empty());
}

TEST_F(BufferedSocketTest, WritesGoStraightToTheSocket) {
  std::optional<boost::system::error_code> wrote;
  asio::async_write(reader_, asio::buffer(std::string_view("ping")),
                    [&](boost::system::error_code ec, std::size_t) { wrote = ec; });
  io_.restart();
  while (!wrote && io_.run_one() > 0) {
  }
  ASSERT_TRUE(wrote);
  EXPECT_FALSE(*wrote);
  std::string got(4, '\0');
  asio::read(peer_, asio::buffer(got));
  EXPECT_EQ(got, "ping");
}

// Runs the loop until `done`, or until it has nothing left to run.
template <class Done>
void run_until(asio::io_context& io, Done done) {
  io.restart();
  while (!done() && io.run_one() > 0) {
  }
}

TEST_F(BufferedSocketTest, CorkedWritesAreHeldAndFlushSendsThemInOneWrite) {
  reader_.cork();
  int written = 0;
  for (std::string_view part : {"tether", "d"})
    asio::async_write(reader_, asio::buffer(part), [&](boost::system::error_code ec, std::size_t) {
      EXPECT_FALSE(ec);
      ++written;
    });
  run_until(io_, [&] { return written == 2; });
  ASSERT_EQ(written, 2) << "a corked write did not complete";
  EXPECT_EQ(reader_.gathered(), 7u);
  EXPECT_EQ(peer_.available(), 0u) << "a corked write reached the socket before the flush";

  std::optional<boost::system::error_code> flushed;
  reader_.async_flush([&](boost::system::error_code ec) { flushed = ec; });
  EXPECT_FALSE(flushed) << "completed inside the call";
  run_until(io_, [&] { return flushed.has_value(); });
  ASSERT_TRUE(flushed);
  EXPECT_FALSE(*flushed) << flushed->message();
  EXPECT_FALSE(reader_.corked());
  EXPECT_EQ(reader_.gathered(), 0u);
  std::string got(7, '\0');
  asio::read(peer_, asio::buffer(got));
  EXPECT_EQ(got, "tetherd");
}

TEST_F(BufferedSocketTest, AWriteGatheredWhileTheFlushSendsIsSentByTheSameFlush) {
  reader_.cork();
  bool first = false, second = false;
  asio::async_write(reader_, asio::buffer(std::string_view("first ")),
                    [&](boost::system::error_code, std::size_t) { first = true; });
  run_until(io_, [&] { return first; });
  std::optional<boost::system::error_code> flushed;
  reader_.async_flush([&](boost::system::error_code ec) { flushed = ec; });
  // Still corked while the flush runs: this is gathered behind "first ".
  asio::async_write(reader_, asio::buffer(std::string_view("second")),
                    [&](boost::system::error_code, std::size_t) { second = true; });
  run_until(io_, [&] { return flushed.has_value() && second; });
  ASSERT_TRUE(flushed);
  EXPECT_FALSE(*flushed);
  EXPECT_TRUE(second);
  EXPECT_FALSE(reader_.corked());
  std::string got(12, '\0');
  asio::read(peer_, asio::buffer(got));
  EXPECT_EQ(got, "first second");
}

TEST_F(BufferedSocketTest, AFlushThatFailsUncorksAndDropsWhatWasGathered) {
  reader_.cork();
  bool written = false;
  asio::async_write(reader_, asio::buffer(std::string_view("lost")),
                    [&](boost::system::error_code, std::size_t) { written = true; });
  run_until(io_, [&] { return written; });
  reader_.socket().close();
  std::optional<boost::system::error_code> flushed;
  reader_.async_flush([&](boost::system::error_code ec) { flushed = ec; });
  run_until(io_, [&] { return flushed.has_value(); });
  ASSERT_TRUE(flushed);
  EXPECT_TRUE(*flushed) << "a flush to a closed socket succeeded";
  EXPECT_FALSE(reader_.corked());
  EXPECT_EQ(reader_.gathered(), 0u);
}

}  // namespace
}  // namespace tetherd::tunnel
