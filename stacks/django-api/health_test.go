package djangoapi_test

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/stacks"
	djangoapi "github.com/sitectl/sitectl/stacks/django-api"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestHealthRetry: the probe retries a failing answer for values.health_retry
// (curl's own retry flags, a loop in python), not at all with 0s, and a retry
// window that leaves no time within health_timeout is refused naming both keys.
func TestHealthRetry(t *testing.T) {
	test := func(t *testing.T, set ...string) []string {
		t.Helper()
		topo := stacktest.Load(t, "dev", set...)
		in := stacks.Input{Topo: topo, Site: topo.Site("douala")}
		r, err := djangoapi.Stack{}.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg := stacktest.LoadCompose(t, r)
		return cfg.Services[0].HealthCheck.Test
	}
	if got := strings.Join(test(t, "douala:values.django-api.healthcheck=curl"), " "); !strings.Contains(got,
		"--retry 3 --retry-delay 1 --retry-connrefused --retry-max-time 3 http://127.0.0.1:8000/healthz") {
		t.Errorf("curl test %q, want it to retry for 3s", got)
	}
	if got := strings.Join(test(t, "douala:values.django-api.healthcheck=curl", "douala:values.django-api.health_retry=0s"), " "); got != "CMD curl -fsS -o /dev/null http://127.0.0.1:8000/healthz" {
		t.Errorf("curl test without retry %q", got)
	}
	if got := test(t, "douala:values.django-api.health_retry=5s", "douala:values.django-api.health_timeout=20s"); got[1] != "python3" ||
		!strings.Contains(got[3], "end = time.time() + 5\n") || !strings.Contains(got[3], "end + 14 - time.time()") {
		t.Errorf("python test %q, want a 5s retry loop whose last try gets 14s", got)
	}
	for set, want := range map[string]string{
		"douala:values.django-api.health_retry=soon": "values.django-api.health_retry is soon",
		"douala:values.django-api.health_retry=9s":   "values.django-api.health_retry (9s) leaves no time for a last try within health_timeout (10s)",
		"douala:values.django-api.healthcheck=wget":  "values.django-api.healthcheck is wget",
	} {
		topo := stacktest.Load(t, "dev", set)
		_, err := djangoapi.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "site douala") {
			t.Errorf("%s: err = %v, want %q", set, err, want)
		}
	}
}
