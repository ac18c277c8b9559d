// lockbox-audit: the auditor's offline verifier of a Lockbox audit log (DESIGN.md §7).
//
//   lockbox-audit verify --db FILE    --public-key FILE [--trusted-checkpoint FILE]
//   lockbox-audit verify --jsonl FILE --public-key FILE [--trusted-checkpoint FILE] [--partial]
//   lockbox-audit export --db FILE [--from SEQ]
//
// verify checks canonical encoding, seq continuity, every chain hash (and the stored one in a
// database), every checkpoint signature, that the log reaches its newest checkpoint and, with
// --trusted-checkpoint, that the log still holds that checkpoint's seq with its hash (no
// truncation, no fork). The public key is a PEM SubjectPublicKeyInfo or a JWK (a single key or a
// JWKS holding one key); the trusted checkpoint is a JSONL checkpoint line or the bare JWS.
// --partial accepts a JSONL slice that starts at a signed checkpoint (export --from).
// Exit codes: 0 valid (one summary line on stdout), 1 verification failed ("FAIL: ..." on
// stdout), 2 usage error or unreadable input (message on stderr).
// Links audit/ and crypto/ only; the database is opened read-only.
#include <charconv>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/checkpoint.h"
#include "audit/verifier.h"
#include "crypto/jwk.h"
#include "crypto/signature.h"

namespace {

using lockbox::Status;
using lockbox::StatusCode;
using lockbox::StatusOr;

constexpr int kExitOk = 0;
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;

constexpr std::size_t kMaxSmallFile = 1 << 20;

void Usage() {
  std::cerr << "usage:\n"
               "  lockbox-audit verify --db FILE --public-key FILE [--trusted-checkpoint FILE]\n"
               "  lockbox-audit verify --jsonl FILE --public-key FILE [--trusted-checkpoint FILE]"
               " [--partial]\n"
               "  lockbox-audit export --db FILE [--from SEQ]\n";
}

StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return lockbox::UnavailableError("cannot read '" + path + "'");
  std::string data;
  char buf[4096];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    data.append(buf, static_cast<std::size_t>(in.gcount()));
    if (data.size() > kMaxSmallFile)
      return lockbox::InvalidArgumentError("'" + path + "' too large");
  }
  if (in.bad()) return lockbox::UnavailableError("cannot read '" + path + "'");
  return data;
}

std::string_view TrimTrailingNewline(std::string_view s) {
  if (s.ends_with('\n')) s.remove_suffix(1);
  if (s.ends_with('\r')) s.remove_suffix(1);
  return s;
}

StatusOr<lockbox::crypto::PublicKey> LoadPublicKey(const std::string& path) {
  LOCKBOX_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  if (text.find("-----BEGIN") != std::string::npos) {
    return lockbox::crypto::PublicKey::FromPem(text);
  }
  nlohmann::json jwk = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (jwk.is_discarded() || !jwk.is_object()) {
    return lockbox::InvalidArgumentError("public key file is neither PEM nor JWK JSON");
  }
  if (auto keys = jwk.find("keys"); keys != jwk.end()) {
    if (!keys->is_array() || keys->size() != 1) {
      return lockbox::InvalidArgumentError("a JWKS public key file must hold exactly one key");
    }
    jwk = (*keys)[0];
  }
  return lockbox::crypto::PublicKeyFromJwk(jwk);
}

StatusOr<std::string> LoadTrustedCheckpoint(const std::string& path) {
  LOCKBOX_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  const std::string_view body = TrimTrailingNewline(text);
  if (body.starts_with("{")) {
    nlohmann::json line = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!line.is_object() || line.size() != 1 || !line.contains("checkpoint") ||
        !line["checkpoint"].is_string()) {
      return lockbox::InvalidArgumentError("trusted checkpoint file is not a checkpoint line");
    }
    return line["checkpoint"].get<std::string>();
  }
  if (body.empty() || body.find_first_of(" \t\r\n") != std::string_view::npos) {
    return lockbox::InvalidArgumentError("trusted checkpoint file is not a compact JWS");
  }
  return std::string(body);
}

