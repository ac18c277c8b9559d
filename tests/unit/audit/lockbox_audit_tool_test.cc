// Runs the real lockbox-audit binary on real database files.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>

#include "audit/chain.h"
#include "crypto/jwk.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/audit/audit_test_util.h"

namespace lockbox::audit {
namespace {

using testing::ReadFile;
using testing::SoftwareSigner;
using testing::TestLog;
using testing::WriteFile;

struct ToolRun {
  int exit_code;
  std::string out;
  std::string err;
};

class ToolTest : public ::testing::Test {
 protected:
  ToolTest() : signer_(crypto::SignatureAlgorithm::kEcdsaP256Sha256) {
    log_ = std::make_unique<TestLog>(dir_.file("audit.db"), "log-tool");
    log_->AppendCheckpoint(CheckpointKind::kStart, signer_);
    log_->AppendEvents(120, 40, signer_);  // checkpoints at 0, 40, 80, 120
    WriteFile(dir_.file("key.pem"), signer_.public_key().ToPem());
    nlohmann::json jwk = *crypto::PublicKeyToJwk(signer_.public_key());
    jwk["kid"] = "lockbox/audit/v1";
    WriteFile(dir_.file("key.jwk"), jwk.dump());
    WriteFile(dir_.file("keys.jwks"), nlohmann::json{{"keys", {jwk}}}.dump());
  }

  ToolRun Tool(const std::string& args) {
    const std::string out = dir_.file("stdout"), err = dir_.file("stderr");
    const std::string cmd = std::string(LOCKBOX_AUDIT_TOOL) + " " + args + " >" + out + " 2>" + err;
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(out), ReadFile(err)};
  }

  std::string Summary(std::uint64_t events, std::uint64_t first, std::uint64_t last,
                      std::uint64_t checkpoints) {
    return "OK: " + std::to_string(events) + " events, seq " + std::to_string(first) + ".." +
           std::to_string(last) + ", " + std::to_string(checkpoints) + " checkpoints, head " +
           HashToHex(log_->head()) + "\n";
  }

  lockbox::testing::TempDir dir_;
  SoftwareSigner signer_;
  std::unique_ptr<TestLog> log_;
};

TEST_F(ToolTest, VerifyDatabaseAndExport) {
  const std::string db = log_->path();
  const std::string ok = Summary(120, 1, 120, 4);
  for (const char* key : {"key.pem", "key.jwk", "keys.jwks"}) {
    ToolRun r = Tool("verify --db " + db + " --public-key " + dir_.file(key));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, ok);
  }
  ToolRun exported = Tool("export --db " + db);
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_EQ(exported.out, testing::ExportToString(db));
  WriteFile(dir_.file("all.jsonl"), exported.out);
  ToolRun js =
      Tool("verify --jsonl " + dir_.file("all.jsonl") + " --public-key " + dir_.file("key.pem"));
  EXPECT_EQ(js.exit_code, 0) << js.err;
  EXPECT_EQ(js.out, ok);

  // Any checkpoint line alone (trailing newline included) is a trusted checkpoint; so is the JWS.
  int lines = 0;
  for (const auto& line : testing::SplitLines(exported.out)) {
    if (!line.starts_with("{\"checkpoint\"")) continue;
    WriteFile(dir_.file("trusted.jsonl"), line + "\n");
    WriteFile(dir_.file("trusted.jws"), std::string(nlohmann::json::parse(line)["checkpoint"]));
    for (const char* t : {"trusted.jsonl", "trusted.jws"}) {
      ToolRun r = Tool("verify --db " + db + " --public-key " + dir_.file("key.pem") +
                       " --trusted-checkpoint " + dir_.file(t));
      EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
      EXPECT_EQ(r.out, ok);
    }
    ++lines;
  }
  EXPECT_EQ(lines, 4);

  // export --from: a verifiable slice from the checkpoint at 80.
  ToolRun from = Tool("export --db " + db + " --from 100");
  ASSERT_EQ(from.exit_code, 0);
  WriteFile(dir_.file("from.jsonl"), from.out);
  EXPECT_EQ(testing::SplitLines(from.out).size(), 40u + 2);
  ToolRun partial = Tool("verify --jsonl " + dir_.file("from.jsonl") + " --public-key " +
                         dir_.file("key.pem") + " --partial");
  EXPECT_EQ(partial.exit_code, 0) << partial.out << partial.err;
  EXPECT_EQ(partial.out, Summary(40, 81, 120, 2));
  ToolRun whole =
      Tool("verify --jsonl " + dir_.file("from.jsonl") + " --public-key " + dir_.file("key.pem"));
  EXPECT_EQ(whole.exit_code, 1);
  EXPECT_EQ(whole.out, "FAIL: seq 81: expected seq 1\n");
}

TEST_F(ToolTest, DetectsTamperingWithExitOne) {
  const std::string db = log_->path();
  WriteFile(dir_.file("trusted.jsonl"),
            testing::SplitLines(testing::ExportToString(db)).back() + "\n");
  log_->Exec(
      "UPDATE audit_records SET body = replace(body, '\"req-57\"', '\"req-5X\"') "
      "WHERE kind = 'event' AND seq = 57");
  ToolRun r = Tool("verify --db " + db + " --public-key " + dir_.file("key.pem"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "FAIL: seq 57: hash mismatch\n");
  // Truncation against the trusted checkpoint.
  log_->Exec("DELETE FROM audit_records WHERE seq > 80");
  r = Tool("verify --db " + db + " --public-key " + dir_.file("key.pem"));
  EXPECT_EQ(r.exit_code, 1);  // still the changed event
  log_->Exec("DELETE FROM audit_records WHERE seq >= 57");
  r = Tool("verify --db " + db + " --public-key " + dir_.file("key.pem"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = Tool("verify --db " + db + " --public-key " + dir_.file("key.pem") +
           " --trusted-checkpoint " + dir_.file("trusted.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "FAIL: trusted checkpoint at seq 120 is beyond the end of the log (seq 56)\n");
}

TEST_F(ToolTest, UsageAndUnreadableInputExitTwo) {
  const std::string db = log_->path();
  const std::string key = " --public-key " + dir_.file("key.pem");
  WriteFile(dir_.file("junk"), "not a key");
  for (const std::string& args : {
           std::string(""),
           std::string("frobnicate --db ") + db,
           "verify --db " + db,
           "verify --db " + db + " --jsonl " + db + key,
           "verify --db " + dir_.file("missing.db") + key,
           "verify --jsonl " + dir_.file("missing.jsonl") + key,
           "verify --db " + db + " --public-key " + dir_.file("junk"),
           "verify --db " + db + " --public-key " + dir_.file("missing.pem"),
           "verify --db " + db + key + " --trusted-checkpoint " + dir_.file("missing"),
           "verify --db " + db + key + " --bogus 1",
           std::string("export"),
           "export --db " + db + " --from x",
           "export --db " + dir_.file("missing.db"),
       }) {
    ToolRun r = Tool(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    EXPECT_FALSE(r.err.empty()) << args;
    EXPECT_TRUE(r.out.empty()) << args;
  }
}

}  // namespace
}  // namespace lockbox::audit
