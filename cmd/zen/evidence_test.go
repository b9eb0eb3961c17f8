package main

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// cardCriteria is the card's "Readiness Gate" table, criterion by
// criterion, as the card writes it (the seed package card), with the IDs
// `zen package evidence` gives them.
var cardCriteria = []struct{ id, criterion string }{
	{"G01", "Transform package"},
	{"G02", "Event YAML definitions"},
	{"G03", "Fixtures"},
	{"G04", "Golden outputs"},
	{"G05", "Golden test validation"},
	{"G06", "Offline transform tests"},
	{"G07", "Authprofile module"},
	{"TW-01", "Request signature enforcement"},
	{"G08", "Ingester example"},
	{"G09", "Quickstart"},
	{"G10", "E2E runbook"},
	{"G11", "Troubleshooting"},
	{"G12", "Launch hardening"},
	{"G13", "Docs package"},
	{"TW-02", "Live E2E validated"},
	{"TW-03", "Form-encoding runtime verification"},
}

const (
	shippedFixtures = "../../fixtures/twilio"
	shippedGoldens  = "../../goldens/twilio"
	shippedVectors  = "../../fixtures/twilio/vectors"
)

var gateLine = regexp.MustCompile(`^(\S+)\s{2,}(.+?)\s{2,}(PASS|FAIL|NOT CHECKED)\s{2,}(.*)$`)

// gateRows parses the table `zen package evidence` prints.
func gateRows(t *testing.T, out string) []gateRow {
	t.Helper()
	var rows []gateRow
	for _, l := range strings.Split(out, "\n")[1:] {
		if l == "" {
			break
		}
		m := gateLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unparsable gate row %q", l)
		}
		rows = append(rows, gateRow{m[1], m[2], m[3], m[4]})
	}
	return rows
}

// TestEvidenceRowsAreTheCards: on the shipped package every row of the
// card is printed, in the card's order, each PASS or NOT CHECKED, and only
// TW-02 (a live account) is NOT CHECKED.
func TestEvidenceRowsAreTheCards(t *testing.T) {
	code, out, errs := runZen(t, "package", "evidence", shippedPkg)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errs)
	}
	rows := gateRows(t, out)
	if got, want := len(rows), len(cardCriteria); got != want {
		t.Fatalf("%d rows, want the card's %d:\n%s", got, want, out)
	}
	for i, r := range rows {
		if r.id != cardCriteria[i].id || r.criterion != cardCriteria[i].criterion {
			t.Errorf("row %d = %s %q, want %s %q", i+1, r.id, r.criterion, cardCriteria[i].id, cardCriteria[i].criterion)
		}
		want := statusPass
		if r.id == "TW-02" {
			want = statusNotChecked
		}
		if r.status != want {
			t.Errorf("%s %s = %s (%s), want %s", r.id, r.criterion, r.status, r.evidence, want)
		}
	}
	if !strings.Contains(out, "gate: 16 rows: 15 PASS, 1 NOT CHECKED, 0 FAIL") {
		t.Errorf("summary missing:\n%s", out)
	}
}

// TestEvidencePasses is the first check of the command: the rows the
// gate computed before issue 24 are there, and live E2E is NOT CHECKED.
func TestEvidencePasses(t *testing.T) {
	code, out, errs := runZen(t, "package", "evidence", shippedPkg)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, row := range []string{"Transform package", "Event YAML definitions", "Fixtures", "Golden outputs", "Golden test validation", "Request signature enforcement", "Form-encoding runtime verification"} {
		if !strings.Contains(out, row) {
			t.Errorf("gate lacks row %q", row)
		}
	}
	if !strings.Contains(out, "NOT CHECKED") || !strings.Contains(out, "TW-02") {
		t.Errorf("live E2E must be NOT CHECKED:\n%s", out)
	}
}

