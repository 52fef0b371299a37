// Text form of an embedding: "[1,2.5,-3]" -- the same form pgvector uses, so values move between
// the two types with a text cast. Pure C++; errors are lookalike::Error with a SQLSTATE.
#pragma once

#include <cstddef>

namespace lookalike::text {

// Upper bound on the number of elements in `s` (commas + 1); use it to size the output buffer.
size_t max_elements(const char *s);

// Parses `s` into out[0..cap) and returns the number of elements. Throws lookalike::Error:
// 22P02 for malformed text (checked first: "[nanx]" and "[]x" are malformed, not NaN or empty;
// one sign per number, "[+-1]" is malformed), 22003 for a value out of float4 range (beyond
// float4's largest, or so small that it would round to zero, as for type real; subnormal
// values are kept), 22000 for NaN or infinity, 22000 for an empty vector. Leading and trailing
// white space is allowed, as around elements.
size_t parse(const char *s, float *out, size_t cap);

// Largest text of one float in shortest round-trip form ("-1.17549435e-38").
inline constexpr size_t kMaxFloatChars = 16;
inline size_t max_text_length(size_t n) { return n * (kMaxFloatChars + 1) + 3; }

// Writes the text form of x[0..n) into buf (at least max_text_length(n) bytes, NUL-terminated);
// returns its length.
size_t format(const float *x, size_t n, char *buf);

}  // namespace lookalike::text
