# Client-side tests of the serving API that need no baton-server: the Python
# SDK and baton-client against an in-process fake server (sdk_test.py), and
# `pip install sdk/python` into a fresh venv. Included by CMakeLists.txt.
if(BATON_WITH_GRPC AND BATON_GRPC_PYTHON)
  set(baton_sdk_pythonpath "PYTHONPATH=${BATON_PYTHON_DIR}:${PROJECT_SOURCE_DIR}/sdk/python")
  add_test(NAME sdk_unit COMMAND ${BATON_GRPC_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/sdk_test.py SyncSdkTest AsyncSdkTest)
  set_tests_properties(sdk_unit PROPERTIES TIMEOUT 300 ENVIRONMENT "${baton_sdk_pythonpath}")
  if(TARGET baton-client)
    add_test(NAME client_cli_unit
             COMMAND ${BATON_GRPC_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/sdk_test.py
                     --baton-client $<TARGET_FILE:baton-client> CliTest)
    set_tests_properties(client_cli_unit PROPERTIES TIMEOUT 300 ENVIRONMENT "${baton_sdk_pythonpath}")
  endif()
  add_test(NAME sdk_pip_install
           COMMAND ${BATON_GRPC_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/sdk_test.py --pip-install ${PROJECT_SOURCE_DIR}
                   PipInstallTest)
  set_tests_properties(sdk_pip_install PROPERTIES TIMEOUT 600 ENVIRONMENT "${baton_sdk_pythonpath}")
endif()
