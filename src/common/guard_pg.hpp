// The C++/PostgreSQL error boundary, in both directions.
//
// 1. C++ -> PostgreSQL (SQL entry points). Every SQL-callable function is defined with
//    LOOKALIKE_FUNCTION(name). The generated entry point runs the body inside try/catch; any
//    C++ exception (lookalike::Error with its SQLSTATE, std::bad_alloc, a PostgreSQL error that
//    pg::guarded() turned into a PgException, anything else) is captured into plain stack
//    buffers, the catch block is left, and only then ereport(ERROR) is raised. No C++ exception
//    ever unwinds into a PostgreSQL frame.
//
// 2. PostgreSQL -> C++ (calls into PostgreSQL). A frame that owns a C++ resource (any object
//    with a non-trivial destructor: std::vector, std::string, cv::Mat, torch::Tensor, ...)
//    calls PostgreSQL only through pg::guarded(), which runs the call under PG_TRY, copies the
//    error data, flushes the error state and throws PgException once PG_END_TRY has restored
//    PostgreSQL's exception stack. The boundary re-raises that ErrorData unchanged (same
//    SQLSTATE, message, detail, hint).
//
//    Frames that own no C++ resources (C-style code over palloc'd memory, like the embedding
//    type's I/O functions) may call PostgreSQL directly: a longjmp through frames whose
//    automatic objects all have trivial destructors is well defined.
#pragma once

#include <exception>
#include <type_traits>

#include "common/errors.hpp"
#include "common/pg.hpp"

namespace lookalike::pg {

// A PostgreSQL error in flight through C++ frames. The ErrorData lives in the memory context
// that was current when pg::guarded() was entered.
class PgException : public std::exception {
 public:
  explicit PgException(ErrorData *edata) : edata_(edata) {}
  const char *what() const noexcept override {
    return edata_ && edata_->message ? edata_->message : "PostgreSQL error";
  }
  ErrorData *edata() const noexcept { return edata_; }

 private:
  ErrorData *edata_;
};

// Puts PostgreSQL's error state back when a guarded lambda leaves by a C++ exception (e.g.
// std::bad_alloc from a push_back inside it): PG_TRY pointed PG_exception_stack at this frame's
// jump buffer, and only PG_END_TRY, which the exception skips, would restore it; a later
// ereport would then longjmp into a dead frame. Also restores the error context stack and the
// caller's memory context. On a normal exit it restores what PG_END_TRY already restored.
class PgStateRestore {
 public:
  PgStateRestore() noexcept
      : exception_stack_(PG_exception_stack),
        context_stack_(error_context_stack),
        memory_context_(CurrentMemoryContext),
        exceptions_(std::uncaught_exceptions()) {}
  ~PgStateRestore() {
    PG_exception_stack = exception_stack_;
    error_context_stack = context_stack_;
    if (std::uncaught_exceptions() > exceptions_) MemoryContextSwitchTo(memory_context_);
  }
  PgStateRestore(const PgStateRestore &) = delete;
  PgStateRestore &operator=(const PgStateRestore &) = delete;

 private:
  sigjmp_buf *exception_stack_;
  ErrorContextCallback *context_stack_;
  MemoryContext memory_context_;
  int exceptions_;
};

// Runs fn() (a void lambda that calls PostgreSQL) under PG_TRY and turns a PostgreSQL error
// into PgException. Not inlined, so that setjmp stays in this small frame and no variable of the
// caller can be clobbered by the longjmp. Exception-safe: a C++ exception thrown by fn() leaves
// PostgreSQL's error state as it was on entry (PgStateRestore).
template <typename Fn>
[[gnu::noinline]] void guarded_void(Fn &fn) {
  MemoryContext volatile caller_cxt = CurrentMemoryContext;
  ErrorData *volatile edata = nullptr;
  const PgStateRestore restore;  // set before PG_TRY and never changed: safe across longjmp
  PG_TRY();
  { fn(); }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_cxt);
    edata = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();
  if (edata != nullptr) throw PgException(edata);
}

// Runs fn() (a lambda that calls PostgreSQL) and turns a PostgreSQL error into PgException.
// fn must not itself own C++ resources across the PostgreSQL call.
template <typename Fn>
decltype(auto) guarded(Fn &&fn) {
  using R = decltype(fn());
  if constexpr (std::is_void_v<R>) {
    guarded_void(fn);
  } else {
    static_assert(std::is_trivially_copyable_v<R>, "pg::guarded returns plain values only");
    R result{};
    auto store = [&] { result = fn(); };
    guarded_void(store);
    return result;
  }
}

// Plain-data record of a caught exception; survives the end of the catch block.
struct CapturedError {
  ErrorData *edata = nullptr;  // set for PgException: re-raised as is
  char sqlstate[6] = {0};
  char message[1024] = {0};
  char detail[1024] = {0};
  char hint[512] = {0};
};

// The one capture slot of this (single-threaded) backend process. Only the error path touches it,
// so the hot path of an entry point (a distance operator called per row) costs nothing extra.
CapturedError &captured_error_slot() noexcept;

// Fills `out` (entirely) from the exception currently being handled. Never throws, never calls
// PostgreSQL.
void capture_current_exception(CapturedError &out) noexcept;

// Raises the captured error with ereport(ERROR) (or ReThrowError). Does not return.
pg_attribute_noreturn() void raise_captured(const CapturedError &err);

// Runs fn() at a C++ -> PostgreSQL boundary (an SQL entry point, an index AM callback): any
// exception is captured, the catch block is left, and only then the PostgreSQL error is raised.
template <typename R, typename Fn>
inline R run_at_boundary(Fn &&fn) {
  try {
    return fn();
  } catch (...) {
    capture_current_exception(captured_error_slot());
  }
  raise_captured(captured_error_slot());  // outside the catch block: the exception is gone
}

// The body of every SQL entry point.
template <typename Impl>
inline Datum run_entry_point(FunctionCallInfo fcinfo, Impl impl) {
  return run_at_boundary<Datum>([&] { return impl(fcinfo); });
}

}  // namespace lookalike::pg

// Defines the SQL-callable C function `name` (V1 calling convention) whose body follows, e.g.
//   LOOKALIKE_FUNCTION(embedding_dims) { ... return Int32GetDatum(n); }
// The body receives `fcinfo` as usual, so PG_GETARG_* / PG_RETURN_* work inside it.
#define LOOKALIKE_FUNCTION(name)                                  \
  static Datum name##_body(FunctionCallInfo fcinfo);              \
  extern "C" {                                                    \
  PGDLLEXPORT Datum name(PG_FUNCTION_ARGS);                       \
  PG_FUNCTION_INFO_V1(name);                                      \
  }                                                               \
  extern "C" Datum name(PG_FUNCTION_ARGS) {                       \
    return ::lookalike::pg::run_entry_point(fcinfo, name##_body); \
  }                                                               \
  static Datum name##_body([[maybe_unused]] FunctionCallInfo fcinfo)
