// Package composeload is docker/cli's compose loader (loader.Load, what `docker
// stack deploy` runs) with its JSON schema compiled once per process instead of on
// every load.
//
// docker/cli's schema.Validate reads and compiles the compose schema on each call,
// and offers no way to keep the compiled schema: with one load per stack and app per
// site that compiling was most of `plan --all`'s CPU. Load validates with the same
// schema files (data/, byte-for-byte docker/cli's, a test checks), the same
// compiler settings and formats, compiled once per version, and then runs
// loader.Load with SkipValidation. Whenever that fast path cannot be exactly what
// docker/cli would decide it steps aside and loader.Load validates as it always
// does: a file with a `$` in any value (interpolation runs before validation, and
// its type casts are docker/cli's own), several files, a version with no schema
// here, and every file the cached schema refuses (so a refusal is docker/cli's own
// error message).
package composeload

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/compose/loader"
	"github.com/docker/cli/cli/compose/schema"
	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/docker/go-connections/nat"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemas are docker/cli's compose schemas (cli/compose/schema/data), copied.
//
//go:embed data/config_schema_v*.json
var schemas embed.FS

// compiled holds one compiled schema per compose version; a nil schema means
// "not here": loader.Load validates.
var compiled sync.Map // version -> func() *jsonschema.Schema

// Load is loader.Load(details, opts...) with the schema validation done by a schema
// compiled once per process when that decides exactly as docker/cli would.
func Load(details composetypes.ConfigDetails, opts ...func(*loader.Options)) (*composetypes.Config, error) {
	if fastValid(details, opts) {
		return loader.Load(details, append(opts, func(o *loader.Options) { o.SkipValidation = true })...)
	}
	return loader.Load(details, opts...)
}

// fastValid reports whether the cached schema accepts the one file of details, in
// a case where that is docker/cli's answer too. False means "let loader.Load
// validate", not "invalid".
func fastValid(details composetypes.ConfigDetails, opts []func(*loader.Options)) bool {
	o := loader.Options{}
	for _, f := range opts {
		f(&o)
	}
	if o.SkipValidation || len(details.ConfigFiles) != 1 {
		return false
	}
	dict := details.ConfigFiles[0].Config
	version := schema.Version(dict)
	if details.Version != "" && details.Version != version {
		return false
	}
	if !o.SkipInterpolation && hasDollar(dict) {
		return false
	}
	sch := schemaFor(version)
	return sch != nil && sch.Validate(toJSONValue(dict)) == nil
}

// schemaFor is the compiled schema of a compose version (normalized as docker/cli
// does), compiled on first use; nil when there is none here or it does not compile.
func schemaFor(version string) *jsonschema.Schema {
	if version == "" || version == "3" {
		version = schema.Version(nil)
	}
	get, _ := compiled.LoadOrStore(version, sync.OnceValue(func() *jsonschema.Schema {
		s, err := compile(version)
		if err != nil {
			return nil
		}
		return s
	}))
	return get.(func() *jsonschema.Schema)()
}

// compile compiles one version's schema as docker/cli's schema.Validate does.
func compile(version string) (*jsonschema.Schema, error) {
	raw, err := schemas.ReadFile("data/config_schema_v" + version + ".json")
	if err != nil {
		return nil, fmt.Errorf("unsupported Compose file version: %s", version)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.RegisterFormat(&jsonschema.Format{Name: "ports", Validate: validPorts})
	c.RegisterFormat(&jsonschema.Format{Name: "duration", Validate: validDuration})
	if err := c.AddResource("schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("schema.json")
}

// validPorts is docker/cli's "ports" format.
func validPorts(input any) error {
	switch input.(type) {
	case string, json.Number,
		int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64,
		float32, float64:
		_, err := nat.ParsePortSpec(fmt.Sprint(input))
		return err
	default:
		return nil
	}
}

// validDuration is docker/cli's "duration" format.
func validDuration(input any) error {
	value, ok := input.(string)
	if !ok {
		return nil
	}
	_, err := time.ParseDuration(value)
	return err
}

// toJSONValue is docker/cli's conversion of a compose dict before validating.
func toJSONValue(v any) any {
	if v == nil {
		return nil
	}
	switch value := reflect.ValueOf(v); value.Kind() { //nolint:exhaustive // only maps and slices change
	case reflect.Map:
		result := make(map[string]any, value.Len())
		iter := value.MapRange()
		for iter.Next() {
			result[iter.Key().String()] = toJSONValue(iter.Value().Interface())
		}
		return result
	case reflect.Slice:
		result := make([]any, value.Len())
		for i := range value.Len() {
			result[i] = toJSONValue(value.Index(i).Interface())
		}
		return result
	default:
		return v
	}
}

// hasDollar reports whether any string value in v holds a `$` (interpolation would
// change it; keys are not interpolated). A map or list of another type than
// loader.ParseYAML makes counts as holding one (loader.Load then validates).
func hasDollar(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return strings.Contains(v, "$")
	case map[string]any:
		for _, e := range v {
			if hasDollar(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasDollar(e) {
				return true
			}
		}
	default:
		k := reflect.ValueOf(v).Kind()
		return k == reflect.Map || k == reflect.Slice || k == reflect.Array
	}
	return false
}
