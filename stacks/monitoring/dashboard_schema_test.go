package monitoring_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// Grafana is a stand-in in the lab (no Debian package), so the dashboards sitectl
// generates are checked against Grafana's dashboard JSON model as published in the
// grafana-foundation-sdk (types generated from Grafana's CUE schema, v0.0.22):
// strict decoding refuses an unknown or mistyped field at any level the SDK models
// (dashboard, panel, gridPos, fieldConfig, the timeseries panel's options and the
// Prometheus queries, through the SDK's plugin registry), then the SDK's Validate
// checks required fields and ranges. What this does not check: that Grafana accepts
// the schemaVersion without migrating it, that the PromQL is valid (promtool checks
// the rules; TestDashboards checks the queries are scoped to the site), and the
// provisioning YAML files, which the SDK does not model.
func TestDashboardsMatchGrafanaSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, env := range []string{"dev", "staging", "production"} {
		topo := stacktest.Load(t, env)
		for _, s := range topo.Sites {
			b, err := monitoring.Dashboard(s)
			if err != nil {
				t.Fatalf("%s/%s: %v", env, s.Name, err)
			}
			if err := checkDashboard(b); err != nil {
				t.Errorf("%s/%s: dashboard does not match Grafana's dashboard model: %v", env, s.Name, err)
			}
		}
	}
}

func checkDashboard(b []byte) error {
	// The v1 JSON model (schemaVersion 39) is what file provisioning reads;
	// dashboardv2 is the Grafana 12 v2 API resource, a different format.
	//lint:ignore SA1019 the v1 model is the format provisioned here (above)
	var d dashboard.Dashboard //nolint:staticcheck // see above
	if err := sdkError(d.UnmarshalJSONStrict(b)); err != nil {
		return err
	}
	return sdkError(d.Validate())
}

// sdkError turns the SDK's empty cog.BuildErrors, which v0.0.22 returns as a
// non-nil error when there is nothing wrong, into nil.
func sdkError(err error) error {
	var errs cog.BuildErrors
	if errors.As(err, &errs) && len(errs) == 0 {
		return nil
	}
	return err
}

// TestDashboardSchemaCheckFails proves the check can fail: a field Grafana's model
// does not have, and a mistyped one, are refused.
func TestDashboardSchemaCheckFails(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	topo := stacktest.Load(t, "dev")
	b, err := monitoring.Dashboard(topo.Sites[0])
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"unknown field": strings.Replace(string(b), `"refresh":`, `"refreshh":`, 1),
		"mistyped":      strings.Replace(string(b), `"editable": false`, `"editable": "no"`, 1),
		"gridPos":       strings.Replace(string(b), `"h": 8`, `"h": "8"`, 1),
		"panel unit":    strings.Replace(string(b), `"unit": "none"`, `"unit": 5`, 1),
		"query refId":   strings.Replace(string(b), `"refId": "A"`, `"refId": 1`, 1),
		"query field":   strings.Replace(string(b), `"legendFormat":`, `"legend":`, 1),
	} {
		if bad == string(b) {
			t.Fatalf("%s: the mutation did not apply", name)
		}
		if err := checkDashboard([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
