package sites

import (
	"os"
	"testing"
)

func mustRead(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
