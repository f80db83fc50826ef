// Sanitizer defaults for test_comm, which starts MPI (singleton mode).
// Open MPI never frees some of what MPI_Init allocates; LeakSanitizer would
// fail every test that starts MPI. The suppressions name only Open MPI's
// libraries (a leak is ignored only when one of them is on its allocation
// stack), the same list as tests/mpi/lsan.supp, compiled in because the
// per-test ctest entries gtest_discover_tests makes carry no environment.
// Open MPI has no frame pointers, so the full unwinder is needed to see it.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BATON_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define BATON_TEST_ASAN 1
#endif

#ifdef BATON_TEST_ASAN
extern "C" const char* __asan_default_options() { return "fast_unwind_on_malloc=0"; }

extern "C" const char* __lsan_default_suppressions() {
  return "leak:libmpi.so\n"
         "leak:libopen-pal.so\n"
         "leak:libopen-rte.so\n"
         "leak:libpmix.so\n"
         "leak:libevent_core\n"
         "leak:libhwloc.so\n"
         "leak:mca_\n";
}
#endif
