package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/zen-twilio/zen/pkg/twiliosig"
)

// sigVectorsFile holds the signature vectors (G07, TW-01) in the vectors
// directory. Every token in it is fake.
const sigVectorsFile = "signatures.json"

// sigVectors is the signature vector file: two keyrings and the requests
// checked against them.
type sigVectors struct {
	Comment string `json:"comment"`
	// SingleAccountTokens make the "single" keyring (TWILIO_AUTH_TOKEN).
	SingleAccountTokens []string `json:"single_account_tokens"`
	// AccountTokens make the "accounts" keyring (TWILIO_AUTH_TOKENS).
	AccountTokens map[string][]string `json:"account_tokens"`
	Vectors       []sigVector         `json:"vectors"`
}

// sigVector is one request as the ingester receives it, and the answer the
// keyring must give.
type sigVector struct {
	Name string `json:"name"`
	// Kind is published (a vector published by Twilio or its SDKs), valid,
	// forged, missing, other-url, other-account or unknown-account.
	Kind    string `json:"kind"`
	Keyring string `json:"keyring"` // single or accounts
	// URL is the URL the signature is checked against.
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
	Body        string `json:"body"`
	Signature   string `json:"signature"`
	// Want is accept, invalid, missing or unknown-account.
	Want string `json:"want"`
	// SigningToken is the token the signature was made with.
	SigningToken string `json:"signing_token,omitempty"`
	// SignedURL and SignedBody, when set, are what the signature was made
	// over; SignedBy is the account whose token made it. Each is a control:
	// the signature must be accepted there, so that its refusal here is
	// due to the URL, the body or the account alone.
	SignedURL  string `json:"signed_url,omitempty"`
	SignedBody string `json:"signed_body,omitempty"`
	SignedBy   string `json:"signed_by,omitempty"`
	Note       string `json:"note,omitempty"`
}

// requiredSigKinds must each have a vector for TW-01 to pass: valid accepted,
// forged, other-URL and other-account refused (issue 24).
var requiredSigKinds = []string{"valid", "forged", "other-url", "other-account"}

// sigChecker is what a Keyring and a Verifier both do.
type sigChecker interface {
	VerifyForm(fullURL string, form url.Values, signature string) error
	VerifyJSON(fullURL string, body []byte, signature string) error
}

var (
	_ sigChecker = (*twiliosig.Keyring)(nil)
	_ sigChecker = (*twiliosig.Verifier)(nil)
)

// checkPublishedVectors (G07): pkg/twiliosig computes and accepts the
// signatures Twilio and its SDKs publish.
func checkPublishedVectors(g *gateRun) (string, string) {
	vs, rings, err := loadSigVectors(g.in.vectors)
	if err != nil {
		return statusFail, err.Error()
	}
	n := 0
	for _, v := range vs.Vectors {
		if v.Kind != "published" {
			continue
		}
		n++
		if err := checkSigVector(rings, v); err != nil {
			return statusFail, err.Error()
		}
		if isJSON(v.ContentType) {
			continue
		}
		form, _ := url.ParseQuery(v.Body)
		if got := twiliosig.Sign(v.URL, form, v.SigningToken); got != v.Signature {
			return statusFail, fmt.Sprintf("%s: twiliosig.Sign = %s, published %s", v.Name, got, v.Signature)
		}
	}
	if n == 0 {
		return statusFail, "no published vector in " + filepath.Join(g.in.vectors, sigVectorsFile)
	}
	return statusPass, fmt.Sprintf("pkg/twiliosig signs and accepts the %d published vectors of %s", n, shortPath(filepath.Join(g.in.vectors, sigVectorsFile)))
}

