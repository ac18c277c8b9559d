// The transit backend: request routing and the endpoints of reference §6 on top of KeyStore.
#include <algorithm>
#include <charconv>
#include <functional>
#include <utility>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "server/blocking/would_block.h"
#include "server/keyring/envelope.h"
#include "server/logical/fields.h"
#include "server/transit/key_store.h"
#include "server/transit/transit.h"
#include "server/transit/wire.h"

namespace lockbox::transit {
namespace {

using json = nlohmann::json;
using logical::Operation;
using logical::Request;
using logical::Response;

constexpr std::string_view kDerivationRequired =
    "missing 'context' for key derivation; the key was created using a derived key, which means "
    "additional, per-request information must be included in order to perform operations with "
    "the key";
constexpr std::string_view kTooOld =
    "ciphertext or signature version is disallowed by policy (too old)";
constexpr std::string_view kAuthFailed = "cipher: message authentication failed";
constexpr std::string_view kConvergentLabel = "lockbox/transit/convergent/v1";
// Format bytes of convergent payloads (keyring envelopes use 1 and 2).
constexpr std::uint8_t kConvergentAesGcm = 3;
constexpr std::uint8_t kConvergentChaCha = 4;
constexpr std::size_t kConvergentNonceSize = 12;
constexpr std::size_t kTagSize = 16;
constexpr std::int64_t kMaxRandomBytes = 128 * 1024;
constexpr std::size_t kMaxNameLength = 64;

bool IsWrite(Operation op) { return op == Operation::kCreate || op == Operation::kUpdate; }

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

Status ValidateName(std::string_view name) {
  // Vault's \w(([\w-.]+)?\w)?, without ".." (the name is part of a keyring name and HSM label).
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  bool ok = !name.empty() && name.size() <= kMaxNameLength && word(name.front()) &&
            word(name.back()) && name.find("..") == std::string_view::npos;
  for (char c : name) ok = ok && (word(c) || c == '-' || c == '.');
  if (!ok) return InvalidArgumentError("invalid key name");
  return Status::Ok();
}

void PutU32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}
void PutField(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> field) {
  PutU32(out, static_cast<std::uint32_t>(field.size()));
  out.insert(out.end(), field.begin(), field.end());
}

// The caller-supplied data bound to a ciphertext: the derivation context (derived keys only) and
// the associated data.
struct Binding {
  crypto::SecureBuffer context;
  crypto::SecureBuffer associated_data;

