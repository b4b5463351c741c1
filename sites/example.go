package sites

import _ "embed"

// The worked example's defaults and PostgreSQL schema, which `sitectl init` writes
// into a new configuration repository.
var (
	//go:embed defaults.yaml
	ExampleDefaults []byte
	//go:embed schema.sql
	ExampleSchema []byte
)
