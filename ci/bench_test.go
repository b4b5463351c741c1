package ci

import "testing"

// BenchmarkRender: generate the production pipeline of the three example sites and
// validate it against GitLab's schema (what `sitectl ci generate` does after loading).
func BenchmarkRender(b *testing.B) {
	topo := load(b, copyConfig(b, nil), "production", nil)
	if _, err := Render(topo, Options{}); err != nil { // compiles the schema once
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(topo, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerate: the pipeline model and YAML alone, without schema validation.
func BenchmarkGenerate(b *testing.B) {
	topo := load(b, copyConfig(b, nil), "production", nil)
	b.ReportAllocs()
	for b.Loop() {
		p, err := Generate(topo, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
