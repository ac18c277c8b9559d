#include "policy/detail/syntax.h"

#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace lockbox::policy::detail {
namespace {

Status LineError(int line, std::string_view message) {
  return InvalidArgumentError("line " + std::to_string(line) + ": " + std::string(message));
}

Status TooDeep() {
  return InvalidArgumentError("nesting deeper than " + std::to_string(kMaxNesting) + " levels");
}

void AppendUtf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) {
  return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// ---------------------------------------------------------------------------------------------
// HCL1 lexer + recursive-descent parser.

enum class Tok {
  kEof,
  kIdent,
  kString,
  kNumber,
  kLBrace,
  kRBrace,
  kLBracket,
  kRBracket,
  kAssign,
  kComma
};

struct Token {
  Tok kind = Tok::kEof;
  std::string text;  // identifier, decoded string, number
  int line = 1;
};

class HclParser {
 public:
  explicit HclParser(std::string_view in) : in_(in) {}

  StatusOr<Value> Parse() {
    Value root;
    root.kind = Value::Kind::kObject;
    root.line = 1;
    LOCKBOX_RETURN_IF_ERROR(Advance());
    LOCKBOX_RETURN_IF_ERROR(ParseItems(root.items, /*depth=*/0, Tok::kEof));
    return root;
  }

 private:
  // items := (keys ('=' value | object) ','?)*  up to `end` (EOF at top level, '}' inside).
  Status ParseItems(std::vector<Item>& items, int depth, Tok end) {
    while (tok_.kind != end) {
      if (tok_.kind == Tok::kEof)
        return LineError(tok_.line, "unexpected end of input, missing '}'");
      Item item;
      item.line = tok_.line;
      while (tok_.kind == Tok::kIdent || tok_.kind == Tok::kString) {
        item.keys.push_back(std::move(tok_.text));
        LOCKBOX_RETURN_IF_ERROR(Advance());
      }
      if (item.keys.empty()) return LineError(tok_.line, "expected a key, found " + Describe(tok_));
      if (tok_.kind == Tok::kAssign) {
        if (item.keys.size() > 1) {
          return LineError(tok_.line,
                           "expected '{' after \"" + Excerpt(item.keys.back()) + "\", found '='");
        }
        LOCKBOX_RETURN_IF_ERROR(Advance());
        LOCKBOX_RETURN_IF_ERROR(ParseValue(item.value, depth + 1));
      } else if (tok_.kind == Tok::kLBrace) {
        LOCKBOX_RETURN_IF_ERROR(ParseObject(item.value, depth + 1));
      } else {
        return LineError(tok_.line, "expected '=' or '{' after \"" + Excerpt(item.keys.back()) +
                                        "\", found " + Describe(tok_));
      }
      items.push_back(std::move(item));
      if (tok_.kind == Tok::kComma) LOCKBOX_RETURN_IF_ERROR(Advance());
    }
    return Status::Ok();
  }

  Status ParseObject(Value& out, int depth) {
    if (depth > kMaxNesting) return TooDeep();
    out.kind = Value::Kind::kObject;
    out.line = tok_.line;
    LOCKBOX_RETURN_IF_ERROR(Advance());  // '{'
    LOCKBOX_RETURN_IF_ERROR(ParseItems(out.items, depth, Tok::kRBrace));
    return Advance();  // '}'
  }

  Status ParseList(Value& out, int depth) {
    if (depth > kMaxNesting) return TooDeep();
    out.kind = Value::Kind::kList;
    out.line = tok_.line;
    LOCKBOX_RETURN_IF_ERROR(Advance());  // '['
    while (tok_.kind != Tok::kRBracket) {
      out.elements.emplace_back();
      LOCKBOX_RETURN_IF_ERROR(ParseValue(out.elements.back(), depth + 1));
      if (tok_.kind == Tok::kComma) {
        LOCKBOX_RETURN_IF_ERROR(Advance());
      } else if (tok_.kind != Tok::kRBracket) {
        return LineError(tok_.line, "expected ',' or ']' in list, found " + Describe(tok_));
      }
    }
    return Advance();  // ']'
  }

  Status ParseValue(Value& out, int depth) {
    out.line = tok_.line;
    switch (tok_.kind) {
      case Tok::kString:
        out.kind = Value::Kind::kString;
        break;
      case Tok::kNumber:
        out.kind = Value::Kind::kNumber;
        break;
      case Tok::kIdent:
        if (tok_.text != "true" && tok_.text != "false") {
          return LineError(
              tok_.line, "unexpected identifier " + Excerpt(tok_.text) + " (strings need quotes)");
        }
        out.kind = Value::Kind::kBool;
        break;
      case Tok::kLBracket:
        return ParseList(out, depth);
      case Tok::kLBrace:
        return ParseObject(out, depth);
      default:
        return LineError(tok_.line, "expected a value, found " + Describe(tok_));
    }
    out.scalar = std::move(tok_.text);
    return Advance();
  }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEof:
        return "end of input";
      case Tok::kIdent:
        return "identifier " + Excerpt(t.text);
      case Tok::kString:
        return "string \"" + Excerpt(t.text) + "\"";
      case Tok::kNumber:
        return "number " + Excerpt(t.text);
      case Tok::kLBrace:
        return "'{'";
      case Tok::kRBrace:
        return "'}'";
      case Tok::kLBracket:
        return "'['";
      case Tok::kRBracket:
        return "']'";
      case Tok::kAssign:
        return "'='";
      case Tok::kComma:
        return "','";
    }
    return "token";
  }

  // Lexer: fills tok_ with the next token.
  Status Advance() {
    LOCKBOX_RETURN_IF_ERROR(SkipSpaceAndComments());
    tok_.text.clear();
    tok_.line = line_;
    if (pos_ >= in_.size()) {
      tok_.kind = Tok::kEof;
      return Status::Ok();
    }
    const char c = in_[pos_];
    switch (c) {
      case '{':
        return Punct(Tok::kLBrace);
      case '}':
        return Punct(Tok::kRBrace);
      case '[':
        return Punct(Tok::kLBracket);
      case ']':
        return Punct(Tok::kRBracket);
      case '=':
        return Punct(Tok::kAssign);
      case ',':
        return Punct(Tok::kComma);
      case '"':
        return LexString();
      default:
        break;
    }
    if (IsIdentStart(c)) {
      tok_.kind = Tok::kIdent;
      const std::size_t start = pos_;
      while (pos_ < in_.size() && IsIdentChar(in_[pos_])) ++pos_;
      tok_.text = std::string(in_.substr(start, pos_ - start));
      return Status::Ok();
    }
    if (IsDigit(c) || (c == '-' && pos_ + 1 < in_.size() && IsDigit(in_[pos_ + 1]))) {
      tok_.kind = Tok::kNumber;
      const std::size_t start = pos_++;
      while (pos_ < in_.size()) {
        const char d = in_[pos_];
        const bool exponent_sign =
            (d == '+' || d == '-') && (in_[pos_ - 1] == 'e' || in_[pos_ - 1] == 'E');
        if (!IsDigit(d) && d != '.' && d != 'e' && d != 'E' && !exponent_sign) break;
        ++pos_;
      }
      tok_.text = std::string(in_.substr(start, pos_ - start));
      return Status::Ok();
    }
    if (c == '<' && pos_ + 1 < in_.size() && in_[pos_ + 1] == '<') {
      return LineError(line_, "heredoc strings are not supported in policies");
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F) {
      return LineError(line_, std::string("unexpected character '") + c + "'");
    }
    static constexpr char kHex[] = "0123456789abcdef";
    return LineError(line_, std::string("unexpected byte 0x") + kHex[byte >> 4] + kHex[byte & 15]);
  }

  Status Punct(Tok kind) {
    tok_.kind = kind;
    ++pos_;
    return Status::Ok();
  }

  Status SkipSpaceAndComments() {
    while (pos_ < in_.size()) {
      const char c = in_[pos_];
      const char next = pos_ + 1 < in_.size() ? in_[pos_ + 1] : '\0';
      if (c == '\n') {
        ++line_;
        ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '#' || (c == '/' && next == '/')) {
        while (pos_ < in_.size() && in_[pos_] != '\n') ++pos_;
      } else if (c == '/' && next == '*') {
        const std::size_t end = in_.find("*/", pos_ + 2);
        if (end == std::string_view::npos) return LineError(line_, "unterminated /* comment");
        for (std::size_t i = pos_; i < end; ++i) line_ += in_[i] == '\n' ? 1 : 0;
        pos_ = end + 2;
      } else {
        break;
      }
    }
    return Status::Ok();
  }

  // "…" with Go-style escapes; no raw newlines (as HCL1).
  Status LexString() {
    tok_.kind = Tok::kString;
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= in_.size() || in_[pos_] == '\n') {
        return LineError(tok_.line, "unterminated string");
      }
      const char c = in_[pos_++];
      if (c == '"') return Status::Ok();
      if (c != '\\') {
        tok_.text += c;
        continue;
      }
      if (pos_ >= in_.size()) return LineError(tok_.line, "unterminated string");
      const char e = in_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          tok_.text += e;
          break;
        case 'n':
          tok_.text += '\n';
          break;
        case 't':
          tok_.text += '\t';
          break;
        case 'r':
          tok_.text += '\r';
          break;
        case 'a':
          tok_.text += '\a';
          break;
        case 'b':
          tok_.text += '\b';
          break;
        case 'f':
          tok_.text += '\f';
          break;
        case 'v':
          tok_.text += '\v';
          break;
        case 'u':
        case 'U': {
          const std::size_t digits = e == 'u' ? 4 : 8;
          if (in_.size() - pos_ < digits) return LineError(tok_.line, "truncated \\u escape");
          char32_t cp = 0;
          for (std::size_t i = 0; i < digits; ++i) {
            const int d = HexDigit(in_[pos_ + i]);
            if (d < 0) return LineError(tok_.line, "invalid \\u escape");
            cp = (cp << 4) | static_cast<char32_t>(d);
          }
          pos_ += digits;
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return LineError(tok_.line, "\\u escape is not a Unicode scalar value");
          }
          AppendUtf8(cp, tok_.text);
          break;
        }
        default:
          return LineError(tok_.line, std::string("invalid escape '\\") +
                                          (static_cast<unsigned char>(e) < 0x80 ? e : '?') + "'");
      }
    }
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  int line_ = 1;
  Token tok_;
};

