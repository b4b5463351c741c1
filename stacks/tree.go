package stacks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/docker/cli/cli/compose/loader"

	"github.com/sitectl/sitectl/sites"
)

// File is one file of a rendered site tree.
type File struct {
	// Path is relative to the site's folder, slash-separated ("postgres/compose.yaml").
	Path string      `json:"path"`
	Mode os.FileMode `json:"mode"`
	Data []byte      `json:"-"`
}

// Files of a rendered site tree besides the stacks' own.
const (
	// ComposeFile is each stack's compose file, in the stack's folder.
	ComposeFile = "compose.yaml"
	// NetworksScript creates the site networks the stacks attach to as external.
	NetworksScript = "networks.sh"
	// SecretsScript fills each stack's secrets/ folder from the site's references.
	SecretsScript = "secrets.sh"
	// TreeMarker marks a folder `sitectl stacks render` wrote (and may replace).
	TreeMarker = ".sitectl-render"
)

// Tree renders every stack the site lists as deploy loads it — the compose file
// and the generated files its configs name, one folder per stack — plus what plain
// `docker stack deploy -c` needs around them: networks.sh (the site networks,
// created by sitectl before any stack), secrets.sh (fills <stack>/secrets/<name>
// from the site's secret references; the tree itself holds references only, never
// a value), a README and a .gitignore that keeps the secrets/ folders out of git.
// Each stack is also converted the way deploy converts it (docker/cli's loader and
// converters, ${VAR} from env), without reading a secret, so a stack deploy would
// refuse is refused here.
func Tree(ctx context.Context, in Input, env map[string]string) ([]File, error) {
	all, err := RenderAll(in)
	if err != nil {
		return nil, err
	}
	var files []File
	var refs []secretFile
	for _, r := range all {
		if _, err := Convert(ctx, in, r, ConvertOptions{Environment: env, References: true}); err != nil {
			return nil, err
		}
		files = append(files, File{Path: r.Stack + "/" + ComposeFile, Mode: 0o644, Data: r.Compose})
		for _, rel := range slices.Sorted(maps.Keys(r.Files)) {
			if clean := path.Clean(rel); clean != rel || strings.HasPrefix(clean, "../") || path.IsAbs(clean) || clean == ComposeFile {
				return nil, fmt.Errorf("stack %s for %s: generated file %q must be a plain relative path other than %s", r.Stack, in.Site.Name, rel, ComposeFile)
			}
			files = append(files, File{Path: r.Stack + "/" + rel, Mode: 0o644, Data: r.Files[rel]})
		}
		s, err := secretFiles(in.Site, r)
		if err != nil {
			return nil, err
		}
		refs = append(refs, s...)
	}
	files = append(files,
		File{Path: NetworksScript, Mode: 0o755, Data: networksScript(in.Site)},
		File{Path: SecretsScript, Mode: 0o755, Data: secretsScript(in.Site, refs)},
		File{Path: "README", Mode: 0o644, Data: treeReadme(in.Site, all)},
		File{Path: ".gitignore", Mode: 0o644, Data: []byte("# Filled by secrets.sh: never commit them.\n/*/" + SecretsDir + "\n")},
		File{Path: TreeMarker, Mode: 0o644, Data: []byte(fmt.Sprintf("written by sitectl stacks render: site %s, environment %s\n", in.Site.Name, in.Site.Env))},
	)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// secretFile is one `file: secrets/<name>` of a stack's compose file.
type secretFile struct {
	stack, name string
	ref         sites.SecretRef
	// lines, when set, compose the secret as a passfile (Rendered.PassFiles).
	lines []PassFileLine
}

// secretFiles lists the secrets a rendered stack reads from the site's references.
func secretFiles(site *sites.Site, r Rendered) ([]secretFile, error) {
	dict, err := loader.ParseYAML(r.Compose)
	if err != nil {
		return nil, fmt.Errorf("stack %s for %s: parse compose file: %w", r.Stack, site.Name, err)
	}
	secrets, _ := dict["secrets"].(map[string]any)
	var out []secretFile
	for _, key := range slices.Sorted(maps.Keys(secrets)) {
		def, _ := secrets[key].(map[string]any)
		file, _ := def["file"].(string)
		name, ok := strings.CutPrefix(path.Clean(file), SecretsDir)
		if !ok {
			continue
		}
		if lines, ok := r.PassFiles[name]; ok {
			out = append(out, secretFile{stack: r.Stack, name: name, lines: lines})
			continue
		}
		ref, ok := r.SecretRef(site, name)
		if !ok {
			return nil, fmt.Errorf("stack %s for %s: secret %s: the site has no secret %q: add secrets.%s ({env: VAR} or {file: path}) to its config", r.Stack, site.Name, key, name, name)
		}
		out = append(out, secretFile{stack: r.Stack, name: name, ref: ref})
	}
	return out, nil
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=,@+-]+$`)

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func networksScript(site *sites.Site) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `#!/bin/sh
# The site networks of %s (environment %s), created as sitectl deploy creates
# them. The stacks attach to them as external networks: run this once against the
# site's swarm manager (DOCKER_HOST) before docker stack deploy. A network that
# exists already is left as it is (sitectl plan shows whether it differs).
set -eu
net() {
	name=$1
	shift
	docker network inspect "$name" >/dev/null 2>&1 || docker network create "$@" "$name"
}
`, site.Name, site.Env)
	for _, n := range SiteNetworks(site) {
		args := []string{"--driver", n.Create.Driver, "--scope", "swarm"}
		if n.Create.Attachable {
			args = append(args, "--attachable")
		}
		if n.Create.Internal {
			args = append(args, "--internal")
		}
		for _, k := range slices.Sorted(maps.Keys(n.Create.Options)) {
			opt := k
			if v := n.Create.Options[k]; v != "" {
				opt += "=" + v
			}
			args = append(args, "--opt", opt)
		}
		if n.Create.IPAM != nil {
			for _, c := range n.Create.IPAM.Config {
				if c.Subnet.IsValid() {
					args = append(args, "--subnet", c.Subnet.String())
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(n.Create.Labels)) {
			args = append(args, "--label", k+"="+n.Create.Labels[k])
		}
		if n.Note != "" {
			fmt.Fprintf(&b, "# %s: %s\n", n.Name, n.Note)
		}
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = shellQuote(a)
		}
		fmt.Fprintf(&b, "net %s %s\n", shellQuote(n.Name), strings.Join(quoted, " "))
	}
	return []byte(b.String())
}

func secretsScript(site *sites.Site, refs []secretFile) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `#!/bin/sh
# Fills each stack's secrets/ folder of %s (environment %s) from the site's
# secret references, read as sitectl deploy reads them (a file's trailing line
# breaks dropped). This script holds references only, never a value. Run it where
# those variables and files are, just before docker stack deploy; remove the
# secrets/ folders afterwards (rm -r -- */secrets). .gitignore keeps them out of git.
set -eu
cd "$(dirname "$0")"
umask 077
cr=$(printf '\r')
nl='
'
fail() {
	echo "secrets.sh: $*" >&2
	exit 1
}
# from_env VAR DEST SECRET
from_env() {
	eval "isset=\${$1+x}"
	[ -n "$isset" ] || fail "secret $3: environment variable $1 is not set (export it, then run this again)"
	mkdir -p "$(dirname "$2")"
	eval "printf '%%s' \"\$$1\"" >"$2"
}
# from_file PATH DEST SECRET
from_file() {
	v=$(cat -- "$1" && printf x) || fail "secret $3: cannot read $1"
	v=${v%%x}
	while :; do
		case $v in
		*"$nl" | *"$cr") v=${v%%?} ;;
		*) break ;;
		esac
	done
	mkdir -p "$(dirname "$2")"
	printf '%%s' "$v" >"$2"
}
`, site.Name, site.Env)
	if slices.ContainsFunc(refs, func(r secretFile) bool { return r.lines != nil }) {
		b.WriteString(passFileHelpers)
	}
	for _, r := range refs {
		dest := shellQuote(r.stack + "/" + SecretsDir + r.name)
		name := shellQuote(r.name)
		if r.lines != nil {
			writePassFile(&b, r, dest, name)
			continue
		}
		switch {
		case r.ref.Env != "" && envName.MatchString(r.ref.Env):
			fmt.Fprintf(&b, "from_env %s %s %s\n", r.ref.Env, dest, name)
		case r.ref.File != "":
			fmt.Fprintf(&b, "from_file %s %s %s\n", shellQuote(r.ref.File), dest, name)
		default:
			why := r.ref.String() + " cannot be read from a shell"
			if r.ref.DockerSecret != "" {
				why = r.ref.String() + " is only readable inside the swarm: point the reference at an env variable or a file"
			}
			fmt.Fprintf(&b, "fail %s\n", shellQuote("secret "+r.name+" of stack "+r.stack+": "+why))
		}
	}
	return []byte(b.String())
}

// passFileHelpers build a passfile line by line in secrets.sh, reading each
// password as from_env and from_file do, backslash and colon escaped.
const passFileHelpers = `# pass_line PREFIX VALUE DEST: one passfile line, the value's backslashes and colons escaped.
pass_line() {
	printf '%s%s\n' "$1" "$(printf '%s' "$2" | sed 's/[\\:]/\\&/g')" >>"$3"
}
# pass_env VAR PREFIX DEST SECRET
pass_env() {
	eval "isset=\${$1+x}"
	[ -n "$isset" ] || fail "secret $4: environment variable $1 is not set (export it, then run this again)"
	eval "pass_line \"\$2\" \"\$$1\" \"\$3\""
}
# pass_file PATH PREFIX DEST SECRET
pass_file() {
	v=$(cat -- "$1" && printf x) || fail "secret $4: cannot read $1"
	v=${v%x}
	while :; do
		case $v in
		*"$nl" | *"$cr") v=${v%?} ;;
		*) break ;;
		esac
	done
	pass_line "$2" "$v" "$3"
}
`

// writePassFile writes the lines of secrets.sh that compose r's passfile.
func writePassFile(b *strings.Builder, r secretFile, dest, name string) {
	fmt.Fprintf(b, "mkdir -p %s\n: >%s\n", shellQuote(path.Dir(r.stack+"/"+SecretsDir+r.name)), dest)
	for _, l := range r.lines {
		switch {
		case l.Password.Env != "" && envName.MatchString(l.Password.Env):
			fmt.Fprintf(b, "pass_env %s %s %s %s\n", l.Password.Env, shellQuote(l.Prefix), dest, name)
		case l.Password.File != "":
			fmt.Fprintf(b, "pass_file %s %s %s %s\n", shellQuote(l.Password.File), shellQuote(l.Prefix), dest, name)
		default:
			fmt.Fprintf(b, "fail %s\n", shellQuote("secret "+r.name+" of stack "+r.stack+": "+l.Password.String()+" cannot be read from a shell: point the reference at an env variable or a file"))
		}
	}
}

func treeReadme(site *sites.Site, all []Rendered) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `The stacks of site %s (environment %s), rendered by sitectl stacks render
exactly as sitectl deploy loads them: one folder per stack, its compose.yaml and the
files its configs name. Secrets are references (file: secrets/<name>); no value is
written here.

