# Compiler flags shared by every Baton target.
add_library(baton_flags INTERFACE)
target_compile_options(baton_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${BATON_WERROR}>>:-Werror>)
target_include_directories(baton_flags INTERFACE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
if(CMAKE_BUILD_TYPE STREQUAL "Release")
  target_compile_options(baton_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-O3 -march=x86-64-v2>)
endif()
if(BATON_SANITIZE)
  set(BATON_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_compile_options(baton_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${BATON_SAN_FLAGS}>)
  target_link_options(baton_flags INTERFACE ${BATON_SAN_FLAGS})
endif()

# baton_add_library(NAME DIR [DEPS ...]): one library per runtime folder,
# made of every .cc in it, so adding a file needs no CMake edit.
function(baton_add_library name dir)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${dir}/*.cc)
  if(srcs)
    add_library(${name} STATIC ${srcs})
    target_link_libraries(${name} PUBLIC baton_flags ${ARG_DEPS})
  else()  # a folder that has only headers so far
    add_library(${name} INTERFACE)
    target_link_libraries(${name} INTERFACE baton_flags ${ARG_DEPS})
  endif()
endfunction()
