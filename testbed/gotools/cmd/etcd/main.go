// Command etcd is etcd's own entry point, built from the etcd server module that
// k8s.io/kubernetes pins, so the control plane's storage matches the API server it serves.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
