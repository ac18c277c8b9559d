// Prometheus metrics of the request router (text exposition format 0.0.4, served by sys/metrics).
//
// Histogram: fixed upper bounds, lock-free Observe (atomic counters), rendered cumulatively.
// RequestMetrics: lockbox_http_requests_total{route,code} and
// lockbox_http_request_duration_seconds{route}. Label values must come from a bounded set
// (callers use "<mount type>.<operation>", never a raw path): every distinct value is kept forever.
// Thread safety: every method is thread-safe; Observe/Record take no exclusive lock once a label
// value has been seen.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/store/store.h"

namespace lockbox::core {

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Latency buckets (seconds) for HTTP requests and HSM calls.
std::span<const double> LatencyBuckets();

class Histogram {
 public:
  explicit Histogram(std::span<const double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(std::chrono::nanoseconds duration);
  // Appends the _bucket (cumulative, with le="+Inf"), _sum and _count lines. `labels` is the
  // rendered label list without braces (e.g. `route="kv.read"`), possibly empty.
  void AppendPrometheus(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // per bucket, not cumulative
  std::atomic<std::uint64_t> sum_nanos_{0};
};

// Escapes a label value for the text format (backslash, double quote, newline).
std::string EscapeLabelValue(std::string_view value);

// Appends "# HELP" and "# TYPE" lines.
void AppendMetricHeader(std::string& out, std::string_view name, std::string_view type,
                        std::string_view help);

class RequestMetrics {
 public:
  RequestMetrics() = default;
  RequestMetrics(const RequestMetrics&) = delete;
  RequestMetrics& operator=(const RequestMetrics&) = delete;

  void Record(std::string_view route, int code, std::chrono::nanoseconds latency);
  void AppendPrometheus(std::string& out) const;

 private:
  struct Route {
    Histogram latency{LatencyBuckets()};
    std::map<int, std::atomic<std::uint64_t>> codes;  // inserted under the exclusive lock
  };

  mutable std::shared_mutex mutex_;
  std::map<std::string, std::unique_ptr<Route>, std::less<>> routes_;
};

// The store's commit pipeline: lockbox_store_commit_units_total, _batches_total, the largest batch
// and the current queue (the mean batch size is units/batches).
void AppendStoreMetrics(const store::CommitStats& stats, std::string& out);

}  // namespace lockbox::core
