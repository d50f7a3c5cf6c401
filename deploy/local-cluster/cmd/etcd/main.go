// Command etcd is the etcd server at the version that k8s.io/kubernetes
// selects in this module's go.mod, built for deploy/local-cluster/cluster.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
