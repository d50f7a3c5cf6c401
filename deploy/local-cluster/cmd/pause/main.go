// Command pause is the Pod sandbox ("infra") process for the local cluster,
// which cannot pull registry.k8s.io/pause. It holds the Pod's namespaces open
// by doing nothing: it sleeps until SIGTERM or SIGINT and exits 0 then, and
// as PID 1 of a shared PID namespace it reaps every orphan that is handed to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reapAll()
	}
}

// reapAll collects every child that has exited; several SIGCHLDs may have
// been merged into one, so it loops until none is left.
func reapAll() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