// TestEvidenceRowFails breaks each row's check in a copy of its inputs and
// sees exactly that row FAIL and the command exit 1. TW-02 has no check to
// break: it must stay NOT CHECKED in every run.
func TestEvidenceRowFails(t *testing.T) {
	for _, tc := range []struct {
		id, want string
		args     func(t *testing.T) []string // the package dir and flags
	}{
		{"G01", "warning", func(t *testing.T) []string {
			dir := copyDir(t, shippedPkg)
			edit(t, filepath.Join(dir, "package.yaml"), "      - conversation.delivery.updated\n", "", 1) // the endpoint's list
			return []string{dir}
		}},
		{"G02", "message-status → message.status with priority 75", func(t *testing.T) []string {
			dir := copyDir(t, shippedPkg)
			edit(t, filepath.Join(dir, "message_events.yaml"), "priority: 75", "priority: 76", -1)
			return []string{dir}
		}},
		{"G03", "rules without a fixture: recording-status", func(t *testing.T) []string {
			dir := copyDir(t, shippedFixtures)
			removeGlob(t, dir, "recording_*.json")
			return []string{shippedPkg, "--fixtures", dir}
		}},
		{"G04", "missing: incoming_sms.golden.json", func(t *testing.T) []string {
			dir := copyDir(t, shippedGoldens)
			removeGlob(t, dir, "incoming_sms.golden.json")
			return []string{shippedPkg, "--goldens", dir}
		}},
		{"G05", "call_completed.golden.json", func(t *testing.T) []string {
			dir := copyDir(t, shippedGoldens)
			edit(t, filepath.Join(dir, "call_completed.golden.json"), `"call_duration_seconds": 74`, `"call_duration_seconds": 75`, 1)
			return []string{shippedPkg, "--goldens", dir}
		}},
		{"G06", `case "SMS without From"`, func(t *testing.T) []string {
			dir := copyDir(t, shippedVectors)
			edit(t, filepath.Join(dir, transformCasesFile), `"want_field": "From"`, `"want_field": "To"`, 1)
			return []string{shippedPkg, "--vectors", dir}
		}},
		{"G07", "Twilio's documented example", func(t *testing.T) []string {
			dir := copyDir(t, shippedVectors)
			edit(t, filepath.Join(dir, sigVectorsFile), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "1/KCTR6DLpKmkAf8muzZqo1nDgQ=", 1)
			return []string{shippedPkg, "--vectors", dir}
		}},
		{"TW-01", "want invalid, got accepted", func(t *testing.T) []string {
			// Account B's tokens also hold A's: the bug of issue 24, one
			// token vouching for another account's requests.
			dir := copyDir(t, shippedVectors)
			editVectorFile(t, dir, func(vs *sigVectors) {
				b := "AC0000000000000000000000000000000b"
				vs.AccountTokens[b] = append(vs.AccountTokens[b], "test-token-of-account-a")
			})
			return []string{shippedPkg, "--vectors", dir}
		}},
		{"TW-01", "no other-account vector", func(t *testing.T) []string {
			dir := copyDir(t, shippedVectors)
			editVectors(t, dir, func(v *sigVector) {
				if v.Kind == "other-account" {
					v.Kind = "dropped"
				}
			})
			return []string{shippedPkg, "--vectors", dir}
		}},
		{"G08", "sets TWILIO_AUTH_TOKNE, which the ingester does not read", func(t *testing.T) []string {
			dir := t.TempDir()
			b := readFile(t, "../../deploy/k8s/base/ingester/deployment.yaml")
			path := filepath.Join(dir, "deployment.yaml")
			writeFile(t, path, strings.Replace(b, "name: TWILIO_AUTH_TOKEN", "name: TWILIO_AUTH_TOKNE", 1))
			return []string{shippedPkg, "--ingester-example", path}
		}},
		{"G09", "link gone.md does not resolve", brokenDoc("quickstart.md", "\nSee [gone](gone.md).\n")},
		{"G10", "link gone.md does not resolve", brokenDoc("e2e-runbook.md", "\nSee [gone](gone.md).\n")},
		{"G11", "link gone.md does not resolve", brokenDoc("troubleshooting.md", "\nSee [gone](gone.md).\n")},
		{"G12", "names TestNoSuchTestAnywhere", brokenDoc("launch-hardening.md", "\nProven by `TestNoSuchTestAnywhere`.\n")},
		{"G13", "does not name recording.status", func(t *testing.T) []string {
			docs := docsCopy(t)
			edit(t, filepath.Join(docs, "twilio-setup.md"), "recording.status", "recording.state", -1)
			return []string{shippedPkg, "--docs", docs}
		}},
		{"TW-03", `vector "plus is a space"`, func(t *testing.T) []string {
			dir := copyDir(t, shippedVectors)
			edit(t, filepath.Join(dir, formVectorsFile), `"hello world"`, `"hello+world"`, 1)
			return []string{shippedPkg, "--vectors", dir}
		}},
	} {
		t.Run(tc.id+" "+tc.want, func(t *testing.T) {
			args := append([]string{"package", "evidence"}, tc.args(t)...)
			code, out, errs := runZen(t, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s%s", code, out, errs)
			}
			rows := gateRows(t, out)
			if len(rows) != len(cardCriteria) {
				t.Fatalf("%d rows, want %d", len(rows), len(cardCriteria))
			}
			for _, r := range rows {
				switch {
				case r.id == tc.id:
					if r.status != statusFail || !strings.Contains(r.evidence, tc.want) {
						t.Errorf("%s = %s %q, want FAIL naming %q", r.id, r.status, r.evidence, tc.want)
					}
				case r.id == "TW-02":
					if r.status != statusNotChecked {
						t.Errorf("TW-02 = %s, want NOT CHECKED", r.status)
					}
				case r.status != statusPass:
					t.Errorf("%s = %s (%s), want PASS: only %s is broken", r.id, r.status, r.evidence, tc.id)
				}
			}
		})
	}
}

