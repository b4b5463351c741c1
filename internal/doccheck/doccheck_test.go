package doccheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRepositoryDocs checks every relative link of the repository's documentation.
// External links are counted, not fetched.
func TestRepositoryDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"README.md", "ARCHITECTURE.md", "CONTRIBUTING.md", "docs/design.md", "docs/status.md"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is not among the checked files %v", want, files)
		}
	}
	res, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	if res.Links < 100 {
		t.Errorf("only %d relative links found in %d files: is the link extraction broken?", res.Links, res.Files)
	}
	for _, p := range res.Problems {
		t.Error(p)
	}
	t.Logf("%d files, %d relative links checked, %d external links not fetched", res.Files, res.Links, res.External)
}

// TestCheckFindsBrokenLinks feeds the checker a small repository with good and
// broken links and wants exactly the broken ones, each with its file and line.
func TestCheckFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write(t, root, "README.md", `# Project

See [the guide](docs/guide.md), [its setup](docs/guide.md#set-up), [a folder](docs/)
and [root-relative](/docs/guide.md#tests-1).
[Missing file](docs/nope.md) and [missing anchor](docs/guide.md#install).
[Same file](#project), [same file, wrong](#nothing-here).
![a picture](img/logo.png) and [a reference][ref].

`+"```"+`
[inside a code block](not/checked.md)
`+"```"+`

Inline code is no link: `+"`[x](also/not/checked.md)`"+`. [Web](https://example.org/x#y),
[mail](mailto:a@example.org).
<a href="docs/gone.html">html link</a>
[Escape](../outside.md) and [a folder's anchor](docs/#x) and [empty]().

[ref]: docs/guide.md#no-such
`)
	write(t, root, "docs/guide.md", "# Guide\n\n## Set up\n\n## Tests\n\n### Tests\n\n## `sitectl plan` → apply\n\n<a name=\"custom\"></a>\nBack to [the start](../README.md#project), [plan](#sitectl-plan--apply), [custom](#custom).\n")
	write(t, root, "CONTRIBUTING.md", "[broken](ARCHITECTURE.md)\n")

	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"CONTRIBUTING.md", "README.md", "docs/guide.md"}; !slices.Equal(files, want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	res, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Problems {
		got = append(got, p.String())
	}
	want := []string{
		`CONTRIBUTING.md:1: link "ARCHITECTURE.md": ARCHITECTURE.md does not exist`,
		`README.md:5: link "docs/nope.md": docs/nope.md does not exist`,
		`README.md:5: link "docs/guide.md#install": docs/guide.md has no heading or anchor #install`,
		`README.md:6: link "#nothing-here": README.md has no heading or anchor #nothing-here`,
		`README.md:7: link "img/logo.png": img/logo.png does not exist`,
		`README.md:7: link "docs/guide.md#no-such": docs/guide.md has no heading or anchor #no-such`,
		`README.md:15: link "docs/gone.html": docs/gone.html does not exist`,
		`README.md:16: link "../outside.md": points outside the repository`,
		`README.md:16: link "docs/#x": docs is a directory: it has no anchor #x`,
		`README.md:16: link "": empty link target`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.External != 2 {
		t.Errorf("external links %d, want 2 (https and mailto, not fetched)", res.External)
	}
}

func TestSlug(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Desired state → plan → apply", "desired-state--plan--apply"},
		{"Known defect (seen 2026-12-07, not diagnosed)", "known-defect-seen-2026-12-07-not-diagnosed"},
		{"16. The lab: real where possible, stand-ins that say so", "16-the-lab-real-where-possible-stand-ins-that-say-so"},
		{"What's new?", "whats-new"},
		{"snake_case and kebab-case", "snake_case-and-kebab-case"},
		{"C++ & Go", "c--go"},
		{"Ünïcödé Héading", "ünïcödé-héading"},
	} {
		if got := Slug(c.in); got != c.want {
			t.Errorf("Slug(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	occ := map[string]int{}
	var got []string
	for _, h := range []string{"Tests", "Tests", "Tests-1", "Tests"} {
		got = append(got, uniqueSlug(occ, h))
	}
	// github-slugger: a heading literally named "Tests-1" after a second "Tests"
	// becomes tests-1-1.
	if want := []string{"tests", "tests-1", "tests-1-1", "tests-2"}; !slices.Equal(got, want) {
		t.Errorf("repeated headings: %v, want %v", got, want)
	}
}

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
