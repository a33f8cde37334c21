// kstatus reads Kubernetes objects (a JSON list or object on stdin) and prints, for each, the status
// that sigs.k8s.io/cli-utils' kstatus computes — the library kubectl-apply tooling, Flux and Argo use
// to decide whether a resource is Current, InProgress or Failed. Tests use it to prove that Steward's
// conditions are read the way those tools read them.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	// Unstructured's own decoder keeps integers as int64, as the API machinery expects.
	var items []unstructured.Unstructured
	var probe struct {
		Items json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		fail(err)
	}
	if probe.Items != nil {
		list := &unstructured.UnstructuredList{}
		if err := list.UnmarshalJSON(data); err != nil {
			fail(err)
		}
		items = list.Items
	} else {
		u := unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			fail(err)
		}
		items = []unstructured.Unstructured{u}
	}
	out := []map[string]string{}
	for i := range items {
		u := &items[i]
		res, err := status.Compute(u)
		if err != nil {
			fail(err)
		}
		out = append(out, map[string]string{"name": u.GetName(), "status": res.Status.String(), "message": res.Message})
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
