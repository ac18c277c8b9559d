#include "server/core/metrics.h"

#include <array>
#include <cstdio>
#include <mutex>

namespace lockbox::core {
namespace {

constexpr std::array<double, 15> kLatencyBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

std::string FormatDouble(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.9g", value);
  return buffer;
}

void AppendSample(std::string& out, std::string_view name, std::string_view labels,
                  std::string_view value) {
  out.append(name);
  if (!labels.empty()) {
    out.push_back('{');
    out.append(labels);
    out.push_back('}');
  }
  out.push_back(' ');
  out.append(value);
  out.push_back('\n');
}

// The _bucket (cumulative, with le="+Inf"), _sum and _count lines of a histogram whose `counts`
// are per bucket of `bounds` plus one past the last.
void AppendHistogramSamples(std::string& out, std::string_view name, std::string_view labels,
                            std::span<const double> bounds, std::span<const std::uint64_t> counts,
                            double sum_seconds) {
  const std::string bucket_name = std::string(name) + "_bucket";
  const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += counts[i];
    const std::string le = i < bounds.size() ? FormatDouble(bounds[i]) : "+Inf";
    AppendSample(out, bucket_name, prefix + "le=\"" + le + "\"", std::to_string(cumulative));
  }
  AppendSample(out, std::string(name) + "_sum", labels, FormatDouble(sum_seconds));
  // The count is the buckets' total, so _count always equals the +Inf bucket.
  AppendSample(out, std::string(name) + "_count", labels, std::to_string(cumulative));
}

}  // namespace

std::span<const double> LatencyBuckets() { return kLatencyBuckets; }

Histogram::Histogram(std::span<const double> upper_bounds)
    : bounds_(upper_bounds.begin(), upper_bounds.end()),
      buckets_(new std::atomic<std::uint64_t>[upper_bounds.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(std::chrono::nanoseconds duration) {
  const std::int64_t nanos = duration.count() < 0 ? 0 : duration.count();
  const double seconds = static_cast<double>(nanos) / 1e9;
  std::size_t bucket = 0;
  while (bucket < bounds_.size() && seconds > bounds_[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<std::uint64_t>(nanos), std::memory_order_relaxed);
}

void Histogram::AppendPrometheus(std::string& out, std::string_view name,
                                 std::string_view labels) const {
  std::vector<std::uint64_t> counts(bounds_.size() + 1);
  for (std::size_t i = 0; i < counts.size(); ++i) {
    counts[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  AppendHistogramSamples(out, name, labels, bounds_, counts,
                         static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void AppendMetricHeader(std::string& out, std::string_view name, std::string_view type,
                        std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void RequestMetrics::Record(std::string_view route, int code, std::chrono::nanoseconds latency) {
  {
    std::shared_lock lock(mutex_);
    auto it = routes_.find(route);
    if (it != routes_.end()) {
      auto counter = it->second->codes.find(code);
      if (counter != it->second->codes.end()) {
        counter->second.fetch_add(1, std::memory_order_relaxed);
        it->second->latency.Observe(latency);
        return;
      }
    }
  }
  std::unique_lock lock(mutex_);
  auto it = routes_.find(route);
  if (it == routes_.end()) {
    it = routes_.emplace(std::string(route), std::make_unique<Route>()).first;
  }
  it->second->codes.try_emplace(code, 0).first->second.fetch_add(1, std::memory_order_relaxed);
  it->second->latency.Observe(latency);
}

void RequestMetrics::AppendPrometheus(std::string& out) const {
  std::shared_lock lock(mutex_);
  AppendMetricHeader(out, "lockbox_http_requests_total", "counter",
                     "HTTP requests by route (mount type and operation) and status code.");
  for (const auto& [route, entry] : routes_) {
    const std::string route_label = "route=\"" + EscapeLabelValue(route) + "\"";
    for (const auto& [code, count] : entry->codes) {
      AppendSample(out, "lockbox_http_requests_total",
                   route_label + ",code=\"" + std::to_string(code) + "\"",
                   std::to_string(count.load(std::memory_order_relaxed)));
    }
  }
  AppendMetricHeader(out, "lockbox_http_request_duration_seconds", "histogram",
                     "Time to handle an HTTP request, by route.");
  for (const auto& [route, entry] : routes_) {
    entry->latency.AppendPrometheus(out, "lockbox_http_request_duration_seconds",
                                    "route=\"" + EscapeLabelValue(route) + "\"");
  }
}

void AppendStoreMetrics(const store::CommitStats& stats, std::string& out) {
  AppendMetricHeader(out, "lockbox_store_commit_units_total", "counter",
                     "Units of work run by the commit pipeline.");
  AppendSample(out, "lockbox_store_commit_units_total", "", std::to_string(stats.units));
  AppendMetricHeader(out, "lockbox_store_commit_batches_total", "counter",
                     "Transactions committed by the commit pipeline (units/batches = mean batch).");
  AppendSample(out, "lockbox_store_commit_batches_total", "", std::to_string(stats.batches));
  AppendMetricHeader(out, "lockbox_store_commit_batch_max", "gauge",
                     "Largest number of units committed in one transaction.");
  AppendSample(out, "lockbox_store_commit_batch_max", "", std::to_string(stats.max_batch));
  AppendMetricHeader(out, "lockbox_store_commit_queue", "gauge",
                     "Units waiting for the commit pipeline.");
  AppendSample(out, "lockbox_store_commit_queue", "", std::to_string(stats.queued));
  AppendMetricHeader(out, "lockbox_store_commit_duration_seconds", "histogram",
                     "Time of each COMMIT of the commit pipeline: the WAL write and its sync (and "
                     "a checkpoint when due), which every unit of the batch waits for.");
  AppendHistogramSamples(out, "lockbox_store_commit_duration_seconds", "",
                         store::kCommitDurationBounds, stats.commit_duration_buckets,
                         static_cast<double>(stats.commit_duration_nanos) / 1e9);
}

}  // namespace lockbox::core
