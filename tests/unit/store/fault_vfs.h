// A SQLite VFS for tests that forwards to the default VFS and, while armed, fails file writes or
// syncs with an I/O error (an unwritable or failing disk, deterministically).
#pragma once

namespace lockbox::store::testing {

// Registers the VFS once (not as the default) and returns its name for SqliteOptions::vfs.
const char* FaultVfsName();

// While set, xWrite / xSync of every file opened through the VFS fail with SQLITE_IOERR_*.
void SetFailWrites(bool fail);
void SetFailSyncs(bool fail);

}  // namespace lockbox::store::testing
