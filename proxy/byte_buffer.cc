#include "proxy/byte_buffer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tandem::proxy {
namespace {

// A caller committing or consuming more than the buffer offered would corrupt the
// stream: an impossible state, so it CHECK-fails.
void CheckOrDie(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "tandem-proxy: ByteBuffer: %s\n", what);
  std::abort();
}

}  // namespace

int ByteBuffer::WritableSpans(iovec spans[2]) {
  if (full()) return 0;
  if (data_ == nullptr) data_.reset(new char[capacity_]);
  size_t tail = (head_ + size_) % capacity_;
  size_t free = capacity_ - size_;
  size_t first = std::min(free, capacity_ - tail);
  spans[0] = {data_.get() + tail, first};
  if (first == free) return 1;
  spans[1] = {data_.get(), free - first};
  return 2;
}

void ByteBuffer::Commit(size_t n) {
  CheckOrDie(n <= capacity_ - size_, "commit beyond the free space");
  size_ += n;
}

int ByteBuffer::ReadableSpans(iovec spans[2]) const {
  if (empty()) return 0;
  size_t first = std::min(size_, capacity_ - head_);
  spans[0] = {data_.get() + head_, first};
  if (first == size_) return 1;
  spans[1] = {data_.get(), size_ - first};
  return 2;
}

size_t ByteBuffer::Peek(char* out, size_t max) const {
  iovec spans[2];
  int count = ReadableSpans(spans);
  size_t copied = 0;
  for (int i = 0; i < count && copied < max; ++i) {
    size_t n = std::min(spans[i].iov_len, max - copied);
    std::memcpy(out + copied, spans[i].iov_base, n);
    copied += n;
  }
  return copied;
}

void ByteBuffer::Consume(size_t n) {
  CheckOrDie(n <= size_, "consume beyond the buffered bytes");
  size_ -= n;
  // An empty ring starts over at offset 0, so the next write gets one whole span.
  head_ = size_ == 0 ? 0 : (head_ + n) % capacity_;
}

void ByteBuffer::ReleaseIfEmpty() {
  if (size_ == 0) data_.reset();
}

}  // namespace tandem::proxy
