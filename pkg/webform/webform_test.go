package webform

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func same(t *testing.T, body string) {
	t.Helper()
	got, gerr := Parse(body)
	want, werr := url.ParseQuery(body)
	if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
		t.Fatalf("Parse(%q) error = %v, url.ParseQuery's = %v", body, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse(%q) = %v, url.ParseQuery's = %v", body, got, want)
	}
}

func TestParseIsParseQuery(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"",
		"&",
		"a",
		"a=",
		"=b",
		"a=1&b=2&a=3&c=&a=4",
		"MessageSid=SM1&Body=h%C3%A9+llo&To=%2B15558675310",
		"MediaUrl0=x&MediaUrl0=y&MediaUrl1=z",
		"a=1;b=2",
		"a=%zz&b=2",
		"a=1&%g=2",
		"a=1&&b=2&",
		"k=a=b=c",
		strings.Repeat("k=v&", maxFast+5),
		strings.Repeat("k=v&", maxFast-1) + "k=v",
	} {
		same(t, body)
	}
}

// A second value of one key must not overwrite the first value of the next.
func TestRepeatedKeyKeepsItsNeighbours(t *testing.T) {
	t.Parallel()
	m, err := Parse("a=1&b=2&a=3&c=4&b=5")
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"a": {"1", "3"}, "b": {"2", "5"}, "c": {"4"}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("Parse = %v, want %v", m, want)
	}
	m["a"] = append(m["a"], "x")
	if m.Get("b") != "2" || m.Get("c") != "4" {
		t.Fatalf("appending to one key changed another: %v", m)
	}
}

// FuzzParse: for any body, Parse and url.ParseQuery give equal maps and
// the same error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a=1&b=2&a=3", "x=%zz", "a;b", "&&=&", "Body=%F0%9F%99%82+x&NumMedia=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) { same(t, body) })
}

func BenchmarkParse(b *testing.B) {
	const body = "SmsSid=SM00000000000000000000000000000002&SmsStatus=delivered&MessageStatus=delivered&To=%2B15558675310&MessagingServiceSid=MG00000000000000000000000000000001&MessageSid=SM00000000000000000000000000000002&AccountSid=AC00000000000000000000000000000001&From=%2B15017122661&ApiVersion=2010-04-01"
	b.Run("webform.Parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("url.ParseQuery", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := url.ParseQuery(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
