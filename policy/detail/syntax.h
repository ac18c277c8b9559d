// The generic document tree shared by the two policy syntaxes (reference §7.1): HCL1 and JSON.
// Both parse into the same tree (objects keep every item in order, duplicate keys included, so
// the policy layer can refuse or merge them instead of a JSON library silently keeping the last
// one); ParsePolicy then validates the tree against Vault's keys.
//
// Why the HCL parser is hand-written: Debian packages no C++ HCL library, and Vault policies use
// a small subset of HCL1 (blocks, `key = value`, strings, lists, comments), so a ~300-line
// recursive-descent parser with hard limits is simpler to audit than vendoring one.
//
// Security properties: input is bounded by the caller; nesting depth is capped at kMaxNesting for
// both syntaxes (no unbounded recursion on hostile input); the text must be valid UTF-8 (so every
// string can later be serialized to JSON safely). Errors are INVALID_ARGUMENT with a line number
// when one is known. Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"

namespace lockbox::policy::detail {

// Deepest allowed nesting of objects and lists (a Vault policy needs 3).
inline constexpr int kMaxNesting = 32;

struct Item;

struct Value {
  enum class Kind { kNull, kString, kNumber, kBool, kList, kObject };
  Kind kind = Kind::kNull;
  int line = 0;                 // 1-based line in HCL text; 0 for JSON (SAX gives no positions)
  std::string scalar;           // string contents, number text, "true"/"false"
  std::vector<Value> elements;  // kList
  std::vector<Item> items;      // kObject, in document order
};

// `path "x" { … }` is the item {keys: ["path", "x"], value: object}; `a = 1` is {["a"], 1}.
struct Item {
  std::vector<std::string> keys;
  int line = 0;
  Value value;
};

// HCL1 subset: items `key ["label"…] { … }` and `key = value`; values are strings, numbers,
// true/false, lists and objects; comments `#`, `//`, `/* */`. Returns the top-level object.
StatusOr<Value> ParseHcl(std::string_view text);

// Strict JSON (RFC 8259) into the same tree; the top level must be an object.
StatusOr<Value> ParseJson(std::string_view text);

// `text` cut to at most 128 bytes on a UTF-8 boundary (with "..." when cut): for error messages,
// which quote user input but must stay short and valid UTF-8.
std::string Excerpt(std::string_view text);

// True if `text` is well-formed UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
bool IsValidUtf8(std::string_view text);

}  // namespace lockbox::policy::detail
