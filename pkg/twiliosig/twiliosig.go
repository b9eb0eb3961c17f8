// Package twiliosig verifies and computes X-Twilio-Signature.
//
// Twilio signs base64(HMAC-SHA1(auth token, URL + every parameter name and
// value, sorted by name)). The URL is the public URL Twilio called, with its
// query exactly as sent and without a fragment; Twilio's SDKs accept it with
// and without the scheme's default port. JSON callbacks (Event Streams) are
// signed over the URL alone, which carries bodySHA256 = hex(SHA-256(body)).
//
// Verification uses github.com/twilio/twilio-go's RequestValidator, except
// for forms with a repeated key (MMS MediaUrl, say): twilio-go's map keeps
// one value per key, while Twilio's SDKs sign every distinct value, sorted;
// those requests are checked with the same algorithm written out here.
//
// A Verifier holds one or more tokens so a rotated auth token keeps working;
// it is safe for concurrent use.
package twiliosig

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/twilio/twilio-go/client"
)

// Sentinel errors; the ingester answers both with 403.
var (
	ErrMissingSignature = errors.New("missing X-Twilio-Signature")
	ErrInvalidSignature = errors.New("invalid X-Twilio-Signature")
	ErrNoToken          = errors.New("twiliosig: no auth token")
)

// Verifier checks signatures against a list of auth tokens.
type Verifier struct {
	tokens     []string
	validators []client.RequestValidator
}

// NewVerifier returns a Verifier accepting a signature made with any of tokens.
func NewVerifier(tokens []string) (*Verifier, error) {
	v := &Verifier{}
	for _, t := range tokens {
		if t = strings.TrimSpace(t); t != "" {
			v.tokens = append(v.tokens, t)
			v.validators = append(v.validators, client.NewRequestValidator(t))
		}
	}
	if len(v.tokens) == 0 {
		return nil, ErrNoToken
	}
	return v, nil
}

// VerifyForm checks a form-encoded POST (form = the body's parameters) or a
// GET (form nil: the parameters are in fullURL's query).
func (v *Verifier) VerifyForm(fullURL string, form url.Values, signature string) error {
	if signature == "" {
		return ErrMissingSignature
	}
	if hasRepeatedKey(form) {
		for _, u := range urlVariants(fullURL) {
			for _, t := range v.tokens {
				if equal(Sign(u, form, t), signature) {
					return nil
				}
			}
		}
		return ErrInvalidSignature
	}
	params := make(map[string]string, len(form))
	for k, vs := range form {
		if len(vs) > 0 {
			params[k] = vs[0]
		}
	}
	for i := range v.validators {
		if v.validators[i].Validate(fullURL, params, signature) {
			return nil
		}
	}
	return ErrInvalidSignature
}

// VerifyJSON checks a JSON POST: the signature over fullURL (which must
// carry bodySHA256) and the body's SHA-256 against bodySHA256.
func (v *Verifier) VerifyJSON(fullURL string, body []byte, signature string) error {
	if signature == "" {
		return ErrMissingSignature
	}
	u, err := url.Parse(fullURL)
	if err != nil || u.Query().Get("bodySHA256") == "" {
		return ErrInvalidSignature
	}
	for i := range v.validators {
		if v.validators[i].ValidateBody(fullURL, body, signature) {
			return nil
		}
	}
	return ErrInvalidSignature
}

// Sign computes the signature Twilio sends for a request to fullURL with
// form parameters (nil for GET and JSON requests): every distinct value of
// a key, sorted, after the sorted keys.
func Sign(fullURL string, form url.Values, token string) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		for _, val := range distinctSorted(form[k]) {
			b.WriteString(k)
			b.WriteString(val)
		}
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignJSON returns the URL with bodySHA256 appended to its query and the
// signature of that URL, as Twilio sends a JSON callback.
func SignJSON(fullURL string, body []byte, token string) (signedURL, signature string) {
	sum := sha256.Sum256(body)
	sep := "?"
	if strings.Contains(fullURL, "?") {
		sep = "&"
	}
	signedURL = fullURL + sep + "bodySHA256=" + hex.EncodeToString(sum[:])
	return signedURL, Sign(signedURL, nil, token)
}

func distinctSorted(vs []string) []string {
	if len(vs) < 2 {
		return vs
	}
	out := append([]string(nil), vs...)
	slices.Sort(out)
	n := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[n-1] {
			out[n] = out[i]
			n++
		}
	}
	return out[:n]
}

func hasRepeatedKey(form url.Values) bool {
	for _, vs := range form {
		if len(vs) > 1 {
			return true
		}
	}
	return false
}

// urlVariants returns the URL as given, with the scheme's default port
// added, and with the port removed, as Twilio's SDKs check them.
func urlVariants(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		def := "80"
		if u.Scheme == "https" {
			def = "443"
		}
		w := *u
		w.Host = joinHostPort(host, def)
		out = append(out, w.String())
	} else {
		w := *u
		w.Host = joinHostPort(host, "")
		out = append(out, w.String())
	}
	return out
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" {
		return host
	}
	return host + ":" + port
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
