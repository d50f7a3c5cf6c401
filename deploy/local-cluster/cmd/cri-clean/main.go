// Command cri-clean stops and removes every Pod sandbox (and so every
// container) that a CRI runtime holds, through the runtime's own socket. The
// local cluster's `down` runs it against its private containerd after the
// kubelet has stopped, so that the CNI plugin releases each Pod's IP and
// veth, the network namespaces are unmounted and no shim outlives the runtime.
//
//	cri-clean -endpoint /run/sbx-cluster/containerd.sock
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "path of the CRI runtime's unix socket")
	timeout := flag.Duration("timeout", 60*time.Second, "time allowed for the whole clean-up")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "cri-clean: -endpoint is required")
		os.Exit(2)
	}
	if err := run(*endpoint, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "cri-clean:", err)
		os.Exit(1)
	}
}

func run(endpoint string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	conn, err := grpc.NewClient("unix://"+endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	runtime := runtimeapi.NewRuntimeServiceClient(conn)

	list, err := runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	failed := 0
	for _, sandbox := range list.Items {
		name := sandbox.Id
		if m := sandbox.Metadata; m != nil {
			name = m.Namespace + "/" + m.Name
		}
		if _, err := runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-clean: stop %s: %v\n", name, err)
			failed++
			continue
		}
		if _, err := runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-clean: remove %s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Printf("removed pod sandbox %s\n", name)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d sandboxes could not be removed", failed, len(list.Items))
	}
	return nil
}
