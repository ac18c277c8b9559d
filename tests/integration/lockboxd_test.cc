// The real lockboxd, started as a child process with --config: start-up, the start checkpoint
// delivered to a file sink, graceful shutdown on SIGTERM/SIGINT with the "stop" checkpoint
// delivered and verifiable with lockbox-audit; bad configuration → exit 2 naming the field;
// --dev serves the API and keeps its state across restarts.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "audit/checkpoint.h"
#include "crypto/jws.h"
#include "crypto/signature.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace lockbox {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kStartDeadline = 60s;
constexpr auto kExitDeadline = 30s;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// A child process with stdout and stderr redirected to files.
class Child {
 public:
  Child(std::vector<std::string> args, const std::string& stdout_path,
        const std::string& stderr_path)
      : stdout_path_(stdout_path), stderr_path_(stderr_path) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    // The child starts with no signals blocked (gtest's threads do not matter here).
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    const int rc = posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = -1;
  }
  ~Child() {
    if (pid_ > 0 && !status_.has_value()) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // True once the child has exited (reaps it).
  bool Exited() {
    if (status_.has_value()) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
    return status_.has_value();
  }
  // Waits (bounded) for the exit; the exit code, or -1 on timeout or abnormal termination.
  int WaitExit(std::chrono::steady_clock::duration deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!Exited()) {
      if (std::chrono::steady_clock::now() > until) return -1;
      std::this_thread::sleep_for(10ms);
    }
    return WIFEXITED(*status_) ? WEXITSTATUS(*status_) : -1;
  }
  std::string Stdout() const { return ReadFile(stdout_path_); }
  std::string Stderr() const { return ReadFile(stderr_path_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string stdout_path_;
  std::string stderr_path_;
};

// Runs a command to completion (bounded); its exit code, or -1.
int RunToExit(std::vector<std::string> args, const testing::TempDir& dir,
              std::string* out = nullptr) {
  Child child(std::move(args), dir.file("run.out"), dir.file("run.err"));
  if (!child.started()) return -1;
  const int code = child.WaitExit(kExitDeadline);
  if (out != nullptr) *out = child.Stdout() + child.Stderr();
  return code;
}

// The JWS of a {"checkpoint": "<jws>"} line, or "" for an event line.
std::string CheckpointJws(const std::string& line) {
  const json j = json::parse(line, nullptr, false);
  if (!j.is_object() || !j.contains("checkpoint") || !j["checkpoint"].is_string()) return "";
  return j["checkpoint"].get<std::string>();
}

// The payload "kind" of a checkpoint JWS ("" if not decodable).
std::string CheckpointKindOf(const std::string& jws) {
  auto parts = crypto::ParseJwsCompact(jws);
  if (!parts.ok()) return "";
  const json payload = json::parse(parts->payload.begin(), parts->payload.end(), nullptr, false);
  if (!payload.is_object() || !payload.contains("kind") || !payload["kind"].is_string()) return "";
  return payload["kind"].get<std::string>();
}

std::size_t CountStartCheckpoints(const std::string& sink_path) {
  std::size_t n = 0;
  for (const auto& line : Lines(ReadFile(sink_path))) {
    if (CheckpointKindOf(CheckpointJws(line)) == "start") ++n;
  }
  return n;
}

class LockboxdTest : public ::testing::Test {
 protected:
  std::filesystem::path data_dir() const { return dir_.path() / "data"; }
  std::string sink_path() const { return dir_.file("siem.jsonl"); }
  std::string pem_path() const { return (data_dir() / "audit-public-key.pem").string(); }

  std::string WriteConfig(const json& config) {
    const std::string path = dir_.file("lockbox.json");
    std::ofstream(path) << config.dump(2);
    return path;
  }
  json GoodConfig() const {
    return json{
        {"listener", {{"address", "127.0.0.1:0"}, {"tls_disable", true}}},
        {"storage", {{"path", data_dir().string()}}},
        {"audit",
         {{"checkpoint_interval", "200ms"},
          {"sinks", json::array({{{"name", "local"}, {"type", "file"}, {"path", sink_path()}}})}}}};
  }

  // Starts lockboxd and waits (bounded) until it published its key and the sink has its start
  // checkpoint (the `run`-th one: earlier runs on the same data dir left theirs).
  std::unique_ptr<Child> StartServer(std::size_t run = 1) {
    const std::string config = WriteConfig(GoodConfig());
    auto child =
        std::make_unique<Child>(std::vector<std::string>{LOCKBOXD_PATH, "--config", config},
                                dir_.file("lockboxd.out"), dir_.file("lockboxd.err"));
    EXPECT_TRUE(child->started());
    if (!child->started()) return nullptr;
    const auto until = std::chrono::steady_clock::now() + kStartDeadline;
    // A fresh data dir is uninitialized until PUT sys/init, which brings the audit log up.
    const std::string address = WaitForAddress(*child, until);
    if (address.empty()) return nullptr;
    if (run == 1) {
      httplib::Client client(address);
      auto response = client.Put("/v1/sys/init", R"({"secret_shares":1,"secret_threshold":1})",
                                 "application/json");
      EXPECT_TRUE(response && response->status == 200)
          << (response ? response->body : "no response");
      if (!response || response->status != 200) return nullptr;
    }
    while (!(std::filesystem::exists(pem_path()) && CountStartCheckpoints(sink_path()) >= run)) {
      if (child->Exited()) {
        ADD_FAILURE() << "lockboxd exited during start-up: " << child->Stderr();
        return nullptr;
      }
      if (std::chrono::steady_clock::now() > until) {
        ADD_FAILURE() << "lockboxd did not start in time: " << child->Stderr();
        return nullptr;
      }
      std::this_thread::sleep_for(20ms);
    }
    return child;
  }

  // The "Api Address: http://127.0.0.1:PORT" line lockboxd prints once it listens.
  static std::string WaitForAddress(Child& child, std::chrono::steady_clock::time_point until) {
    constexpr std::string_view kPrefix = "Api Address: ";
    while (std::chrono::steady_clock::now() < until) {
      const std::string out = child.Stdout();
      if (const auto at = out.find(kPrefix); at != std::string::npos) {
        const auto end = out.find('\n', at);
        if (end != std::string::npos)
          return out.substr(at + kPrefix.size(), end - at - kPrefix.size());
      }
      if (child.Exited()) break;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "lockboxd printed no address: " << child.Stderr();
    return {};
  }

  // After a clean shutdown: the sink's last line is a valid "stop" checkpoint, and the stream
  // and the database both verify with lockbox-audit.
  void ExpectStoppedCleanly() {
    const auto lines = Lines(ReadFile(sink_path()));
    ASSERT_FALSE(lines.empty());
    const std::string jws = CheckpointJws(lines.back());
    ASSERT_FALSE(jws.empty()) << "last sink line is not a checkpoint: " << lines.back();
    EXPECT_EQ(CheckpointKindOf(jws), "stop");
    auto key = crypto::PublicKey::FromPem(ReadFile(pem_path()));
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    auto checkpoint = audit::VerifyCheckpoint(jws, *key);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
    EXPECT_EQ(checkpoint->kind, audit::CheckpointKind::kStop);

    std::string output;
    EXPECT_EQ(RunToExit({LOCKBOX_AUDIT_PATH, "verify", "--jsonl", sink_path(), "--public-key",
                         pem_path()},
                        dir_, &output),
              0)
        << output;
    EXPECT_EQ(RunToExit({LOCKBOX_AUDIT_PATH, "verify", "--db", (data_dir() / "lockbox.db").string(),
                         "--public-key", pem_path()},
                        dir_, &output),
              0)
        << output;
  }

  testing::TempDir dir_;
};

TEST_F(LockboxdTest, RunsUntilSigtermThenWritesAndDeliversTheStopCheckpoint) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_FALSE(server->Exited());
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
  EXPECT_EQ(server->WaitExit(kExitDeadline), 0) << server->Stderr();
  const std::string out = server->Stdout();
  EXPECT_NE(out.find("lockboxd: running (data dir "), std::string::npos) << out;
  EXPECT_NE(out.find("1 audit sinks"), std::string::npos) << out;
  ExpectStoppedCleanly();
}

TEST_F(LockboxdTest, SigintAlsoShutsDownCleanlyAndARestartContinuesTheLog) {
  {
    auto server = StartServer();
    ASSERT_NE(server, nullptr);
    ASSERT_EQ(kill(server->pid(), SIGINT), 0);
    EXPECT_EQ(server->WaitExit(kExitDeadline), 0) << server->Stderr();
  }
  ExpectStoppedCleanly();
  const std::size_t first_run_lines = Lines(ReadFile(sink_path())).size();
  {
    // Second start on the same data dir reuses the token and the log; its sink cursor resumes.
    auto server = StartServer(/*run=*/2);
    ASSERT_NE(server, nullptr);
    ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
    EXPECT_EQ(server->WaitExit(kExitDeadline), 0) << server->Stderr();
  }
  EXPECT_GT(Lines(ReadFile(sink_path())).size(), first_run_lines);
  ExpectStoppedCleanly();
}

TEST_F(LockboxdTest, BadConfigExitsTwoNamingTheField) {
  json config = GoodConfig();
  config["listner"] = json::object();
  const std::string path = WriteConfig(config);
  Child child({LOCKBOXD_PATH, "--config", path}, dir_.file("bad.out"), dir_.file("bad.err"));
  ASSERT_TRUE(child.started());
  EXPECT_EQ(child.WaitExit(kExitDeadline), 2);
  EXPECT_NE(child.Stderr().find("unknown field 'listner'"), std::string::npos) << child.Stderr();
  EXPECT_FALSE(std::filesystem::exists(data_dir()));  // nothing was created

  config = GoodConfig();
  config["listener"]["address"] = "0.0.0.0:8200";
  WriteConfig(config);
  Child second({LOCKBOXD_PATH, "--config", path}, dir_.file("bad.out"), dir_.file("bad.err"));
  ASSERT_TRUE(second.started());
  EXPECT_EQ(second.WaitExit(kExitDeadline), 2);
  EXPECT_NE(second.Stderr().find("listener.tls_disable: only allowed on a loopback address"),
            std::string::npos)
      << second.Stderr();
}

TEST_F(LockboxdTest, DevModeServesAndKeepsItsStateAcrossRestarts) {
  const std::string dir = data_dir().string();
  std::string first_token;
  for (int run = 0; run < 2; ++run) {
    Child child({LOCKBOXD_PATH, "--dev", "--data-dir", dir, "--dev-listen-address", "127.0.0.1:0"},
                dir_.file("dev.out"), dir_.file("dev.err"));
    ASSERT_TRUE(child.started());
    const std::string address =
        WaitForAddress(child, std::chrono::steady_clock::now() + kStartDeadline);
    ASSERT_FALSE(address.empty());
    const std::string out = child.Stdout();
    const auto at = out.find("Root Token: ");
    ASSERT_NE(at, std::string::npos) << out;
    const std::string token = out.substr(at + 12, out.find('\n', at) - at - 12);
    EXPECT_EQ(token.rfind("lbx.", 0), 0u) << token;
    if (run == 0) first_token = token;
    EXPECT_EQ(token, first_token) << "the second start reuses the first start's root token";

    httplib::Client client(address);
    auto health = client.Get("/v1/sys/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    auto mounts = client.Get("/v1/sys/mounts", {{"X-Vault-Token", token}});
    ASSERT_TRUE(mounts);
    EXPECT_EQ(mounts->status, 200);
    EXPECT_TRUE(json::parse(mounts->body)["data"].contains("secret/")) << mounts->body;
    ASSERT_EQ(kill(child.pid(), SIGTERM), 0);
    EXPECT_EQ(child.WaitExit(kExitDeadline), 0) << child.Stderr();
  }
}

}  // namespace
}  // namespace lockbox
