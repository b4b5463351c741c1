package mongo

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*sites.Topology)
		want   string // substring of a problem; "" = no problem at all
		sev    sites.Severity
	}{
		{"example layout has no errors", nil, "", ""},
		{"example layout sets no user", nil, "mongo.user", sites.SevWarning},
		{"user without password", func(tp *sites.Topology) { tp.Site("cloud").Mongo.User = "sitectl" }, "has no password reference", sites.SevError},
		{"non-voter with priority", func(tp *sites.Topology) { tp.Site("douala").Mongo.Members[0].Votes = votes(0) }, "votes: 0 must have priority 0", sites.SevError},
		{"hidden with priority", func(tp *sites.Topology) { tp.Site("douala").Mongo.Members[0].Hidden = true }, "hidden members must have priority 0", sites.SevError},
		{"delayed not hidden", func(tp *sites.Topology) {
			m := &tp.Site("yaounde").Mongo.Members[0]
			m.Delay, m.Priority, m.Votes = sites.Duration(3600e9), priority(0), votes(0)
			tp.Site("yaounde").Mongo.Members = append(tp.Site("yaounde").Mongo.Members, sites.MongoMember{Host: "10.20.0.12:27017"})
		}, "should be hidden", sites.SevWarning},
		{"duplicate host", func(tp *sites.Topology) { tp.Site("yaounde").Mongo.Members[0].Host = "10.10.0.12:27017" }, "is also a member at douala", sites.SevError},
		{"host outside the LAN", func(tp *sites.Topology) { tp.Site("yaounde").Mongo.Members[0].Host = "10.99.0.1:27017" }, "outside the site LAN", sites.SevWarning},
		{"not host:port", func(tp *sites.Topology) { tp.Site("yaounde").Mongo.Members[0].Host = "yaounde-db" }, "is not host:port", sites.SevError},
		{"spoke above the hub", func(tp *sites.Topology) { tp.Site("douala").Mongo.Members[0].Priority = priority(5) }, "above the hub's 2", sites.SevWarning},
		{"arbiter", func(tp *sites.Topology) {
			tp.Site("yaounde").Mongo.Members[0].Arbiter = true
			tp.Site("yaounde").Mongo.Members[0].Priority = nil
		}, "an arbiter keeps a primary that cannot take majority writes", sites.SevWarning},
		{"one spoke holds a majority", func(tp *sites.Topology) {
			d := tp.Site("douala")
			d.Mongo.Members = append(d.Mongo.Members, sites.MongoMember{Host: "10.10.0.13:27017"}, sites.MongoMember{Host: "10.10.0.14:27017"})
		}, "douala alone holds 3 of 5 votes", sites.SevWarning},
		{"no keyfile", func(tp *sites.Topology) { tp.Site("cloud").Mongo.KeyFile = sites.SecretRef{} }, "keyfile", sites.SevError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := Check(loadTopo(t, tc.mutate))
			if tc.want == "" {
				if errs := ps.Errors(); len(errs) > 0 {
					t.Fatalf("errors on the example layout: %v", errs)
				}
				return
			}
			for _, p := range ps {
				if (strings.Contains(p.Message, tc.want) || p.Key == tc.want) && p.Severity == tc.sev {
					return
				}
			}
			t.Errorf("no %s containing %q in %v", tc.sev, tc.want, ps)
		})
	}
}
