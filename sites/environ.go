package sites

import "strings"

// EnvMap turns an environment list ("KEY=value", as os.Environ returns it) into a
// map; entries without "=" are skipped and a later entry wins.
func EnvMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
