// The metric type. See metric.hpp.
#include "vector/metric.hpp"

#include <cstring>
#include <string>

#include "common/errors.hpp"

namespace lookalike {

Metric parse_metric(const char *name) {
  if (std::strcmp(name, "cosine") == 0 || std::strcmp(name, "<=>") == 0) return Metric::kCosine;
  if (std::strcmp(name, "l2") == 0 || std::strcmp(name, "<->") == 0) return Metric::kL2;
  if (std::strcmp(name, "inner_product") == 0 || std::strcmp(name, "<#>") == 0)
    return Metric::kInnerProduct;
  throw Error(sqlstate::kInvalidParameterValue, std::string("unknown metric \"") + name + "\"", {},
              "Use cosine (<=>), l2 (<->) or inner_product (<#>).");
}

const char *metric_name(Metric m) {
  switch (m) {
    case Metric::kCosine:
      return "cosine (<=>)";
    case Metric::kL2:
      return "l2 (<->)";
    case Metric::kInnerProduct:
      return "negative inner product (<#>)";
  }
  return "?";
}

}  // namespace lookalike
