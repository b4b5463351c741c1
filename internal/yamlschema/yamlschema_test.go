package yamlschema

import (
	"strings"
	"testing"
)

const schemaJSON = `{"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer", "maximum": 65535}}, "additionalProperties": false}`

func TestCheck(t *testing.T) {
	s := New("the test schema", "https://sitectl.example/test.json", []byte(schemaJSON))
	tests := []struct {
		doc  string
		want []string // substrings of the error; none: valid
	}{
		{"name: x\nport: 80\n", nil},
		{"a: &x 1\nname: y\n", []string{"does not match the test schema", "at /: additional properties 'a' not allowed"}},
		{"port: 70000\n", []string{"at /: missing property 'name'", "at /port: maximum: got 70,000, want 65,535"}},
		{"name: [unclosed\n", []string{"not valid YAML"}},
	}
	for _, tt := range tests {
		doc, err := s.Check([]byte(tt.doc))
		if len(tt.want) == 0 {
			if err != nil || doc.(map[string]any)["name"] != "x" {
				t.Errorf("%q: doc=%v err=%v", tt.doc, doc, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: accepted", tt.doc)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tt.doc, err, w)
			}
		}
	}
}