  // What the keyring binds as its "context": empty when both are, else
  // u32 len(context) || context || associated_data (unambiguous).
  std::vector<std::uint8_t> KeyringContext() const {
    std::vector<std::uint8_t> out;
    if (context.empty() && associated_data.empty()) return out;
    PutField(out, context.span());
    out.insert(out.end(), associated_data.span().begin(), associated_data.span().end());
    return out;
  }
};

// Statuses a batch reports per item as user errors (400) rather than internal ones (500).
bool IsUserError(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kDataLoss:
    case StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

// Vault's text for the keyring's decryption refusals.
Status VaultCiphertextError(const Status& s) {
  const std::string& m = s.message();
  if (s.code() == StatusCode::kNotFound) return InvalidArgumentError("encryption key not found");
  if (m == "invalid ciphertext: bad base64") {
    return InvalidArgumentError("invalid ciphertext: could not decode base64");
  }
  if (m.starts_with("invalid ciphertext: key version") && m.ends_with("does not exist")) {
    return InvalidArgumentError("invalid ciphertext: version is too new");
  }
  if (m == "invalid ciphertext: message authentication failed") {
    return InvalidArgumentError(std::string(kAuthFailed));
  }
  if (m == "requested key version does not exist") {
    return InvalidArgumentError(
        "requested version for encryption is higher than the latest key version");
  }
  return s;
}

StatusOr<std::uint32_t> VersionFromText(std::string_view text) {
  LOCKBOX_ASSIGN_OR_RETURN(auto parsed, ParseVersioned(text, "ciphertext"));
  return parsed.version;
}

// An optional key_version field: 0 when absent.
StatusOr<std::uint32_t> KeyVersionField(const json& data, std::string_view operation) {
  LOCKBOX_ASSIGN_OR_RETURN(auto v, logical::GetInt(data, "key_version"));
  if (!v) return 0u;
  if (*v < 0) {
    return InvalidArgumentError("requested version for " + std::string(operation) + " is negative");
  }
  if (*v > 0xFFFFFFFFll) return InvalidArgumentError("invalid key version");
  return static_cast<std::uint32_t>(*v);
}

// A base64 field decoded (absent or "" → empty).
StatusOr<crypto::SecureBuffer> Base64Field(const json& data, std::string_view field) {
  LOCKBOX_ASSIGN_OR_RETURN(auto text, logical::GetString(data, field));
  if (!text || text->empty()) return crypto::SecureBuffer();
  return DecodeBase64(*text);
}

bool HasText(const json& data, std::string_view field) {
  auto it = data.find(field);
  return it != data.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
}

struct Items {
  bool batch = false;
  std::vector<const json*> items;
};

// The request's items: batch_input's objects, or the request data itself.
StatusOr<Items> ParseItems(const json& data) {
  Items out;
  auto it = data.find("batch_input");
  if (it == data.end() || it->is_null()) {
    out.items.push_back(&data);
    return out;
  }
  out.batch = true;
  if (!it->is_array()) return InvalidArgumentError("failed to parse batch input: expected a list");
  if (it->empty()) return InvalidArgumentError("missing batch input to process");
  for (const auto& item : *it) {
    if (!item.is_object()) {
      return InvalidArgumentError("failed to parse batch input: expected a list of objects");
    }
    out.items.push_back(&item);
  }
  return out;
}

Status CheckContextConsistency(const Items& items) {
  if (!items.batch) return Status::Ok();
  const bool first = HasText(*items.items.front(), "context");
  for (const json* item : items.items) {
    if (HasText(*item, "context") != first) {
      return InvalidArgumentError(
          "context should be set either in all the request blocks or in none");
    }
  }
  return Status::Ok();
}

// The item's "ciphertext", which must be there ("missing ciphertext to <verb>").
StatusOr<std::string> RequiredCiphertext(const json& item, std::string_view verb) {
  LOCKBOX_ASSIGN_OR_RETURN(auto ciphertext, logical::GetString(item, "ciphertext"));
  if (!ciphertext || ciphertext->empty()) {
    return InvalidArgumentError("missing ciphertext to " + std::string(verb));
  }
  return std::move(*ciphertext);
}

// Runs `one` on every item and gives Vault's batch answer (reference §6.4): results in input
// order, references echoed, status 400 (user errors) / 500 (internal errors) /
// partial_failure_response_code when some succeeded. The operation's audit event goes with it for
// the router to record (a single item's key_version included).
StatusOr<Response> AnswerItems(const json& data, const Items& items, audit::Event event,
                               const std::function<StatusOr<json>(const json& item)>& one) {
  std::vector<StatusOr<json>> results;
  results.reserve(items.items.size());
  for (const json* item : items.items) results.push_back(one(*item));
  if (!items.batch && results[0].ok() && results[0]->contains("key_version")) {
    event.details["key_version"] = (*results[0])["key_version"];
  }
  Response resp;
  bool user_error = false, internal_error = false, success = false;
  json batch = json::array();
  for (std::size_t i = 0; i < results.size(); ++i) {
    json entry;
    if (results[i].ok()) {
      entry = std::move(*results[i]);
      success = true;
    } else {
      (IsUserError(results[i].status()) ? user_error : internal_error) = true;
      entry = json{{"error", results[i].status().message()}};
    }
    if (items.batch) {
      auto ref = logical::GetString(*items.items[i], "reference");
      entry["reference"] = ref.ok() && *ref ? **ref : std::string();
    }
    batch.push_back(std::move(entry));
  }
  event.details["items"] = results.size();
  if (!items.batch) {
    if (!results[0].ok()) return results[0].status();
    resp.data = std::move(batch[0]);
    resp.event = std::move(event);
    return resp;
  }
  resp.data = json{{"batch_results", std::move(batch)}};
  if (user_error || internal_error) {
    int code = user_error ? 400 : 500;
    auto override_code = logical::GetInt(data, "partial_failure_response_code");
    if (success && override_code.ok() && *override_code) {
      if (**override_code < 1 || **override_code > 599) {
        resp.warnings.push_back(
            "invalid HTTP response code override from partial_failure_response_code, reverting "
            "to " +
            std::to_string(code));
      } else {
        code = static_cast<int>(**override_code);
      }
    }
    resp.status = code;
    event.outcome = audit::Outcome::kError;
    event.reason = "some batch items failed";
  }
  resp.event = std::move(event);
  return resp;
}

class TransitBackend final : public logical::Backend {
 public:
  TransitBackend(const logical::MountEntry& entry, keyring::Keyring& keyring, hsm::Hsm& hsm,
                 store::Store& store, audit_log::EventLog& events, TransitOptions options)
      : keys_(entry, keyring, hsm, store, events, std::move(options.clock)), events_(events) {}

  Status Load() { return keys_.Load(); }

  StatusOr<Response> HandleRequest(const Request& request) override;
  StatusOr<std::optional<bool>> Exists(const Request& request) override {
    const auto parts = Split(request.relative_path);
    if (parts.size() == 2 && (parts[0] == "encrypt" || parts[0] == "keys")) {
      return std::optional<bool>(keys_.Find(parts[1]) != nullptr);
    }
    return std::optional<bool>{};
  }
  bool IsAttemptableUse(std::string_view relative_path) const override {
    const auto parts = Split(relative_path);
    if (parts.empty()) return false;
    // Uses of a key (or of none): the only state they change is their audit event, which the
    // router records. An encrypt that would create its key refuses to block first (Encrypt).
    static constexpr std::string_view kUses[] = {"encrypt", "decrypt", "rewrap", "datakey", "hmac",
                                                 "sign",    "verify",  "random", "hash"};
    return std::find(std::begin(kUses), std::end(kUses), parts[0]) != std::end(kUses);
  }
  Status Purge() override { return keys_.Purge(); }

 private:
  // --- keys ---
  StatusOr<Response> ListKeys(const Request& request);
  StatusOr<Response> ReadKey(const Request& request, std::string_view name);
  StatusOr<Response> CreateKey(const Request& request, std::string_view name);
  StatusOr<Response> DeleteKey(const Request& request, std::string_view name);
  StatusOr<Response> ConfigureKey(const Request& request, const TransitKey& key);
  StatusOr<Response> RotateKey(const Request& request, const TransitKey& key);
  StatusOr<Response> TrimKey(const Request& request, const TransitKey& key);
  StatusOr<json> KeyBody(const TransitKey& key, const Request& request);
  StatusOr<KeyPolicy> ParsePolicy(const json& data, bool derived_by_context);

  // --- uses ---
  StatusOr<Response> Encrypt(const Request& request, std::string_view name);
  StatusOr<Response> Decrypt(const Request& request, const TransitKey& key);
  StatusOr<Response> Rewrap(const Request& request, const TransitKey& key);
  StatusOr<Response> DataKey(const Request& request, std::string_view kind, const TransitKey& key);
  StatusOr<Response> Hmac(const Request& request, const TransitKey& key,
                          std::string_view url_algorithm);
  StatusOr<Response> Sign(const Request& request, const TransitKey& key,
                          std::string_view url_algorithm);
  StatusOr<Response> Verify(const Request& request, const TransitKey& key,
                            std::string_view url_algorithm);
  StatusOr<Response> Random(const Request& request, std::span<const std::string_view> params);
  StatusOr<Response> HashData(const Request& request, std::string_view url_algorithm);

  // Encryption primitives shared by encrypt, rewrap and datakey.
  // `sealing`: the item produces a ciphertext (encrypt, rewrap, datakey), so a caller nonce is
  // refused; decrypt ignores one, as Vault does for keys that never took one.
  StatusOr<Binding> ParseBinding(const TransitKey& key, const json& item, bool sealing);
  StatusOr<json> Seal(const TransitKey& key, std::span<const std::uint8_t> plaintext,
                      const Binding& binding, std::uint32_t key_version, const Request& request);
  StatusOr<crypto::SecureBuffer> Open(const TransitKey& key, std::string_view ciphertext,
                                      const Binding& binding, const Request& request);
  StatusOr<std::string> SealConvergent(const TransitKey& key, std::uint32_t version,
                                       std::span<const std::uint8_t> plaintext,
                                       const Binding& binding, const Request& request);
  StatusOr<crypto::SecureBuffer> OpenConvergent(const TransitKey& key, std::uint32_t version,
                                                std::string_view body, const Binding& binding,
                                                const Request& request);
  StatusOr<crypto::SecureBuffer> ConvergentKeys(const TransitKey& key, std::uint32_t version,
                                                const Binding& binding, const Request& request);
  static std::vector<std::uint8_t> ConvergentAad(const TransitKey& key, std::uint8_t format,
                                                 std::uint32_t version, const Binding& binding);
  StatusOr<keyring::KeyMetadata> Metadata(const TransitKey& key);
  // The keyring refused a ciphertext of `version`: Vault checks the version before anything
  // else, so a version out of range is reported as such (looked up only on this error path).
  Status CiphertextError(const TransitKey& key, std::uint32_t version, const Status& error);

  // Attaches the event of a read/use: the router records it durably before the answer leaves.
  static StatusOr<Response> Recorded(StatusOr<Response> response, audit::Event event) {
    if (response.ok()) response->event = std::move(event);
    return response;
  }

  static keyring::Caller Quiet(const Request& request) {
    keyring::Caller c = request.caller;
    c.audited_by_caller = true;
    return c;
  }

  KeyStore keys_;
  audit_log::EventLog& events_;
};

StatusOr<Response> TransitBackend::HandleRequest(const Request& request) {
  std::string_view rel = request.relative_path;
  if (request.operation == Operation::kList && rel.ends_with('/')) rel.remove_suffix(1);
  const auto parts = Split(rel);
  const Operation op = request.operation;
  const auto unsupported = [] { return UnimplementedError("unsupported operation"); };
  if (parts.empty()) return NotFoundError("unsupported path");
  const std::string_view head = parts[0];
  const std::size_t n = parts.size();

  // Endpoints without a key.
  if (head == "random" && n <= 3) {
    if (!IsWrite(op)) return unsupported();
    return Random(request, std::span<const std::string_view>(parts).subspan(1));
  }
  if (head == "hash" && n <= 2) {
    if (!IsWrite(op)) return unsupported();
    return HashData(request, n == 2 ? parts[1] : std::string_view());
  }
  if (head == "restore" && n <= 2) {
    if (!IsWrite(op)) return unsupported();
    auto backup = logical::GetString(request.data, "backup");
    if (!backup.ok() || !*backup || (*backup)->empty()) {
      return InvalidArgumentError("'backup' must be supplied");
    }
    if (n == 2) {
      auto force = logical::GetBool(request.data, "force");
      if (keys_.Find(parts[1]) && !(force.ok() && force->value_or(false))) {
        return InternalError("key \"" + std::string(parts[1]) + "\" already exists");
      }
    }
    return InvalidArgumentError(
        "restoring keys is not supported: transit keys are non-exportable and have no plaintext "
        "backups");
  }
  if (head == "keys" && n == 1) {
    if (op != Operation::kList) return unsupported();
    return ListKeys(request);
  }
  if (head == "keys" && n == 2) {
    switch (op) {
      case Operation::kRead:
        return ReadKey(request, parts[1]);
      case Operation::kCreate:
      case Operation::kUpdate:
        return CreateKey(request, parts[1]);
      case Operation::kDelete:
        return DeleteKey(request, parts[1]);
      default:
        return unsupported();
    }
  }
  if (head == "encrypt" && n == 2) {
    if (!IsWrite(op)) return unsupported();
    return Encrypt(request, parts[1]);
  }

  // Endpoints on an existing key: path shape first, then the key.
  std::string_view name;
  std::string_view extra;
  if (head == "keys" && n == 3 &&
      (parts[2] == "config" || parts[2] == "rotate" || parts[2] == "trim")) {
    name = parts[1];
    extra = parts[2];
  } else if ((head == "decrypt" || head == "rewrap") && n == 2) {
    name = parts[1];
  } else if (head == "datakey" && n == 3) {
    name = parts[2];
    extra = parts[1];
  } else if ((head == "hmac" || head == "sign" || head == "verify") && (n == 2 || n == 3)) {
    name = parts[1];
    if (n == 3) extra = parts[2];
  } else if (head == "export" && (n == 3 || n == 4)) {
    if (op != Operation::kRead) return unsupported();
    name = parts[2];
  } else if (head == "backup" && n == 2) {
    if (op != Operation::kRead) return unsupported();
    name = parts[1];
  } else {
    return NotFoundError("unsupported path");
  }
  if (head != "export" && head != "backup" && !IsWrite(op)) return unsupported();
  auto key = keys_.Find(name);
  if (head == "export" || head == "backup") {
    if (!key) return NotFoundError("");
    // Keys are non-exportable by design (DESIGN.md §1): Vault's answer for such a policy.
    return InternalError(head == "export" ? "exporting is disallowed on the policy"
                                          : "plaintext backup is disallowed on the policy");
  }
  if (!key) {
    if (head == "sign") return InvalidArgumentError("signing key not found");
    if (head == "verify") return InvalidArgumentError("signature verification key not found");
    if (head == "keys") return NotFoundError("");
    return InvalidArgumentError("encryption key not found");
  }
  if (head == "keys") {
    if (extra == "config") return ConfigureKey(request, *key);
    if (extra == "rotate") return RotateKey(request, *key);
    return TrimKey(request, *key);
  }
  if (head == "decrypt") return Decrypt(request, *key);
  if (head == "rewrap") return Rewrap(request, *key);
  if (head == "datakey") return DataKey(request, extra, *key);
  if (head == "hmac") return Hmac(request, *key, extra);
  if (head == "sign") return Sign(request, *key, extra);
  return Verify(request, *key, extra);
}

// --- keys --------------------------------------------------------------------------------------

StatusOr<keyring::KeyMetadata> TransitBackend::Metadata(const TransitKey& key) {
  auto meta = keys_.keyring().ReadKey(key.keyring_name);
  if (!meta.ok() && meta.status().code() == StatusCode::kNotFound) {
    return InvalidArgumentError("encryption key not found");
  }
  return meta;
}

StatusOr<Response> TransitBackend::ListKeys(const Request& request) {
  auto names = keys_.List();
  if (names.empty()) return NotFoundError("");
  Response resp;
  resp.data = json{{"keys", names}};
  audit::Event event = KeyStore::Event("list_keys", request, "");
  event.details["count"] = names.size();
  return Recorded(std::move(resp), std::move(event));
}

StatusOr<json> TransitBackend::KeyBody(const TransitKey& key, const Request& request) {
  LOCKBOX_ASSIGN_OR_RETURN(auto meta, Metadata(key));
  const KeyType type = key.policy.type;
  json versions = json::object();
  for (const auto& v : meta.versions) {
    const std::string number = std::to_string(v.version);
    if (SupportsSigning(type)) {
      LOCKBOX_ASSIGN_OR_RETURN(auto material, keys_.Material(key, v.version, request));
      versions[number] = json{{"name", type == KeyType::kEd25519 ? "ed25519" : "P-256"},
                              {"public_key", material->public_key},
                              {"creation_time", logical::FormatRfc3339Nano(v.created)}};
    } else {
      versions[number] =
          std::chrono::duration_cast<std::chrono::seconds>(v.created.time_since_epoch()).count();
    }
  }
  json body = {
      {"name", key.name},
      {"type", KeyTypeName(type)},
      {"derived", key.policy.derived},
      {"exportable", false},
      {"allow_plaintext_backup", false},
      {"deletion_allowed", key.deletion_allowed},
      {"keys", std::move(versions)},
      {"latest_version", meta.latest_version},
      // Vault reports 0 until a trim sets it.
      {"min_available_version", meta.min_available_version <= 1 ? 0 : meta.min_available_version},
      {"min_decryption_version", meta.min_decryption_version},
      {"min_encryption_version", meta.min_encryption_version},
      {"supports_encryption", SupportsEncryption(type)},
      {"supports_decryption", SupportsEncryption(type)},
      {"supports_derivation", SupportsEncryption(type)},
      {"supports_signing", SupportsSigning(type)},
      {"auto_rotate_period", 0},
      {"imported_key", false},
  };
  if (key.policy.derived) {
    body["kdf"] = "hkdf_sha256";
    body["convergent_encryption"] = key.policy.convergent;
    if (key.policy.convergent) body["convergent_encryption_version"] = 3;
  }
  return body;
}

StatusOr<Response> TransitBackend::ReadKey(const Request& request, std::string_view name) {
  auto key = keys_.Find(name);
  if (!key) return NotFoundError("");
  Response resp;
  LOCKBOX_ASSIGN_OR_RETURN(resp.data, KeyBody(*key, request));
  return Recorded(std::move(resp), KeyStore::Event("read_key", request, name));
}

// Refuses what this server never allows (keys are non-exportable by design).
Status RefuseExportSettings(const json& data) {
  LOCKBOX_ASSIGN_OR_RETURN(auto exportable, logical::GetBool(data, "exportable"));
  if (exportable.value_or(false)) {
    return InvalidArgumentError(
        "exportable keys are not supported: transit keys never leave "
        "the server");
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto backup, logical::GetBool(data, "allow_plaintext_backup"));
  if (backup.value_or(false)) {
    return InvalidArgumentError(
        "plaintext backups are not supported: transit keys never leave "
        "the server");
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto rotate, logical::GetDuration(data, "auto_rotate_period"));
  if (rotate && rotate->count() != 0) {
    return InvalidArgumentError("auto_rotate_period is not supported");
  }
  return Status::Ok();
}

StatusOr<KeyPolicy> TransitBackend::ParsePolicy(const json& data, bool derived_by_context) {
  KeyPolicy policy;
  LOCKBOX_ASSIGN_OR_RETURN(auto type_name, logical::GetString(data, "type"));
  const std::string type_text = type_name.value_or("aes256-gcm96");
  auto type = ParseKeyType(type_text);
  if (!type) {
    static constexpr std::string_view kVaultOnly[] = {"aes128-gcm96", "ecdsa-p384", "ecdsa-p521",
                                                      "rsa-2048",     "rsa-3072",   "rsa-4096"};
    if (std::find(std::begin(kVaultOnly), std::end(kVaultOnly), type_text) !=
        std::end(kVaultOnly)) {
      return InvalidArgumentError("key type " + type_text + " is not supported by this server");
    }
    return InvalidArgumentError("unknown key type " + type_text);
  }
  policy.type = *type;
  LOCKBOX_ASSIGN_OR_RETURN(auto derived, logical::GetBool(data, "derived"));
  LOCKBOX_ASSIGN_OR_RETURN(auto convergent, logical::GetBool(data, "convergent_encryption"));
  policy.derived = derived.value_or(false) || derived_by_context;
  policy.convergent = convergent.value_or(false);
  if (policy.convergent && !policy.derived) {
    return InvalidArgumentError("convergent encryption requires derivation to be enabled");
  }
  if (policy.derived && !SupportsEncryption(policy.type)) {
    return InvalidArgumentError(
        "key derivation and convergent encryption not supported for keys "
        "of type " +
        type_text);
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto key_size, logical::GetInt(data, "key_size"));
  if (key_size && *key_size != 0) {
    if (policy.type != KeyType::kHmac) {
      return InvalidArgumentError("key_size is not valid for algorithm " + type_text);
    }
    if (*key_size < 32 || *key_size > 512) {
      return InvalidArgumentError("invalid key_size provided, must be between 32 and 512 bytes");
    }
    policy.hmac_key_size = static_cast<std::uint32_t>(*key_size);
  }
  LOCKBOX_RETURN_IF_ERROR(RefuseExportSettings(data));
  return policy;
}

StatusOr<Response> TransitBackend::CreateKey(const Request& request, std::string_view name) {
  LOCKBOX_RETURN_IF_ERROR(ValidateName(name));
  LOCKBOX_ASSIGN_OR_RETURN(KeyPolicy policy, ParsePolicy(request.data, false));
  Response resp;
  if (auto existing = keys_.Find(name)) {
    resp.warnings.push_back("key " + std::string(name) + " already existed");
    LOCKBOX_ASSIGN_OR_RETURN(resp.data, KeyBody(*existing, request));
    return Recorded(std::move(resp), KeyStore::Event("read_key", request, name));
  }
  auto created = keys_.Create(name, policy, request);
  if (!created.ok() && created.status().code() == StatusCode::kAlreadyExists) {
    return CreateKey(request, name);  // created concurrently: answer as for an existing key
  }
  if (!created.ok()) return created.status();
  LOCKBOX_ASSIGN_OR_RETURN(resp.data, KeyBody(**created, request));
  resp.audited = true;
  return resp;
}

StatusOr<Response> TransitBackend::DeleteKey(const Request& request, std::string_view name) {
  auto key = keys_.Find(name);
  const std::string prefix = "error deleting policy " + std::string(name) + ": ";
  if (!key) return InvalidArgumentError(prefix + "could not delete key; not found");
  if (!key->deletion_allowed) {
    return InvalidArgumentError(prefix + "deletion is not allowed for this policy");
  }
  LOCKBOX_RETURN_IF_ERROR(keys_.Delete(*key, request));
  Response resp;
  resp.audited = true;
  return resp;
}

StatusOr<Response> TransitBackend::ConfigureKey(const Request& request, const TransitKey& key) {
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(auto meta, Metadata(key));
  Response resp;
  std::uint32_t min_dec = meta.min_decryption_version;
  std::uint32_t min_enc = meta.min_encryption_version;
  bool versions_changed = false;
  LOCKBOX_ASSIGN_OR_RETURN(auto dec, logical::GetInt(data, "min_decryption_version"));
  if (dec) {
    if (*dec < 0) return InvalidArgumentError("min decryption version cannot be negative");
    std::int64_t v = *dec;
    if (v == 0) {
      v = 1;
      resp.warnings.push_back(
          "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1");
    }
    if (v != min_dec) {
      if (v > meta.latest_version) {
        return InvalidArgumentError("cannot set min decryption version of " + std::to_string(v) +
                                    ", latest key version is " +
                                    std::to_string(meta.latest_version));
      }
      if (v < meta.min_available_version) {
        return InvalidArgumentError("cannot set min decryption version of " + std::to_string(v) +
                                    " below the min available version of " +
                                    std::to_string(meta.min_available_version));
      }
      min_dec = static_cast<std::uint32_t>(v);
      versions_changed = true;
    }
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto enc, logical::GetInt(data, "min_encryption_version"));
  if (enc) {
    if (*enc < 0) return InvalidArgumentError("min encryption version cannot be negative");
    if (*enc != min_enc) {
      if (*enc > meta.latest_version) {
        return InvalidArgumentError("cannot set min encryption version of " + std::to_string(*enc) +
                                    ", latest key version is " +
                                    std::to_string(meta.latest_version));
      }
      min_enc = static_cast<std::uint32_t>(*enc);
      versions_changed = true;
    }
  }
  if (min_enc > 0 && min_enc < min_dec) {
    return InvalidArgumentError(
        "cannot set min encryption/decryption values; min encryption version of " +
        std::to_string(min_enc) + " must be greater than or equal to min decryption version of " +
        std::to_string(min_dec));
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto deletion_allowed, logical::GetBool(data, "deletion_allowed"));
  LOCKBOX_RETURN_IF_ERROR(RefuseExportSettings(data));
  std::optional<std::pair<std::uint32_t, std::uint32_t>> versions;
  if (versions_changed) versions = std::make_pair(min_dec, min_enc);
  LOCKBOX_RETURN_IF_ERROR(keys_.Configure(key, versions, deletion_allowed, request));
  auto updated = keys_.Find(key.name);
  if (!updated) return InvalidArgumentError("encryption key not found");
  LOCKBOX_ASSIGN_OR_RETURN(resp.data, KeyBody(*updated, request));
  resp.audited = true;
  return resp;
}

StatusOr<Response> TransitBackend::RotateKey(const Request& request, const TransitKey& key) {
  LOCKBOX_RETURN_IF_ERROR(keys_.Rotate(key, request));
  auto updated = keys_.Find(key.name);
  if (!updated) return InvalidArgumentError("encryption key not found");
  Response resp;
  LOCKBOX_ASSIGN_OR_RETURN(resp.data, KeyBody(*updated, request));
  resp.audited = true;
  return resp;
}

StatusOr<Response> TransitBackend::TrimKey(const Request& request, const TransitKey& key) {
  LOCKBOX_ASSIGN_OR_RETURN(auto requested, logical::GetInt(request.data, "min_available_version"));
  if (!requested) return InvalidArgumentError("missing min_available_version");
  LOCKBOX_ASSIGN_OR_RETURN(auto meta, Metadata(key));
  const std::int64_t v = *requested;
  if (v < 1) return InvalidArgumentError("minimum available version should be positive");
  if (v < meta.min_available_version) {
    return InvalidArgumentError("minimum available version cannot be decremented");
  }
  if (meta.min_encryption_version == 0) {
    return InvalidArgumentError(
        "minimum available version cannot be set when minimum encryption version is not set");
  }
  if (v > meta.min_encryption_version) {
    return InvalidArgumentError(
        "minimum available version cannot be greater than minimum encryption version");
  }
  if (v > meta.min_decryption_version) {
    return InvalidArgumentError(
        "minimum available version cannot be greater than minimum decryption version");
  }
  LOCKBOX_RETURN_IF_ERROR(keys_.Trim(key, static_cast<std::uint32_t>(v), request));
  auto updated = keys_.Find(key.name);
  if (!updated) return InvalidArgumentError("encryption key not found");
  Response resp;
  LOCKBOX_ASSIGN_OR_RETURN(resp.data, KeyBody(*updated, request));
  resp.audited = true;
  return resp;
}

// --- encryption --------------------------------------------------------------------------------

StatusOr<Binding> TransitBackend::ParseBinding(const TransitKey& key, const json& item,
                                               bool sealing) {
  Binding b;
  LOCKBOX_ASSIGN_OR_RETURN(crypto::SecureBuffer context, Base64Field(item, "context"));
  if (key.policy.derived) {
    if (context.empty()) return InvalidArgumentError(std::string(kDerivationRequired));
    b.context = std::move(context);
  }
  LOCKBOX_ASSIGN_OR_RETURN(b.associated_data, Base64Field(item, "associated_data"));
  if (sealing && HasText(item, "nonce")) {
    return InvalidArgumentError("nonce provided when not allowed");
  }
  return b;
}

std::vector<std::uint8_t> TransitBackend::ConvergentAad(const TransitKey& key, std::uint8_t format,
                                                        std::uint32_t version,
                                                        const Binding& binding) {
  std::vector<std::uint8_t> aad(kConvergentLabel.begin(), kConvergentLabel.end());
  aad.push_back(format);
  PutField(aad, crypto::AsBytes(key.keyring_name));
  PutU32(aad, version);
  PutField(aad, binding.context.span());
  PutField(aad, binding.associated_data.span());
  return aad;
}

// enc_key(32) || mac_key(32) for (version, context): HKDF-SHA256 of the version's convergent
// secret.
StatusOr<crypto::SecureBuffer> TransitBackend::ConvergentKeys(const TransitKey& key,
                                                              std::uint32_t version,
                                                              const Binding& binding,
                                                              const Request& request) {
  LOCKBOX_ASSIGN_OR_RETURN(auto material, keys_.Material(key, version, request));
  LOCKBOX_ASSIGN_OR_RETURN(auto secret, keys_.ConvergentKey(key, *material, Quiet(request)));
  std::vector<std::uint8_t> info(kConvergentLabel.begin(), kConvergentLabel.end());
  PutField(info, crypto::AsBytes(key.keyring_name));
  PutU32(info, version);
  PutField(info, binding.context.span());
  return HkdfSha256(secret->span(), info, 64);
}

StatusOr<std::string> TransitBackend::SealConvergent(const TransitKey& key, std::uint32_t version,
                                                     std::span<const std::uint8_t> plaintext,
                                                     const Binding& binding,
                                                     const Request& request) {
  const bool chacha = key.policy.type == KeyType::kChaCha20Poly1305;
  const std::uint8_t format = chacha ? kConvergentChaCha : kConvergentAesGcm;
  LOCKBOX_ASSIGN_OR_RETURN(auto keys, ConvergentKeys(key, version, binding, request));
  const auto aad = ConvergentAad(key, format, version, binding);
  // Synthetic nonce: a function of everything sealed, so only equal inputs share a nonce.
  LOCKBOX_ASSIGN_OR_RETURN(auto mac,
                           HmacOf(Hash::kSha2_256, keys.span().subspan(32), {aad, plaintext}));
  const std::span<const std::uint8_t> nonce(mac.data(), kConvergentNonceSize);
  LOCKBOX_ASSIGN_OR_RETURN(auto sealed,
                           keyring::SealData(chacha ? keyring::kEnvelopeFormatChaCha20Poly1305
                                                    : keyring::kEnvelopeFormatV1,
                                             keys.span().first(32), nonce, aad, plaintext));
  std::vector<std::uint8_t> payload;
  payload.reserve(1 + nonce.size() + sealed.size());
  payload.push_back(format);
  payload.insert(payload.end(), nonce.begin(), nonce.end());
  payload.insert(payload.end(), sealed.begin(), sealed.end());
  return FormatVersioned(version, crypto::Base64Encode(payload));
}

StatusOr<crypto::SecureBuffer> TransitBackend::OpenConvergent(const TransitKey& key,
                                                              std::uint32_t version,
                                                              std::string_view body,
                                                              const Binding& binding,
                                                              const Request& request) {
  auto payload = crypto::Base64Decode(body);
  if (!payload.ok()) return InvalidArgumentError("invalid ciphertext: could not decode base64");
  const bool chacha = key.policy.type == KeyType::kChaCha20Poly1305;
  const std::uint8_t format = chacha ? kConvergentChaCha : kConvergentAesGcm;
  if (payload->size() < 1 + kConvergentNonceSize + kTagSize || (*payload)[0] != format) {
    return InvalidArgumentError(std::string(kAuthFailed));
  }
  const std::span<const std::uint8_t> bytes(*payload);
  const auto nonce = bytes.subspan(1, kConvergentNonceSize);
  LOCKBOX_ASSIGN_OR_RETURN(auto keys, ConvergentKeys(key, version, binding, request));
  const auto aad = ConvergentAad(key, format, version, binding);
  auto plaintext = keyring::OpenData(
      chacha ? keyring::kEnvelopeFormatChaCha20Poly1305 : keyring::kEnvelopeFormatV1,
      keys.span().first(32), nonce, aad, bytes.subspan(1 + kConvergentNonceSize));
  if (!plaintext.ok()) return InvalidArgumentError(std::string(kAuthFailed));
  // The nonce must be the synthetic one: nothing but this key's encryption made it.
  LOCKBOX_ASSIGN_OR_RETURN(
      auto mac, HmacOf(Hash::kSha2_256, keys.span().subspan(32), {aad, plaintext->span()}));
  if (!crypto::ConstantTimeEquals(nonce, std::span<const std::uint8_t>(mac).first(nonce.size()))) {
    return InvalidArgumentError(std::string(kAuthFailed));
  }
  return std::move(*plaintext);
}

// The version an encryption with `requested` uses (convergent keys check it here; the keyring
// checks it for the others).
StatusOr<std::uint32_t> EncryptionVersion(const keyring::KeyMetadata& meta,
                                          std::uint32_t requested) {
  if (requested == 0) return meta.latest_version;
  if (requested > meta.latest_version) {
    return InvalidArgumentError(
        "requested version for encryption is higher than the latest key version");
  }
  if (requested < meta.min_encryption_version || requested < meta.min_decryption_version) {
    return InvalidArgumentError(
        "requested version for encryption is less than the minimum encryption key version");
  }
  return requested;
}

Status CheckDecryptionVersion(const keyring::KeyMetadata& meta, std::uint32_t version,
                              std::string_view what) {
  if (version > meta.latest_version) {
    return InvalidArgumentError("invalid " + std::string(what) + ": version is too new");
  }
  if (version < meta.min_decryption_version) return InvalidArgumentError(std::string(kTooOld));
  return Status::Ok();
}

StatusOr<json> TransitBackend::Seal(const TransitKey& key, std::span<const std::uint8_t> plaintext,
                                    const Binding& binding, std::uint32_t key_version,
                                    const Request& request) {
  if (!SupportsEncryption(key.policy.type)) {
    return InvalidArgumentError("key type " + std::string(KeyTypeName(key.policy.type)) +
                                " does not support encryption");
  }
  std::string ciphertext;
  if (key.policy.convergent) {
    LOCKBOX_ASSIGN_OR_RETURN(auto meta, Metadata(key));
    LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t version, EncryptionVersion(meta, key_version));
    LOCKBOX_ASSIGN_OR_RETURN(ciphertext, SealConvergent(key, version, plaintext, binding, request));
  } else {
    auto sealed = keys_.keyring().Encrypt(key.keyring_name, plaintext, binding.KeyringContext(),
                                          key_version, Quiet(request));
    if (!sealed.ok()) return VaultCiphertextError(sealed.status());
    ciphertext = std::move(*sealed);
  }
  LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t version, VersionFromText(ciphertext));
  return json{{"ciphertext", std::move(ciphertext)}, {"key_version", version}};
}

