package audit

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

// TestCheckAppRoles: an app's service connecting as sitectl's administrative role
// (DATABASE_USER = postgres.user) is a High finding naming the service and the
// role sitectl would give it; an app on its own role, and a service that is no
// app, are not.
func TestCheckAppRoles(t *testing.T) {
	site := &sites.Site{Name: "douala"}
	site.Postgres.User = "sitectl"
	svcs := []Service{
		{Name: "notes_api", Stack: "notes", Labels: map[string]string{"sitectl.app": "notes"}, Env: []string{"DATABASE_USER=sitectl"}},
		{Name: "ledger_api", Stack: "ledger", Labels: map[string]string{"sitectl.app": "ledger"}, Env: []string{"DATABASE_USER=app_ledger"}},
		{Name: "django-api_api", Stack: "django-api", Env: []string{"DATABASE_USER=sitectl"}},
	}
	fs := CheckAppRoles(site, svcs)
	if len(fs) != 1 {
		t.Fatalf("findings %+v, want one (notes_api)", fs)
	}
	f := fs[0]
	if f.Severity != High || f.Object != "service notes_api env DATABASE_USER" || !strings.Contains(f.What, "administrative role") || !strings.Contains(f.Fix, "app_notes") {
		t.Errorf("finding %+v: want High on notes_api, naming the administrative role and app_notes", f)
	}
}
