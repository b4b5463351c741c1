package audit

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// CheckAppRoles checks the operator's apps deployed at a site: none connects to
// the database as sitectl's administrative role (postgres.user). sitectl gives
// each app using the database a role of its own (x-sitectl.database); a service
// whose DATABASE_USER is the administrative role was deployed by an older sitectl,
// or set its variables itself.
func CheckAppRoles(site *sites.Site, svcs []Service) []Finding {
	admin := site.Postgres.User
	if admin == "" {
		return nil
	}
	var out []Finding
	for _, s := range svcs {
		app := s.Labels[stacks.LabelApp]
		if app == "" {
			continue
		}
		if u, ok := env(s, "DATABASE_USER"); ok && strings.TrimSpace(u) == admin {
			out = append(out, Finding{Severity: High, Site: site.Name, Object: "service " + s.Name + " env DATABASE_USER",
				What: fmt.Sprintf("app %s connects to the database as %s, sitectl's administrative role (a superuser)", app, admin),
				Fix:  "`sitectl deploy` gives the app its own role (x-sitectl.database: postgres makes " + sites.AppRoleName(app) + ", password secrets." + sites.AppPasswordSecretName(app) + ")"})
		}
	}
	return out
}
