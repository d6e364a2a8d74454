#ifndef TANDEM_PROXY_BYTE_BUFFER_H_
#define TANDEM_PROXY_BYTE_BUFFER_H_

#include <sys/uio.h>

#include <cstddef>
#include <memory>

namespace tandem::proxy {

// Storage blocks of `capacity` bytes from the calling thread's pool, so buffers that
// come and go with traffic do not churn malloc. RecycleBlock keeps a bounded number.
std::unique_ptr<char[]> AcquireBlock(size_t capacity);
void RecycleBlock(std::unique_ptr<char[]> block, size_t capacity);

// A bounded ring of bytes for one direction of a connection. The capacity is the
// high-water mark: a full buffer stops reading from the source until the sink drains
// it (backpressure). Bytes never move once written (no compaction): free space and
// data are handed out as up to two spans, the second one after the wrap-around.
// Storage is taken on the first write and given back by ReleaseIfEmpty(), so an idle
// connection holds none; given-back storage is reused by the thread's next buffer.
// Threading: one worker thread, no locking.
class ByteBuffer {
 public:
  explicit ByteBuffer(size_t capacity) : capacity_(capacity) {}
  ~ByteBuffer();
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == capacity_; }
  // True while storage is held (between a write and ReleaseIfEmpty()).
  bool allocated() const { return data_ != nullptr; }

  // Fills `spans` with the free space in write order and returns how many (0-2).
  // Allocates the storage when none is held.
  int WritableSpans(iovec spans[2]);
  // Marks `n` bytes of the writable spans as written.
  void Commit(size_t n);
  // Fills `spans` with the buffered bytes in read order and returns how many (0-2).
  int ReadableSpans(iovec spans[2]) const;
  // Copies up to `max` buffered bytes, in order, into `out` without consuming them;
  // returns how many. For sinks that need one contiguous chunk across the wrap-around.
  size_t Peek(char* out, size_t max) const;
  // Drops `n` bytes from the front.
  void Consume(size_t n);
  // Frees the storage when no byte is buffered.
  void ReleaseIfEmpty();

 private:
  std::unique_ptr<char[]> data_;
  const size_t capacity_;
  size_t head_ = 0;  // offset of the first buffered byte
  size_t size_ = 0;
};

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_BYTE_BUFFER_H_
