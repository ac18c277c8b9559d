#include "server/store/store.h"

#include <string>
#include <utility>

namespace lockbox::store {
namespace {

const char* TypeName(const Value& v) {
  switch (v.index()) {
    case 0:
      return "NULL";
    case 1:
      return "INTEGER";
    case 2:
      return "REAL";
    case 3:
      return "TEXT";
    case 4:
      return "BLOB";
  }
  return "?";
}

// The message names the column and the types, never the value (it may be secret).
Status CheckColumn(const Row& row, std::size_t column) {
  if (column >= row.size()) {
    return InternalError("store: column " + std::to_string(column) + " out of range (row has " +
                         std::to_string(row.size()) + " columns)");
  }
  return Status::Ok();
}

Status WrongType(const Row& row, std::size_t column, const char* wanted) {
  return InternalError("store: column " + std::to_string(column) + " is " + TypeName(row[column]) +
                       ", not " + wanted);
}

}  // namespace

StatusOr<std::int64_t> GetInt(const Row& row, std::size_t column) {
  LOCKBOX_RETURN_IF_ERROR(CheckColumn(row, column));
  if (const auto* v = std::get_if<std::int64_t>(&row[column])) return *v;
  return WrongType(row, column, "INTEGER");
}

StatusOr<std::string> GetText(const Row& row, std::size_t column) {
  LOCKBOX_RETURN_IF_ERROR(CheckColumn(row, column));
  if (const auto* v = std::get_if<std::string>(&row[column])) return *v;
  return WrongType(row, column, "TEXT");
}

StatusOr<Blob> GetBlob(const Row& row, std::size_t column) {
  LOCKBOX_RETURN_IF_ERROR(CheckColumn(row, column));
  if (const auto* v = std::get_if<Blob>(&row[column])) return *v;
  return WrongType(row, column, "BLOB");
}

bool IsNull(const Row& row, std::size_t column) {
  return column < row.size() && std::holds_alternative<std::nullptr_t>(row[column]);
}

void Store::CommitAsync(UnitOfWork unit, std::function<void(Status)> done) {
  done(Commit(std::move(unit)));
}

StatusOr<std::vector<Row>> Store::Query(std::string_view sql, const std::vector<Value>& params) {
  std::vector<Row> rows;
  LOCKBOX_RETURN_IF_ERROR(Read([&](Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(rows, tx.Query(sql, params));
    return Status::Ok();
  }));
  return rows;
}

}  // namespace lockbox::store
