package sites

import (
	"strings"
	"testing"
)

func TestPassFile(t *testing.T) {
	t.Setenv("SITECTL_TEST_PW_A", `a:b\c`)
	t.Setenv("SITECTL_TEST_PW_B", "plain")
	got, err := PassFile([]PassLine{
		{Prefix: PassEscape("10.0.0.1") + ":5432:" + PassEscape("d:b") + ":u:", Password: SecretRef{Env: "SITECTL_TEST_PW_A"}},
		{Prefix: "h:5432:app:u:", Password: SecretRef{Env: "SITECTL_TEST_PW_B"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "10.0.0.1:5432:d\\:b:u:a\\:b\\\\c\nh:5432:app:u:plain\n"
	if string(got) != want {
		t.Errorf("PassFile = %q, want %q", got, want)
	}

	t.Setenv("SITECTL_TEST_PW_C", "two\nlines")
	_, err = PassFile([]PassLine{{Prefix: "h:1:d:u:", Password: SecretRef{Env: "SITECTL_TEST_PW_C"}}})
	if err == nil || !strings.Contains(err.Error(), "h:1:d:u:") || strings.Contains(err.Error(), "lines") && strings.Contains(err.Error(), "two\n") {
		t.Errorf("line break: err = %v, want the line's prefix named and no value", err)
	}
}
