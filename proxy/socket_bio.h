#ifndef TANDEM_PROXY_SOCKET_BIO_H_
#define TANDEM_PROXY_SOCKET_BIO_H_

#include <openssl/bio.h>

#include <cstddef>

namespace tandem::proxy {

// Bytes one read() of a TLS socket asks for: several 16 KiB records at once.
inline constexpr size_t kSocketReadAhead = 64 * 1024;
// Bytes of records gathered for one send() while writes are corked: four full records
// (16 KiB of data and 22 bytes of TLS overhead each) and change.
inline constexpr size_t kSocketWriteCoalesce = 68 * 1024;

// Returns a BIO over the non-blocking socket `fd` (not owned: the caller closes it)
// that saves system calls, which cost more than a microsecond each on a VM:
// - Reads ahead. BoringSSL reads each TLS record as two exact reads, its header and
//   then its body; a plain socket BIO makes each a read() call. This BIO asks the
//   socket for up to kSocketReadAhead bytes at once and serves those reads from them.
//   A read that came back short emptied the socket, so the next one waits for
//   MarkReadable() instead of asking again only to get EAGAIN.
// - Gathers writes between CorkWrites() and FlushWrites(): BoringSSL writes each record
//   as it seals it, and one send() of four records is one trip through the TCP stack
//   instead of four. Uncorked writes go straight to the socket (after anything still
//   gathered), so handshake flights and alerts are never held back.
// Storage is taken when needed and given back once drained, so an idle connection
// holds none. Retry flags and errno follow the socket BIO's, so SSL_get_error() reads
// the same. With `wait_for_readable`, the first read, too, waits for MarkReadable().
// Threading: used by one SSL on its connection's worker thread.
BIO* NewReadAheadSocketBio(int fd, bool wait_for_readable = false);

// The loop reported the socket readable: the next read asks the socket again.
void MarkReadable(BIO* bio);

// Sets how many bytes one read() asks for and how many corked writes gather, from the
// next buffer taken on (kSocketReadAhead and kSocketWriteCoalesce until then).
void SetSocketBioSizes(BIO* bio, size_t read_ahead, size_t write_coalesce);

// Holds writes back, up to kSocketWriteCoalesce bytes, until FlushWrites().
void CorkWrites(BIO* bio);
// Uncorks and sends what was gathered or, with `align` > 0, the largest multiple of
// `align` bytes of it, keeping the rest gathered (still pending: the caller flushes it
// later). Returns 1 when that much went out, 0 when the socket is full (the rest goes
// first on the next flush or write: wait for writable), -1 on a socket error (errno
// says which).
int FlushWrites(BIO* bio, size_t align = 0);
// Gathered bytes not yet sent. Nothing may follow them on the socket (a FIN) until
// this is 0.
size_t PendingWrites(BIO* bio);

// Bytes read from the socket and not yet handed to BoringSSL (for tests).
size_t ReadAheadBuffered(BIO* bio);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_SOCKET_BIO_H_