StatusOr<crypto::SecureBuffer> TransitBackend::Open(const TransitKey& key,
                                                    std::string_view ciphertext,
                                                    const Binding& binding,
                                                    const Request& request) {
  if (!SupportsEncryption(key.policy.type)) {
    return InvalidArgumentError("key type " + std::string(KeyTypeName(key.policy.type)) +
                                " does not support decryption");
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto parsed, ParseVersioned(ciphertext, "ciphertext"));
  if (key.policy.convergent) {
    LOCKBOX_ASSIGN_OR_RETURN(auto meta, Metadata(key));
    LOCKBOX_RETURN_IF_ERROR(CheckDecryptionVersion(meta, parsed.version, "ciphertext"));
    return OpenConvergent(key, parsed.version, parsed.body, binding, request);
  }
  auto plaintext = keys_.keyring().Decrypt(key.keyring_name, ciphertext, binding.KeyringContext(),
                                           Quiet(request));
  if (!plaintext.ok()) return CiphertextError(key, parsed.version, plaintext.status());
  return plaintext;
}

Status TransitBackend::CiphertextError(const TransitKey& key, std::uint32_t version,
                                       const Status& error) {
  if (error.code() == StatusCode::kInvalidArgument) {
    if (auto meta = keys_.keyring().ReadKey(key.keyring_name); meta.ok()) {
      LOCKBOX_RETURN_IF_ERROR(CheckDecryptionVersion(*meta, version, "ciphertext"));
    }
  }
  return VaultCiphertextError(error);
}