To deploy them without sitectl, against the site's swarm manager (DOCKER_HOST):

  sh networks.sh    # the site networks the stacks attach to (external)
  sh secrets.sh     # fills <stack>/secrets/ from the site's secret references
`, site.Name, site.Env)
	for _, r := range all {
		fmt.Fprintf(&b, "  docker stack deploy --resolve-image never -c %s/%s %s\n", r.Stack, ComposeFile, r.Stack)
	}
	b.WriteString(`  rm -r -- */secrets

What sitectl deploy adds: its labels and spec hashes on every object, secret and
config names versioned by content (a changed value rolls the services using it),
services started after what they depend on (x-sitectl-depends-on), the swarm
itself, node labels, tunnels and replication.
`)
	return []byte(b.String())
}

// WriteTree writes a site's tree to dir/<site>, replacing a folder an earlier
// render wrote there (it holds TreeMarker). Any other existing dir/<site> is
// refused, and nothing is written. The tree is written to a temporary folder next
// to it and renamed into place, so dir/<site> is the whole new tree or the old one.
func WriteTree(dir, site string, files []File) (string, error) {
	dst := filepath.Join(dir, site)
	if fi, err := os.Lstat(dst); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("%s exists and is not a folder: choose another --dir", dst)
		}
		if _, err := os.Stat(filepath.Join(dst, TreeMarker)); err != nil {
			return "", fmt.Errorf("%s exists and was not written by sitectl stacks render (no %s in it): choose another --dir, or remove it", dst, TreeMarker)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "."+site+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	for _, f := range files {
		p := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return "", err
		}
	}
	// Secrets a previous secrets.sh filled go with the old tree: the new one holds
	// no value.
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", err
	}
	return dst, nil
}
