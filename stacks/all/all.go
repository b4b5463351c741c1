// Package all registers every stack with the stacks registry: import it (for its
// side effects) wherever stacks are rendered. Stack authors add one import line.
package all

import (
	// Registered stacks, one line each.
	_ "github.com/sitectl/sitectl/stacks/backup"
	_ "github.com/sitectl/sitectl/stacks/django-api"
	_ "github.com/sitectl/sitectl/stacks/elk"
	_ "github.com/sitectl/sitectl/stacks/kong"
	_ "github.com/sitectl/sitectl/stacks/mongo"
	_ "github.com/sitectl/sitectl/stacks/monitoring"
	_ "github.com/sitectl/sitectl/stacks/postgres"
)