// checkSignatureVectors (TW-01): every other vector gets its answer from
// the keyring, and each required kind is there.
func checkSignatureVectors(g *gateRun) (string, string) {
	vs, rings, err := loadSigVectors(g.in.vectors)
	if err != nil {
		return statusFail, err.Error()
	}
	kinds := map[string]int{}
	for _, v := range vs.Vectors {
		if v.Kind == "published" {
			continue
		}
		if err := checkSigVector(rings, v); err != nil {
			return statusFail, err.Error()
		}
		kinds[v.Kind]++
	}
	for _, k := range requiredSigKinds {
		if kinds[k] == 0 {
			return statusFail, fmt.Sprintf("no %s vector in %s", k, filepath.Join(g.in.vectors, sigVectorsFile))
		}
	}
	var parts []string
	for _, k := range sortedKeys(kinds) {
		parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
	}
	return statusPass, fmt.Sprintf("twiliosig.Keyring (tokens per account) on %s: valid accepted, the others refused for the expected reason, each refused signature accepted where it was made",
		strings.Join(parts, ", "))
}

// loadSigVectors reads the vector file strictly and builds its keyrings.
func loadSigVectors(dir string) (*sigVectors, map[string]*twiliosig.Keyring, error) {
	path := filepath.Join(dir, sigVectorsFile)
	var vs sigVectors
	if err := decodeStrict(path, &vs); err != nil {
		return nil, nil, err
	}
	single, err := twiliosig.SingleAccount(vs.SingleAccountTokens)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: single_account_tokens: %w", path, err)
	}
	accounts, err := twiliosig.NewKeyring(vs.AccountTokens)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: account_tokens: %w", path, err)
	}
	return &vs, map[string]*twiliosig.Keyring{"single": single, "accounts": accounts}, nil
}

// wantErr maps a vector's want to the error the keyring must return.
var wantErr = map[string]error{
	"accept":          nil,
	"invalid":         twiliosig.ErrInvalidSignature,
	"missing":         twiliosig.ErrMissingSignature,
	"unknown-account": twiliosig.ErrUnknownAccount,
}

// checkSigVector verifies one vector and its controls.
func checkSigVector(rings map[string]*twiliosig.Keyring, v sigVector) error {
	k, ok := rings[v.Keyring]
	if !ok {
		return fmt.Errorf("vector %q: unknown keyring %q (want single or accounts)", v.Name, v.Keyring)
	}
	want, ok := wantErr[v.Want]
	if !ok {
		return fmt.Errorf("vector %q: unknown want %q", v.Name, v.Want)
	}
	got := verifyRequest(k, v.URL, v.ContentType, v.Body, v.Signature)
	if (want == nil && got != nil) || (want != nil && !errors.Is(got, want)) {
		return fmt.Errorf("vector %q (%s): want %s, got %s", v.Name, v.Kind, v.Want, answer(got))
	}
	if v.SignedURL != "" {
		if err := verifyRequest(k, v.SignedURL, v.ContentType, v.Body, v.Signature); err != nil {
			return fmt.Errorf("vector %q: control: not accepted at its signed_url either (%v)", v.Name, err)
		}
	}
	if v.SignedBody != "" {
		if err := verifyRequest(k, v.URL, v.ContentType, v.SignedBody, v.Signature); err != nil {
			return fmt.Errorf("vector %q: control: not accepted with its signed_body either (%v)", v.Name, err)
		}
	}
	if v.SignedBy != "" {
		signer, err := k.For(v.SignedBy)
		if err != nil {
			return fmt.Errorf("vector %q: signed_by %s: %w", v.Name, v.SignedBy, err)
		}
		if err := verifyRequest(signer, v.URL, v.ContentType, v.Body, v.Signature); err != nil {
			return fmt.Errorf("vector %q: control: not accepted by the tokens of %s either (%v)", v.Name, v.SignedBy, err)
		}
	}
	return nil
}

// verifyRequest checks a request the way the ingester does: a form body
// parsed with url.ParseQuery, a JSON body as sent.
func verifyRequest(c sigChecker, fullURL, contentType, body, signature string) error {
	if isJSON(contentType) {
		return c.VerifyJSON(fullURL, []byte(body), signature)
	}
	form, err := url.ParseQuery(body)
	if err != nil {
		return fmt.Errorf("malformed form body: %w", err)
	}
	return c.VerifyForm(fullURL, form, signature)
}

func answer(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

func isJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/json"
}

// decodeStrict decodes a JSON file, refusing unknown fields and trailing data.
func decodeStrict(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: trailing data after the JSON document", path)
	}
	return nil
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
