// Loading TorchScript from bytes already in memory, without a copy into a std::istringstream.
// Pure C++ with LibTorch (no PostgreSQL); internal to the model core (runtime.cpp, training.cpp).
#pragma once

#include <cstddef>

#include <torch/csrc/jit/api/module.h>

namespace lookalike::model {

// torch::jit::load over data[0, size): the bytes are read in place and must outlive the call
// only. Throws what torch::jit::load throws (c10::Error) on bytes that are not TorchScript.
torch::jit::Module load_torchscript(const char *data, size_t size);

}  // namespace lookalike::model
