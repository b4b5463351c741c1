// Package doccheck checks the repository's Markdown documentation (README.md,
// ARCHITECTURE.md, CONTRIBUTING.md and everything under docs/): every relative link —
// inline, reference-style, image, or an href/src in HTML — must name a file or
// directory that exists inside the repository, and an #anchor into a Markdown file
// must name one of its headings, slugged the way GitHub slugs them (or an HTML id or
// name). External links (http, https, mailto, any URL with a scheme) are not fetched:
// the check runs offline, in `go test -short ./...`.
package doccheck
