// Package deps pins the project's libraries in go.mod while the packages that use
// them are being written. Remove it once every import below is used elsewhere.
package deps

import (
	_ "github.com/docker/cli/cli/compose/convert"
	_ "github.com/docker/cli/cli/compose/loader"
	_ "github.com/google/uuid"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/moby/moby/client"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "github.com/strongswan/govici/vici"
	_ "go.mongodb.org/mongo-driver/v2/mongo"
	_ "golang.org/x/term"
	_ "gopkg.in/yaml.v3"
)
