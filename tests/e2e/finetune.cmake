# `baton finetune` reproduces the fixtures' train reference from the command line.
add_test(NAME finetune_e2e
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/finetune_test.py
                 --baton $<TARGET_FILE:baton> --data ${PROJECT_SOURCE_DIR}/tests/data
                 --mpirun ${MPIEXEC_EXECUTABLE})
# Some cases run under mpirun: Open MPI's own leaks are suppressed for LSan.
set_tests_properties(finetune_e2e PROPERTIES TIMEOUT 900
  ENVIRONMENT "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/mpi/lsan.supp;ASAN_OPTIONS=fast_unwind_on_malloc=0")
