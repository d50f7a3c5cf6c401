# What the script tells its caller: progress and errors on stderr (stdout
# carries only what a command returns, e.g. the kubeconfig path), and the
# table of step timings that `up` and `build` print at the end.
# shellcheck shell=bash

log() { printf '[cluster] %s\n' "$*" >&2; }
die() {
	printf '[cluster] error: %s\n' "$*" >&2
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
TIMINGS=()
# timed LABEL CMD...: run CMD and remember how long it took.
timed() {
	local label=$1 t0
	shift
	t0=$(now)
	"$@"
	TIMINGS+=("$(printf '%-36s %7s s' "$label" "$(elapsed "$t0")")")
}
print_timings() {
	local line
	[[ ${#TIMINGS[@]} -gt 0 ]] || return 0
	log "timings:"
	for line in "${TIMINGS[@]}"; do printf '    %s\n' "$line" >&2; done
}
