// The C++ -> PostgreSQL half of the error boundary (see guard_pg.hpp).
#include <cstring>
#include <exception>
#include <new>

#include "common/guard_pg.hpp"

namespace lookalike::pg {
namespace {

void copy_text(char *dst, size_t cap, const char *src) noexcept {
  if (src == nullptr) {
    dst[0] = '\0';
    return;
  }
  size_t n = std::strlen(src);
  if (n >= cap) n = cap - 1;
  std::memcpy(dst, src, n);
  dst[n] = '\0';
}

}  // namespace

CapturedError &captured_error_slot() noexcept {
  static CapturedError slot;
  return slot;
}

void capture_current_exception(CapturedError &out) noexcept {
  out = CapturedError{};
  try {
    throw;
  } catch (const PgException &e) {
    out.edata = e.edata();
  } catch (const lookalike::Error &e) {
    copy_text(out.sqlstate, sizeof out.sqlstate, e.sqlstate());
    copy_text(out.message, sizeof out.message, e.what());
    copy_text(out.detail, sizeof out.detail, e.detail().c_str());
    copy_text(out.hint, sizeof out.hint, e.hint().c_str());
  } catch (const std::bad_alloc &) {
    copy_text(out.sqlstate, sizeof out.sqlstate, sqlstate::kOutOfMemory);
    copy_text(out.message, sizeof out.message, "out of memory in lookalike");
  } catch (const std::exception &e) {
    copy_text(out.sqlstate, sizeof out.sqlstate, sqlstate::kInternalError);
    copy_text(out.message, sizeof out.message, e.what());
  } catch (...) {
    copy_text(out.sqlstate, sizeof out.sqlstate, sqlstate::kInternalError);
    copy_text(out.message, sizeof out.message, "unknown C++ exception in lookalike");
  }
}

void raise_captured(const CapturedError &err) {
  if (err.edata != nullptr) ReThrowError(err.edata);
  const char *s = err.sqlstate;
  int code = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
  ereport(ERROR, (errcode(code), errmsg_internal("%s", err.message),
                  err.detail[0] ? errdetail_internal("%s", err.detail) : 0,
                  err.hint[0] ? errhint("%s", err.hint) : 0));
  pg_unreachable();
}

}  // namespace lookalike::pg
