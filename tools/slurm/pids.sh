# Sourced by start_slurm.sh and stop_slurm.sh (needs $RUN): which of our daemons are running.
pid_alive() {  # pid_alive PID NAME: a live, non-zombie process whose command starts with NAME
  [ -n "$1" ] && [ -r "/proc/$1/status" ] || return 1
  grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null && return 1
  case "$(cat "/proc/$1/comm" 2>/dev/null)" in "$2"*) return 0 ;; *) return 1 ;; esac
}
alive() {  # alive NAME [COMM]: our PID file RUN/NAME.pid names such a process
  local pid; pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  pid_alive "$pid" "${2:-$1}"
}
