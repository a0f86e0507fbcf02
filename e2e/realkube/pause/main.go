// Command pause is the sandbox container of the test node's pods (what
// registry.k8s.io/pause is on a cluster, which this machine cannot pull):
// it holds the pod's namespaces and does nothing until it is stopped.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
