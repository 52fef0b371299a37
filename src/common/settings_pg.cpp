#include "common/settings_pg.hpp"

#include <cstdlib>

namespace lookalike::pg {

int64 setting_int(const char *name, int64 fallback) {
  const char *v = GetConfigOption(name, true, false);
  if (v == nullptr || *v == '\0') return fallback;
  char *end;
  long long x = std::strtoll(v, &end, 10);
  return end == v ? fallback : x;
}

}  // namespace lookalike::pg