// TestEvidenceFailsOnABrokenGolden: a golden changed on purpose makes the
// golden row FAIL and the command exit 1.
func TestEvidenceFailsOnABrokenGolden(t *testing.T) {
	goldens := copyDir(t, shippedGoldens)
	edit(t, filepath.Join(goldens, "call_completed.golden.json"), `"call_duration_seconds": 74`, `"call_duration_seconds": 75`, 1)
	code, out, _ := runZen(t, "package", "evidence", shippedPkg, "--goldens", goldens)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	var row string
	for _, r := range gateRows(t, out) {
		if r.criterion == "Golden test validation" {
			row = r.status + " " + r.evidence
		}
	}
	if !strings.Contains(row, "FAIL") || !strings.Contains(row, "call_completed.golden.json") {
		t.Errorf("golden row = %q, want FAIL naming call_completed.golden.json", row)
	}
}

// TestSignatureVectorsAreRealSignatures recomputes every signature of the
// shipped vectors with an HMAC written here from Twilio's documented
// algorithm, so the vectors are not the code's own output: each is the
// signature of what it says was signed, with the token it names.
func TestSignatureVectorsAreRealSignatures(t *testing.T) {
	t.Parallel()
	var vs sigVectors
	if err := decodeStrict(filepath.Join(shippedVectors, sigVectorsFile), &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Vectors {
		if v.Want == "missing" {
			if v.Signature != "" {
				t.Errorf("%s: a missing signature must be empty", v.Name)
			}
			continue
		}
		signedURL, signedBody := v.URL, v.Body
		if v.SignedURL != "" {
			signedURL = v.SignedURL
		}
		if v.SignedBody != "" {
			signedBody = v.SignedBody
		}
		if isJSON(v.ContentType) {
			signedBody = ""
			if v.Want == "accept" || v.Kind == "other-account" {
				u, err := url.Parse(v.URL)
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256([]byte(v.Body))
				if got := u.Query().Get("bodySHA256"); got != hex.EncodeToString(sum[:]) {
					t.Errorf("%s: bodySHA256 = %s, not the body's", v.Name, got)
				}
			}
		}
		if got := refSignature(t, v.SigningToken, signedURL, signedBody); got != v.Signature {
			t.Errorf("%s: HMAC-SHA1 with %q over what it names = %s, vector says %s", v.Name, v.SigningToken, got, v.Signature)
		}
	}
}

// refSignature is Twilio's algorithm: base64(HMAC-SHA1(token, url + each
// key and each of its distinct values, keys and values sorted)).
func refSignature(t *testing.T, token, fullURL, rawBody string) string {
	t.Helper()
	vals, err := url.ParseQuery(rawBody)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := fullURL
	for _, k := range keys {
		vs := append([]string(nil), vals[k]...)
		sort.Strings(vs)
		for i, v := range vs {
			if i == 0 || v != vs[i-1] {
				s += k + v
			}
		}
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestFormVectorsAgreeWithNetURL: the expected parameters of the TW-03
// vectors are also what net/url makes of the bodies.
func TestFormVectorsAgreeWithNetURL(t *testing.T) {
	t.Parallel()
	var file struct {
		Comment string       `json:"comment"`
		Vectors []formVector `json:"vectors"`
	}
	if err := decodeStrict(filepath.Join(shippedVectors, formVectorsFile), &file); err != nil {
		t.Fatal(err)
	}
	for _, v := range file.Vectors {
		got, err := url.ParseQuery(v.Body)
		if v.Error {
			if err == nil {
				t.Errorf("%s: net/url parses it, the vector says refused", v.Name)
			}
			continue
		}
		want := url.Values(v.Params)
		if want == nil {
			want = url.Values{}
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: net/url = %v, %v; vector says %v", v.Name, got, err, want)
		}
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			writeFile(t, filepath.Join(dst, e.Name()), readFile(t, filepath.Join(src, e.Name())))
		}
	}
	return dst
}

// docsCopy returns a copy of docs/ in a directory whose other entries link
// to the repository's, so the docs' relative links resolve as they do.
func docsCopy(t *testing.T) string {
	t.Helper()
	root := testRoot(t)
	tmp := t.TempDir()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "docs" {
			if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	docs := filepath.Join(tmp, "docs")
	if err := os.Mkdir(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range mustGlob(t, filepath.Join(root, "docs", "*")) {
		writeFile(t, filepath.Join(docs, filepath.Base(f)), readFile(t, f))
	}
	return docs
}

// brokenDoc appends text to a copy of one document.
func brokenDoc(name, text string) func(t *testing.T) []string {
	return func(t *testing.T) []string {
		docs := docsCopy(t)
		path := filepath.Join(docs, name)
		writeFile(t, path, readFile(t, path)+text)
		return []string{shippedPkg, "--docs", docs}
	}
}

// editVectors rewrites each signature vector of dir through f.
func editVectors(t *testing.T, dir string, f func(*sigVector)) {
	t.Helper()
	editVectorFile(t, dir, func(vs *sigVectors) {
		for i := range vs.Vectors {
			f(&vs.Vectors[i])
		}
	})
}

// editVectorFile rewrites the signature vector file of dir through f.
func editVectorFile(t *testing.T, dir string, f func(*sigVectors)) {
	t.Helper()
	path := filepath.Join(dir, sigVectorsFile)
	var vs sigVectors
	if err := decodeStrict(path, &vs); err != nil {
		t.Fatal(err)
	}
	f(&vs)
	b, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

// edit replaces old with new in path (n times, -1 for all) and fails the
// test when old is not there: a break that breaks nothing proves nothing.
func edit(t *testing.T, path, old, new string, n int) {
	t.Helper()
	s := readFile(t, path)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	writeFile(t, path, strings.Replace(s, old, new, n))
}

func removeGlob(t *testing.T, dir, pattern string) {
	t.Helper()
	for _, f := range mustGlob(t, filepath.Join(dir, pattern)) {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("glob %s: %v (%d files)", pattern, err, len(m))
	}
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
