# Shared by scripts/test and scripts/sanitize: run `swift test` and judge its
# log, so that no run reports green without testing. Needs ACCEPTED_SKIPS
# (an array of extended regular expressions) set by the caller.

# check_log LOG MIN WHAT: the closing XCTest summary of LOG, its skips, its count.
check_log() {
  local log=$1 min=$2 what=$3
  # Linux XCTest: "Executed N tests, with F failures (U unexpected) in ..." or
  # "Executed N tests, with S tests skipped and F failures (U unexpected) in ...".
  local summary
  summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with " "$log" | tail -1 || true)
  if [ -z "$summary" ]; then
    echo "test: $what: no XCTest summary found"
    return 1
  fi
  local total failed skipped
  total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
  failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
  skipped=0
  if echo "$summary" | grep -qE "[0-9]+ tests? skipped"; then
    skipped=$(echo "$summary" | sed -E 's/.* ([0-9]+) tests? skipped.*/\1/')
  fi
  echo "test: $what: $((total - failed - skipped)) passed, $failed failed, $skipped skipped (of $total)"
  local bad=0
  if [ "$failed" -ne 0 ]; then bad=1; fi
  if [ "$total" -lt "$min" ]; then
    echo "test: $what: only $total tests ran, the minimum is $min (scripts/test): tests were lost"
    bad=1
  fi
  # Each skip line: "...: Test skipped - REASON" (or without a reason).
  while IFS= read -r line; do
    local reason=${line#*Test skipped}
    reason=${reason# - }
    local ok=0
    for pattern in "${ACCEPTED_SKIPS[@]+"${ACCEPTED_SKIPS[@]}"}"; do
      if echo "$reason" | grep -qE "$pattern"; then ok=1; fi
    done
    if [ "$ok" -eq 0 ]; then
      echo "test: $what: a test was skipped for a reason CI does not accept: ${reason:-no reason given}"
      bad=1
    fi
  done < <(grep -E "Test skipped" "$log" || true)
  if [ "$skipped" -gt 0 ] && ! grep -qE "Test skipped" "$log"; then
    echo "test: $what: $skipped test(s) skipped without a reason"
    bad=1
  fi
  return $bad
}

# run_tests MIN WHAT ARGS...: swift test ARGS, teed to a log, then checked.
run_tests() {
  local min=$1 what=$2
  shift 2
  local log
  log=$(mktemp /tmp/pstrain-test-XXXXXX.log)
  set +e
  swift test --disable-swift-testing "$@" 2>&1 | tee "$log"
  local code=${PIPESTATUS[0]}
  set -e
  local verdict=0
  check_log "$log" "$min" "$what" || verdict=1
  rm -f "$log"
  if [ "$code" -ne 0 ] && [ "$verdict" -eq 0 ]; then
    echo "test: $what: swift test exited with $code"
    verdict=1
  fi
  return $verdict
}

