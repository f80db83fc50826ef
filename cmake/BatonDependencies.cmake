# Third-party dependencies, all from Debian 12's packages
# (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
# OpenBLAS built on OpenMP: our own loops use OpenMP too, and two thread
# pools (OpenBLAS's pthreads and libgomp) spin-waiting against each other
# cost 4x in batch-1 decode on a 2-core machine. One pool avoids that.
set(BATON_OPENBLAS_OPENMP_DIR /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp)
find_library(BATON_OPENBLAS_OPENMP_LIB openblas PATHS ${BATON_OPENBLAS_OPENMP_DIR} NO_DEFAULT_PATH)
if(BATON_OPENBLAS_OPENMP_LIB)
  add_library(baton_openblas INTERFACE)
  target_link_libraries(baton_openblas INTERFACE ${BATON_OPENBLAS_OPENMP_LIB})
  target_include_directories(baton_openblas SYSTEM INTERFACE
    /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp)
else()
  message(WARNING "OpenMP build of OpenBLAS not found; using the default one (slower decode)")
  pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
  add_library(baton_openblas INTERFACE)
  target_link_libraries(baton_openblas INTERFACE PkgConfig::OPENBLAS)
endif()
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
find_package(GTest REQUIRED)
find_package(MPI COMPONENTS C)

set(BATON_WITH_CUDA OFF)
if(NOT BATON_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)  # H100/H200
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(BATON_WITH_CUDA ON)
  elseif(BATON_CUDA STREQUAL "ON")
    message(FATAL_ERROR "BATON_CUDA=ON but no CUDA compiler was found")
  endif()
endif()

# gRPC + Protobuf (serving API, client SDKs), from Debian's packages: gRPC's
# CMake config lives in /usr/lib/<arch>/cmake/grpc. The standard health
# service's .proto comes from the grpc-proto package (/usr/share/grpc-proto).
set(BATON_WITH_GRPC OFF)
if(NOT BATON_GRPC STREQUAL "OFF")
  find_package(Protobuf QUIET)
  find_package(gRPC CONFIG QUIET)
  find_program(BATON_GRPC_CPP_PLUGIN grpc_cpp_plugin)
  find_program(BATON_GRPC_PYTHON_PLUGIN grpc_python_plugin)
  find_path(BATON_GRPC_PROTO_DIR grpc/health/v1/health.proto PATHS /usr/share/grpc-proto NO_DEFAULT_PATH)
  set(baton_grpc_missing "")
  foreach(what Protobuf_FOUND gRPC_FOUND Protobuf_PROTOC_EXECUTABLE BATON_GRPC_CPP_PLUGIN BATON_GRPC_PYTHON_PLUGIN
               BATON_GRPC_PROTO_DIR)
    if(NOT ${what})
      list(APPEND baton_grpc_missing ${what})
    endif()
  endforeach()
  if(NOT baton_grpc_missing AND NOT TARGET gRPC::grpc++_reflection)
    list(APPEND baton_grpc_missing gRPC::grpc++_reflection)
  endif()
  if(NOT baton_grpc_missing)
    set(BATON_WITH_GRPC ON)
  elseif(BATON_GRPC STREQUAL "ON")
    message(FATAL_ERROR "BATON_GRPC=ON but not found: ${baton_grpc_missing} "
                        "(scripts/install-deps.sh installs libgrpc++-dev, protobuf-compiler-grpc and grpc-proto)")
  else()
    message(STATUS "gRPC off: not found: ${baton_grpc_missing}")
  endif()
endif()

# A Python that imports grpc and google.protobuf (Debian's python3-grpcio
# lives in /usr/bin/python3's dist-packages, which a pyenv python3 first on
# PATH does not see): it runs the SDK and serving tests.
if(BATON_WITH_GRPC AND NOT BATON_GRPC_PYTHON)
  find_program(baton_python_on_path NAMES python3)
  foreach(candidate /usr/bin/python3 ${baton_python_on_path})
    execute_process(COMMAND ${candidate} -c "import grpc, google.protobuf"
                    RESULT_VARIABLE baton_import_rc OUTPUT_QUIET ERROR_QUIET)
    if(baton_import_rc EQUAL 0)
      set(BATON_GRPC_PYTHON ${candidate} CACHE FILEPATH "Python with grpcio and protobuf (SDK and serving tests)")
      break()
    endif()
  endforeach()
  if(NOT BATON_GRPC_PYTHON)
    message(STATUS "No Python with grpcio + protobuf found: Python SDK tests are off (install python3-grpcio)")
  endif()
endif()

# prometheus-cpp (/metrics of baton-server): target prometheus-cpp::pull.
set(BATON_WITH_METRICS OFF)
if(BATON_WITH_GRPC)
  find_package(prometheus-cpp CONFIG QUIET)
  if(prometheus-cpp_FOUND AND TARGET prometheus-cpp::pull)
    set(BATON_WITH_METRICS ON)
  endif()
endif()
