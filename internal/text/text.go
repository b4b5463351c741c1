// Package text holds the small string helpers sitectl's tables share.
package text

// OrDash returns s, or "-" when s is empty: an empty table cell that reads as
// "nothing" rather than a misaligned column.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
