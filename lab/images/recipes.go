package images

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strings"
)

//go:embed django/server.py
var djangoServer []byte

// recipeSources are this package's recipe and assembly code: a change to either
// rebuilds the images.
//
//go:embed recipes.go rootfs.go nginx.go
var recipeSources embed.FS

// recipeVersion changes whenever a recipe changes what it builds.
const recipeVersion = "lab-images-v1"

// config is the part of an image config a recipe sets.
type config struct {
	Entrypoint   []string
	Cmd          []string
	Env          []string
	ExposedPorts []string // "5432/tcp"
	WorkingDir   string
	StopSignal   string
	// Healthcheck is a CMD test run every 5 s (nil for none).
	Healthcheck []string
}

// recipe builds one image's root filesystem from host packages.
type recipe struct {
	spec     Spec
	packages []string
	// extra is hashed into the cache key besides the package versions.
	extra func() []byte
	build func(r *rootfs, standin string) error
	cfg   config
}

const basePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// base adds what every real image has: /bin/sh (dash), /etc/passwd and group, /tmp,
// and the stand-in binary as curl and wget for health checks.
func base(r *rootfs, standin string) error {
	if err := r.addHost("/bin/sh", nil); err != nil {
		return err
	}
	r.addFile("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"))
	r.addFile("etc/group", []byte("root:x:0:\npostgres:x:999:\nnogroup:x:65534:\n"))
	r.addFile("etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files dns\n"))
	r.addDir("tmp", 0o1777, 0, 0)
	r.addDir("root", 0o700, 0, 0)
	r.addHostFileAs(standin, "usr/local/bin/standin", 0o755)
	r.addSymlink("usr/local/bin/curl", "standin")
	r.addSymlink("usr/local/bin/wget", "standin")
	r.addSymlink("usr/local/bin/sleep", "standin")
	return nil
}

func skipDocs(p string) bool {
	return strings.HasPrefix(p, "/usr/share/doc") || strings.HasPrefix(p, "/usr/share/man") ||
		strings.HasPrefix(p, "/usr/share/locale") || strings.HasPrefix(p, "/usr/share/lintian")
}

