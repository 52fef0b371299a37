# lookalike -- PostgreSQL extension (PGXS build).
#   make / make install / make installcheck   the standard PGXS targets
#   make test       every test: unit tests (CMake + GoogleTest), pg_regress and TAP against a
#                   throwaway cluster that the command starts and stops itself
#   make fuzz       the libFuzzer targets (test/fuzz/) for FUZZ_SECONDS (default 600) each
#   make bench      benchmarks, one JSON line each
#   make demo       the main job (see README.md)
# Layout (docs/architecture.md): the pure C++ core (scripts/core-sources.sh states the rule) and
# the shared PostgreSQL helpers of src/common/ form one static archive; each shared library is
# its folders' *_pg.cpp files plus that archive. Everything is compiled with hidden visibility.

EXTVERSION = 0.2.0
MODULE_big = lookalike
MODULEDIR  = extension
SHARED    ?= ../shared
PG_CONFIG ?= pg_config

# Three shared libraries, so that a backend only maps what it uses (LibTorch alone costs ~0.7 s
# and ~160 MB per backend to load; OpenCV ~0.1 s). Membership follows folders:
#   lookalike.so        the module entry (src/lookalike_pg.cpp), src/vector/, src/index/,
#                       src/scaleout/, src/interop/
#   lookalike_image.so  colour histograms and image decoding, OpenCV             (src/image/)
#   lookalike_model.so  the model registry and image_embedding(), LibTorch       (src/model/)
# Each links the core archive, from which the linker takes only the objects it needs.
SRCS := $(sort $(wildcard src/*.cpp src/*/*.cpp tools/*/*.cpp))
CORE_SRCS := $(shell scripts/core-sources.sh)
# The archive also holds src/common's PostgreSQL helpers and every folder's settings_pg.cpp:
# lookalike.so defines every setting, each library reads its own (src/lookalike_pg.cpp).
CORE_OBJS = $(patsubst %.cpp,%.o,$(CORE_SRCS) $(wildcard src/common/*_pg.cpp src/*/settings_pg.cpp))
CORE_LIB = liblookalike_core.a
OBJS = $(patsubst %.cpp,%.o,$(filter-out %/settings_pg.cpp,$(wildcard src/*_pg.cpp \
  $(addsuffix /*_pg.cpp,src/vector src/index src/scaleout src/interop))))
IMAGE_OBJS = $(patsubst %.cpp,%.o,$(filter-out %/settings_pg.cpp,$(wildcard src/image/*_pg.cpp)))
MODEL_OBJS = $(patsubst %.cpp,%.o,$(filter-out %/settings_pg.cpp,$(wildcard src/model/*_pg.cpp)))
EXTRA_MODULES = lookalike_image$(DLSUFFIX) lookalike_model$(DLSUFFIX)

# The install script of the current release is assembled from the per-feature parts in
# extension/parts/. Earlier releases' install scripts are frozen, tracked files, and every
# release ships one upgrade script from the previous one (docs/upgrading.md).
LOOKALIKE_SQL = extension/lookalike--$(EXTVERSION).sql
DATA_built = $(LOOKALIKE_SQL)
DATA = extension/lookalike.control $(filter-out $(LOOKALIKE_SQL),$(wildcard extension/lookalike--*.sql))
# The companion extension lookalike_pgvector (casts to and from pgvector's vector; its C
# functions are in lookalike.so, src/interop/): CREATE EXTENSION lookalike_pgvector CASCADE.
DATA += extension/lookalike_pgvector.control $(wildcard extension/lookalike_pgvector--*.sql)
LOADER = tools/loader/lookalike-load
EXTRA_CLEAN = $(LOOKALIKE_SQL) $(EXTRA_MODULES) $(CORE_LIB) $(CORE_OBJS) $(IMAGE_OBJS) $(MODEL_OBJS) $(LOADER) \
  $(patsubst %.cpp,%.d,$(SRCS))

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=lookalike

OPENCV_CFLAGS := $(shell pkg-config --cflags-only-I opencv4 | sed 's/-I/-isystem /g')
OPENCV_LIBS = -lopencv_imgcodecs -lopencv_imgproc -lopencv_core
JPEG_LIBS = -ljpeg -lpng16
# LibTorch's C++ API headers: found from the TorchConfig.cmake that libtorch-dev installs (its
# prefix is four levels up, as TorchConfig.cmake itself computes it), else in the usual include
# folders; `make TORCH_INCLUDE=...` overrides.
TORCH_CONFIG := $(firstword $(wildcard /usr/lib/*/cmake/Torch/TorchConfig.cmake \
  /usr/local/lib/*/cmake/Torch/TorchConfig.cmake /usr/local/share/cmake/Torch/TorchConfig.cmake))
TORCH_INCLUDE ?= $(firstword $(wildcard \
  $(if $(TORCH_CONFIG),$(abspath $(dir $(TORCH_CONFIG))../../../../include/torch/csrc/api/include)) \
  /usr/include/torch/csrc/api/include /usr/local/include/torch/csrc/api/include))
TORCH_CFLAGS = $(if $(TORCH_INCLUDE),-isystem $(TORCH_INCLUDE))
TORCH_LIBS = -ltorch -ltorch_cpu -lc10
# The model runtime parallelises preprocessing with LibTorch's OpenMP pool (at::parallel_for is
# a header template: it needs -fopenmp where it is compiled); sha256 comes from OpenSSL.
MODEL_LIBS = -fopenmp -lcrypto
src/model/%.o: override CXXFLAGS += -fopenmp

PG_CPPFLAGS = -Isrc -isystem $(shell $(PG_CONFIG) --includedir-server) -isystem $(shell $(PG_CONFIG) --includedir) $(OPENCV_CFLAGS) $(TORCH_CFLAGS)
# Hidden visibility everywhere: each library exports only its PostgreSQL entry points
# (src/common/pg.hpp), so the copies of the core in the three libraries never interpose.
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-missing-field-initializers -fPIC -MMD -MP \
  -fvisibility=hidden -fvisibility-inlines-hidden
# libpq: the scale-out scan sends its remote statements on postgres_fdw's connections (src/scaleout/).
SHLIB_LINK = $(CORE_LIB) -lpq -lstdc++

# No JIT bitcode: it would need clang, and C++ with LibTorch/OpenCV headers gains nothing from it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(LOOKALIKE_SQL): $(sort $(wildcard extension/parts/*.sql))
	cat $^ > $@

all: $(LOOKALIKE_SQL) $(EXTRA_MODULES) $(LOADER)

$(CORE_LIB): $(CORE_OBJS)
	rm -f $@
	$(AR) crs $@ $^

# The model runtime's core needs LibTorch's headers: say so plainly if they are missing.
src/model/runtime.o: | torch-headers
.PHONY: torch-headers
torch-headers:
	@test -n "$(TORCH_INCLUDE)" || { echo "LibTorch headers not found (libtorch-dev); set TORCH_INCLUDE" >&2; exit 1; }

lookalike$(DLSUFFIX): $(CORE_LIB)

# The catalogue loader, a libpq client (not part of the extension): tools/loader/.
$(LOADER): tools/loader/lookalike_load.cpp tools/loader/csv.cpp tools/loader/csv.hpp src/common/errors.hpp
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -Itools -Isrc -I$(shell $(PG_CONFIG) --includedir) \
	  -o $@ tools/loader/lookalike_load.cpp tools/loader/csv.cpp -L$(shell $(PG_CONFIG) --libdir) -lpq

lookalike_image$(DLSUFFIX): $(IMAGE_OBJS) $(CORE_LIB)
	$(CXX) $(CXXFLAGS) -shared -o $@ $^ $(LDFLAGS) $(LDFLAGS_SL) $(OPENCV_LIBS) $(JPEG_LIBS) -lstdc++

lookalike_model$(DLSUFFIX): $(MODEL_OBJS) $(CORE_LIB)
	$(CXX) $(CXXFLAGS) -shared -o $@ $^ $(LDFLAGS) $(LDFLAGS_SL) -Wl,--no-as-needed $(TORCH_LIBS) -Wl,--as-needed $(OPENCV_LIBS) $(JPEG_LIBS) $(MODEL_LIBS) -lstdc++

install: install-extra-modules
.PHONY: install-extra-modules
install-extra-modules: $(EXTRA_MODULES)
	$(INSTALL_SHLIB) $(EXTRA_MODULES) '$(DESTDIR)$(pkglibdir)/'

.PHONY: test unit fuzz bench demo format
test:
	scripts/test-all.sh

unit:
	scripts/test-all.sh unit

FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

bench:
	SHARED=$(SHARED) scripts/bench.sh

demo:
	SHARED=$(SHARED) scripts/demo.sh

format:
	clang-format -i $(SRCS) $(wildcard src/*/*.hpp tools/*/*.hpp test/unit/*.cpp test/fuzz/*.[ch]pp)

# Header dependencies written by -MMD next to each object: a changed header rebuilds its users.
-include $(patsubst %.cpp,%.d,$(SRCS))
