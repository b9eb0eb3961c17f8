package logging

import "testing"

func TestPhone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"e164", "+15017122661", "+*******2661"},
		{"short", "123", "***"},
		{"empty", "", ""},
		{"whatsapp", "whatsapp:+15551234567", "whatsapp:+*******4567"},
		{"client", "client:alice", "client:*lice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Phone(tc.in); got != tc.want {
				t.Errorf("Phone(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNewRejectsBadLevel(t *testing.T) {
	t.Parallel()
	if _, err := New("loud", false); err == nil {
		t.Fatal("New(\"loud\") succeeded, want error naming LOG_LEVEL")
	}
	if _, err := New("debug", true); err != nil {
		t.Fatalf("New(debug, dev) = %v", err)
	}
}
