// deploy-check: the parts of scripts/check-deploy.sh that no ready-made tool does, all offline.
//
//	deploy-check compose SCHEMA.json COMPOSE.yml
//	    validates a Compose file against the Compose specification's JSON schema;
//	deploy-check k8s-schemas SWAGGER.json OUTDIR
//	    writes one standalone, strict JSON schema per Kubernetes kind from Kubernetes' OpenAPI v2 document;
//	deploy-check crd-schemas OUTDIR CRD.yaml...
//	    writes one strict JSON schema per kind and served version of each CustomResourceDefinition.
//
// Schemas go to OUTDIR/<group>/<version>/<kind, lower case>.json, the core group's under v1/v1/: the layout
// kubeconform's -schema-location '{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json' reads
// (for apiVersion "v1" it takes "v1" as both group and version).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: deploy-check compose SCHEMA COMPOSE | k8s-schemas SWAGGER OUTDIR | crd-schemas OUTDIR CRD...")
	}
	var err error
	switch os.Args[1] {
	case "compose":
		err = checkCompose(os.Args[2], os.Args[3])
	case "k8s-schemas":
		err = writeKubernetesSchemas(os.Args[2], os.Args[3])
	case "crd-schemas":
		err = writeCrdSchemas(os.Args[2], os.Args[3:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "deploy-check: "+message)
	os.Exit(1)
}

// checkCompose validates the Compose file as written (variables not interpolated: `${REDIS_PASSWORD:?…}` is
// a string wherever a string is allowed, and every value of ours that holds one is).
func checkCompose(schemaPath, composePath string) error {
	schemaFile, err := os.Open(schemaPath)
	if err != nil {
		return err
	}
	defer schemaFile.Close()
	schemaDoc, err := jsonschema.UnmarshalJSON(schemaFile)
	if err != nil {
		return fmt.Errorf("%s: %w", schemaPath, err)
	}
	compiler := jsonschema.NewCompiler()
	const schemaURL = "file:///compose-spec.json"
	if err := compiler.AddResource(schemaURL, schemaDoc); err != nil {
		return err
	}
	schema, err := compiler.Compile(schemaURL)
	if err != nil {
		return fmt.Errorf("%s: %w", schemaPath, err)
	}
	source, err := os.ReadFile(composePath)
	if err != nil {
		return err
	}
	asJSON, err := yaml.YAMLToJSON(source)
	if err != nil {
		return fmt.Errorf("%s is not valid YAML: %w", composePath, err)
	}
	instance, err := jsonschema.UnmarshalJSON(bytes.NewReader(asJSON))
	if err != nil {
		return err
	}
	if err := schema.Validate(instance); err != nil {
		var invalid *jsonschema.ValidationError
		if errors.As(err, &invalid) {
			return fmt.Errorf("%s does not follow the Compose specification:\n%s", composePath, invalid.Error())
		}
		return err
	}
	return nil
}

type groupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

// schemaFile is where kubeconform's template (see the package comment) looks for a kind's schema.
func schemaFile(outDir string, gvk groupVersionKind) string {
	group := gvk.Group
	if group == "" {
		group = gvk.Version
	}
	return filepath.Join(outDir, group, gvk.Version, strings.ToLower(gvk.Kind)+".json")
}

func writeJSON(path string, value any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	encoded, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return os.WriteFile(path, encoded, 0o644)
}

const definitionPrefix = "#/definitions/"

// Kubernetes' OpenAPI v2 document describes these two as strings; a manifest writes numbers too (`cpu: 1`,
// `port: 8080`), which the API server accepts. These are the shapes it accepts.
var acceptedShapes = map[string]map[string]any{
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
		"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}},
	},
	"io.k8s.apimachinery.pkg.api.resource.Quantity": {
		"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}},
	},
}

