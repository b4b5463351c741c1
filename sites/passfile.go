package sites

import (
	"fmt"
	"strings"
)

// PassLine is one line of a libpq passfile: Prefix as it is
// ("host:port:database:user:", fields already escaped with PassEscape), then the
// value of Password escaped, then a line break.
type PassLine struct {
	Prefix   string
	Password SecretRef
}

// PassFile is a passfile's content with the passwords read from their references.
// Never print it. An error names the line's prefix and the reference, never a value.
func PassFile(lines []PassLine) ([]byte, error) {
	var b strings.Builder
	for _, l := range lines {
		pw, err := l.Password.ResolveLine()
		if err != nil {
			return nil, fmt.Errorf("passfile line %s*: %w", l.Prefix, err)
		}
		b.WriteString(l.Prefix + PassEscape(string(pw)) + "\n")
	}
	return []byte(b.String()), nil
}

// passEscaper escapes a passfile field (libpq's format).
var passEscaper = strings.NewReplacer(`\`, `\\`, `:`, `\:`)

// PassEscape escapes a passfile field: backslash and colon get a backslash.
func PassEscape(s string) string { return passEscaper.Replace(s) }