StatusOr<Response> TransitBackend::Encrypt(const Request& request, std::string_view name) {
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(Items items, ParseItems(data));
  LOCKBOX_RETURN_IF_ERROR(CheckContextConsistency(items));
  auto key = keys_.Find(name);
  if (!key) {
    if (request.operation != Operation::kCreate) {
      return InvalidArgumentError("encryption key not found");
    }
    // Upsert (reference §1.5 step 5): derived iff a context is given. Creating takes the key
    // store's admin lock, which is held across HSM calls: a thread that must not block goes no
    // further (the request runs again where it may).
    if (blocking::RefuseToBlock()) return blocking::WouldBlockError();
    LOCKBOX_RETURN_IF_ERROR(ValidateName(name));
    LOCKBOX_ASSIGN_OR_RETURN(KeyPolicy policy,
                             ParsePolicy(data, HasText(*items.items.front(), "context")));
    auto created = keys_.Create(name, policy, request);
    if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
      return created.status();
    }
    key = created.ok() ? *created : keys_.Find(name);
    if (!key) return InvalidArgumentError("encryption key not found");
  }
  if (!items.batch && !data.contains("plaintext")) {
    return InvalidArgumentError("missing plaintext to encrypt");
  }
  audit::Event event = KeyStore::Event("encrypt", request, name);
  return AnswerItems(data, items, std::move(event), [&](const json& item) -> StatusOr<json> {
    LOCKBOX_ASSIGN_OR_RETURN(auto plaintext_b64, logical::GetString(item, "plaintext"));
    LOCKBOX_ASSIGN_OR_RETURN(auto plaintext, DecodeBase64(plaintext_b64.value_or("")));
    LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t version, KeyVersionField(item, "encryption"));
    LOCKBOX_ASSIGN_OR_RETURN(Binding binding, ParseBinding(*key, item, true));
    return Seal(*key, plaintext.span(), binding, version, request);
  });
}

