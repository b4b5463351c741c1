// Package service renders strongSwan as a service of a site's swarm: a compose stack
// (docker stack deploy format) that runs charon-systemd on the gateway node with host
// networking and NET_ADMIN, its strongswan.conf, swanctl.conf and certificates as
// Docker configs and its private key as a Docker secret. After a restart the
// container loads its own configuration (swanctl --load-all), so the tunnels come
// back without sitectl; sitectl keeps managing them over vici.
package service

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/tunnels"
)

// Name is the stack's name in the swarm.
const Name = "strongswan"

// GatewayLabel is the node label that places the service on the gateway node.
const GatewayLabel = "sitectl.gateway"

// KeySecret is the site secret name the gateway's private key is read from.
const KeySecret = "strongswan-gateway-key"

// Render returns the stack for one site and the site secrets it reads (the gateway
// key from tunnel.pki_dir, PSKs from tunnel.psk); add them to the site's Secrets
// before converting. The compose file never contains a key.
func Render(topo *sites.Topology, site *sites.Site) (stacks.Rendered, map[string]sites.SecretRef, error) {
	g, err := tunnels.BuildSite(topo, site.Name)
	if err != nil {
		return stacks.Rendered{}, nil, err
	}
	if g.IPsec == "libipsec" {
		return stacks.Rendered{}, nil, fmt.Errorf("site %s: tunnel.ipsec libipsec needs /dev/net/tun, which swarm services cannot get; run charon-systemd on the gateway host instead (README, Tunnels)", site.Name)
	}
	sc, err := tunnels.RenderStrongswan(g)
	if err != nil {
		return stacks.Rendered{}, nil, err
	}
	sock, err := tunnels.SocketPath(g.Vici)
	if err != nil {
		return stacks.Rendered{}, nil, err
	}
	files := map[string][]byte{
		"strongswan.conf": []byte(sc),
		"swanctl.conf":    []byte(tunnels.RenderSwanctl(g)),
	}
	secrets := map[string]sites.SecretRef{}
	x509 := site.Tunnel.Auth == "x509"
	if x509 {
		ca, gw := tunnels.SiteCerts(topo, site)
		for name, p := range map[string]string{"ca.crt": filepath.Join(ca.Dir, "ca.crt"), "gateway.crt": gw.CertPath(g.ID)} {
			b, err := os.ReadFile(p)
			if err != nil {
				return stacks.Rendered{}, nil, fmt.Errorf("site %s: %w (run `sitectl tunnels certs`)", site.Name, err)
			}
			files[name] = b
		}
		secrets[KeySecret] = sites.SecretRef{File: filepath.Join(gw.Dir, g.ID+".key")}
	}
	type pskLink struct{ Secret, Include, ID1, ID2, Name string }
	var psk []pskLink
	for _, c := range g.Conns {
		if c.Auth == "psk" {
			psk = append(psk, pskLink{tunnels.PSKSecretName(c.Name), tunnels.PSKIncludePath(c.Name), c.LocalID, c.RemoteID, c.Name})
			secrets[tunnels.PSKSecretName(c.Name)] = c.PSK
		}
	}
	data := stacks.TemplateData{Site: site, Topo: topo, Env: topo.Env, Stack: Name, Extra: map[string]any{
		"X509": x509, "ID": g.ID, "SocketDir": path.Dir(sock), "PSK": psk,
		"CertFile": tunnels.CertFile(g.ID), "CAFile": tunnels.CAFile, "KeyFile": tunnels.KeyFile(g.ID),
		"KeySecret": KeySecret, "Label": GatewayLabel,
	}}
	compose, err := stacks.ExecTemplate("strongswan compose", []byte(composeTemplate), data)
	if err != nil {
		return stacks.Rendered{}, nil, err
	}
	return stacks.Rendered{Stack: Name, Compose: compose, Files: files}, secrets, nil
}

// composeTemplate: host network (the tunnel endpoints are the node's own addresses),
// NET_ADMIN for XFRM policies and routes, the vici socket in a host directory so
// sitectl reaches it on the gateway host (or over SSH), never on TCP.
var composeTemplate = strings.TrimLeft(`
# strongswan stack for {{ .Site.Name }} ({{ .Env }}), rendered by sitectl; do not edit.
# charon on the gateway node (label {{ .Extra.Label }}=true), host network, NET_ADMIN.
version: "3.8"

services:
  charon:
    image: {{ image "strongswan" }}
    entrypoint: ["/bin/sh", "-c"]
    command:
      - >-
        umask 077 &&
        {{- if .Extra.X509 }}
        mkdir -p /etc/swanctl/private &&
        cp /run/secrets/{{ .Extra.KeySecret }} /etc/swanctl/{{ .Extra.KeyFile }} &&
        chmod 600 /etc/swanctl/{{ .Extra.KeyFile }} &&
        {{- end }}
        {{- range .Extra.PSK }}
        mkdir -p /etc/swanctl/conf.d &&
        printf 'ike-{{ .Name }} {\n id-1 = {{ .ID1 }}\n id-2 = {{ .ID2 }}\n secret = 0s%s\n}\n' "$$(base64 -w0 /run/secrets/{{ .Secret }})" > {{ .Include }} &&
        chmod 600 {{ .Include }} &&
        {{- end }}
        true;
        charon-systemd &
        until swanctl --load-all; do sleep 1; done;
        wait $$!
    environment:
      STRONGSWAN_CONF: /etc/strongswan.conf
    configs:
      - {source: strongswan_conf, target: /etc/strongswan.conf, mode: 0444}
      - {source: swanctl_conf, target: /etc/swanctl/swanctl.conf, mode: 0444}
{{- if .Extra.X509 }}
      - {source: ca_crt, target: /etc/swanctl/{{ .Extra.CAFile }}, mode: 0444}
      - {source: gateway_crt, target: /etc/swanctl/{{ .Extra.CertFile }}, mode: 0444}
{{- end }}
{{- if or .Extra.X509 .Extra.PSK }}
    secrets:
{{- if .Extra.X509 }}
      - {source: {{ .Extra.KeySecret }}, target: {{ .Extra.KeySecret }}, mode: 0400}
{{- end }}
{{- range .Extra.PSK }}
      - {source: {{ .Secret }}, target: {{ .Secret }}, mode: 0400}
{{- end }}
{{- end }}
    cap_add: [NET_ADMIN, NET_RAW]
    volumes:
      - {type: bind, source: {{ .Extra.SocketDir }}, target: {{ .Extra.SocketDir }}}
    networks: [hostnet]
    deploy:
      mode: global
      placement:
        constraints: ["node.labels.{{ .Extra.Label }} == true"]
      restart_policy: {condition: any, delay: 5s}

networks:
  hostnet:
    external: true
    name: host

configs:
  strongswan_conf: {file: strongswan.conf}
  swanctl_conf: {file: swanctl.conf}
{{- if .Extra.X509 }}
  ca_crt: {file: ca.crt}
  gateway_crt: {file: gateway.crt}
{{- end }}
{{- if or .Extra.X509 .Extra.PSK }}

secrets:
{{- if .Extra.X509 }}
  {{ .Extra.KeySecret }}: {file: secrets/{{ .Extra.KeySecret }}}
{{- end }}
{{- range .Extra.PSK }}
  {{ .Secret }}: {file: secrets/{{ .Secret }}}
{{- end }}
{{- end }}
`, "\n")
