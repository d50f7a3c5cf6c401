# The cluster's processes: each runs in its own session with a pid file and
# a log under CLUSTER_HOME, and is found and stopped by that pid only (never
# by name: Docker's containerd runs beside ours); wait_until polls for one.
# shellcheck shell=bash

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s.
wait_until() {
	local limit=$1 what=$2 deadline
	shift 2
	deadline=$(($(date +%s) + limit))
	until "$@" >/dev/null 2>&1; do
		if (($(date +%s) >= deadline)); then
			log "timed out after ${limit}s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

# A component is ours when its pid file names a live process whose command
# line mentions CLUSTER_HOME (guards against a recycled pid).
pid_of() {
	local f=$PIDS/$1.pid pid state cmdline
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ $state != Z ]] || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
	[[ $cmdline == *"$CLUSTER_HOME"* ]] || return 1
	echo "$pid"
}
running() { pid_of "$1" >/dev/null; }

# start_bg NAME CMD...: run CMD in its own session, log to LOGS/NAME.log.
start_bg() {
	local name=$1 pid
	shift
	if pid=$(pid_of "$name"); then
		log "$name already runs (pid $pid)"
		return 0
	fi
	mkdir -p "$LOGS" "$PIDS"
	[[ -f $LOGS/$name.log ]] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.prev"
	echo "# $(date -u +%FT%TZ) $*" >"$LOGS/$name.log"
	setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$PIDS/$name.pid"
	log "$name started (pid $!, log $LOGS/$name.log)"
}

# stop_component NAME: SIGTERM, then SIGKILL after 15 s; by pid only.
stop_component() {
	local name=$1 pid i target
	if ! pid=$(pid_of "$name"); then
		rm -f "$PIDS/$name.pid"
		return 0
	fi
	target=$pid
	# The reclaimer is a shell loop with a kubectl child: signal its group
	# (it leads its own session, started by us with setsid).
	[[ $name == pv-reclaimer ]] && target=-$pid
	kill -TERM -- "$target" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		running "$name" || break
		sleep 0.1
	done
	if running "$name"; then
		log "$name (pid $pid) ignored SIGTERM: SIGKILL"
		kill -KILL -- "$target" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			running "$name" || break
			sleep 0.1
		done
	fi
	rm -f "$PIDS/$name.pid"
	log "$name stopped (pid $pid)"
}
