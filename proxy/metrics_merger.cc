#include "proxy/metrics_merger.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace tandem::proxy {
namespace {

constexpr const char* kReasons[] = {"connect", "timeout",   "too_large",
                                    "status",  "malformed", "busy"};

// The family a line belongs to: the name after "# HELP "/"# TYPE ", or "" for a
// sample or another comment (it stays with the family before it).
absl::string_view DeclaredFamily(absl::string_view line) {
  for (absl::string_view prefix : {"# HELP ", "# TYPE "}) {
    if (absl::StartsWith(line, prefix)) {
      line.remove_prefix(prefix.size());
      return line.substr(0, line.find(' '));
    }
  }
  return {};
}

// Waits for `events` on `fd` until `deadline`; false on timeout or error.
bool WaitFor(int fd, short events, absl::Time deadline) {
  while (true) {
    int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return false;
    pollfd p{fd, events, 0};
    int rc = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1000)));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
  }
}

}  // namespace

absl::StatusOr<std::string> HttpResponseBody(absl::string_view response) {
  size_t head_end = response.find("\r\n\r\n");
  if (head_end == absl::string_view::npos) {
    return absl::InvalidArgumentError("no end of the response headers");
  }
  absl::string_view head = response.substr(0, head_end);
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  absl::string_view status = lines[0];
  // "HTTP/1.x NNN" then the end of the line or " reason".
  if (status.size() < 12 || !absl::StartsWith(status, "HTTP/1.") || status[8] != ' ' ||
      (status.size() > 12 && status[12] != ' ')) {
    return absl::InvalidArgumentError("not an HTTP/1.x status line");
  }
  int code = 0;
  if (!absl::SimpleAtoi(status.substr(9, 3), &code)) {
    return absl::InvalidArgumentError("not an HTTP/1.x status line");
  }
  if (code != 200) return absl::FailedPreconditionError(absl::StrCat("status ", code));
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> header =
        absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(header.first),
                               "transfer-encoding") &&
        !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(header.second), "identity")) {
      return absl::InvalidArgumentError("a transfer-encoded body");
    }
  }
  return std::string(response.substr(head_end + 4));
}

std::string MergeExpositions(const std::vector<std::string>& pages) {
  // Families in the order first seen, each with its lines.
  std::vector<std::string> blocks;
  std::map<std::string, size_t, std::less<>> index;
  std::set<std::string, std::less<>> declared;  // "# HELP name", "# TYPE name"
  for (const std::string& page : pages) {
    size_t current = blocks.size();  // lines before any HELP/TYPE: a block of their own
    bool have_block = false;
    for (absl::string_view line : absl::StrSplit(page, '\n')) {
      if (line.empty()) continue;
      if (line == "# EOF") break;
      absl::string_view family = DeclaredFamily(line);
      if (!family.empty()) {
        auto it = index.find(family);
        if (it != index.end()) {
          current = it->second;
          have_block = true;
          // Declared already: the first HELP/TYPE stand.
          if (declared.count(absl::StrCat(line.substr(0, 7), family)) > 0) continue;
        } else {
          current = blocks.size();
          blocks.emplace_back();
          index.emplace(std::string(family), current);
          have_block = true;
        }
      } else if (!have_block) {
        current = blocks.size();
        blocks.emplace_back();
        have_block = true;
      }
      if (!family.empty()) declared.insert(absl::StrCat(line.substr(0, 7), family));
      absl::StrAppend(&blocks[current], line, "\n");
    }
  }
  std::string out;
  for (const std::string& block : blocks) out += block;
  return out;
}

MetricsMerger::MetricsMerger(Options options) : options_(std::move(options)) {
  for (const MetricsSource& source : options_.sources) {
    std::vector<metrics::Counter*> by_reason;
    for (const char* reason : kReasons) {
      by_reason.push_back(&options_.registry->GetCounter(
          "tandem_proxy_metrics_merge_failures_total",
          "Scrapes that left a merged source out, by source and reason.",
          {{"source", source.name}, {"reason", reason}}));
    }
    failures_.push_back(std::move(by_reason));
  }
  thread_ = std::thread([this] { Run(); });
}

MetricsMerger::~MetricsMerger() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  absl::MutexLock lock(&mu_);
  for (Job& job : queue_) job.respond(Answer(std::move(job.own)));
  queue_.clear();
}

http::HttpResponse MetricsMerger::Answer(std::string body) {
  return http::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                            std::move(body)};
}

void MetricsMerger::Serve(std::string own, http::HttpServer::Responder respond) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && queue_.size() < options_.max_queued) {
      queue_.push_back(Job{std::move(own), std::move(respond)});
      return;
    }
  }
  for (auto& by_reason : failures_) by_reason[kBusy]->Inc();
  respond(Answer(std::move(own)));
}

void MetricsMerger::Run() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](MetricsMerger* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu_) {
            return m->stopping_ || !m->queue_.empty();
          },
          this));
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    std::vector<std::string> pages = {std::move(job.own)};
    for (size_t i = 0; i < options_.sources.size(); ++i) {
      absl::StatusOr<std::string> page = Fetch(i);
      if (page.ok()) pages.push_back(*std::move(page));
    }
    job.respond(Answer(MergeExpositions(pages)));
  }
}

absl::StatusOr<std::string> MetricsMerger::Fetch(size_t i) {
  const MetricsSource& source = options_.sources[i];
  auto fail = [&](Reason reason, absl::string_view what) {
    failures_[i][reason]->Inc();
    return absl::UnavailableError(absl::StrCat(source.name, ": ", what));
  };
  const absl::Time deadline = absl::Now() + options_.timeout;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(kConnect, "socket");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(source.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
      errno != EINPROGRESS) {
    return fail(kConnect, "connect");
  }
  if (!WaitFor(fd, POLLOUT, deadline)) return fail(kTimeout, "connect timed out");
  int error = 0;
  socklen_t len = sizeof(error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0) return fail(kConnect, "connect");
  // HTTP/1.0: the body ends with the connection, never chunked.
  std::string request =
      absl::StrCat("GET ", source.path, " HTTP/1.0\r\nHost: 127.0.0.1:", source.port,
                   "\r\nAccept: text/plain;version=0.0.4\r\n"
                   "User-Agent: tandem-proxy\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += n;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(fd, POLLOUT, deadline)) return fail(kTimeout, "send timed out");
    } else {
      return fail(kConnect, "send");
    }
  }
  std::string response;
  char buf[16384];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      if (response.size() + n > options_.max_bytes) return fail(kTooLarge, "too large");
      response.append(buf, n);
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!WaitFor(fd, POLLIN, deadline)) return fail(kTimeout, "read timed out");
    } else {
      return fail(kConnect, "recv");
    }
  }
  absl::StatusOr<std::string> body = HttpResponseBody(response);
  if (!body.ok()) {
    return fail(body.status().code() == absl::StatusCode::kFailedPrecondition
                    ? kStatus
                    : kMalformed,
                body.status().message());
  }
  return body;
}

}  // namespace tandem::proxy
