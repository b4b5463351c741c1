package sites

import (
	"fmt"
	"sort"
	"strings"
)

// Severity of a configuration problem.
type Severity string

// Severities: errors stop every command that would change a site; warnings are shown.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Problem is one thing wrong with the configuration: where (file and key), what, and
// what is allowed.
type Problem struct {
	Severity Severity `json:"severity"`
	File     string   `json:"file,omitempty"`
	Site     string   `json:"site,omitempty"`
	Key      string   `json:"key,omitempty"`
	Message  string   `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(string(p.Severity))
	b.WriteString(": ")
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in one load. As an error it lists them all.
type Problems []Problem

// Errors returns only the problems of error severity.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == SevError {
			out = append(out, p)
		}
	}
	return out
}

// Warnings returns only the warnings.
func (ps Problems) Warnings() Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == SevWarning {
			out = append(out, p)
		}
	}
	return out
}

func (ps Problems) Error() string {
	errs := ps.Errors()
	lines := make([]string, 0, len(ps)+1)
	lines = append(lines, fmt.Sprintf("configuration has %d error(s); nothing was changed:", len(errs)))
	for _, p := range ps {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

// sorted orders problems by file, key, message and drops exact duplicates (the same
// file is read once per site, so a problem in defaults.yaml would repeat).
func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Severity != b.Severity {
			return a.Severity == SevError
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Message < b.Message
	})
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

type collector struct{ ps Problems }

func (c *collector) errf(file, site, key, format string, args ...any) {
	c.ps = append(c.ps, Problem{Severity: SevError, File: file, Site: site, Key: key, Message: fmt.Sprintf(format, args...)})
}

func (c *collector) warnf(file, site, key, format string, args ...any) {
	c.ps = append(c.ps, Problem{Severity: SevWarning, File: file, Site: site, Key: key, Message: fmt.Sprintf(format, args...)})
}
