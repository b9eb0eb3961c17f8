package pack

import (
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"
)

// nodeReader decodes yaml.Nodes of one file by hand, so every value keeps
// its line and every unknown key is reported (yaml.v3's KnownFields does not
// reach custom unmarshalers: go-yaml/yaml#460).
type nodeReader struct {
	file string
	c    *collector
	sub  func(n *yaml.Node, path string) string // env substitution
}

// mapping returns the keys of a mapping node, reporting unknown keys and
// keys listed in required that are absent.
func (r *nodeReader) mapping(n *yaml.Node, path string, allowed, required []string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		r.c.errorf(r.file, n.Line, path, "want a mapping, got %s", kindName(n))
		return out
	}
	ok := setOf(allowed)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !ok[k.Value] {
			r.c.errorf(r.file, k.Line, join(path, k.Value), "unknown key %q (allowed: %v)", k.Value, allowed)
			continue
		}
		if _, dup := out[k.Value]; dup {
			r.c.errorf(r.file, k.Line, join(path, k.Value), "duplicate key")
			continue
		}
		out[k.Value] = v
	}
	for _, req := range required {
		if _, ok := out[req]; !ok {
			r.c.errorf(r.file, n.Line, join(path, req), "is required")
		}
	}
	return out
}

func (r *nodeReader) str(n *yaml.Node, path string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		r.c.errorf(r.file, n.Line, path, "want a string, got %s (quote values that start with { or [)", kindName(n))
		return ""
	}
	return r.sub(n, path)
}

func (r *nodeReader) integer(n *yaml.Node, path string) int {
	if n == nil {
		return 0
	}
	s := r.str(n, path)
	v, err := strconv.Atoi(s)
	if err != nil {
		r.c.errorf(r.file, n.Line, path, "want an integer, got %q", s)
	}
	return v
}

// strs reads a sequence of strings.
func (r *nodeReader) strs(n *yaml.Node, path string) []string {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.c.errorf(r.file, n.Line, path, "want a list, got %s", kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		out = append(out, r.str(e, fmt.Sprintf("%s[%d]", path, i)))
	}
	return out
}

// strOrStrs reads a string or a list of strings (fallback paths).
func (r *nodeReader) strOrStrs(n *yaml.Node, path string) []string {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.SequenceNode {
		return r.strs(n, path)
	}
	return []string{r.str(n, path)}
}

func (r *nodeReader) seq(n *yaml.Node, path string) []*yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.c.errorf(r.file, n.Line, path, "want a list, got %s", kindName(n))
		return nil
	}
	return n.Content
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// lines records the line of each key and list element of a mapping, keyed
// by field path relative to it ("target", "events[3]").
func lines(n *yaml.Node) map[string]int {
	out := map[string]int{}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		out[k.Value] = k.Line
		if v.Kind == yaml.SequenceNode {
			for j, e := range v.Content {
				out[fmt.Sprintf("%s[%d]", k.Value, j)] = e.Line
			}
		}
	}
	return out
}