struct Args {
  std::string command;
  std::map<std::string, std::string> options;
  bool partial = false;
};

std::optional<Args> ParseArgs(int argc, char** argv) {
  if (argc < 2) return std::nullopt;
  Args args;
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string name = argv[i];
    if (name == "--partial") {
      args.partial = true;
      continue;
    }
    if (!name.starts_with("--") || i + 1 >= argc) return std::nullopt;
    if (!args.options.emplace(name.substr(2), argv[++i]).second) return std::nullopt;
  }
  return args;
}

bool OnlyOptions(const Args& args, std::initializer_list<std::string_view> allowed) {
  for (const auto& [name, value] : args.options) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) return false;
  }
  return true;
}

int ReportInputError(const Status& status) {
  std::cerr << "lockbox-audit: " << status.message() << "\n";
  return kExitUsage;
}

int Verify(const Args& args) {
  const bool db = args.options.contains("db");
  const bool jsonl = args.options.contains("jsonl");
  if (db == jsonl || !args.options.contains("public-key") ||
      !OnlyOptions(args, {"db", "jsonl", "public-key", "trusted-checkpoint"}) ||
      (db && args.partial)) {
    Usage();
    return kExitUsage;
  }
  auto key = LoadPublicKey(args.options.at("public-key"));
  if (!key.ok()) return ReportInputError(key.status().WithContext("public key"));
  std::optional<std::string> trusted;
  if (auto it = args.options.find("trusted-checkpoint"); it != args.options.end()) {
    auto jws = LoadTrustedCheckpoint(it->second);
    if (!jws.ok()) return ReportInputError(jws.status());
    trusted = std::move(jws).value();
  }
  StatusOr<lockbox::audit::VerifySummary> summary = lockbox::InternalError("not run");
  if (db) {
    const std::string& path = args.options.at("db");
    std::ifstream probe(path, std::ios::binary);
    if (!probe) return ReportInputError(lockbox::UnavailableError("cannot read '" + path + "'"));
    summary = lockbox::audit::VerifyDatabase(path, *key, std::move(trusted));
  } else {
    const std::string& path = args.options.at("jsonl");
    std::ifstream in(path, std::ios::binary);
    if (!in) return ReportInputError(lockbox::UnavailableError("cannot read '" + path + "'"));
    summary = lockbox::audit::VerifyJsonl(in, *key, std::move(trusted), args.partial);
  }
  if (!summary.ok()) {
    if (summary.status().code() != StatusCode::kDataLoss) {
      return ReportInputError(summary.status());
    }
    std::cout << "FAIL: " << summary.status().message() << "\n";
    return kExitFail;
  }
  std::cout << "OK: " << summary->events << " events, seq " << summary->first_seq << ".."
            << summary->last_seq << ", " << summary->checkpoints << " checkpoints, head "
            << lockbox::audit::HashToHex(summary->head) << "\n";
  return kExitOk;
}

int Export(const Args& args) {
  if (!args.options.contains("db") || !OnlyOptions(args, {"db", "from"}) || args.partial) {
    Usage();
    return kExitUsage;
  }
  std::uint64_t from = 1;
  if (auto it = args.options.find("from"); it != args.options.end()) {
    const std::string& s = it->second;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), from);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
      Usage();
      return kExitUsage;
    }
  }
  const std::string& path = args.options.at("db");
  std::ifstream probe(path, std::ios::binary);
  if (!probe) return ReportInputError(lockbox::UnavailableError("cannot read '" + path + "'"));
  Status status = lockbox::audit::ExportJsonl(path, from, std::cout);
  if (!status.ok()) return ReportInputError(status);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  auto args = ParseArgs(argc, argv);
  if (!args.has_value()) {
    Usage();
    return kExitUsage;
  }
  if (args->command == "verify") return Verify(*args);
  if (args->command == "export") return Export(*args);
  Usage();
  return kExitUsage;
}
