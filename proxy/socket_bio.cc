#include "proxy/socket_bio.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "proxy/byte_buffer.h"

namespace tandem::proxy {
namespace {

// Bytes [begin, end) of a pooled block of `capacity` bytes; the block is held only
// while bytes are.
struct Span {
  std::unique_ptr<char[]> block;
  size_t capacity = 0;
  size_t begin = 0;
  size_t end = 0;

  size_t size() const { return end - begin; }
  void Acquire(size_t bytes) {
    if (block != nullptr) return;
    block = AcquireBlock(bytes);
    capacity = bytes;
  }
  void Consume(size_t n) {
    begin += n;
    if (begin == end) Release();
  }
  void Release() {
    if (block != nullptr) RecycleBlock(std::move(block), capacity);
    begin = end = 0;
  }
};

struct SocketState {
  int fd = -1;
  size_t read_ahead = kSocketReadAhead;
  size_t write_coalesce = kSocketWriteCoalesce;
  Span read;
  bool drained = false;  // the last read came back short or EAGAIN
  Span write;
  bool corked = false;
};

SocketState* StateOf(BIO* bio) { return static_cast<SocketState*>(BIO_get_data(bio)); }

bool WouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

int ReadAhead(BIO* bio, char* out, int len) {
  BIO_clear_retry_flags(bio);
  if (len <= 0) return 0;
  SocketState* state = StateOf(bio);
  Span& read_ahead = state->read;
  if (read_ahead.size() == 0) {
    if (state->drained) {
      errno = EAGAIN;
      BIO_set_retry_read(bio);
      return -1;
    }
    read_ahead.Acquire(state->read_ahead);
    ssize_t n = read(state->fd, read_ahead.block.get(), read_ahead.capacity);
    if (n <= 0) {
      int saved = errno;  // for SSL_get_error's caller (ECONNRESET)
      read_ahead.Release();
      errno = saved;
      if (n < 0 && WouldBlock()) {
        state->drained = true;
        BIO_set_retry_read(bio);
      }
      return static_cast<int>(n);
    }
    if (static_cast<size_t>(n) < read_ahead.capacity) state->drained = true;
    read_ahead.begin = 0;
    read_ahead.end = static_cast<size_t>(n);
  }
  size_t n = std::min(static_cast<size_t>(len), read_ahead.size());
  std::memcpy(out, read_ahead.block.get() + read_ahead.begin, n);
  read_ahead.Consume(n);
  return static_cast<int>(n);
}

// Sends the gathered bytes, all of them or, with `align`, a multiple of it: 1 when
// that much has left, 0 when the socket is full, -1 on error.
int SendGathered(SocketState* state, size_t align = 0) {
  Span& gathered = state->write;
  size_t keep = align > 0 ? gathered.size() % align : 0;
  while (gathered.size() > keep) {
    ssize_t n = send(state->fd, gathered.block.get() + gathered.begin,
                     gathered.size() - keep, MSG_NOSIGNAL);
    if (n < 0) return WouldBlock() ? 0 : -1;
    gathered.Consume(static_cast<size_t>(n));
  }
  return 1;
}

void Gather(Span& gathered, size_t capacity, const char* in, size_t len) {
  gathered.Acquire(capacity);
  if (gathered.end + len > gathered.capacity) {  // after a partial send: compact
    std::memmove(gathered.block.get(), gathered.block.get() + gathered.begin,
                 gathered.size());
    gathered.end -= gathered.begin;
    gathered.begin = 0;
  }
  std::memcpy(gathered.block.get() + gathered.end, in, len);
  gathered.end += len;
}

int WriteThrough(BIO* bio, const char* in, int len) {
  BIO_clear_retry_flags(bio);
  if (len <= 0) return 0;
  SocketState* state = StateOf(bio);
  size_t size = static_cast<size_t>(len);
  // A block taken under other sizes keeps its own capacity until given back.
  size_t capacity =
      state->write.block != nullptr ? state->write.capacity : state->write_coalesce;
  bool fits = state->corked && state->write.size() + size <= capacity;
  if (!fits && state->write.size() > 0) {
    // Gathered bytes go first, whatever comes after them.
    int sent = SendGathered(state);
    if (sent <= 0) {
      if (sent == 0) BIO_set_retry_write(bio);
      return -1;
    }
    fits = state->corked && size <= state->write_coalesce;
    capacity = state->write_coalesce;  // sent in full: the block was given back
  }
  if (fits) {
    Gather(state->write, capacity, in, size);
    return len;
  }
  ssize_t n = send(state->fd, in, size, MSG_NOSIGNAL);
  if (n < 0 && WouldBlock()) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

long Control(BIO* bio, int cmd, long, void*) {
  SocketState* state = StateOf(bio);
  switch (cmd) {
    case BIO_CTRL_FLUSH: {  // BoringSSL flushes after a handshake flight
      BIO_clear_retry_flags(bio);
      int sent = SendGathered(state);
      if (sent == 0) BIO_set_retry_write(bio);
      return sent > 0 ? 1 : -1;
    }
    case BIO_CTRL_WPENDING:
      return static_cast<long>(state->write.size());
    case BIO_CTRL_PENDING:
      return static_cast<long>(state->read.size());
    default:
      return 0;
  }
}

int Destroy(BIO* bio) {
  SocketState* state = StateOf(bio);
  state->read.Release();
  state->write.Release();
  delete state;
  BIO_set_data(bio, nullptr);
  return 1;
}

const BIO_METHOD* SocketMethod() {
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

BIO* NewReadAheadSocketBio(int fd, bool wait_for_readable) {
  BIO* bio = BIO_new(SocketMethod());
  if (bio == nullptr) return nullptr;
  auto* state = new SocketState;
  state->fd = fd;
  state->drained = wait_for_readable;
  BIO_set_data(bio, state);
  BIO_set_init(bio, 1);
  return bio;
}

void MarkReadable(BIO* bio) { StateOf(bio)->drained = false; }

void SetSocketBioSizes(BIO* bio, size_t read_ahead, size_t write_coalesce) {
  SocketState* state = StateOf(bio);
  state->read_ahead = read_ahead;
  state->write_coalesce = write_coalesce;
}

void CorkWrites(BIO* bio) { StateOf(bio)->corked = true; }

int FlushWrites(BIO* bio, size_t align) {
  SocketState* state = StateOf(bio);
  state->corked = false;
  return SendGathered(state, align);
}

size_t PendingWrites(BIO* bio) { return StateOf(bio)->write.size(); }

size_t ReadAheadBuffered(BIO* bio) { return StateOf(bio)->read.size(); }

}  // namespace tandem::proxy
