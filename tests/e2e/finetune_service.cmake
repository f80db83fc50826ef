# The FineTuning gRPC service: `mpirun -np 2 baton-server --finetune-dir` running
# `baton finetune` jobs (directly and through a nested mpirun), driven by the
# Python SDK, the raw stubs and `baton-client finetune`. Included by CMakeLists.txt.
if(TARGET baton-server AND TARGET baton-client AND MPIEXEC_EXECUTABLE AND BATON_GRPC_PYTHON)
  add_test(NAME finetune_service_e2e
           COMMAND ${BATON_GRPC_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/finetune_service_test.py
                   --server $<TARGET_FILE:baton-server> --client $<TARGET_FILE:baton-client>
                   --baton $<TARGET_FILE:baton> --mpirun ${MPIEXEC_EXECUTABLE}
                   --data ${PROJECT_SOURCE_DIR}/tests/data
                   --stubs ${PROJECT_BINARY_DIR}/python --sdk ${PROJECT_SOURCE_DIR}/sdk/python)
  set_tests_properties(finetune_service_e2e PROPERTIES TIMEOUT 1200
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp;ASAN_OPTIONS=fast_unwind_on_malloc=0")
endif()
