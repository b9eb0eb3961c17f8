package twiliosig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ErrUnknownAccount: the request names no account, or one the Keyring has
// no token for. The ingester answers it with 403.
var ErrUnknownAccount = errors.New("unknown AccountSid")

// accountSidPattern is Twilio's account SID: AC and 32 hex digits.
var accountSidPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)

// Keyring chooses the tokens a request is verified with.
//
// Twilio signs a request with the primary auth token of the account that
// owns the resource: a subaccount's callbacks are signed with the
// subaccount's own token, not its parent's (twilio/twilio-php#436,
// twilio/twilio-node#693; a secondary token signs nothing until it is
// promoted, https://www.twilio.com/docs/api/errors/57012). So with tokens
// per account (NewKeyring) a request is verified only with the tokens of
// the account it names, and one account's token cannot vouch for another
// account's request. A single-account Keyring (SingleAccount) verifies
// every request with its tokens, whatever account it names.
//
// A Keyring is immutable and safe for concurrent use.
type Keyring struct {
	any      *Verifier            // SingleAccount: every request
	accounts map[string]*Verifier // NewKeyring: by AccountSid
}

// SingleAccount returns a Keyring verifying every request with tokens
// (TWILIO_AUTH_TOKEN: one account, a rotated token listed next to the new).
func SingleAccount(tokens []string) (*Keyring, error) {
	v, err := NewVerifier(tokens)
	if err != nil {
		return nil, err
	}
	return &Keyring{any: v}, nil
}

// NewKeyring returns a Keyring verifying a request only with the tokens
// of the account it names. Every account needs at least one token.
func NewKeyring(accounts map[string][]string) (*Keyring, error) {
	if len(accounts) == 0 {
		return nil, ErrNoToken
	}
	k := &Keyring{accounts: make(map[string]*Verifier, len(accounts))}
	for sid, tokens := range accounts {
		if !accountSidPattern.MatchString(sid) {
			return nil, fmt.Errorf("twiliosig: %q is not an account SID (AC and 32 hex digits)", sid)
		}
		v, err := NewVerifier(tokens)
		if err != nil {
			return nil, fmt.Errorf("twiliosig: account %s: %w", sid, err)
		}
		k.accounts[sid] = v
	}
	return k, nil
}

// PerAccount reports whether the Keyring ties tokens to accounts.
func (k *Keyring) PerAccount() bool { return k.any == nil }

// Accounts returns the number of accounts with tokens (1 for SingleAccount).
func (k *Keyring) Accounts() int {
	if k.any != nil {
		return 1
	}
	return len(k.accounts)
}

// For returns the Verifier for a request naming accountSid, or
// ErrUnknownAccount.
func (k *Keyring) For(accountSid string) (*Verifier, error) {
	if k.any != nil {
		return k.any, nil
	}
	if v, ok := k.accounts[accountSid]; ok {
		return v, nil
	}
	return nil, ErrUnknownAccount
}

// VerifyForm checks a form request (see [Verifier.VerifyForm]) with the
// tokens of the account its AccountSid parameter names (form, or the
// query of a GET).
func (k *Keyring) VerifyForm(fullURL string, form url.Values, signature string) error {
	if signature == "" {
		return ErrMissingSignature
	}
	params := form
	if params == nil {
		if u, err := url.Parse(fullURL); err == nil {
			params = u.Query()
		}
	}
	v, err := k.For(params.Get("AccountSid"))
	if err != nil {
		return err
	}
	return v.VerifyForm(fullURL, form, signature)
}

// VerifyJSON checks an Event Streams request (see [Verifier.VerifyJSON])
// with the tokens of the account its CloudEvents name (AccountOfEvents).
func (k *Keyring) VerifyJSON(fullURL string, body []byte, signature string) error {
	if signature == "" {
		return ErrMissingSignature
	}
	sid := ""
	if k.any == nil {
		var err error
		if sid, err = AccountOfEvents(body); err != nil {
			return err
		}
	}
	v, err := k.For(sid)
	if err != nil {
		return err
	}
	return v.VerifyJSON(fullURL, body, signature)
}

// AccountOfEvents returns the account every CloudEvent of an Event Streams
// body (one event or an array) names in its data: account_sid (Verify),
// accountSid (messaging), or request.parameters.AccountSid (voice status
// callbacks, whose data is the callback's request). A body naming no
// account, or two (across events or within one), is ErrUnknownAccount: one
// signature cannot be checked for two accounts.
func AccountOfEvents(body []byte) (string, error) {
	type event struct {
		Data struct {
			Snake   string `json:"account_sid"`
			Camel   string `json:"accountSid"`
			Request struct {
				Parameters struct {
					AccountSid string `json:"AccountSid"`
				} `json:"parameters"`
			} `json:"request"`
		} `json:"data"`
	}
	var events []event
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] == '{' {
		var one event
		if err := json.Unmarshal(b, &one); err != nil {
			return "", ErrUnknownAccount
		}
		events = []event{one}
	} else if err := json.Unmarshal(b, &events); err != nil {
		return "", ErrUnknownAccount
	}
	sid := ""
	for _, e := range events {
		named := false
		for _, s := range []string{e.Data.Snake, e.Data.Camel, e.Data.Request.Parameters.AccountSid} {
			if s == "" {
				continue
			}
			if sid != "" && s != sid {
				return "", ErrUnknownAccount
			}
			sid, named = s, true
		}
		if !named {
			return "", ErrUnknownAccount
		}
	}
	if sid == "" {
		return "", ErrUnknownAccount
	}
	return sid, nil
}

// ParseAccountTokens reads the per-account form of the tokens:
// entries `AC…=token[;token2]` separated by commas or new lines (a file of
// them for many subaccounts); blank lines and lines starting with # are
// skipped. The tokens of an account named twice are joined. Errors name
// the entry by its position and account, never a token.
func ParseAccountTokens(s string) (map[string][]string, error) {
	out := map[string][]string{}
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' })
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		sid, tokens, ok := strings.Cut(e, "=")
		sid = strings.TrimSpace(sid)
		if !ok || !accountSidPattern.MatchString(sid) {
			return nil, fmt.Errorf("entry %d: want AC…=token[;token2], the account SID being AC and 32 hex digits", i+1)
		}
		n := len(out[sid])
		for _, t := range strings.Split(tokens, ";") {
			if t = strings.TrimSpace(t); t != "" {
				out[sid] = append(out[sid], t)
			}
		}
		if len(out[sid]) == n {
			return nil, fmt.Errorf("entry %d (%s): no token", i+1, sid)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoToken
	}
	return out, nil
}
