#include "proxy/grpc_stream.h"

#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::proxy {

// nghttp2's C callbacks, with the stream as user data.
struct GrpcStreamCallbacks {
  static GrpcStream* Of(void* user_data) { return static_cast<GrpcStream*>(user_data); }

  static ssize_t Send(nghttp2_session*, const uint8_t* data, size_t length, int,
                      void* user_data) {
    GrpcStream* s = Of(user_data);
    ssize_t n = send(s->fd_, data, length, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      s->socket_full_ = true;
      return NGHTTP2_ERR_WOULDBLOCK;
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }

  // Hands nghttp2 the request body: the framed messages Write() queued.
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t*, nghttp2_data_source*, void* user_data) {
    GrpcStream* s = Of(user_data);
    if (s->outgoing_.empty()) {
      s->write_deferred_ = true;  // Write() resumes it
      return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = std::min(length, s->outgoing_.size());
    std::memcpy(buf, s->outgoing_.data(), n);
    s->outgoing_.erase(0, n);
    return static_cast<ssize_t>(n);
  }

  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                    size_t len, void* user_data) {
    GrpcStream* s = Of(user_data);
    if (stream_id != s->stream_id_) return 0;
    s->incoming_.append(reinterpret_cast<const char*>(data), len);
    absl::Status framed = GrpcStream::Deframe(s->incoming_, s->messages_);
    if (!framed.ok()) {
      s->Fail(framed);
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    GrpcStream* s = Of(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != s->stream_id_) return 0;
    std::string key(reinterpret_cast<const char*>(name), namelen);
    std::string text(reinterpret_cast<const char*>(value), valuelen);
    if (key == ":status") {
      if (!absl::SimpleAtoi(text, &s->http_status_)) s->http_status_ = -1;
    } else if (key == "grpc-status") {
      if (!absl::SimpleAtoi(text, &s->grpc_status_)) s->grpc_status_ = 2;  // UNKNOWN
    } else if (key == "grpc-message") {
      s->grpc_message_ = text;
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                           void* user_data) {
    GrpcStream* s = Of(user_data);
    if (stream_id != s->stream_id_ || s->ended_) return 0;
    if (error_code != NGHTTP2_NO_ERROR) {
      s->Fail(absl::UnavailableError(absl::StrCat(
          "the server reset the stream: ", nghttp2_http2_strerror(error_code))));
    } else if (s->http_status_ != 200) {
      s->Fail(absl::UnavailableError(
          absl::StrCat("the server answered HTTP status ", s->http_status_)));
    } else if (s->grpc_status_ != 0) {
      s->Fail(absl::Status(
          static_cast<absl::StatusCode>(s->grpc_status_ < 0 ? 2 : s->grpc_status_),
          s->grpc_status_ < 0 ? "the stream ended without a grpc-status"
                              : absl::StrCat("the server ended the stream: ",
                                             s->grpc_message_)));
    } else {
      s->Fail(absl::OkStatus());  // a clean end: Read() returns false, Finish() OK
    }
    return 0;
  }
};

absl::Status GrpcStream::Deframe(std::string& buffer, std::deque<std::string>& out) {
  size_t at = 0;
  while (buffer.size() - at >= 5) {
    const auto* header = reinterpret_cast<const unsigned char*>(buffer.data() + at);
    if (header[0] != 0) {
      return absl::UnimplementedError("compressed gRPC messages are not supported");
    }
    size_t length = (size_t{header[1]} << 24) | (size_t{header[2]} << 16) |
                    (size_t{header[3]} << 8) | size_t{header[4]};
    if (length > kMaxGrpcMessageBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "a gRPC message of ", length, " bytes is over the ", kMaxGrpcMessageBytes,
          "-byte limit"));
    }
    if (buffer.size() - at - 5 < length) break;
    out.push_back(buffer.substr(at + 5, length));
    at += 5 + length;
  }
  buffer.erase(0, at);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GrpcStream>> GrpcStream::Open(
    const std::string& socket_path, const std::string& method) {
  std::unique_ptr<GrpcStream> stream(new GrpcStream);
  absl::Status started = stream->Start(socket_path, method);
  if (!started.ok()) return started;
  return stream;
}

absl::Status GrpcStream::Start(const std::string& socket_path, const std::string& method) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", socket_path));
  }
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cancel_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0 || cancel_fd_ < 0) {
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  // A Unix socket connects at once or not at all (nobody listening, no such file).
  if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return absl::UnavailableError(
        absl::StrCat("connect ", socket_path, ": ", std::strerror(errno)));
  }
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);

  nghttp2_session_callbacks* callbacks;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) {
    return absl::ResourceExhaustedError("nghttp2: out of memory");
  }
  nghttp2_session_callbacks_set_send_callback(callbacks, GrpcStreamCallbacks::Send);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                            GrpcStreamCallbacks::OnData);
  nghttp2_session_callbacks_set_on_header_callback(callbacks,
                                                   GrpcStreamCallbacks::OnHeader);
  nghttp2_session_callbacks_set_on_stream_close_callback(
      callbacks, GrpcStreamCallbacks::OnStreamClose);
  int rv = nghttp2_session_client_new(&session_, callbacks, this);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) return absl::ResourceExhaustedError("nghttp2: out of memory");

  // No server push; a window large enough that a certificate bundle needs no round trip.
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
  auto header = [](const char* name, const std::string& value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
                      std::strlen(name), value.size(), NGHTTP2_NV_FLAG_NONE};
  };
  const std::string post = "POST", http = "http", authority = "localhost",
                    content_type = "application/grpc", te = "trailers";
  const nghttp2_nv headers[] = {
      header(":method", post),          header(":scheme", http),
      header(":path", method),          header(":authority", authority),
      header("content-type", content_type), header("te", te),
  };
  nghttp2_data_provider body{};
  body.read_callback = GrpcStreamCallbacks::ReadBody;
  stream_id_ = nghttp2_submit_request(session_, nullptr, headers, 6, &body, nullptr);
  if (stream_id_ < 0) {
    return absl::InternalError(
        absl::StrCat("nghttp2: ", nghttp2_strerror(stream_id_)));
  }
  // Send the preface, settings and headers now, so a server that is not there or not
  // HTTP/2 shows on the first Write or Read.
  if (nghttp2_session_send(session_) != 0) {
    return absl::UnavailableError("cannot write to the server");
  }
  return absl::OkStatus();
}

