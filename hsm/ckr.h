// PKCS#11 return values (CK_RV) as names and as Lockbox Status codes.
// Declared with `unsigned long` (what CK_RV is) so callers need not include pkcs11.h.
#pragma once

#include <string_view>

#include "crypto/status.h"

namespace lockbox::hsm {

// "CKR_PIN_INCORRECT"; unknown values give "CKR_VENDOR_DEFINED" (bit 31 set) or "CKR_UNKNOWN".
std::string_view CkrName(unsigned long rv);

// Device/token/session errors → kUnavailable; PIN and login errors → kUnauthenticated; bad object
// and key handles → kNotFound; bad ciphertext, wrapped key or signature → kDataLoss; bad arguments,
// mechanism or template → kInvalidArgument; key-policy refusals (sensitive/unextractable
// attribute, function not permitted) → kPermissionDenied; everything else → kInternal.
StatusCode CkrStatusCode(unsigned long rv);

// Status "C_Function: CKR_NAME" with the mapped code; OK for CKR_OK.
Status CkrToStatus(std::string_view function, unsigned long rv);

}  // namespace lockbox::hsm
