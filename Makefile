# lookalike -- PostgreSQL extension (PGXS build).
#   make / make install / make installcheck   the standard PGXS targets
#   make test       every test: unit tests (CMake + GoogleTest), pg_regress and TAP against a
#                   throwaway cluster that the command starts and stops itself
#   make fuzz       the libFuzzer targets (test/fuzz/) for FUZZ_SECONDS (default 600) each
#   make bench      benchmarks, one JSON line each
#   make demo       the main job (see README.md)
# Files named *_pg.cpp talk to PostgreSQL; every other .cpp under src/ is the pure C++ core
# (also built by CMakeLists.txt for the unit tests).

EXTVERSION = 0.2.0
MODULE_big = lookalike
MODULEDIR  = extension
SHARED    ?= ../shared
PG_CONFIG ?= pg_config

# Three shared libraries, so that a backend only maps what it uses (LibTorch alone costs ~0.7 s
# and ~160 MB per backend to load; OpenCV ~0.1 s):
#   lookalike.so        the embedding type, operators, index, scale-out, all settings (src/common, vector, index, scaleout)
#   lookalike_image.so  colour histograms and image decoding, OpenCV          (src/image)
#   lookalike_model.so  the model registry and image_embedding(), LibTorch    (src/model + src/image core)
SRCS := $(sort $(wildcard src/*/*.cpp))
OBJS  = $(patsubst %.cpp,%.o,$(wildcard src/common/*.cpp src/vector/*.cpp src/index/*.cpp src/interop/*.cpp src/scaleout/*.cpp))
IMAGE_OBJS = $(patsubst %.cpp,%.o,$(wildcard src/image/*.cpp)) src/common/guard_pg.o src/common/settings_pg.o
IMAGE_CORE_OBJS = $(patsubst %.cpp,%.o,$(filter-out %_pg.cpp,$(wildcard src/image/*.cpp)))
MODEL_OBJS = $(patsubst %.cpp,%.o,$(wildcard src/model/*.cpp)) $(IMAGE_CORE_OBJS) src/common/guard_pg.o src/common/settings_pg.o src/vector/projection.o src/vector/kernels.o
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
EXTRA_CLEAN = $(LOOKALIKE_SQL) $(EXTRA_MODULES) $(IMAGE_OBJS) $(MODEL_OBJS) $(LOADER) $(patsubst %.cpp,%.d,$(SRCS))

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=lookalike

OPENCV_CFLAGS := $(shell pkg-config --cflags-only-I opencv4 | sed 's/-I/-isystem /g')
OPENCV_LIBS = -lopencv_imgcodecs -lopencv_imgproc -lopencv_core
JPEG_LIBS = -ljpeg
TORCH_CFLAGS = -isystem /usr/include/torch/csrc/api/include
TORCH_LIBS = -ltorch -ltorch_cpu -lc10
# The model runtime parallelises preprocessing with LibTorch's OpenMP pool (at::parallel_for is
# a header template: it needs -fopenmp where it is compiled); sha256 comes from OpenSSL.
MODEL_LIBS = -fopenmp -lcrypto
src/model/%.o: override CXXFLAGS += -fopenmp

PG_CPPFLAGS = -Isrc -isystem $(shell $(PG_CONFIG) --includedir-server) $(OPENCV_CFLAGS) $(TORCH_CFLAGS)
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-missing-field-initializers -fPIC -MMD -MP
SHLIB_LINK = -lstdc++

# No JIT bitcode: it would need clang, and C++ with LibTorch/OpenCV headers gains nothing from it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(LOOKALIKE_SQL): $(sort $(wildcard extension/parts/*.sql))
	cat $^ > $@

all: $(LOOKALIKE_SQL) $(EXTRA_MODULES) $(LOADER)

# The catalogue loader, a libpq client (not part of the extension): tools/loader/.
$(LOADER): tools/loader/lookalike_load.cpp src/loader/csv.cpp src/loader/csv.hpp src/common/errors.hpp
	$(CXX) -std=c++17 -O2 -Wall -Wextra -Werror -Isrc -I$(shell $(PG_CONFIG) --includedir) \
	  -o $@ tools/loader/lookalike_load.cpp src/loader/csv.cpp -L$(shell $(PG_CONFIG) --libdir) -lpq

lookalike_image$(DLSUFFIX): $(IMAGE_OBJS)
	$(CXX) $(CXXFLAGS) -shared -o $@ $^ $(LDFLAGS) $(LDFLAGS_SL) $(OPENCV_LIBS) $(JPEG_LIBS) -lstdc++

lookalike_model$(DLSUFFIX): $(MODEL_OBJS)
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
	clang-format -i $(SRCS) $(wildcard src/*/*.hpp) $(wildcard test/unit/*.cpp) $(wildcard test/fuzz/*.[ch]pp) $(wildcard tools/*/*.cpp)

# Header dependencies written by -MMD next to each object: a changed header rebuilds its users.
-include $(patsubst %.cpp,%.d,$(SRCS))
