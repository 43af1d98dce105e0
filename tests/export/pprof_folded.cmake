# `heaptrace export --format pprof|folded` (issue 6), checked by their real
# consumers: go tool pprof (golang-go, from scripts/install-deps.sh; its
# absence fails the test) and, when installed, flamegraph.pl or inferno.
# exp_pf_prog allocates through known call chains, known counts and sizes
# (check_pprof_folded.py reads its LINE markers); built with frame pointers
# for --stacks fp, as tests/stacks does.
add_executable(exp_pf_prog ${CMAKE_CURRENT_SOURCE_DIR}/exp_pf_prog.c)
target_compile_options(exp_pf_prog PRIVATE -g -O1 -fno-omit-frame-pointer -fno-optimize-sibling-calls -fno-builtin)

# tests export_pprof, export_folded, export_pprof_folded_bad_input
foreach(mode pprof folded bad_input)
  set(name export_${mode})
  if(mode STREQUAL "bad_input")
    set(name export_pprof_folded_bad_input)
  endif()
  add_test(NAME ${name}
           COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/check_pprof_folded.py ${mode} ${HT_CLI}
                   ${CMAKE_CURRENT_SOURCE_DIR} $<TARGET_FILE:exp_pf_prog>)
  set_tests_properties(${name} PROPERTIES LABELS "e2e;export" TIMEOUT 300)
endforeach()