func recipes() []recipe {
	return []recipe{
		{
			spec:     Catalog()[0],
			packages: []string{"postgresql-15", "postgresql-client-15", "tzdata", "dash"},
			build: func(r *rootfs, standin string) error {
				if err := base(r, standin); err != nil {
					return err
				}
				skip := func(p string) bool {
					return skipDocs(p) || strings.Contains(p, "/bitcode") || strings.HasSuffix(p, "llvmjit.so") ||
						strings.HasSuffix(p, "llvmjit_types.bc") || strings.HasPrefix(p, "/usr/share/postgresql/15/man")
				}
				for _, p := range []string{"/usr/lib/postgresql/15", "/usr/share/postgresql/15", "/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Etc", "/usr/share/zoneinfo/Africa", "/usr/share/zoneinfo/Europe"} {
					if err := r.addHost(p, skip); err != nil {
						return err
					}
				}
				r.addHostFileAs(standin, "usr/local/bin/docker-entrypoint.sh", 0o755)
				r.addDir("var/lib/postgresql", 0o755, 999, 999)
				r.addDir("var/run/postgresql", 0o2775, 999, 999)
				r.addDir("docker-entrypoint-initdb.d", 0o755, 0, 0)
				return r.addPGTemplate()
			},
			cfg: config{
				Entrypoint:   []string{"docker-entrypoint.sh"},
				Cmd:          []string{"postgres"},
				Env:          []string{basePath + ":/usr/lib/postgresql/15/bin", "PGDATA=/var/lib/postgresql/data", "LANG=C.UTF-8"},
				ExposedPorts: []string{"5432/tcp"},
				StopSignal:   "SIGINT",
			},
		},
		{
			spec:     Catalog()[1],
			packages: []string{"prometheus", "dash"},
			build: func(r *rootfs, standin string) error {
				if err := base(r, standin); err != nil {
					return err
				}
				skip := func(p string) bool { return skipDocs(p) || strings.Contains(p, "/moment-timezone/data") }
				for _, p := range []string{"/usr/bin/prometheus", "/usr/bin/promtool", "/usr/share/prometheus"} {
					if err := r.addHost(p, skip); err != nil {
						return err
					}
				}
				// /bin is usr/bin (merged /usr), so /bin/prometheus is there already.
				r.addFile("etc/prometheus/prometheus.yml", []byte("# sitectl lab default; stacks mount their own.\nglobal:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['localhost:9090']\n"))
				r.addDir("prometheus", 0o777, 65534, 65534)
				return nil
			},
			cfg: config{
				Entrypoint:   []string{"/bin/prometheus"},
				Cmd:          []string{"--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.console.libraries=/usr/share/prometheus/console_libraries", "--web.console.templates=/usr/share/prometheus/consoles"},
				Env:          []string{basePath},
				ExposedPorts: []string{"9090/tcp"},
				WorkingDir:   "/prometheus",
			},
		},
		{
			spec:     Catalog()[2],
			packages: []string{"python3.11", "libpython3.11-stdlib", "libpython3.11-minimal", "python3-django", "python3-psycopg2", "python3-asgiref", "python3-sqlparse", "python3-tz", "dash"},
			extra:    func() []byte { return djangoServer },
			build: func(r *rootfs, standin string) error {
				if err := base(r, standin); err != nil {
					return err
				}
				skip := func(p string) bool {
					if skipDocs(p) {
						return true
					}
					// Translations: only the locale package itself and English.
					if i := strings.Index(p, "/django/conf/locale/"); i >= 0 {
						rest := p[i+len("/django/conf/locale/"):]
						return rest != "__init__.py" && !strings.HasPrefix(rest, "en/") && rest != "en"
					}
					for _, x := range []string{"/zoneinfo/right/", "/zoneinfo/posix/", "/test/", "/tests/", "/idlelib", "/tkinter", "/ensurepip", "/lib2to3", "/turtledemo", "/django/contrib/admin/static", "/django/contrib/admin/locale", "/django/contrib/auth/locale", "/django/contrib/gis", "/__pycache__"} {
						if strings.Contains(p+"/", x) || strings.HasSuffix(p, strings.TrimSuffix(x, "/")) {
							return true
						}
					}
					return false
				}
				for _, p := range []string{"/usr/bin/python3.11", "/usr/lib/python3.11", "/usr/share/zoneinfo"} {
					if err := r.addHost(p, skip); err != nil {
						return err
					}
				}
				if err := r.addPythonPackages(skip, "python3-django", "python3-psycopg2", "python3-asgiref", "python3-sqlparse", "python3-tz"); err != nil {
					return err
				}
				r.addSymlink("usr/bin/python3", "python3.11")
				r.addFile("app/server.py", djangoServer)
				return r.addBytecode("/usr/bin/python3.11")
			},
			cfg: config{
				Entrypoint:   []string{"python3", "/app/server.py"},
				Env:          []string{basePath, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PORT=8000", "LANG=C.UTF-8"},
				ExposedPorts: []string{"8000/tcp"},
				WorkingDir:   "/app",
				Healthcheck:  []string{"curl", "-f", "http://127.0.0.1:8000/health"},
			},
		},
		{
			spec:     Catalog()[3],
			packages: []string{"charon-systemd", "strongswan-swanctl", "strongswan-libcharon", "libstrongswan", "libcharon-extra-plugins", "libstrongswan-standard-plugins", "dash"},
			build: func(r *rootfs, standin string) error {
				if err := base(r, standin); err != nil {
					return err
				}
				for _, p := range []string{"/usr/sbin/charon-systemd", "/usr/sbin/swanctl", "/usr/lib/ipsec", "/etc/strongswan.d", "/etc/strongswan.conf", "/etc/swanctl"} {
					if _, err := os.Lstat(p); err != nil {
						continue
					}
					if err := r.addHost(p, skipDocs); err != nil {
						return err
					}
				}
				return nil
			},
			cfg: config{
				Entrypoint: []string{"/usr/sbin/charon-systemd"},
				Env:        []string{basePath},
			},
		},
		{
			spec:     Catalog()[4],
			packages: []string{"prometheus-node-exporter", "dash"},
			build: func(r *rootfs, standin string) error {
				if err := base(r, standin); err != nil {
					return err
				}
				return r.addHost("/usr/bin/prometheus-node-exporter", skipDocs)
			},
			cfg: config{
				Entrypoint:   []string{"/usr/bin/prometheus-node-exporter"},
				Env:          []string{basePath},
				ExposedPorts: []string{"9100/tcp"},
			},
		},
		{
			// Runs with sitectl's queries.yaml (stacks/monitoring mounts it and sets
			// PG_EXPORTER_EXTEND_QUERY_PATH, DATA_SOURCE_*).
			spec:     Catalog()[5],
			packages: []string{"prometheus-postgres-exporter", "dash"},
			build: func(r *rootfs, standin string) error {
				if err := base(r, standin); err != nil {
					return err
				}
				return r.addHost("/usr/bin/prometheus-postgres-exporter", skipDocs)
			},
			cfg: config{
				Entrypoint:   []string{"/usr/bin/prometheus-postgres-exporter"},
				Env:          []string{basePath},
				ExposedPorts: []string{"9187/tcp"},
			},
		},
		{
			spec:     Catalog()[6],
			packages: []string{"prometheus-alertmanager", "dash"},
			build: func(r *rootfs, standin string) error {
				if err := base(r, standin); err != nil {
					return err
				}
				for _, p := range []string{"/usr/bin/prometheus-alertmanager", "/usr/bin/amtool", "/usr/share/prometheus/alertmanager"} {
					if err := r.addHost(p, skipDocs); err != nil {
						return err
					}
				}
				r.addFile("etc/alertmanager/alertmanager.yml", []byte("# sitectl lab default; stacks mount their own.\nroute:\n  receiver: none\nreceivers:\n  - name: none\n"))
				r.addDir("alertmanager", 0o777, 65534, 65534)
				return nil
			},
			cfg: config{
				Entrypoint:   []string{"/usr/bin/prometheus-alertmanager"},
				Cmd:          []string{"--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager", "--cluster.listen-address="},
				Env:          []string{basePath},
				ExposedPorts: []string{"9093/tcp"},
				WorkingDir:   "/alertmanager",
			},
		},
		nginxRecipe(),
		barmanRecipe(),
	}
}

// standinRecipe is the stand-in layer: the static binary and the names it answers to.
func standinRootfs(r *rootfs, standin string) {
	r.addHostFileAs(standin, "standin", 0o755)
	for _, link := range []string{"bin/sh", "usr/bin/curl", "usr/bin/wget", "usr/local/bin/kong", "usr/bin/mongosh", "usr/bin/mongo", "bin/healthcheck"} {
		rel := strings.Repeat("../", strings.Count(link, "/")) + "standin"
		r.addSymlink(link, path.Clean(rel))
	}
	r.addDir("tmp", 0o1777, 0, 0)
}

// standinPorts are the exposed ports of each stand-in (kept with serve.go's table).
var standinPorts = map[string][]string{
	"kong":          {"8000/tcp", "8001/tcp", "8100/tcp"},
	"elasticsearch": {"9200/tcp", "9300/tcp"},
	"logstash":      {"9600/tcp", "5044/tcp"},
	"kibana":        {"5601/tcp"},
	"grafana":       {"3000/tcp"},
	"mongo":         {"27017/tcp"},
	"cadvisor":      {"8080/tcp"},
}

func standinConfig(service string) config {
	return config{
		Entrypoint:   []string{"/standin"},
		Env:          []string{basePath, "STANDIN_SERVICE=" + service},
		ExposedPorts: standinPorts[service],
		Healthcheck:  []string{"/standin", "check"},
	}
}

// key is a recipe's cache key: the recipe version, the installed versions of its
// packages and its extra inputs, and the stand-in binary's hash.
func (rc recipe) key(standinHash string) (string, error) {
	v, err := dpkgVersions(rc.packages...)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", recipeVersion, rc.spec.Logical, v, standinHash)
	for _, f := range []string{"recipes.go", "rootfs.go", "nginx.go"} {
		b, _ := recipeSources.ReadFile(f)
		h.Write(b)
	}
	if rc.extra != nil {
		h.Write(rc.extra())
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
