// Package images builds the lab's container images without a registry: real services
// assembled from the Debian packages installed on this machine (their files plus the
// shared libraries they load), and one small static Go stand-in for the services
// Debian cannot provide. Images are built once, cached under a key of their inputs,
// and loaded into the lab's engines with one `docker load` each.
package images

// Spec is one lab image.
type Spec struct {
	// Logical is the image's name in the site config (images.<logical>).
	Logical string `json:"logical"`
	// Ref is the tag the lab's engines hold it under.
	Ref string `json:"ref"`
	// Real is false for a stand-in.
	Real bool `json:"real"`
	// Source says what it is built from.
	Source string `json:"source"`
}

// Repo is the repository every lab image is tagged in.
const Repo = "sitectl-lab/"

// standins are the services no Debian package provides; the stand-in answers their
// health checks on their usual ports and says it is a stand-in.
// (node-exporter, postgres-exporter and Alertmanager are Debian packages: real.)
var standins = []string{"kong", "elasticsearch", "logstash", "kibana", "grafana", "mongo", "cadvisor"}

// Catalog lists every lab image.
func Catalog() []Spec {
	out := []Spec{
		{Logical: "postgres", Ref: Repo + "postgres:15", Real: true, Source: "Debian postgresql-15 (host package files + shared libraries)"},
		{Logical: "prometheus", Ref: Repo + "prometheus:lab", Real: true, Source: "Debian prometheus (host package files + shared libraries)"},
		{Logical: "django-api", Ref: Repo + "django-api:lab", Real: true, Source: "Debian python3, python3-django, python3-psycopg2 + lab/images/django app"},
		{Logical: "strongswan", Ref: Repo + "strongswan:lab", Real: true, Source: "Debian charon-systemd, strongswan-swanctl (host package files + shared libraries)"},
		{Logical: "node-exporter", Ref: Repo + "node-exporter:lab", Real: true, Source: "Debian prometheus-node-exporter (host package files + shared libraries)"},
		{Logical: "postgres-exporter", Ref: Repo + "postgres-exporter:lab", Real: true, Source: "Debian prometheus-postgres-exporter (host package files + shared libraries)"},
		{Logical: "alertmanager", Ref: Repo + "alertmanager:lab", Real: true, Source: "Debian prometheus-alertmanager (host package files + shared libraries)"},
		nginxSpec,
	}
	out = append(out, barmanSpec)
	for _, s := range standins {
		out = append(out, Spec{Logical: s, Ref: Repo + s + ":standin", Real: false, Source: "lab/standin (static Go, FROM scratch)"})
	}
	return out
}
