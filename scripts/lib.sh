# Shell helpers shared by services.sh and emulators.sh (sourced, not run). Set LOG_TAG before sourcing.

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() {
  printf '[%s] error: %s\n' "$LOG_TAG" "$*" >&2
  exit 1
}

# A pid is alive when its process exists and is not a zombie (PID 1 here may not reap SIGKILLed children).
alive() {
  local pid=$1
  [ -n "$pid" ] && [ -r "/proc/$pid/status" ] && ! grep -q '^State:.*Z' "/proc/$pid/status"
}
