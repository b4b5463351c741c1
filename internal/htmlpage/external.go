package htmlpage

import (
	"io"
	"strings"

	"golang.org/x/net/html"
)

// ExternalRefs lists what in an HTML page would make a browser fetch something:
// an attribute holding a URL with a scheme or a protocol-relative one (xmlns
// namespaces excepted: they are names, never fetched), and url(…) or @import in
// CSS. A self-contained page has none.
func ExternalRefs(page io.Reader) ([]string, error) {
	doc, err := html.Parse(page)
	if err != nil {
		return nil, err
	}
	var out []string
	css := func(where, s string) {
		if strings.Contains(s, "url(") || strings.Contains(s, "@import") {
			out = append(out, where+": "+s)
		}
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				v := strings.TrimSpace(a.Val)
				switch {
				case a.Key == "xmlns" || strings.HasPrefix(a.Key, "xmlns:") || a.Namespace == "xmlns":
				case a.Key == "style":
					css("<"+n.Data+" style>", v)
				case strings.Contains(v, "://") || strings.HasPrefix(v, "//"):
					out = append(out, "<"+n.Data+" "+a.Key+"=\""+v+"\">")
				}
			}
			if n.Data == "style" && n.FirstChild != nil {
				css("<style>", n.FirstChild.Data)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out, nil
}