// ---------------------------------------------------------------------------------------------
// JSON through nlohmann's SAX interface, so duplicate keys survive and depth is bounded.

class JsonTreeBuilder : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return AddScalar(Value::Kind::kNull, {}); }
  bool boolean(bool v) override { return AddScalar(Value::Kind::kBool, v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override {
    return AddScalar(Value::Kind::kNumber, std::to_string(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    return AddScalar(Value::Kind::kNumber, std::to_string(v));
  }
  bool number_float(number_float_t, const string_t& text) override {
    return AddScalar(Value::Kind::kNumber, text);
  }
  bool string(string_t& v) override { return AddScalar(Value::Kind::kString, std::move(v)); }
  bool binary(binary_t&) override { return Fail("binary values are not JSON"); }
  bool start_object(std::size_t) override { return Open(Value::Kind::kObject); }
  bool key(string_t& k) override {
    pending_key_ = std::move(k);
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(Value::Kind::kList); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep the position and reason.
    std::string_view what = ex.what();
    if (const std::size_t tag_end = what.find("] "); tag_end != std::string_view::npos) {
      what.remove_prefix(tag_end + 2);
    }
    return Fail("invalid JSON: " + std::string(what));
  }

  StatusOr<Value> Take() && {
    if (!error_.ok()) return error_;
    if (root_.kind != Value::Kind::kObject)
      return InvalidArgumentError("JSON policy must be an object");
    return std::move(root_);
  }

 private:
  // Places `v` in the open container (or as the root) and returns where it now lives.
  Value* Add(Value v) {
    if (open_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Value& parent = *open_.back();
    if (parent.kind == Value::Kind::kObject) {
      Item& item = parent.items.emplace_back();
      item.keys.push_back(std::move(pending_key_));
      item.value = std::move(v);
      return &item.value;
    }
    return &parent.elements.emplace_back(std::move(v));
  }

  bool AddScalar(Value::Kind kind, std::string text) {
    Value v;
    v.kind = kind;
    v.scalar = std::move(text);
    Add(std::move(v));
    return true;
  }

  // A container's address stays valid while it is open: only the innermost open container grows.
  bool Open(Value::Kind kind) {
    if (open_.size() >= static_cast<std::size_t>(kMaxNesting)) {
      error_ = TooDeep();
      return false;
    }
    Value v;
    v.kind = kind;
    open_.push_back(Add(std::move(v)));
    return true;
  }

  bool Close() {
    open_.pop_back();
    return true;
  }

  bool Fail(std::string message) {
    if (error_.ok()) error_ = InvalidArgumentError(std::move(message));
    return false;
  }

  Value root_;
  std::vector<Value*> open_;
  std::string pending_key_;
  Status error_;
};

}  // namespace

StatusOr<Value> ParseHcl(std::string_view text) { return HclParser(text).Parse(); }

StatusOr<Value> ParseJson(std::string_view text) {
  JsonTreeBuilder builder;
  try {
    nlohmann::json::sax_parse(text.begin(), text.end(), &builder);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("invalid JSON: ") + e.what());
  }
  return std::move(builder).Take();
}

std::string Excerpt(std::string_view text) {
  constexpr std::size_t kMaxExcerpt = 128;
  if (text.size() <= kMaxExcerpt) return std::string(text);
  std::size_t cut = kMaxExcerpt;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if (b0 < 0x80) {
      ++i;
      continue;
    } else if ((b0 & 0xE0) == 0xC0) {
      len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace lockbox::policy::detail
