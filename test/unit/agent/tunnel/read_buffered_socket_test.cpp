#include "agent/tunnel/read_buffered_socket.h"

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
class ReadBufferedSocketTest : public ::testing::Test {
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
  ReadBufferedSocket reader_{io_.get_executor(), 64 << 10};
  tcp::socket peer_{io_};
};

TEST_F(ReadBufferedSocketTest, OneSocketReadServesManySmallReadsInOrder) {
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

TEST_F(ReadBufferedSocketTest, AZeroLengthReadCompletesLaterWithNothing) {
  asio::write(peer_, asio::buffer(std::string("hello")));
  auto [ec, none] = read(0);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(none.empty());
  auto [ec2, hello] = read(64);
  EXPECT_FALSE(ec2);
  EXPECT_EQ(hello, "hello");
}

TEST_F(ReadBufferedSocketTest, WhatIsBufferedIsReadBeforeTheEndOfTheStream) {
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

TEST_F(ReadBufferedSocketTest, WritesGoStraightToTheSocket) {
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

}  // namespace
}  // namespace tetherd::tunnel