StatusOr<Response> TransitBackend::Decrypt(const Request& request, const TransitKey& key) {
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(Items items, ParseItems(data));
  LOCKBOX_RETURN_IF_ERROR(CheckContextConsistency(items));
  audit::Event event = KeyStore::Event("decrypt", request, key.name);
  return AnswerItems(data, items, std::move(event), [&](const json& item) -> StatusOr<json> {
    LOCKBOX_ASSIGN_OR_RETURN(std::string ciphertext, RequiredCiphertext(item, "decrypt"));
    LOCKBOX_ASSIGN_OR_RETURN(Binding binding, ParseBinding(key, item, false));
    LOCKBOX_ASSIGN_OR_RETURN(auto plaintext, Open(key, ciphertext, binding, request));
    return json{{"plaintext", crypto::Base64Encode(plaintext.span())}};
  });
}

StatusOr<Response> TransitBackend::Rewrap(const Request& request, const TransitKey& key) {
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(Items items, ParseItems(data));
  LOCKBOX_RETURN_IF_ERROR(CheckContextConsistency(items));
  audit::Event event = KeyStore::Event("rewrap", request, key.name);
  return AnswerItems(data, items, std::move(event), [&](const json& item) -> StatusOr<json> {
    LOCKBOX_ASSIGN_OR_RETURN(std::string ciphertext, RequiredCiphertext(item, "rewrap"));
    LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t version, KeyVersionField(item, "encryption"));
    LOCKBOX_ASSIGN_OR_RETURN(Binding binding, ParseBinding(key, item, true));
    if (key.policy.convergent || !SupportsEncryption(key.policy.type)) {
      // Deterministic ciphertexts have no wrapped DEK: decrypt and seal again (the plaintext
      // stays in locked memory and is never returned).
      LOCKBOX_ASSIGN_OR_RETURN(auto plaintext, Open(key, ciphertext, binding, request));
      return Seal(key, plaintext.span(), binding, version, request);
    }
    LOCKBOX_ASSIGN_OR_RETURN(auto parsed, ParseVersioned(ciphertext, "ciphertext"));
    auto rewrapped = keys_.keyring().Rewrap(key.keyring_name, ciphertext, binding.KeyringContext(),
                                            Quiet(request), version);
    if (!rewrapped.ok()) return CiphertextError(key, parsed.version, rewrapped.status());
    LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t new_version, VersionFromText(*rewrapped));
    return json{{"ciphertext", std::move(*rewrapped)}, {"key_version", new_version}};
  });
}

