# massif and chrome exports (issue 6), each read by its real consumer:
# exp_mc_prog (known phases, sizes, call chains and markers) is recorded,
# exported, and the output checked by check_massif_chrome.py: ms_print
# (valgrind) for massif.out, json and the Trace Event Format's rules for
# chrome.  Frame pointers and no sibling calls: --stacks fp sees every frame
# of the known chains.
add_executable(exp_mc_prog exp_mc_prog.c)
target_include_directories(exp_mc_prog PRIVATE ${PROJECT_SOURCE_DIR}/include)
target_compile_options(exp_mc_prog PRIVATE -g -O1 -fno-omit-frame-pointer -fno-optimize-sibling-calls
                       -fno-builtin)
# No -lheaptrace: `heaptrace record` preloads the runtime; ht_marker is a
# weak reference.
target_link_libraries(exp_mc_prog PRIVATE pthread)

foreach(mode massif massif_nostacks massif_truncated massif_forks chrome chrome_truncated chrome_forks)
  add_test(NAME export_${mode}
           COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/check_massif_chrome.py ${mode} ${HT_CLI}
                   $<TARGET_FILE:exp_mc_prog> ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(export_${mode} PROPERTIES LABELS "e2e;export" TIMEOUT 300)
endforeach()
