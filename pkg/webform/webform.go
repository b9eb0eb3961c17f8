// Package webform parses application/x-www-form-urlencoded bodies.
package webform

import (
	"net/url"
	"strings"
)

// maxFast is the most parameters Parse handles itself; a longer body is
// url.ParseQuery's (whose limit on parameters then applies as it is set).
const maxFast = 1000

// Parse is url.ParseQuery with fewer allocations: the map is sized for the
// body's parameters up front and the first value of every key shares one
// backing array. The result is url.ParseQuery's, equal as a map, for every
// body it parses without error; a body with any error (or more than maxFast
// parameters) is handed to url.ParseQuery, so the errors and the partial
// map are exactly its too (FuzzParse).
func Parse(body string) (url.Values, error) {
	n := strings.Count(body, "&") + 1
	if n > maxFast {
		return url.ParseQuery(body)
	}
	m := make(url.Values, n)
	firsts := make([]string, 0, n)
	for q := body; q != ""; {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if strings.Contains(pair, ";") {
			return url.ParseQuery(body)
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return url.ParseQuery(body)
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return url.ParseQuery(body)
		}
		if vs, ok := m[key]; ok {
			m[key] = append(vs, value)
			continue
		}
		firsts = append(firsts, value)
		// Capacity 1: a second value of the key is appended to a copy,
		// never over the next key's first value.
		m[key] = firsts[len(firsts)-1 : len(firsts) : len(firsts)]
	}
	return m, nil
}
