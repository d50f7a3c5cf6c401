//go:build tools

// Package tools only records, for `go mod tidy`, which programs cluster.sh
// builds from this module; it is never compiled (the "tools" build tag is
// never set). The programs themselves are built by import path, e.g.
// `go build k8s.io/kubernetes/cmd/kubelet`.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
