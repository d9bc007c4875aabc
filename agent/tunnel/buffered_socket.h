#pragma once
// A TCP socket with buffers both ways, for under a TLS stream. Asio's TLS
// engine reads and writes one record (16 KiB at most) at a time, so a bulk
// transfer cost a recvmsg and a sendmsg per record (on loopback, a profile
// put a 16 KiB send's cost near a 32 KiB one's: the receiver's processing
// and wake-up are most of it; fewer sends took about a twelfth off the
// agent's CPU where its writes go, README "The tunnel").
//
// Reads: one recvmsg takes up to the buffer's size and the engine's reads
// are served from it. Writes go straight to the socket, unless the socket
// is corked: then they are gathered (each completes at once, with all its
// bytes) until async_flush() sends them in one write and uncorks. A read
// or a gathered write completes through a post, never inside the call (as
// the engine's zero-length reads expect).

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace tetherd::tunnel {

class BufferedSocket {
 public:
  using executor_type = boost::asio::any_io_executor;
  using socket_type = boost::asio::ip::tcp::socket;
  using lowest_layer_type = socket_type::lowest_layer_type;

  explicit BufferedSocket(const executor_type& executor, std::size_t capacity = 64 << 10)
      : socket_(executor), buffer_(std::make_unique<char[]>(capacity)), capacity_(capacity) {}

  executor_type get_executor() { return socket_.get_executor(); }
  lowest_layer_type& lowest_layer() { return socket_.lowest_layer(); }
  const lowest_layer_type& lowest_layer() const { return socket_.lowest_layer(); }
  socket_type& socket() { return socket_; }
  // Bytes read from the socket and not yet taken.
  std::size_t buffered() const { return end_ - begin_; }

  // Writes from now on are gathered until async_flush(). The caller
  // bounds what it writes meanwhile, and says about how much (room is
  // made for it at once, not in steps that copy it again).
  void cork(std::size_t expected = 0) {
    corked_ = true;
    pending_.reserve(expected);
  }
  bool corked() const { return corked_; }
  // Bytes gathered and not yet sent.
  std::size_t gathered() const { return pending_.size(); }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        WriteOp<ConstBuffers>{*this, buffers}, token, socket_);
  }

  // Sends what was gathered (and what is gathered while it is sent), then
  // uncorks; after an error too, with what was gathered dropped.
  template <class Token>
  auto async_flush(Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(FlushOp{*this}, token,
                                                                              socket_);
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        ReadOp<MutableBuffers>{*this, buffers}, token, socket_);
  }

 private:
  template <class MutableBuffers>
  struct ReadOp {
    BufferedSocket& s;
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

  template <class ConstBuffers>
  struct WriteOp {
    BufferedSocket& s;
    ConstBuffers buffers;
    enum { kStart, kGathered, kWritten } state = kStart;
    std::size_t taken = 0;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0) {
      switch (state) {
        case kStart:
          if (!s.corked_) {
            state = kWritten;
            s.socket_.async_write_some(buffers, std::move(self));
            return;
          }
          for (auto it = boost::asio::buffer_sequence_begin(buffers);
               it != boost::asio::buffer_sequence_end(buffers); ++it) {
            const boost::asio::const_buffer b(*it);
            s.pending_.append(static_cast<const char*>(b.data()), b.size());
            taken += b.size();
          }
          state = kGathered;
          boost::asio::post(std::move(self));
          return;
        case kGathered:
          self.complete({}, taken);
          return;
        case kWritten:
          self.complete(ec, n);
          return;
      }
    }
  };

  struct FlushOp {
    BufferedSocket& s;
    bool started = false;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t = 0) {
      if (ec) {
        s.pending_.clear();
        s.uncork();
        self.complete(ec);
        return;
      }
      if (s.pending_.empty()) {
        if (!started) {
          started = true;
          boost::asio::post(std::move(self));
          return;
        }
        s.uncork();
        self.complete({});
        return;
      }
      started = true;
      // What is gathered while this is sent waits in pending_.
      s.sending_.swap(s.pending_);
      s.pending_.clear();
      boost::asio::async_write(s.socket_, boost::asio::buffer(s.sending_), std::move(self));
    }
  };

  // The buffers are given back: a connection idle after a burst holds
  // none (up to 64 servers, each gathering 64 KiB and more).
  void uncork() {
    corked_ = false;
    std::string().swap(pending_);
    std::string().swap(sending_);
  }

  socket_type socket_;
  std::string pending_, sending_;
  bool corked_ = false;
  std::unique_ptr<char[]> buffer_;
  std::size_t capacity_;
  std::size_t begin_ = 0, end_ = 0;
};

}  // namespace tetherd::tunnel
