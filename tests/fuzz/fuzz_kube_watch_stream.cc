// Fuzzes what tandem-ca reads from a Kubernetes watch (controlplane/kube/): the chunked
// body (ChunkedDecoder) and the events in it (WatchEventParser), fed in pieces whose
// sizes the first byte picks. Any input is decoded or refused without throwing or
// crashing, refused or accepted however the bytes are split, and an accepted stream
// gives the same events either way.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "controlplane/kube/chunked_decoder.h"
#include "controlplane/kube/watch_event_parser.h"

namespace {

using tandem::controlplane::ChunkedDecoder;
using tandem::controlplane::WatchEvent;
using tandem::controlplane::WatchEventParser;

// Decodes `wire` in pieces of `step` bytes; returns the events or nothing on a refusal.
bool Decode(absl::string_view wire, size_t step, std::vector<WatchEvent>* events) {
  ChunkedDecoder decoder(1 << 16);
  WatchEventParser parser(1 << 16);
  std::string body;
  for (size_t at = 0; at < wire.size(); at += step) {
    body.clear();
    if (!decoder.Feed(wire.substr(at, step), &body).ok()) return false;
    if (!parser.Feed(body, events).ok()) return false;
    if (decoder.done()) break;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 16;
  absl::string_view wire(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<WatchEvent> split, whole;
  bool split_ok = Decode(wire, step, &split);
  bool whole_ok = Decode(wire, wire.size() + 1, &whole);
  if (split_ok != whole_ok) std::abort();
  if (!split_ok) return 0;
  if (split.size() != whole.size()) std::abort();
  for (size_t i = 0; i < split.size(); ++i) {
    if (split[i].type != whole[i].type ||
        split[i].resource_version != whole[i].resource_version ||
        split[i].code != whole[i].code) {
      std::abort();
    }
  }
  // One event as a whole line, too.
  (void)tandem::controlplane::ParseWatchEvent(wire);
  return 0;
}
