#ifndef TANDEM_PROXY_SOCKET_BIO_H_
#define TANDEM_PROXY_SOCKET_BIO_H_

#include <openssl/bio.h>

#include <cstddef>

namespace tandem::proxy {

// Bytes one read() of a TLS socket asks for: several 16 KiB records at once.
inline constexpr size_t kSocketReadAhead = 64 * 1024;

// Returns a BIO over the non-blocking socket `fd` (not owned: the caller closes it)
// that reads ahead. BoringSSL reads each TLS record as two exact reads, its header and
// then its body; a plain socket BIO makes each a read() call. This BIO asks the socket
// for up to kSocketReadAhead bytes at once and serves those reads from them. Its
// read-ahead storage is allocated when a read needs it and freed once drained, so an
// idle connection holds none. Writes go straight to the socket (MSG_NOSIGNAL). Retry
// flags and errno follow the socket BIO's, so SSL_get_error() reads the same.
// Threading: used by one SSL on its connection's worker thread.
BIO* NewReadAheadSocketBio(int fd);

// Bytes read from the socket and not yet handed to BoringSSL (for tests).
size_t ReadAheadBuffered(BIO* bio);

}  // namespace tandem::proxy

#endif  // TANDEM_PROXY_SOCKET_BIO_H_
