#include "tests/unit/store/fault_vfs.h"

#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace lockbox::store::testing {
namespace {

std::atomic<bool> g_fail_writes{false};
std::atomic<bool> g_fail_syncs{false};
sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_vfs;

// Our file object; the real VFS's file object follows it in the same allocation.
struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};
FaultFile* F(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f); }
sqlite3_file* R(sqlite3_file* f) { return F(f)->real(); }

int Close(sqlite3_file* f) { return R(f)->pMethods->xClose(R(f)); }
int Read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  return R(f)->pMethods->xRead(R(f), p, n, off);
}
int Write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  if (g_fail_writes.load()) return SQLITE_IOERR_WRITE;
  return R(f)->pMethods->xWrite(R(f), p, n, off);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (g_fail_writes.load()) return SQLITE_IOERR_TRUNCATE;
  return R(f)->pMethods->xTruncate(R(f), size);
}
int Sync(sqlite3_file* f, int flags) {
  if (g_fail_syncs.load()) return SQLITE_IOERR_FSYNC;
  return R(f)->pMethods->xSync(R(f), flags);
}
int FileSize(sqlite3_file* f, sqlite3_int64* size) { return R(f)->pMethods->xFileSize(R(f), size); }
int Lock(sqlite3_file* f, int l) { return R(f)->pMethods->xLock(R(f), l); }
int Unlock(sqlite3_file* f, int l) { return R(f)->pMethods->xUnlock(R(f), l); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return R(f)->pMethods->xCheckReservedLock(R(f), out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return R(f)->pMethods->xFileControl(R(f), op, arg);
}
int SectorSize(sqlite3_file* f) { return R(f)->pMethods->xSectorSize(R(f)); }
int DeviceCharacteristics(sqlite3_file* f) { return R(f)->pMethods->xDeviceCharacteristics(R(f)); }
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** p) {
  return R(f)->pMethods->xShmMap(R(f), region, size, extend, p);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return R(f)->pMethods->xShmLock(R(f), offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { R(f)->pMethods->xShmBarrier(R(f)); }
int ShmUnmap(sqlite3_file* f, int del) { return R(f)->pMethods->xShmUnmap(R(f), del); }
int Fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** p) {
  return R(f)->pMethods->xFetch(R(f), off, n, p);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return R(f)->pMethods->xUnfetch(R(f), off, p);
}

const sqlite3_io_methods kMethods = {
    .iVersion = 3,
    .xClose = Close,
    .xRead = Read,
    .xWrite = Write,
    .xTruncate = Truncate,
    .xSync = Sync,
    .xFileSize = FileSize,
    .xLock = Lock,
    .xUnlock = Unlock,
    .xCheckReservedLock = CheckReservedLock,
    .xFileControl = FileControl,
    .xSectorSize = SectorSize,
    .xDeviceCharacteristics = DeviceCharacteristics,
    .xShmMap = ShmMap,
    .xShmLock = ShmLock,
    .xShmBarrier = ShmBarrier,
    .xShmUnmap = ShmUnmap,
    .xFetch = Fetch,
    .xUnfetch = Unfetch,
};

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  FaultFile* ff = F(file);
  ff->base.pMethods = nullptr;
  const int rc = g_real->xOpen(g_real, name, ff->real(), flags, out_flags);
  if (rc == SQLITE_OK) ff->base.pMethods = &kMethods;
  return rc;
}

}  // namespace

const char* FaultVfsName() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_real = sqlite3_vfs_find(nullptr);
    if (g_real == nullptr || g_real->iVersion < 2) std::abort();
    g_vfs = *g_real;  // the other methods work on the copy (same pAppData and mxPathname)
    g_vfs.pNext = nullptr;
    g_vfs.zName = "lockbox-fault";
    g_vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + g_real->szOsFile;
    g_vfs.xOpen = Open;
    if (sqlite3_vfs_register(&g_vfs, /*makeDflt=*/0) != SQLITE_OK) std::abort();
  });
  return g_vfs.zName;
}

void SetFailWrites(bool fail) { g_fail_writes.store(fail); }
void SetFailSyncs(bool fail) { g_fail_syncs.store(fail); }

}  // namespace lockbox::store::testing