GrpcStream::~GrpcStream() {
  if (session_ != nullptr) nghttp2_session_del(session_);
  if (fd_ >= 0) close(fd_);
  if (cancel_fd_ >= 0) close(cancel_fd_);
}

void GrpcStream::Fail(absl::Status status) {
  if (ended_) return;
  ended_ = true;
  status_ = std::move(status);
}

void GrpcStream::Cancel() {
  cancelled_.store(true);
  uint64_t one = 1;
  (void)!write(cancel_fd_, &one, sizeof(one));
}

template <typename Done>
bool GrpcStream::RunUntil(Done done) {
  char buffer[16384];
  while (true) {
    if (cancelled_.load()) Fail(absl::CancelledError("cancelled"));
    if (ended_) return false;
    socket_full_ = false;
    int rv = nghttp2_session_send(session_);
    if (rv != 0) {
      Fail(absl::UnavailableError(absl::StrCat("HTTP/2: ", nghttp2_strerror(rv))));
      return false;
    }
    if (done()) return true;
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      Fail(absl::UnavailableError("the server closed the HTTP/2 connection"));
      return false;
    }
    pollfd fds[2] = {{fd_, static_cast<short>(POLLIN | (socket_full_ ? POLLOUT : 0)), 0},
                     {cancel_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Fail(absl::InternalError(absl::StrCat("poll: ", std::strerror(errno))));
      return false;
    }
    if (fds[1].revents != 0) continue;  // cancelled: handled at the top
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;  // writable
    ssize_t n = read(fd_, buffer, sizeof(buffer));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      Fail(absl::UnavailableError(
          n == 0 ? "the server closed the connection"
                 : absl::StrCat("read: ", std::strerror(errno))));
      return false;
    }
    ssize_t used = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(buffer), static_cast<size_t>(n));
    if (used < 0) {  // not HTTP/2, or a protocol error; callbacks may have said more
      Fail(absl::UnavailableError(absl::StrCat(
          "HTTP/2 from the server: ", nghttp2_strerror(static_cast<int>(used)))));
      return false;
    }
  }
}

bool GrpcStream::Write(const google::protobuf::MessageLite& message) {
  if (ended_) return false;
  std::string body;
  if (!message.SerializeToString(&body)) {
    Fail(absl::InvalidArgumentError("cannot serialize the request"));
    return false;
  }
  const size_t length = body.size();
  const char prefix[5] = {0, static_cast<char>(length >> 24),
                          static_cast<char>(length >> 16), static_cast<char>(length >> 8),
                          static_cast<char>(length)};
  outgoing_.append(prefix, sizeof(prefix));
  outgoing_ += body;
  if (write_deferred_) {
    write_deferred_ = false;
    nghttp2_session_resume_data(session_, stream_id_);
  }
  // Done once nghttp2 has taken every byte and sent all it holds (or flow control holds
  // it: the window opens with the server's next WINDOW_UPDATE, read meanwhile).
  return RunUntil([this] {
    return outgoing_.empty() && !nghttp2_session_want_write(session_);
  });
}

bool GrpcStream::Read(google::protobuf::MessageLite* message) {
  // A stream may end right after its last message: those are still read.
  if (messages_.empty() && !RunUntil([this] { return !messages_.empty(); })) {
    return false;
  }
  std::string body = std::move(messages_.front());
  messages_.pop_front();
  if (!message->ParseFromString(body)) {
    Fail(absl::InvalidArgumentError("the server sent a message that does not parse"));
    return false;
  }
  return true;
}

}  // namespace tandem::proxy
