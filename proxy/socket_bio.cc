#include "proxy/socket_bio.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace tandem::proxy {
namespace {

struct ReadAheadState {
  int fd = -1;
  std::unique_ptr<char[]> buffer;  // null while drained
  size_t begin = 0;
  size_t end = 0;
};

ReadAheadState* StateOf(BIO* bio) {
  return static_cast<ReadAheadState*>(BIO_get_data(bio));
}

bool WouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

int ReadAhead(BIO* bio, char* out, int len) {
  BIO_clear_retry_flags(bio);
  if (len <= 0) return 0;
  ReadAheadState* state = StateOf(bio);
  if (state->begin == state->end) {
    if (state->buffer == nullptr) state->buffer.reset(new char[kSocketReadAhead]);
    ssize_t n = read(state->fd, state->buffer.get(), kSocketReadAhead);
    if (n <= 0) {
      int saved = errno;  // for SSL_get_error's caller (ECONNRESET)
      state->buffer.reset();
      errno = saved;
      if (n < 0 && WouldBlock()) BIO_set_retry_read(bio);
      return static_cast<int>(n);
    }
    state->begin = 0;
    state->end = static_cast<size_t>(n);
  }
  size_t n = std::min(static_cast<size_t>(len), state->end - state->begin);
  std::memcpy(out, state->buffer.get() + state->begin, n);
  state->begin += n;
  if (state->begin == state->end) {
    state->buffer.reset();
    state->begin = state->end = 0;
  }
  return static_cast<int>(n);
}

int WriteThrough(BIO* bio, const char* in, int len) {
  BIO_clear_retry_flags(bio);
  if (len <= 0) return 0;
  ssize_t n = send(StateOf(bio)->fd, in, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && WouldBlock()) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

long Control(BIO*, int cmd, long, void*) {
  // Writes are never held back, so a flush has nothing to do.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int Destroy(BIO* bio) {
  delete StateOf(bio);
  BIO_set_data(bio, nullptr);
  return 1;
}

const BIO_METHOD* ReadAheadMethod() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index(), "tandem read-ahead socket");
    BIO_meth_set_read(m, ReadAhead);
    BIO_meth_set_write(m, WriteThrough);
    BIO_meth_set_ctrl(m, Control);
    BIO_meth_set_destroy(m, Destroy);
    return m;
  }();
  return method;
}

}  // namespace

BIO* NewReadAheadSocketBio(int fd) {
  BIO* bio = BIO_new(ReadAheadMethod());
  if (bio == nullptr) return nullptr;
  auto* state = new ReadAheadState;
  state->fd = fd;
  BIO_set_data(bio, state);
  BIO_set_init(bio, 1);
  return bio;
}

size_t ReadAheadBuffered(BIO* bio) {
  ReadAheadState* state = StateOf(bio);
  return state->end - state->begin;
}

}  // namespace tandem::proxy
