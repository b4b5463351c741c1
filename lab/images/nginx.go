package images

import (
	_ "embed"
)

// The lab's nginx image: Debian's nginx (the binary nginx-light installs), its
// mime.types, and a configuration laid out like the official image's.
var (
	//go:embed nginx/nginx.conf
	nginxConf []byte
	//go:embed nginx/default.conf
	nginxDefault []byte
	//go:embed nginx/index.html
	nginxIndex []byte
)

// nginxSpec is the catalog entry of the lab's nginx image.
var nginxSpec = Spec{Logical: "nginx", Ref: Repo + "nginx:lab", Real: true, Source: "Debian nginx 1.22 (host package files + shared libraries) + lab/images/nginx configuration"}

func nginxRecipe() recipe {
	return recipe{
		spec:     nginxSpec,
		packages: []string{"nginx", "nginx-common", "dash"},
		extra: func() []byte {
			return append(append(append([]byte{}, nginxConf...), nginxDefault...), nginxIndex...)
		},
		build: func(r *rootfs, standin string) error {
			if err := base(r, standin); err != nil {
				return err
			}
			for _, p := range []string{"/usr/sbin/nginx", "/etc/nginx/mime.types"} {
				if err := r.addHost(p, skipDocs); err != nil {
					return err
				}
			}
			r.addFile("etc/nginx/nginx.conf", nginxConf)
			r.addFile("etc/nginx/conf.d/default.conf", nginxDefault)
			r.addFile("usr/share/nginx/html/index.html", nginxIndex)
			// Debian's build opens /var/log/nginx/error.log before it reads the
			// configuration, and keeps its temp paths under /var/lib/nginx.
			r.addDir("var/log/nginx", 0o755, 0, 0)
			r.addDir("var/lib/nginx", 0o755, 0, 0)
			r.addDir("run", 0o755, 0, 0)
			return nil
		},
		cfg: config{
			Entrypoint:   []string{"/usr/sbin/nginx"},
			Cmd:          []string{"-g", "daemon off;"},
			Env:          []string{basePath},
			ExposedPorts: []string{"80/tcp"},
			StopSignal:   "SIGQUIT",
			Healthcheck:  []string{"curl", "-f", "http://127.0.0.1:80/healthz"},
		},
	}
}
