// Command argocd-lua-health evaluates Argo CD resource health checks with Argo CD's own Lua VM.
//
// It reads an argocd-cm ConfigMap (YAML), takes every
// `resource.customizations.health.<group>_<Kind>` key as a health override, exactly as Argo CD's
// settings do, and evaluates each JSON object given on the command line through
// util/lua.ResourceHealthOverrides.GetResourceHealth, the function Argo CD's controller calls.
// It prints one JSON line per object: {"file", "status", "message"} or {"file", "error"}.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argolua "github.com/argoproj/argo-cd/v3/util/lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const healthPrefix = "resource.customizations.health."

type configMap struct {
	Data map[string]string `json:"data"`
}

type result struct {
	File    string `json:"file"`
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// overridesFromConfigMap turns argocd-cm health keys (group_Kind) into overrides keyed group/Kind.
func overridesFromConfigMap(path string) (argolua.ResourceHealthOverrides, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm configMap
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	overrides := argolua.ResourceHealthOverrides{}
	for key, script := range cm.Data {
		if !strings.HasPrefix(key, healthPrefix) {
			continue
		}
		gk := strings.Replace(strings.TrimPrefix(key, healthPrefix), "_", "/", 1)
		overrides[gk] = appv1.ResourceOverride{HealthLua: script}
	}
	if len(overrides) == 0 {
		return nil, fmt.Errorf("%s has no %s* keys", path, healthPrefix)
	}
	return overrides, nil
}

// evaluate runs the health check that applies to the object stored in file.
func evaluate(overrides argolua.ResourceHealthOverrides, file string) result {
	raw, err := os.ReadFile(file)
	if err != nil {
		return result{File: file, Error: err.Error()}
	}
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal(raw, &obj.Object); err != nil {
		return result{File: file, Error: err.Error()}
	}
	status, err := overrides.GetResourceHealth(obj)
	if err != nil {
		return result{File: file, Error: err.Error()}
	}
	if status == nil {
		return result{File: file, Error: "no health check applies to " + obj.GroupVersionKind().String()}
	}
	return result{File: file, Status: string(status.Status), Message: status.Message}
}

func main() {
	cmPath := flag.String("cm", "", "argocd-cm ConfigMap YAML holding the health checks")
	flag.Parse()
	overrides, err := overridesFromConfigMap(*cmPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, file := range flag.Args() {
		if err := out.Encode(evaluate(overrides, file)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
