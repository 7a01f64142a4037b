// Command kube-controller-manager is the pinned module's controller manager: the Deployment,
// ReplicaSet, StatefulSet, DaemonSet, Job and CronJob controllers create real Pods through the
// apiserver, so volguard sees their identities and ownerReferences as a cluster makes them.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
