// Package keys mints the keys of replicated rows: RFC 9562 UUIDv7 (48-bit Unix
// millisecond timestamp, then random bits), minted at the site that owns the row and
// paired with that site's name, which lives in its own column. Keys only identify a
// row; they never decide which write wins (docs/design.md decision 6).
package keys

import (
	"fmt"

	"github.com/google/uuid"
)

// Key identifies one row: the UUIDv7 id and the site that minted it and owns the row.
type Key struct {
	ID   uuid.UUID `json:"id"`
	Site string    `json:"site"`
}

func (k Key) String() string { return k.Site + "/" + k.ID.String() }

// Generator mints keys owned by one site. It is safe for concurrent use: the
// underlying uuid.NewV7 serialises its clock and keeps ids of one process strictly
// increasing, even within one millisecond.
type Generator struct {
	site string
}

// NewGenerator returns a generator for keys owned by site.
func NewGenerator(site string) (*Generator, error) {
	if site == "" {
		return nil, fmt.Errorf("keys: a generator needs the owning site's name")
	}
	return &Generator{site: site}, nil
}

// Site is the owning site of every key the generator mints.
func (g *Generator) Site() string { return g.site }

// New mints a key.
func (g *Generator) New() (Key, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Key{}, fmt.Errorf("keys: mint UUIDv7 for %s: %w", g.site, err)
	}
	return Key{ID: id, Site: g.site}, nil
}

// Validate checks that id is an RFC 9562 UUIDv7: version 7, variant 10xx.
func Validate(id uuid.UUID) error {
	if id.Version() != 7 {
		return fmt.Errorf("key %s: version %d, want 7 (UUIDv7)", id, id.Version())
	}
	if id.Variant() != uuid.RFC4122 {
		return fmt.Errorf("key %s: variant %s, want RFC 9562 (10xx)", id, id.Variant())
	}
	return nil
}

// UnixMilli returns the millisecond timestamp held in a UUIDv7's first 48 bits.
func UnixMilli(id uuid.UUID) int64 {
	var ms int64
	for _, b := range id[:6] {
		ms = ms<<8 | int64(b)
	}
	return ms
}
