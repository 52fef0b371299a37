// The model runtime's settings (GUCs). Defined by lookalike.so's _PG_init like every setting of
// lookalike (see image/settings_pg.hpp for why); part of the core archive. lookalike_model.so
// reads the values by name. The readers are C-style (GetConfigOption; no C++ resource): call
// them from C++ frames through pg::guarded.
#pragma once

#include "common/pg.hpp"
#include "model/settings.hpp"

namespace lookalike::model {

// Defines lookalike.default_model, threads, batch_size, max_batch_size, max_model_bytes,
// max_fit_dims, progress_interval; called from _PG_init.
void define_settings();
int threads_setting();
// lookalike.batch_size, at most lookalike.max_batch_size.
int batch_size_setting();
int64 max_model_bytes_setting();
int max_fit_dims_setting();
int64 progress_interval_setting();
// The value of lookalike.default_model, or nullptr if it is empty.
const char *default_model_setting();

}  // namespace lookalike::model
