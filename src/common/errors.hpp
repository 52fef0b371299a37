// Pure C++ error type of the lookalike core.
//
// The core (image decoding, model runtime, distance kernels, index graph logic) never includes a
// PostgreSQL header. It reports failures by throwing lookalike::Error, which carries the SQLSTATE
// the SQL layer will raise. The SQL entry points (see guard_pg.hpp) catch it, leave the catch
// block and only then call ereport(ERROR).
#pragma once

#include <stdexcept>
#include <string>

namespace lookalike {

// SQLSTATE codes used by the core, as their five-character text (see PostgreSQL's errcodes.txt).
namespace sqlstate {
inline constexpr const char *kInvalidTextRepresentation = "22P02";
inline constexpr const char *kNumericValueOutOfRange = "22003";
inline constexpr const char *kDataException = "22000";
inline constexpr const char *kInvalidParameterValue = "22023";
inline constexpr const char *kDataCorrupted = "XX001";
inline constexpr const char *kProgramLimitExceeded = "54000";
inline constexpr const char *kOutOfMemory = "53200";
inline constexpr const char *kInvalidBinaryRepresentation = "22P03";
inline constexpr const char *kUndefinedFile = "58P01";
inline constexpr const char *kExternalRoutineException = "38000";
inline constexpr const char *kObjectNotInPrerequisiteState = "55000";
inline constexpr const char *kFeatureNotSupported = "0A000";
inline constexpr const char *kInsufficientPrivilege = "42501";
inline constexpr const char *kUndefinedObject = "42704";
inline constexpr const char *kInternalError = "XX000";
inline constexpr const char *kDatatypeMismatch = "42804";
}  // namespace sqlstate

class Error : public std::runtime_error {
 public:
  Error(const char *sqlstate, const std::string &message, std::string detail = {},
        std::string hint = {})
      : std::runtime_error(message), detail_(std::move(detail)), hint_(std::move(hint)) {
    for (int i = 0; i < 5; ++i) sqlstate_[i] = sqlstate[i];
    sqlstate_[5] = '\0';
  }
  const char *sqlstate() const noexcept { return sqlstate_; }
  const std::string &detail() const noexcept { return detail_; }
  const std::string &hint() const noexcept { return hint_; }

 private:
  char sqlstate_[6];
  std::string detail_;
  std::string hint_;
};

}  // namespace lookalike
