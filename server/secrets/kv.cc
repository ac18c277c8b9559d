#include "server/secrets/kv.h"

#include <utility>

#include "server/secrets/kv_internal.h"

namespace lockbox::secrets {

std::string KvStorageKeyName(const logical::MountEntry& entry) { return "kv/" + entry.uuid; }

StatusOr<std::unique_ptr<logical::Backend>> NewKvBackend(const logical::MountEntry& entry,
                                                         keyring::Keyring& keyring,
                                                         store::Store& store,
                                                         audit_log::EventLog& events,
                                                         KvOptions options) {
  if (entry.uuid.empty()) return InvalidArgumentError("kv: the mount has no uuid");
  const auto version = entry.options.find("version");
  const std::string v = version == entry.options.end() ? "" : version->second;
  if (v != "" && v != "1" && v != "2") {
    return InvalidArgumentError("kv: unsupported version \"" + v + "\" (1 or 2)");
  }
  // The storage key is made when the mount is; loading an existing mount finds it.
  const std::string key_name = KvStorageKeyName(entry);
  if (auto key = keyring.ReadKey(key_name); !key.ok()) {
    if (key.status().code() != StatusCode::kNotFound) return key.status();
    if (Status s = keyring.CreateKey(key_name); !s.ok() && s.code() != StatusCode::kAlreadyExists) {
      return s;
    }
  }
  if (v == "2") {
    return internal::NewKvV2Backend(entry, keyring, store, events, std::move(options));
  }
  return internal::NewKvV1Backend(entry, keyring, store, events, std::move(options));
}

std::vector<store::Migration> KvMigrations() {
  return {{"kv", 1, R"sql(
CREATE TABLE kv_config (
  mount TEXT PRIMARY KEY,
  max_versions INTEGER NOT NULL,
  cas_required INTEGER NOT NULL,
  delete_version_after INTEGER NOT NULL
);
CREATE TABLE kv_metadata (
  mount TEXT NOT NULL,
  path TEXT NOT NULL,
  max_versions INTEGER NOT NULL,
  cas_required INTEGER NOT NULL,
  delete_version_after INTEGER NOT NULL,
  custom_metadata TEXT,
  current_version INTEGER NOT NULL,
  oldest_version INTEGER NOT NULL,
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  PRIMARY KEY (mount, path)
);
CREATE TABLE kv_versions (
  mount TEXT NOT NULL,
  path TEXT NOT NULL,
  version INTEGER NOT NULL,
  created INTEGER NOT NULL,
  deletion_time INTEGER,
  destroyed INTEGER NOT NULL,
  ciphertext TEXT,
  PRIMARY KEY (mount, path, version)
);
CREATE TABLE kv_v1_entries (
  mount TEXT NOT NULL,
  path TEXT NOT NULL,
  ciphertext TEXT NOT NULL,
  PRIMARY KEY (mount, path)
);
)sql"}};
}

}  // namespace lockbox::secrets
