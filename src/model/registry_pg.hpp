// Reading the model registry (lookalike.models, lookalike.model_data) over SPI. C-style helpers
// that call PostgreSQL directly: call them from C++ frames through pg::guarded. The last two are
// C++ (they guard their own PostgreSQL calls), shared by image_embedding() and train_model().
#pragma once

#include <string>
#include <vector>

#include "model/runtime.hpp"
#include "common/pg.hpp"

namespace lookalike::model {

// A row of lookalike.models, in plain storage.
struct ModelRow {
  bool stored;  // TorchScript in lookalike.model_data (path is NULL)
  char path[MAXPGPATH];
  char sha256[65];
  int input_size;
  int input_width;  // 0: input_size (lookalike.models.input_width NULL)
  Resize resize;
  float mean[3];
  float stddev[3];
  int dims;
};

// Reads the registration of `name`; false if there is none.
bool lookup_model(const char *name, ModelRow *out);

// The stored TorchScript of `name` (lookalike.model_data), palloc'd in the caller's context;
// nullptr if there is none.
bytea *stored_model_bytes(const char *name);

// The input size and width, resizing, mean and standard deviation a registration records.
Normalization normalization_of(const ModelRow &row);

// The stored TorchScript of `name` as C++ bytes (not yet checked against its sha256); Error
// XX001 when lookalike.model_data has no row for it.
std::vector<char> stored_model_vector(const std::string &name);

// The TorchScript bytes of the registered model `name` (row: its registration), from its file
// (at most lookalike.max_model_bytes) or from lookalike.model_data, checked against the
// recorded sha256 (XX001 if they changed). Read by image_embedding() and train_model() alike.
CheckedModelBytes registered_model_bytes(const std::string &name, const ModelRow &row);

}  // namespace lookalike::model
