// Checks a kind cluster config with kind's own v1alpha4 types: strict decoding (an unknown or
// misspelt field is an error), the kind and apiVersion kind expects, and the node roles it knows.
// Used by test/integration/deploy.test.ts on deploy/kind/cluster.yaml, since kind itself cannot
// run without Docker.
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kind-config-check FILE")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var cluster v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cluster); err != nil {
		fmt.Fprintf(os.Stderr, "not a kind v1alpha4 Cluster: %v\n", err)
		os.Exit(1)
	}
	if cluster.Kind != "Cluster" || cluster.APIVersion != "kind.x-k8s.io/v1alpha4" {
		fmt.Fprintf(os.Stderr, "kind %q, apiVersion %q: kind wants Cluster, kind.x-k8s.io/v1alpha4\n", cluster.Kind, cluster.APIVersion)
		os.Exit(1)
	}
	v1alpha4.SetDefaultsCluster(&cluster)
	controlPlanes := 0
	for _, n := range cluster.Nodes {
		switch n.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
		case v1alpha4.WorkerRole:
		default:
			fmt.Fprintf(os.Stderr, "node role %q is neither control-plane nor worker\n", n.Role)
			os.Exit(1)
		}
	}
	if controlPlanes == 0 {
		fmt.Fprintln(os.Stderr, "no control-plane node")
		os.Exit(1)
	}
	fmt.Printf("ok: cluster %s, %d node(s), %d control-plane\n", cluster.Name, len(cluster.Nodes), controlPlanes)
}
