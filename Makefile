# lookalike -- PostgreSQL extension (PGXS build).
#   make / make install / make installcheck   the standard PGXS targets
#   make test       every test: unit tests (CMake + GoogleTest), pg_regress and TAP against a
#                   throwaway cluster that the command starts and stops itself
#   make bench      benchmarks, one JSON line each
#   make demo       the main job (see README.md)
# Files named *_pg.cpp talk to PostgreSQL; every other .cpp under src/ is the pure C++ core
# (also built by CMakeLists.txt for the unit tests).

EXTVERSION = 0.1.0
MODULE_big = lookalike
MODULEDIR  = extension
SHARED    ?= ../shared
PG_CONFIG ?= pg_config

SRCS := $(sort $(wildcard src/*/*.cpp))
OBJS  = $(SRCS:.cpp=.o)

# The install script is assembled from the per-feature parts in extension/parts/.
LOOKALIKE_SQL = extension/lookalike--$(EXTVERSION).sql
DATA_built = $(LOOKALIKE_SQL)
DATA = extension/lookalike.control $(wildcard extension/lookalike--*--*.sql)
EXTRA_CLEAN = $(LOOKALIKE_SQL)

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=lookalike

OPENCV_CFLAGS := $(shell pkg-config --cflags-only-I opencv4 | sed 's/-I/-isystem /g')
OPENCV_LIBS = -lopencv_imgcodecs -lopencv_imgproc -lopencv_core

PG_CPPFLAGS = -Isrc -isystem $(shell $(PG_CONFIG) --includedir-server) $(OPENCV_CFLAGS)
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-missing-field-initializers -fPIC
SHLIB_LINK = $(OPENCV_LIBS) -lstdc++

# No JIT bitcode: it would need clang, and C++ with LibTorch/OpenCV headers gains nothing from it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(LOOKALIKE_SQL): $(sort $(wildcard extension/parts/*.sql))
	cat $^ > $@

all: $(LOOKALIKE_SQL)

.PHONY: test unit bench demo format
test:
	scripts/test-all.sh

unit:
	scripts/test-all.sh unit

bench:
	SHARED=$(SHARED) scripts/bench.sh

demo:
	SHARED=$(SHARED) scripts/demo.sh

format:
	clang-format -i $(SRCS) $(wildcard src/*/*.hpp) $(wildcard test/unit/*.cpp)
