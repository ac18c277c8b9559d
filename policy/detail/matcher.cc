#include "policy/detail/matcher.h"

#include <algorithm>
#include <utility>

namespace lockbox::policy::detail {
namespace {

// Yields the '/'-separated segments of a string left to right, without allocating.
class SegmentCursor {
 public:
  explicit SegmentCursor(std::string_view s) : rest_(s) {}

  bool Next(std::string_view& segment) {
    if (done_) return false;
    const std::size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      segment = rest_;
      done_ = true;
    } else {
      segment = rest_.substr(0, slash);
      rest_.remove_prefix(slash + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

std::size_t CountSegments(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '/')) + 1;
}

std::string_view WithoutTrailingGlob(std::string_view pattern) {
  return pattern.ends_with('*') ? pattern.substr(0, pattern.size() - 1) : pattern;
}

// First rule whose `key` is not less than `value` in a vector sorted by `key`.
template <typename Rule>
typename std::vector<Rule>::const_iterator FirstNotBelow(const std::vector<Rule>& rules,
                                                         std::string Rule::*key,
                                                         std::string_view value) {
  return std::lower_bound(
      rules.begin(), rules.end(), value,
      [key](const Rule& r, std::string_view v) { return std::string_view(r.*key) < v; });
}

bool Grants(std::uint32_t caps) { return caps != 0 && (caps & kDeny) == 0; }

}  // namespace

bool HasSegmentWildcard(std::string_view pattern) {
  SegmentCursor cursor(WithoutTrailingGlob(pattern));
  std::string_view segment;
  while (cursor.Next(segment)) {
    if (segment == "+") return true;
  }
  return false;
}

bool Matcher::Outranks(const Rank& a, const Rank& b) {
  // §7.3 2c, rules 1-5: the first rule that differs decides.
  if (a.first_wildcard != b.first_wildcard) return a.first_wildcard > b.first_wildcard;
  if (a.ends_in_glob != b.ends_in_glob) return !a.ends_in_glob;
  if (a.plus_segments != b.plus_segments) return a.plus_segments < b.plus_segments;
  if (a.body.size() != b.body.size()) return a.body.size() > b.body.size();
  return a.body > b.body;
}

Matcher::Matcher(std::vector<PathRule> rules) {
  for (PathRule& rule : rules) {
    const bool ends_in_glob = rule.pattern.ends_with('*');
    if (HasSegmentWildcard(rule.pattern)) {
      SegmentRule s;
      s.body = std::string(WithoutTrailingGlob(rule.pattern));
      s.caps = rule.capabilities;
      s.ends_in_glob = ends_in_glob;
      s.segments = CountSegments(s.body);
      bool seen_wildcard = false;
      std::size_t offset = 0;
      SegmentCursor cursor(s.body);
      std::string_view segment;
      while (cursor.Next(segment)) {
        if (segment == "+") {
          ++s.plus_segments;
          if (!seen_wildcard) s.first_wildcard = offset;
          seen_wildcard = true;
        }
        offset += segment.size() + 1;
      }
      segments_.push_back(std::move(s));
    } else if (ends_in_glob) {
      rule.pattern.pop_back();
      globs_.push_back({std::move(rule.pattern), rule.capabilities, -1});
    } else {
      exact_.push_back({std::move(rule.pattern), rule.capabilities});
    }
  }

  std::sort(exact_.begin(), exact_.end(),
            [](const ExactRule& a, const ExactRule& b) { return a.path < b.path; });
  std::sort(globs_.begin(), globs_.end(),
            [](const GlobRule& a, const GlobRule& b) { return a.prefix < b.prefix; });
  // In sorted order, the prefixes of globs_[i] that are in the set are exactly the entries left
  // on this stack, so its top after popping non-prefixes is the parent.
  std::vector<std::ptrdiff_t> chain;
  for (std::size_t i = 0; i < globs_.size(); ++i) {
    const std::string_view prefix = globs_[i].prefix;
    while (!chain.empty() && !prefix.starts_with(globs_[chain.back()].prefix)) chain.pop_back();
    globs_[i].parent = chain.empty() ? -1 : chain.back();
    chain.push_back(static_cast<std::ptrdiff_t>(i));
  }
  std::sort(segments_.begin(), segments_.end(), [](const SegmentRule& a, const SegmentRule& b) {
    return Outranks(a.rank(), b.rank());
  });
}

const Matcher::ExactRule* Matcher::FindExact(std::string_view path) const {
  const auto it = FirstNotBelow(exact_, &ExactRule::path, path);
  return it != exact_.end() && it->path == path ? &*it : nullptr;
}

const Matcher::GlobRule* Matcher::LongestGlob(std::string_view path) const {
  // The longest prefix of `path` in the set is a prefix of the greatest entry <= path, hence on
  // that entry's parent chain.
  const auto it = std::upper_bound(
      globs_.begin(), globs_.end(), path,
      [](std::string_view p, const GlobRule& g) { return p < std::string_view(g.prefix); });
  for (std::ptrdiff_t i = (it - globs_.begin()) - 1; i >= 0; i = globs_[i].parent) {
    if (path.starts_with(globs_[i].prefix)) return &globs_[i];
  }
  return nullptr;
}

std::optional<std::uint32_t> Matcher::FindNonExact(std::string_view path) const {
  const GlobRule* glob = LongestGlob(path);
  std::optional<Rank> glob_rank;
  if (glob != nullptr) glob_rank = glob->rank();
  if (!segments_.empty()) {
    const std::size_t path_segments = CountSegments(path);
    // segments_ is in priority order: the first match is the best '+' rule, and once a rule
    // no longer outranks the glob, none of the rest does.
    for (const SegmentRule& rule : segments_) {
      if (glob_rank && !Outranks(rule.rank(), *glob_rank)) break;
      if (rule.Matches(path, path_segments)) return rule.caps;
    }
  }
  if (glob != nullptr) return glob->caps;
  return std::nullopt;
}

std::uint32_t Matcher::Capabilities(std::string_view path) const {
  if (const ExactRule* exact = FindExact(path)) return exact->caps;
  // §7.2: a LIST request (trailing '/') also matches the exact pattern without the slash.
  if (path.ends_with('/')) {
    if (const ExactRule* exact = FindExact(path.substr(0, path.size() - 1))) return exact->caps;
  }
  return FindNonExact(path).value_or(0);
}

bool Matcher::SegmentRule::Matches(std::string_view path, std::size_t path_segments) const {
  if (path_segments < segments) return false;
  if (!ends_in_glob && path_segments != segments) return false;
  SegmentCursor rule(body);
  SegmentCursor request(path);
  std::string_view r;
  std::string_view p;
  for (std::size_t i = 0; rule.Next(r); ++i) {
    request.Next(p);
    if (r == "+" || r == p) continue;
    // A trailing '*' makes the last segment a prefix; the rest of the path is then free.
    return ends_in_glob && i + 1 == segments && p.starts_with(r);
  }
  return true;
}

bool Matcher::SegmentRule::CouldMatchUnder(std::string_view prefix) const {
  // prefix = <complete segments> '/' <partial>; a path under it continues the partial segment.
  const std::size_t last_slash = prefix.rfind('/');
  const bool has_complete = last_slash != std::string_view::npos;
  const std::string_view complete = has_complete ? prefix.substr(0, last_slash) : "";
  const std::string_view partial = has_complete ? prefix.substr(last_slash + 1) : prefix;
  const std::size_t complete_segments = has_complete ? CountSegments(complete) : 0;

  SegmentCursor rule(body);
  SegmentCursor given(complete);
  std::string_view r;
  std::string_view p;
  std::size_t i = 0;
  for (; i < complete_segments; ++i) {
    if (!rule.Next(r)) return false;  // every path under prefix has more segments than the rule
    given.Next(p);
    if (ends_in_glob && i + 1 == segments) return r == "+" || p.starts_with(r);
    if (r != "+" && r != p) return false;
  }
  if (!rule.Next(r)) return false;
  if (r == "+") return true;
  if (ends_in_glob && i + 1 == segments) return r.starts_with(partial) || partial.starts_with(r);
  // Choose the path's next segment to be r itself; later rule segments are chosen likewise.
  return r.starts_with(partial);
}

bool Matcher::AnyGrantUnder(std::string_view prefix) const {
  // The rule for the prefix itself, and the longest glob covering every path under it.
  if (Grants(Capabilities(prefix))) return true;
  if (const GlobRule* glob = LongestGlob(prefix); glob != nullptr && Grants(glob->caps)) {
    return true;
  }
  // Exact and glob rules whose pattern lies under the prefix.
  for (auto it = FirstNotBelow(exact_, &ExactRule::path, prefix);
       it != exact_.end() && it->path.starts_with(prefix); ++it) {
    if (Grants(it->caps)) return true;
  }
  for (auto it = FirstNotBelow(globs_, &GlobRule::prefix, prefix);
       it != globs_.end() && it->prefix.starts_with(prefix); ++it) {
    if (Grants(it->caps)) return true;
  }
  return std::any_of(segments_.begin(), segments_.end(), [&](const SegmentRule& rule) {
    return Grants(rule.caps) && rule.CouldMatchUnder(prefix);
  });
}

}  // namespace lockbox::policy::detail
