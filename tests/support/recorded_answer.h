// What the router does with a backend's answer before it leaves (server/core): a read's event
// (Response::event) is recorded durably first, and an answer whose record fails becomes
// UNAVAILABLE. Engine tests call backends directly and use this to see the same audit log, and
// the answer's data as a client would (data_text parsed into data).
#pragma once

#include "crypto/status.h"
#include "server/audit_log/event_log.h"
#include "server/logical/logical.h"

namespace lockbox::testing {

inline StatusOr<logical::Response> RecordedAnswer(StatusOr<logical::Response> answer,
                                                  audit_log::EventLog& events) {
  if (answer.ok() && answer->data_text) {
    answer->data = nlohmann::json::parse(*answer->data_text);
    answer->data_text.reset();
  }
  if (!answer.ok() || !answer->event) return answer;
  if (Status s = events.Record(std::move(*answer->event)); !s.ok()) {
    return UnavailableError("audit log unavailable: " + s.message());
  }
  answer->event.reset();
  answer->audited = true;
  return answer;
}

}  // namespace lockbox::testing
