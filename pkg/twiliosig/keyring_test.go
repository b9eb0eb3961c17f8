package twiliosig_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/twiliosig"
)

// Fake accounts and tokens, shaped like real ones.
const (
	accountA = "AC0000000000000000000000000000000a"
	accountB = "AC0000000000000000000000000000000b"
	tokenA   = "test-token-of-account-a"
	tokenA2  = "test-token-of-account-a-rotated"
	tokenB   = "test-token-of-account-b"
	hookURL  = "https://hooks.example.com/webhooks/twilio/message-status"
)

func mustKeyring(t *testing.T, spec string) *twiliosig.Keyring {
	t.Helper()
	accounts, err := twiliosig.ParseAccountTokens(spec)
	if err != nil {
		t.Fatal(err)
	}
	k, err := twiliosig.NewKeyring(accounts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func formOf(account string) (url.Values, string) {
	raw := "AccountSid=" + account + "&MessageSid=SM1&MessageStatus=delivered"
	f, _ := url.ParseQuery(raw)
	return f, raw
}

// A form is verified only with the tokens of the account it names: A's
// token cannot vouch for a request claiming B, either account's rotated
// tokens both work, and an account the keyring does not hold is refused.
func TestKeyringForm(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, accountA+"="+tokenA+";"+tokenA2+", "+accountB+"="+tokenB)
	for _, tc := range []struct {
		name, account, token string
		want                 error
	}{
		{"A signed by A", accountA, tokenA, nil},
		{"A signed by A's rotated token", accountA, tokenA2, nil},
		{"B signed by B", accountB, tokenB, nil},
		{"B signed by A", accountB, tokenA, twiliosig.ErrInvalidSignature},
		{"A signed by B", accountA, tokenB, twiliosig.ErrInvalidSignature},
		{"unknown account signed by A", "AC0000000000000000000000000000000c", tokenA, twiliosig.ErrUnknownAccount},
		{"no account signed by A", "", tokenA, twiliosig.ErrUnknownAccount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			form, raw := formOf(tc.account)
			if tc.account == "" {
				form.Del("AccountSid")
				raw = form.Encode()
			}
			err := k.VerifyForm(hookURL, form, refSign(t, tc.token, hookURL, raw))
			if !errors.Is(err, tc.want) {
				t.Errorf("VerifyForm = %v, want %v", err, tc.want)
			}
		})
	}
}

// A GET names its account in the query.
func TestKeyringGet(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, accountA+"="+tokenA+","+accountB+"="+tokenB)
	u := hookURL + "?AccountSid=" + accountB + "&MessageSid=SM1"
	if err := k.VerifyForm(u, nil, refSign(t, tokenB, u, "")); err != nil {
		t.Errorf("GET signed by its account: %v", err)
	}
	if err := k.VerifyForm(u, nil, refSign(t, tokenA, u, "")); !errors.Is(err, twiliosig.ErrInvalidSignature) {
		t.Errorf("GET claiming B signed by A = %v, want ErrInvalidSignature", err)
	}
}

// An Event Streams body is verified with the tokens of the account its
// CloudEvents name; a body naming two accounts, or none, is refused.
func TestKeyringJSON(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t, accountA+"="+tokenA+"\n# a comment\n"+accountB+"="+tokenB+"\n")
	event := func(account string) string {
		return `{"type":"com.twilio.accountsecurity.verify.verification.approved","id":"EZ1","data":{"account_sid":"` + account + `"}}`
	}
	for _, tc := range []struct {
		name, body, token string
		want              error
	}{
		{"B's array signed by B", "[" + event(accountB) + "]", tokenB, nil},
		{"one event signed by its account", event(accountA), tokenA, nil},
		{"camel-case accountSid", `[{"data":{"accountSid":"` + accountA + `"}}]`, tokenA, nil},
		{"voice: the callback's AccountSid", `[{"data":{"request":{"parameters":{"AccountSid":"` + accountB + `"}}}}]`, tokenB, nil},
		{"voice claiming B signed by A", `[{"data":{"request":{"parameters":{"AccountSid":"` + accountB + `"}}}}]`, tokenA, twiliosig.ErrInvalidSignature},
		{"two accounts in one event", `[{"data":{"accountSid":"` + accountA + `","request":{"parameters":{"AccountSid":"` + accountB + `"}}}}]`, tokenA, twiliosig.ErrUnknownAccount},
		{"an event without account after one with", "[" + event(accountA) + `,{"data":{}}]`, tokenA, twiliosig.ErrUnknownAccount},
		{"B's array signed by A", "[" + event(accountB) + "]", tokenA, twiliosig.ErrInvalidSignature},
		{"two accounts in one body", "[" + event(accountA) + "," + event(accountB) + "]", tokenA, twiliosig.ErrUnknownAccount},
		{"no account", `[{"data":{}}]`, tokenA, twiliosig.ErrUnknownAccount},
		{"not JSON", `[`, tokenA, twiliosig.ErrUnknownAccount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			signedURL, sig := twiliosig.SignJSON(hookURL, []byte(tc.body), tc.token)
			err := k.VerifyJSON(signedURL, []byte(tc.body), sig)
			if !errors.Is(err, tc.want) {
				t.Errorf("VerifyJSON = %v, want %v", err, tc.want)
			}
		})
	}
}

// The single-account form verifies every request with its tokens, as
// TWILIO_AUTH_TOKEN always did, whatever account the request names.
func TestSingleAccountUnchanged(t *testing.T) {
	t.Parallel()
	k, err := twiliosig.SingleAccount([]string{"old-" + tokenA, tokenA})
	if err != nil {
		t.Fatal(err)
	}
	for _, account := range []string{accountA, accountB, ""} {
		form, raw := formOf(account)
		if err := k.VerifyForm(hookURL, form, refSign(t, tokenA, hookURL, raw)); err != nil {
			t.Errorf("account %q: %v", account, err)
		}
	}
	form, raw := formOf(accountA)
	if err := k.VerifyForm(hookURL, form, refSign(t, tokenB, hookURL, raw)); !errors.Is(err, twiliosig.ErrInvalidSignature) {
		t.Errorf("another token = %v, want ErrInvalidSignature", err)
	}
	if err := k.VerifyForm(hookURL, form, ""); !errors.Is(err, twiliosig.ErrMissingSignature) {
		t.Errorf("no signature = %v, want ErrMissingSignature", err)
	}
	if k.PerAccount() || k.Accounts() != 1 {
		t.Errorf("PerAccount, Accounts = %v, %d; want false, 1", k.PerAccount(), k.Accounts())
	}
}

// Malformed entries are errors that name the entry, never a token.
func TestParseAccountTokensErrors(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{
		"",
		"secret-token",
		"AC123=secret-token",
		accountA + "=",
		accountA + "= ; ",
		"BC0000000000000000000000000000000a=secret-token",
	} {
		_, err := twiliosig.ParseAccountTokens(spec)
		if err == nil {
			t.Errorf("ParseAccountTokens(%q) = nil error", spec)
			continue
		}
		if strings.Contains(err.Error(), "secret-token") {
			t.Errorf("the error of %q reveals the token: %v", spec, err)
		}
	}
	got, err := twiliosig.ParseAccountTokens(accountA + "=t1;t2\n" + accountA + "=t3")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got[accountA], ",") != "t1,t2,t3" {
		t.Errorf("tokens of an account named twice = %v, want t1,t2,t3", got[accountA])
	}
}
