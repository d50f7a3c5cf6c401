// Command kube-network-policies runs the NetworkPolicy controller of
// sigs.k8s.io/kube-network-policies as a process on the node, the way
// deploy/local-cluster/cluster.sh runs every other component.
//
// It is upstream's cmd/main.go (v0.8.0) with two changes: a --kubeconfig
// flag (upstream only knows the in-cluster config of its DaemonSet, which
// needs a ServiceAccount token under /var/run/secrets), and no
// AdminNetworkPolicy flags (their CRDs are not installed here).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	nodeutil "k8s.io/component-helpers/node/util"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

var (
	kubeconfig          string
	failOpen            bool
	queueID             int
	metricsBindAddress  string
	hostnameOverride    string
	tableName           string
	netfilterBug1766Fix bool
)

func init() {
	flag.StringVar(&kubeconfig, "kubeconfig", "", "Path to a kubeconfig; empty: the in-cluster config")
	flag.BoolVar(&failOpen, "fail-open", false, "If set, don't drop packets if the controller is not running")
	flag.IntVar(&queueID, "nfqueue-id", 100, "Number of the nfqueue used")
	flag.StringVar(&metricsBindAddress, "metrics-bind-address", ":9080", "The IP address and port for the metrics server to serve on")
	flag.StringVar(&hostnameOverride, "hostname-override", "", "Name of the Node this runs on (default: the hostname); only Pods of this Node are policed")
	flag.StringVar(&tableName, "nftables-table", "kube-network-policies", "Name of the inet nftables table the controller owns (created at start, deleted at exit)")
	flag.BoolVar(&netfilterBug1766Fix, "netfilter-bug-1766-fix", true, "If set, process DNS packets on the PREROUTING hook (https://bugzilla.netfilter.org/show_bug.cgi?id=1766); not needed for kernels 6.12+")
}

func main() { os.Exit(run()) }

func run() int {
	c := logsapi.NewLoggingConfiguration()
	logsapi.AddGoFlags(c, flag.CommandLine)
	flag.Parse()
	logs.InitLogs()
	if err := logsapi.ValidateAndApply(c, nil); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		return 1
	}

	// upstream only stops on SIGINT (its DaemonSet's runtime sends
	// SIGTERM and then kills it); here SIGTERM must also remove the table
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer cancel()
	logger := klog.FromContext(ctx)
	flag.VisitAll(func(f *flag.Flag) { logger.Info("flag", "name", f.Name, "value", f.Value) })

	if _, _, err := net.SplitHostPort(metricsBindAddress); err != nil {
		logger.Error(err, "parsing metrics bind address", "address", metricsBindAddress)
		return 1
	}
	nodeName, err := nodeutil.GetHostname(hostnameOverride)
	if err != nil {
		logger.Error(err, "can not obtain the node name; set --hostname-override")
		return 1
	}

	var config *rest.Config
	if kubeconfig != "" {
		config, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		config, err = rest.InClusterConfig()
	}
	if err != nil {
		logger.Error(err, "client configuration")
		return 1
	}
	config.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	config.ContentType = "application/vnd.kubernetes.protobuf"
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		logger.Error(err, "client")
		return 1
	}
	informersFactory := informers.NewSharedInformerFactory(clientset, 0)

	http.Handle("/metrics", promhttp.Handler())
	go func() { utilruntime.HandleError(http.ListenAndServe(metricsBindAddress, nil)) }()

	controller, err := networkpolicy.NewController(
		clientset,
		informersFactory.Networking().V1().NetworkPolicies(),
		informersFactory.Core().V1().Namespaces(),
		informersFactory.Core().V1().Pods(),
		nil, nil, nil, nil,
		networkpolicy.Config{
			FailOpen:            failOpen,
			QueueID:             queueID,
			NodeName:            nodeName,
			NetfilterBug1766Fix: netfilterBug1766Fix,
			NFTableName:         tableName,
			// NRI stays "enabled": with NRIdisabled the controller calls a
			// nil plugin for every IP that is no Pod's (v0.8.0). Without an
			// NRI socket (containerd < 1.7) the plugin just logs that it
			// could not connect, and Pod IPs come from the API server.
		},
	)
	if err != nil {
		logger.Error(err, "can not start network policy controller")
		return 1
	}
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		// Run deletes its nftables table when ctx ends
		runErr = controller.Run(ctx)
		cancel()
	}()
	informersFactory.Start(ctx.Done())
	<-ctx.Done()
	select { // let Run delete its table
	case <-done:
	case <-time.After(10 * time.Second):
		logger.Info("controller did not stop within 10s")
		return 1
	}
	if runErr != nil {
		logger.Error(runErr, "controller stopped")
		return 1
	}
	return 0
}
