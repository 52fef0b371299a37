// Shared by the libFuzzer harnesses: the SQLSTATEs a target may raise for bad input. Anything
// else -- another SQLSTATE, another exception type, a crash or a sanitizer report -- is a finding.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "common/errors.hpp"

namespace lookalike::fuzz {

inline void expect_sqlstate(const Error &e, std::initializer_list<const char *> allowed) {
  for (const char *s : allowed)
    if (!std::strcmp(e.sqlstate(), s)) return;
  std::fprintf(stderr, "unexpected SQLSTATE %s: %s\n", e.sqlstate(), e.what());
  std::abort();
}

[[noreturn]] inline void fail(const char *what) {
  std::fprintf(stderr, "property violated: %s\n", what);
  std::abort();
}

}  // namespace lookalike::fuzz
