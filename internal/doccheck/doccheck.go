package doccheck

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"
)

// TopLevel are the Markdown files at the repository root that are checked; every
// .md file under docs/ is checked too.
var TopLevel = []string{"README.md", "ARCHITECTURE.md", "CONTRIBUTING.md"}

// Problem is one link that does not resolve.
type Problem struct {
	File   string // relative to the repository root, slash-separated
	Line   int
	Target string // the link as written
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: link %q: %s", p.File, p.Line, p.Target, p.Reason)
}

// Result is what Check found.
type Result struct {
	Files    int // documents read
	Links    int // relative links checked (external ones are counted in External)
	External int // links with a scheme, not fetched
	Problems []Problem
}

// Files lists the documents to check under root: the TopLevel files that exist and
// every .md file under docs/, sorted.
func Files(root string) ([]string, error) {
	var out []string
	for _, f := range TopLevel {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			out = append(out, f)
		}
	}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// Check reads each file (slash-separated, relative to root) and checks its links.
func Check(root string, files []string) (Result, error) {
	c := checker{root: root, docs: map[string]*doc{}}
	var res Result
	for _, f := range files {
		d, err := c.load(f)
		if err != nil {
			return res, err
		}
		res.Files++
		for _, l := range d.links {
			if hasScheme(l.target) {
				res.External++
				continue
			}
			res.Links++
			if reason := c.resolve(f, l.target); reason != "" {
				res.Problems = append(res.Problems, Problem{File: f, Line: l.line, Target: l.target, Reason: reason})
			}
		}
	}
	return res, nil
}

type link struct {
	target string
	line   int
}

// doc is one parsed Markdown file: its links and the anchors it defines.
type doc struct {
	links   []link
	anchors map[string]bool
}

type checker struct {
	root string
	docs map[string]*doc // by slash path relative to root
}

func (c *checker) load(rel string) (*doc, error) {
	if d, ok := c.docs[rel]; ok {
		return d, nil
	}
	src, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	d := parse(src)
	c.docs[rel] = d
	return d, nil
}

var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

func hasScheme(target string) bool { return schemeRE.MatchString(target) }

// resolve returns why target, written in file from, does not resolve ("" when it does).
func (c *checker) resolve(from, target string) string {
	if strings.TrimSpace(target) == "" {
		return "empty link target"
	}
	p, frag, _ := strings.Cut(target, "#")
	p, _, _ = strings.Cut(p, "?")
	p, err := url.PathUnescape(p)
	if err != nil {
		return "bad escape in the path: " + err.Error()
	}
	if frag, err = url.PathUnescape(frag); err != nil {
		return "bad escape in the anchor: " + err.Error()
	}
	file := from
	if p != "" {
		if strings.HasPrefix(p, "/") {
			file = path.Clean(strings.TrimPrefix(p, "/")) // GitHub: relative to the repository root
		} else {
			file = path.Join(path.Dir(from), p)
		}
		if file == ".." || strings.HasPrefix(file, "../") {
			return "points outside the repository"
		}
		fi, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(file)))
		if err != nil {
			return fmt.Sprintf("%s does not exist", file)
		}
		if fi.IsDir() {
			if frag != "" {
				return fmt.Sprintf("%s is a directory: it has no anchor #%s", file, frag)
			}
			return ""
		}
	}
	if frag == "" || !strings.HasSuffix(file, ".md") {
		return ""
	}
	d, err := c.load(file)
	if err != nil {
		return err.Error()
	}
	if !d.anchors[frag] {
		return fmt.Sprintf("%s has no heading or anchor #%s", file, frag)
	}
	return ""
}

var (
	md        = goldmark.New()
	htmlRefRE = regexp.MustCompile(`(?i)\b(?:href|src)\s*=\s*"([^"]*)"`)
	htmlIDRE  = regexp.MustCompile(`(?i)\b(?:id|name)\s*=\s*"([^"]*)"`)
)

// parse extracts the links and anchors of a Markdown document. Code spans and code
// blocks hold no links.
func parse(src []byte) *doc {
	d := &doc{anchors: map[string]bool{}}
	lines := lineStarts(src)
	slugs := map[string]int{}
	root := md.Parser().Parse(text.NewReader(src))
	_ = ast.Walk(root, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Heading:
			d.anchors[uniqueSlug(slugs, plainText(n, src))] = true
		case *ast.Link:
			d.links = append(d.links, link{string(n.Destination), lineOf(lines, offset(n))})
		case *ast.Image:
			d.links = append(d.links, link{string(n.Destination), lineOf(lines, offset(n))})
		case *ast.HTMLBlock:
			for i := 0; i < n.Lines().Len(); i++ {
				seg := n.Lines().At(i)
				d.html(seg.Value(src), lineOf(lines, seg.Start))
			}
		case *ast.RawHTML:
			for i := 0; i < n.Segments.Len(); i++ {
				seg := n.Segments.At(i)
				d.html(seg.Value(src), lineOf(lines, seg.Start))
			}
		}
		return ast.WalkContinue, nil
	})
	return d
}

// html records the href/src links and the id/name anchors of a piece of raw HTML.
func (d *doc) html(b []byte, line int) {
	for _, m := range htmlRefRE.FindAllSubmatch(b, -1) {
		d.links = append(d.links, link{string(m[1]), line})
	}
	for _, m := range htmlIDRE.FindAllSubmatch(b, -1) {
		d.anchors[string(m[1])] = true
	}
}

// plainText is a heading's text as GitHub renders it, without markup.
func plainText(n ast.Node, src []byte) string {
	var b strings.Builder
	var walk func(ast.Node)
	walk = func(n ast.Node) {
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			switch c := c.(type) {
			case *ast.Text:
				b.Write(c.Segment.Value(src))
				if c.SoftLineBreak() {
					b.WriteByte(' ')
				}
			case *ast.String:
				b.Write(c.Value)
			case *ast.RawHTML:
				// tags are not text
			default:
				walk(c)
			}
		}
	}
	walk(n)
	return b.String()
}

// Slug is GitHub's anchor for a heading text: lower case; letters, digits, marks,
// '-' and '_' kept; each space becomes '-'; everything else dropped.
func Slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r), unicode.IsNumber(r), unicode.IsMark(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// uniqueSlug is Slug with GitHub's suffix for repeated headings (tests, tests-1,
// tests-2...), as github-slugger counts them.
func uniqueSlug(occurrences map[string]int, heading string) string {
	base := Slug(heading)
	s := base
	for {
		if _, taken := occurrences[s]; !taken {
			break
		}
		occurrences[base]++
		s = fmt.Sprintf("%s-%d", base, occurrences[base])
	}
	occurrences[s] = 0
	return s
}

// offset is a byte offset inside n's source: its first text, else its enclosing
// block's first line.
func offset(n ast.Node) int {
	var found = -1
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if t, ok := c.(*ast.Text); ok && entering {
			found = t.Segment.Start
			return ast.WalkStop, nil
		}
		return ast.WalkContinue, nil
	})
	if found >= 0 {
		return found
	}
	for p := n.Parent(); p != nil; p = p.Parent() {
		if p.Type() == ast.TypeBlock && p.Lines().Len() > 0 {
			return p.Lines().At(0).Start
		}
	}
	return 0
}

func lineStarts(src []byte) []int {
	starts := []int{0}
	for i, c := range src {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// lineOf is the 1-based line of a byte offset.
func lineOf(starts []int, off int) int {
	return sort.Search(len(starts), func(i int) bool { return starts[i] > off })
}