StatusOr<Response> TransitBackend::DataKey(const Request& request, std::string_view kind,
                                           const TransitKey& key) {
  if (kind != "plaintext" && kind != "wrapped") {
    return InvalidArgumentError("Invalid path, must be 'plaintext' or 'wrapped'");
  }
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(auto bits, logical::GetInt(data, "bits"));
  const std::int64_t n = bits.value_or(256);
  if (n != 128 && n != 256 && n != 512) return InvalidArgumentError("invalid bit length");
  LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t version, KeyVersionField(data, "encryption"));
  LOCKBOX_ASSIGN_OR_RETURN(Binding binding, ParseBinding(key, data, true));
  crypto::SecureBuffer secret = crypto::RandomSecret(static_cast<std::size_t>(n / 8));
  LOCKBOX_ASSIGN_OR_RETURN(json body, Seal(key, secret.span(), binding, version, request));
  if (kind == "plaintext") body["plaintext"] = crypto::Base64Encode(secret.span());
  audit::Event event = KeyStore::Event("datakey", request, key.name);
  event.details["bits"] = n;
  event.details["plaintext_returned"] = kind == "plaintext";
  event.details["key_version"] = body["key_version"];
  Response resp;
  resp.data = std::move(body);
  return Recorded(std::move(resp), std::move(event));
}

// --- HMAC, signatures --------------------------------------------------------------------------

// The hash named by the URL, else by one of `fields`, else sha2-256.
StatusOr<Hash> HashParam(const json& data, std::string_view url,
                         std::initializer_list<std::string_view> fields,
                         std::string_view error_prefix) {
  std::string name(url);
  for (auto field : fields) {
    if (!name.empty()) break;
    LOCKBOX_ASSIGN_OR_RETURN(auto value, logical::GetString(data, field));
    name = value.value_or("");
  }
  if (name.empty()) name = "sha2-256";
  auto hash = ParseHash(name);
  if (!hash) return InvalidArgumentError(std::string(error_prefix) + name);
  return *hash;
}

