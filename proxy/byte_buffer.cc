#include "proxy/byte_buffer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace tandem::proxy {
namespace {

// Freed storage is kept per thread for the next buffer that needs some: handing
// 64 KiB back to malloc at every drain made glibc give the pages back to the kernel
// and fault them in again (11 page faults per MB in bulk transfers). Bounded, so a
// worker keeps at most kPooledBlocks blocks and kPooledBytes of a size after a burst.
// A worker uses a few sizes (the configured buffer_bytes, which the socket BIO's
// read-ahead shares, and the BIO's gather size; the BIO's defaults during a
// handshake), so a few slots do.
constexpr size_t kPooledBlocks = 8;
constexpr size_t kPooledBytes = 1 << 20;
constexpr size_t kPooledSizes = 4;

struct BlockPool {
  size_t capacity = 0;  // every block here has this size; 0 while the slot is free
  std::vector<std::unique_ptr<char[]>> blocks;
};
thread_local BlockPool pools[kPooledSizes];

BlockPool* PoolFor(size_t capacity) {
  BlockPool* free_slot = nullptr;
  for (BlockPool& pool : pools) {
    if (pool.capacity == capacity) return &pool;
    if (pool.capacity == 0 && free_slot == nullptr) free_slot = &pool;
  }
  if (free_slot != nullptr) free_slot->capacity = capacity;
  return free_slot;  // null for a fifth size: plain new and delete
}

// A caller committing or consuming more than the buffer offered would corrupt the
// stream: an impossible state, so it CHECK-fails.
void CheckOrDie(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "tandem-proxy: ByteBuffer: %s\n", what);
  std::abort();
}

}  // namespace

std::unique_ptr<char[]> AcquireBlock(size_t capacity) {
  BlockPool* pool = PoolFor(capacity);
  if (pool != nullptr && !pool->blocks.empty()) {
    std::unique_ptr<char[]> block = std::move(pool->blocks.back());
    pool->blocks.pop_back();
    return block;
  }
  return std::unique_ptr<char[]>(new char[capacity]);
}

void RecycleBlock(std::unique_ptr<char[]> block, size_t capacity) {
  BlockPool* pool = PoolFor(capacity);
  if (pool != nullptr && pool->blocks.size() < kPooledBlocks &&
      pool->blocks.size() * capacity < kPooledBytes) {
    pool->blocks.push_back(std::move(block));
  }
}

ByteBuffer::~ByteBuffer() {
  if (data_ != nullptr) RecycleBlock(std::move(data_), capacity_);
}

int ByteBuffer::WritableSpans(iovec spans[2]) {
  if (full()) return 0;
  if (data_ == nullptr) data_ = AcquireBlock(capacity_);
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
  if (size_ == 0 && data_ != nullptr) RecycleBlock(std::move(data_), capacity_);
}

}  // namespace tandem::proxy
