package forwarder

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/zen-twilio/zen/pkg/pack"
)

// authorizer sets a target's credentials on a request. Safe for concurrent
// use.
type authorizer func(req *http.Request) error

// newAuthorizer returns the authorizer of a's type (pack.TargetAuthTypes).
// OAuth2 client credentials are fetched from the token URL on first use,
// cached, and fetched again 10 s before they expire (oauth2's
// ReuseTokenSource); client is used for the token requests.
func newAuthorizer(a pack.Auth, client *http.Client) authorizer {
	switch a.Type {
	case "bearer":
		v := "Bearer " + a.Token.Reveal()
		return func(req *http.Request) error { req.Header.Set("Authorization", v); return nil }
	case "api_key":
		key, v := a.Key, a.Token.Reveal()
		return func(req *http.Request) error { req.Header.Set(key, v); return nil }
	case "basic":
		user, pass := a.Username, a.Token.Reveal()
		return func(req *http.Request) error { req.SetBasicAuth(user, pass); return nil }
	case "oauth2":
		cc := clientcredentials.Config{ClientID: a.ClientID, ClientSecret: a.Token.Reveal(), TokenURL: a.TokenURL, Scopes: a.Scopes}
		ts := cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, client))
		return func(req *http.Request) error {
			tok, err := ts.Token()
			if err != nil {
				return fmt.Errorf("oauth2 token from %s: %w", a.TokenURL, err)
			}
			tok.SetAuthHeader(req)
			return nil
		}
	}
	return func(*http.Request) error { return nil }
}