// The version a new HMAC or signature uses (Vault checks only min_encryption_version).
StatusOr<std::uint32_t> SigningVersion(const keyring::KeyMetadata& meta, std::uint32_t requested,
                                       std::string_view what) {
  if (requested == 0) return meta.latest_version;
  if (requested > meta.latest_version) {
    return InvalidArgumentError("cannot generate " + std::string(what) + ": version is too new");
  }
  if (requested < meta.min_available_version ||
      (meta.min_encryption_version > 0 && requested < meta.min_encryption_version)) {
    return InvalidArgumentError("cannot generate " + std::string(what) +
                                ": version is too old (disallowed by policy)");
  }
  return requested;
}

StatusOr<Response> TransitBackend::Hmac(const Request& request, const TransitKey& key,
                                        std::string_view url_algorithm) {
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(Hash hash,
                           HashParam(data, url_algorithm, {"algorithm"}, "unsupported algorithm "));
  LOCKBOX_ASSIGN_OR_RETURN(Items items, ParseItems(data));
  LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t requested, KeyVersionField(data, "hmac"));
  LOCKBOX_ASSIGN_OR_RETURN(auto meta, Metadata(key));
  LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t version, SigningVersion(meta, requested, "HMAC"));
  LOCKBOX_ASSIGN_OR_RETURN(auto material, keys_.Material(key, version, request));
  LOCKBOX_ASSIGN_OR_RETURN(auto hmac_key, keys_.HmacKey(key, *material, Quiet(request)));
  if (!items.batch && !data.contains("input"))
    return InvalidArgumentError("missing input for HMAC");
  audit::Event event = KeyStore::Event("hmac", request, key.name);
  event.details["key_version"] = version;
  return AnswerItems(data, items, std::move(event), [&](const json& item) -> StatusOr<json> {
    LOCKBOX_ASSIGN_OR_RETURN(auto input, Base64Field(item, "input"));
    LOCKBOX_ASSIGN_OR_RETURN(auto mac, HmacOf(hash, hmac_key->span(), {input.span()}));
    return json{{"hmac", FormatVersioned(version, crypto::Base64Encode(mac))}};
  });
}

struct SignatureFormat {
  bool jws = false;
};

StatusOr<SignatureFormat> ParseMarshaling(const json& data) {
  LOCKBOX_ASSIGN_OR_RETURN(auto marshaling, logical::GetString(data, "marshaling_algorithm"));
  const std::string m = marshaling.value_or("asn1");
  if (m != "asn1" && m != "jws") {
    return InvalidArgumentError("invalid marshaling type \"" + m + "\"");
  }
  return SignatureFormat{m == "jws"};
}

// What a signing key signs: Ed25519 the input itself; ECDSA a digest of it, by the hash the
// request names (sha2-256 unless it says otherwise), or the input as given when it is
// `prehashed`. Ed25519 has no hash to choose (a named one does not apply, as in Vault), and
// refuses `prehashed` rather than sign a digest as if it were the message.
class SignedBytes {
 public:
  static StatusOr<SignedBytes> Parse(const TransitKey& key, const json& data,
                                     std::string_view url_hash) {
    LOCKBOX_ASSIGN_OR_RETURN(auto prehashed, logical::GetBool(data, "prehashed"));
    SignedBytes signed_bytes;
    signed_bytes.ecdsa_ = key.policy.type == KeyType::kEcdsaP256;
    signed_bytes.prehashed_ = prehashed.value_or(false);
    if (!signed_bytes.ecdsa_) {
      if (signed_bytes.prehashed_) {
        return InvalidArgumentError("prehashed input is not supported for ed25519 keys");
      }
      return signed_bytes;
    }
    LOCKBOX_ASSIGN_OR_RETURN(
        signed_bytes.hash_,
        HashParam(data, url_hash, {"hash_algorithm", "algorithm"}, "unsupported hash algorithm "));
    return signed_bytes;
  }

  bool ecdsa() const { return ecdsa_; }
  // The message (Ed25519) or the digest (ECDSA) for `input`.
  std::vector<std::uint8_t> Of(std::span<const std::uint8_t> input) const {
    if (!ecdsa_ || prehashed_) return {input.begin(), input.end()};
    return HashOf(hash_, input);
  }

 private:
  bool ecdsa_ = false;
  bool prehashed_ = false;
  Hash hash_ = Hash::kSha2_256;
};

StatusOr<Response> TransitBackend::Sign(const Request& request, const TransitKey& key,
                                        std::string_view url_algorithm) {
  const json& data = request.data;
  if (!SupportsSigning(key.policy.type)) {
    return InvalidArgumentError("key type " + std::string(KeyTypeName(key.policy.type)) +
                                " does not support signing");
  }
  LOCKBOX_ASSIGN_OR_RETURN(SignedBytes signed_bytes, SignedBytes::Parse(key, data, url_algorithm));
  LOCKBOX_ASSIGN_OR_RETURN(SignatureFormat format, ParseMarshaling(data));
  LOCKBOX_ASSIGN_OR_RETURN(Items items, ParseItems(data));
  LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t requested, KeyVersionField(data, "signing"));
  LOCKBOX_ASSIGN_OR_RETURN(auto meta, Metadata(key));
  LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t version, SigningVersion(meta, requested, "signature"));
  LOCKBOX_ASSIGN_OR_RETURN(auto material, keys_.Material(key, version, request));
  LOCKBOX_ASSIGN_OR_RETURN(auto signing_key, keys_.SigningKey(*material));
  if (!items.batch && !data.contains("input")) return InvalidArgumentError("missing input to sign");
  audit::Event event = KeyStore::Event("sign", request, key.name);
  event.details["key_version"] = version;
  return AnswerItems(data, items, std::move(event), [&](const json& item) -> StatusOr<json> {
    LOCKBOX_ASSIGN_OR_RETURN(auto input, Base64Field(item, "input"));
    const std::vector<std::uint8_t> to_sign = signed_bytes.Of(input.span());
    LOCKBOX_ASSIGN_OR_RETURN(auto raw, signed_bytes.ecdsa()
                                           ? keys_.hsm().SignDigest(signing_key, to_sign)
                                           : keys_.hsm().Sign(signing_key, to_sign));
    std::string encoded;
    if (format.jws) {
      encoded = crypto::Base64UrlEncode(raw);
    } else if (key.policy.type == KeyType::kEcdsaP256) {
      LOCKBOX_ASSIGN_OR_RETURN(auto der, EcdsaRawToDer(raw));
      encoded = crypto::Base64Encode(der);
    } else {
      encoded = crypto::Base64Encode(raw);
    }
    return json{{"signature", FormatVersioned(version, encoded)}, {"key_version", version}};
  });
}

