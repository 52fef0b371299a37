// Shared by the libFuzzer harnesses: the SQLSTATEs a target may raise for bad input. Anything
// else -- another SQLSTATE, another exception type, a crash or a sanitizer report -- is a finding.
// Each target also counts its outcomes (accepted, or refused with each SQLSTATE) and prints them
// when the process exits: "outcomes: ok=N 22P02=N ..." (scripts/fuzz.sh reports them).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <string>

#include "common/errors.hpp"

namespace lookalike::fuzz {

inline std::map<std::string, long> &outcomes() {
  static auto *counts = [] {
    auto *m = new std::map<std::string, long>;
    std::atexit([] {
      std::fprintf(stderr, "outcomes:");
      for (const auto &[k, v] : outcomes()) std::fprintf(stderr, " %s=%ld", k.c_str(), v);
      std::fprintf(stderr, "\n");
    });
    return m;
  }();
  return *counts;
}

inline void accepted() { ++outcomes()["ok"]; }

inline void expect_sqlstate(const Error &e, std::initializer_list<const char *> allowed) {
  for (const char *s : allowed) {
    if (!std::strcmp(e.sqlstate(), s)) {
      ++outcomes()[s];
      return;
    }
  }
  std::fprintf(stderr, "unexpected SQLSTATE %s: %s\n", e.sqlstate(), e.what());
  std::abort();
}

[[noreturn]] inline void fail(const char *what) {
  std::fprintf(stderr, "property violated: %s\n", what);
  std::abort();
}

}  // namespace lookalike::fuzz
