#pragma once
// A TCP socket with a read buffer, for under a TLS stream: Asio's TLS
// engine reads one record (16 KiB at most) per read, so a bulk transfer
// costs a recvmsg per record; here one recvmsg takes up to the buffer's
// size and the engine's reads are served from it. Writes go straight to
// the socket. A read served from the buffer completes through a post,
// never inside the call (as the engine's zero-length reads expect).

#include <cstddef>
#include <memory>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

namespace tetherd::tunnel {

class ReadBufferedSocket {
 public:
  using executor_type = boost::asio::any_io_executor;
  using socket_type = boost::asio::ip::tcp::socket;
  using lowest_layer_type = socket_type::lowest_layer_type;

  explicit ReadBufferedSocket(const executor_type& executor, std::size_t capacity = 64 << 10)
      : socket_(executor), buffer_(std::make_unique<char[]>(capacity)), capacity_(capacity) {}

  executor_type get_executor() { return socket_.get_executor(); }
  lowest_layer_type& lowest_layer() { return socket_.lowest_layer(); }
  const lowest_layer_type& lowest_layer() const { return socket_.lowest_layer(); }
  socket_type& socket() { return socket_; }
  // Bytes read from the socket and not yet taken.
  std::size_t buffered() const { return end_ - begin_; }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return socket_.async_write_some(buffers, std::forward<Token>(token));
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        ReadOp<MutableBuffers>{*this, buffers}, token, socket_);
  }

 private:
  template <class MutableBuffers>
  struct ReadOp {
    ReadBufferedSocket& s;
    MutableBuffers buffers;
    enum { kStart, kFilling, kServing } state = kStart;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0) {
      switch (state) {
        case kStart:
          if (s.begin_ == s.end_ && boost::asio::buffer_size(buffers) > 0) {
            state = kFilling;
            s.begin_ = s.end_ = 0;
            s.socket_.async_read_some(boost::asio::buffer(s.buffer_.get(), s.capacity_),
                                      std::move(self));
            return;
          }
          state = kServing;
          boost::asio::post(std::move(self));
          return;
        case kFilling:
          if (ec) {
            self.complete(ec, 0);
            return;
          }
          s.end_ = n;
          break;
        case kServing:
          break;
      }
      const std::size_t taken = boost::asio::buffer_copy(
          buffers, boost::asio::buffer(s.buffer_.get() + s.begin_, s.end_ - s.begin_));
      s.begin_ += taken;
      self.complete({}, taken);
    }
  };

  socket_type socket_;
  std::unique_ptr<char[]> buffer_;
  std::size_t capacity_;
  std::size_t begin_ = 0, end_ = 0;
};

}  // namespace tetherd::tunnel