// writeKubernetesSchemas writes, for each definition that names a kind (x-kubernetes-group-version-kind), the
// definition itself with the definitions it reaches beside it, so each file stands alone.
func writeKubernetesSchemas(swaggerPath, outDir string) error {
	raw, err := os.ReadFile(swaggerPath)
	if err != nil {
		return err
	}
	var swagger struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &swagger); err != nil {
		return fmt.Errorf("%s: %w", swaggerPath, err)
	}
	if len(swagger.Definitions) == 0 {
		return fmt.Errorf("%s has no definitions: not Kubernetes' OpenAPI v2 document", swaggerPath)
	}
	for name, shape := range acceptedShapes {
		swagger.Definitions[name] = shape
	}
	for _, definition := range swagger.Definitions {
		makeStrict(definition)
	}
	written := 0
	for name, definition := range swagger.Definitions {
		gvks, _ := definition["x-kubernetes-group-version-kind"].([]any)
		for _, entry := range gvks {
			encoded, _ := json.Marshal(entry)
			var gvk groupVersionKind
			if err := json.Unmarshal(encoded, &gvk); err != nil || gvk.Kind == "" {
				continue
			}
			reached := map[string]any{}
			collectDefinitions(definition, swagger.Definitions, reached)
			standalone := map[string]any{}
			for key, value := range definition {
				standalone[key] = value
			}
			standalone["definitions"] = reached
			if err := writeJSON(schemaFile(outDir, gvk), standalone); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			written++
		}
	}
	fmt.Printf("k8s schemas: %d kinds from %s\n", written, filepath.Base(swaggerPath))
	return nil
}

// collectDefinitions adds to reached every definition `node` refers to, and theirs in turn.
func collectDefinitions(node any, all map[string]map[string]any, reached map[string]any) {
	switch value := node.(type) {
	case map[string]any:
		if ref, ok := value["$ref"].(string); ok && strings.HasPrefix(ref, definitionPrefix) {
			name := strings.TrimPrefix(ref, definitionPrefix)
			if _, seen := reached[name]; !seen {
				if target, found := all[name]; found {
					reached[name] = target
					collectDefinitions(target, all, reached)
				}
			}
		}
		for _, child := range value {
			collectDefinitions(child, all, reached)
		}
	case []any:
		for _, child := range value {
			collectDefinitions(child, all, reached)
		}
	}
}

// makeStrict refuses properties a schema does not declare (a misspelt field is an error, not a silently
// ignored setting), except where the schema says that unknown fields are kept.
func makeStrict(node any) {
	switch value := node.(type) {
	case map[string]any:
		_, hasProperties := value["properties"]
		_, hasAdditional := value["additionalProperties"]
		preserves, _ := value["x-kubernetes-preserve-unknown-fields"].(bool)
		if hasProperties && !hasAdditional && !preserves {
			value["additionalProperties"] = false
		}
		for _, child := range value {
			makeStrict(child)
		}
	case []any:
		for _, child := range value {
			makeStrict(child)
		}
	}
}

// openAPIV3ToJSONSchema rewrites the OpenAPI v3 extensions a CRD's schema uses into plain JSON schema.
func openAPIV3ToJSONSchema(node any) {
	switch value := node.(type) {
	case map[string]any:
		if intOrString, _ := value["x-kubernetes-int-or-string"].(bool); intOrString {
			delete(value, "type")
			value["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
		}
		if nullable, _ := value["nullable"].(bool); nullable {
			if kind, ok := value["type"].(string); ok {
				value["type"] = []any{kind, "null"}
			}
		}
		for _, child := range value {
			openAPIV3ToJSONSchema(child)
		}
	case []any:
		for _, child := range value {
			openAPIV3ToJSONSchema(child)
		}
	}
}

type customResourceDefinition struct {
	Kind string `json:"kind"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Served bool   `json:"served"`
			Schema struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

func writeCrdSchemas(outDir string, crdPaths []string) error {
	var kinds []string
	for _, path := range crdPaths {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var crd customResourceDefinition
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			return fmt.Errorf("%s is a %q, not a CustomResourceDefinition", path, crd.Kind)
		}
		for _, version := range crd.Spec.Versions {
			schema := version.Schema.OpenAPIV3Schema
			if !version.Served || schema == nil {
				continue
			}
			openAPIV3ToJSONSchema(schema)
			makeStrict(schema)
			gvk := groupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: crd.Spec.Names.Kind}
			if err := writeJSON(schemaFile(outDir, gvk), schema); err != nil {
				return err
			}
			kinds = append(kinds, gvk.Kind+" "+gvk.Group+"/"+gvk.Version)
		}
	}
	sort.Strings(kinds)
	fmt.Printf("crd schemas: %s\n", strings.Join(kinds, ", "))
	return nil
}
