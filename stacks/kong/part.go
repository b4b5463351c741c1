package kong

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
)

// ComponentCert is the plan component of sitectl's Kong CA and the hub's certificate.
const ComponentCert plan.Component = "certificate"

// CertPart is the deploy part that creates sitectl's Kong CA and the hub Kong's
// certificate (in the hub's tunnel.pki_dir/kong) when missing, and renews the
// certificate when expiring or when the hub's Kong nodes changed. It runs before the
// stacks: a spoke's kong.yml carries the CA, the hub's Kong serves the certificate.
// Every site running Kong plans it (sites deploy in parallel; one creates, the
// others then find it).
type CertPart struct{}

// Name implements plan.Part.
func (CertPart) Name() string { return "kong certificate" }

var ensureMu sync.Mutex

// Plan implements plan.Part.
func (CertPart) Plan(_ context.Context, topo *sites.Topology, site *sites.Site) ([]plan.Step, error) {
	if !site.HasStack(Name) {
		return nil, nil
	}
	own, err := SitectlTLS(topo)
	if err != nil || !own {
		return nil, err
	}
	p, err := AdminPKI(topo)
	if err != nil {
		return nil, err
	}
	if err := tunnels.CheckOutsideRepo(p.Dir); err != nil {
		return nil, err
	}
	c, err := HubCert(topo)
	if err != nil {
		return nil, err
	}
	caSt, st := tunnels.CheckServer(p, p, c)
	ensure := func(context.Context) error {
		ensureMu.Lock()
		defer ensureMu.Unlock()
		_, _, err := EnsureHubCert(topo)
		return err
	}
	hub := topo.HubSite()
	var steps []plan.Step
	switch caSt.State {
	case tunnels.CertMissing:
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentCert, Action: plan.Create, Name: "kong ca " + caSt.Path,
			Diff: []string{"key " + hub.Tunnel.KeyType}, Apply: ensure})
	case tunnels.CertOK:
	default:
		return nil, fmt.Errorf("kong certificate: CA %s is %s: %s; replace it (the hub's certificate is then reissued)", caSt.Path, caSt.State, caSt.Problem)
	}
	sans := append(append([]string(nil), c.DNS...), fmt.Sprint(c.IPs))
	switch st.State {
	case tunnels.CertOK:
	case tunnels.CertMissing:
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentCert, Action: plan.Create, Name: "kong " + c.ID,
			Diff: []string{fmt.Sprintf("SAN %v", sans), "lifetime " + hub.Tunnel.CertLifetime.D().String()}, Apply: ensure})
	default: // expiring, expired, invalid (names changed)
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentCert, Action: plan.Update, Name: "kong " + c.ID,
			Diff: []string{"renew: " + string(st.State) + " (expires on " + st.NotAfter.Format(time.DateOnly) + ")"}, Note: st.Problem, Apply: ensure})
	}
	return steps, nil
}