StatusOr<Response> TransitBackend::Verify(const Request& request, const TransitKey& key,
                                          std::string_view url_algorithm) {
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(Items items, ParseItems(data));
  LOCKBOX_ASSIGN_OR_RETURN(auto meta, Metadata(key));
  audit::Event event = KeyStore::Event("verify", request, key.name);
  return AnswerItems(data, items, std::move(event), [&](const json& item) -> StatusOr<json> {
    LOCKBOX_ASSIGN_OR_RETURN(auto signature, logical::GetString(item, "signature"));
    LOCKBOX_ASSIGN_OR_RETURN(auto hmac, logical::GetString(item, "hmac"));
    const bool has_signature = signature && !signature->empty();
    const bool has_hmac = hmac && !hmac->empty();
    if (has_signature && has_hmac) {
      return InvalidArgumentError("provide one of 'signature' or 'hmac', not both");
    }
    if (!has_signature && !has_hmac) {
      return InvalidArgumentError("neither a 'signature' nor an 'hmac' were given to verify");
    }
    LOCKBOX_ASSIGN_OR_RETURN(auto input, Base64Field(item, "input"));
    if (has_hmac) {
      LOCKBOX_ASSIGN_OR_RETURN(Hash hash,
                               HashParam(data, url_algorithm, {"algorithm", "hash_algorithm"},
                                         "unsupported algorithm "));
      LOCKBOX_ASSIGN_OR_RETURN(auto parsed, ParseVersioned(*hmac, "hmac"));
      LOCKBOX_RETURN_IF_ERROR(CheckDecryptionVersion(meta, parsed.version, "hmac"));
      auto given = crypto::Base64Decode(parsed.body);
      if (!given.ok()) return InvalidArgumentError("invalid hmac: could not decode base64");
      LOCKBOX_ASSIGN_OR_RETURN(auto material, keys_.Material(key, parsed.version, request));
      LOCKBOX_ASSIGN_OR_RETURN(auto hmac_key, keys_.HmacKey(key, *material, Quiet(request)));
      LOCKBOX_ASSIGN_OR_RETURN(auto mac, HmacOf(hash, hmac_key->span(), {input.span()}));
      return json{{"valid", crypto::ConstantTimeEquals(mac, *given)}};
    }
    if (!SupportsSigning(key.policy.type)) {
      return InvalidArgumentError("key type " + std::string(KeyTypeName(key.policy.type)) +
                                  " does not support verification");
    }
    LOCKBOX_ASSIGN_OR_RETURN(SignedBytes signed_bytes,
                             SignedBytes::Parse(key, data, url_algorithm));
    LOCKBOX_ASSIGN_OR_RETURN(SignatureFormat format, ParseMarshaling(data));
    LOCKBOX_ASSIGN_OR_RETURN(auto parsed, ParseVersioned(*signature, "signature"));
    LOCKBOX_RETURN_IF_ERROR(CheckDecryptionVersion(meta, parsed.version, "signature"));
    auto sig =
        format.jws ? crypto::Base64UrlDecode(parsed.body) : crypto::Base64Decode(parsed.body);
    if (!sig.ok()) return InvalidArgumentError("invalid base64 signature value");
    LOCKBOX_ASSIGN_OR_RETURN(auto material, keys_.Material(key, parsed.version, request));
    LOCKBOX_ASSIGN_OR_RETURN(auto public_key, keys_.VerifyKey(*material));
    const std::vector<std::uint8_t> signed_input = signed_bytes.Of(input.span());
    const auto ecdsa_format =
        format.jws ? crypto::EcdsaSignatureFormat::kRawRS : crypto::EcdsaSignatureFormat::kDer;
    Status verified =
        signed_bytes.ecdsa()
            ? public_key.VerifyEcdsaDigest(signed_input, *sig, ecdsa_format)
            : public_key.Verify(crypto::SignatureAlgorithm::kEd25519, signed_input, *sig);
    if (!verified.ok() && verified.code() != StatusCode::kDataLoss) return verified;
    return json{{"valid", verified.ok()}};
  });
}

// --- random, hash ------------------------------------------------------------------------------

StatusOr<std::string> EncodeAs(std::string_view format, std::span<const std::uint8_t> bytes) {
  if (format == "hex") return crypto::HexEncode(bytes);
  if (format == "base64") return crypto::Base64Encode(bytes);
  return InvalidArgumentError("unsupported encoding format \"" + std::string(format) +
                              "\"; must be \"hex\" or \"base64\"");
}

std::optional<std::int64_t> ParseCount(std::string_view text) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

StatusOr<Response> TransitBackend::Random(const Request& request,
                                          std::span<const std::string_view> params) {
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(auto body_bytes, logical::GetInt(data, "bytes"));
  std::int64_t bytes = body_bytes.value_or(32);
  std::string source = "platform";
  auto is_source = [](std::string_view s) { return s == "platform" || s == "seal" || s == "all"; };
  std::string_view count_text;
  if (params.size() == 1) {
    if (is_source(params[0])) {
      source = std::string(params[0]);
    } else {
      count_text = params[0];
    }
  } else if (params.size() == 2) {
    source = std::string(params[0]);
    count_text = params[1];
  }
  if (!count_text.empty()) {
    auto count = ParseCount(count_text);
    if (!count) {
      return InvalidArgumentError("error parsing url-set byte count: invalid syntax");
    }
    bytes = *count;
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto format, logical::GetString(data, "format"));
  if (bytes < 1) return InvalidArgumentError("\"bytes\" cannot be less than 1");
  if (bytes > kMaxRandomBytes) {
    return InvalidArgumentError("\"bytes\" should be less than " + std::to_string(kMaxRandomBytes));
  }
  if (!is_source(source)) {
    return InvalidArgumentError("unsupported entropy source \"" + source +
                                "\"; must be \"platform\" or \"seal\", or \"all\"");
  }
  // One CSPRNG serves every source: the platform DRBG (the HSM adds no entropy we could mix
  // in without another round trip per request).
  const auto random = crypto::RandomVector(static_cast<std::size_t>(bytes));
  LOCKBOX_ASSIGN_OR_RETURN(std::string encoded, EncodeAs(format.value_or("base64"), random));
  Response resp;
  resp.data = json{{"random_bytes", std::move(encoded)}};
  audit::Event event = KeyStore::Event("random", request, "");
  event.details["bytes"] = bytes;
  return Recorded(std::move(resp), std::move(event));
}

StatusOr<Response> TransitBackend::HashData(const Request& request,
                                            std::string_view url_algorithm) {
  const json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(Hash hash,
                           HashParam(data, url_algorithm, {"algorithm"}, "unsupported algorithm "));
  LOCKBOX_ASSIGN_OR_RETURN(auto input_b64, logical::GetString(data, "input"));
  auto input = DecodeBase64(input_b64.value_or(""));
  if (!input.ok()) {
    return InvalidArgumentError("unable to decode input as base64: " + input.status().message());
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto format, logical::GetString(data, "format"));
  LOCKBOX_ASSIGN_OR_RETURN(std::string sum,
                           EncodeAs(format.value_or("hex"), HashOf(hash, input->span())));
  Response resp;
  resp.data = json{{"sum", std::move(sum)}};
  return Recorded(std::move(resp), KeyStore::Event("hash", request, ""));
}

}  // namespace

std::string TransitKeyringName(const logical::MountEntry& entry, std::string_view name) {
  return "transit/" + entry.uuid + "/" + std::string(name);
}

StatusOr<std::unique_ptr<logical::Backend>> NewTransitBackend(const logical::MountEntry& entry,
                                                              keyring::Keyring& keyring,
                                                              hsm::Hsm& hsm, store::Store& store,
                                                              audit_log::EventLog& events,
                                                              TransitOptions options) {
  if (entry.uuid.empty()) return InvalidArgumentError("transit mount without a uuid");
  auto backend =
      std::make_unique<TransitBackend>(entry, keyring, hsm, store, events, std::move(options));
  LOCKBOX_RETURN_IF_ERROR(backend->Load());
  return std::unique_ptr<logical::Backend>(std::move(backend));
}

std::vector<store::Migration> TransitMigrations() {
  return {{"transit", 1, R"sql(
CREATE TABLE transit_keys (
  mount_uuid TEXT NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  derived INTEGER NOT NULL,
  convergent INTEGER NOT NULL,
  hmac_key_size INTEGER NOT NULL,
  deletion_allowed INTEGER NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY (mount_uuid, name)
);
CREATE TABLE transit_versions (
  mount_uuid TEXT NOT NULL,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  hmac_secret TEXT NOT NULL,
  convergent_secret TEXT NOT NULL,
  signing_label TEXT NOT NULL,
  public_key TEXT NOT NULL,
  PRIMARY KEY (mount_uuid, name, version)
);
)sql"}};
}

}  // namespace lockbox::transit
