// Command etcd is the etcd server at the version the pinned k8s.io/kubernetes module requires
// (its go.mod names go.etcd.io/etcd/server/v3), run per suite on a loopback port.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
