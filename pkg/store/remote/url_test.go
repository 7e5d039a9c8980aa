package remote

import (
	"errors"
	"strings"
	"testing"

	"github.com/imapctl/imapctl/pkg/store"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		want    Endpoint
		wantErr string // substring of the error; "" means success
	}{
		{url: "imaps://alice@mail.example.com", want: Endpoint{Host: "mail.example.com", Port: 993, User: "alice", Security: ImplicitTLS}},
		{url: "imaps://alice@mail.example.com:1993", want: Endpoint{Host: "mail.example.com", Port: 1993, User: "alice", Security: ImplicitTLS}},
		{url: "imap://bob@mail.example.com", want: Endpoint{Host: "mail.example.com", Port: 143, User: "bob", Security: StartTLS}},
		{url: "IMAP://bob@mail.example.com:10143/", want: Endpoint{Host: "mail.example.com", Port: 10143, User: "bob", Security: StartTLS}},
		{url: "imap://bob@mail.example.com?tls=starttls", want: Endpoint{Host: "mail.example.com", Port: 143, User: "bob", Security: StartTLS}},
		{url: "imap://bob@127.0.0.1:1143?tls=none", want: Endpoint{Host: "127.0.0.1", Port: 1143, User: "bob", Security: NoTLS}},
		{url: "imap://bob@[::1]:1143?tls=none", want: Endpoint{Host: "::1", Port: 1143, User: "bob", Security: NoTLS}},
		{url: "imap://bob@localhost:1143?tls=none", want: Endpoint{Host: "localhost", Port: 1143, User: "bob", Security: NoTLS}},
		{url: "imaps://user%40example.com@imap.example.com", want: Endpoint{Host: "imap.example.com", Port: 993, User: "user@example.com", Security: ImplicitTLS}},
		{url: "imaps://user@example.com@imap.example.com", want: Endpoint{Host: "imap.example.com", Port: 993, User: "user@example.com", Security: ImplicitTLS}},
		{url: "imaps://alice@h?auth=login", want: Endpoint{Host: "h", Port: 993, User: "alice", Security: ImplicitTLS, Auth: AuthLogin}},
		{url: "imaps://alice@h?auth=PLAIN", want: Endpoint{Host: "h", Port: 993, User: "alice", Security: ImplicitTLS, Auth: AuthPlain}},

		{url: "imaps://alice:secret@mail.example.com", wantErr: "contains a password"},
		{url: "imaps://alice:@mail.example.com", wantErr: "contains a password"},
		{url: "imap://bob@mail.example.com?tls=none", wantErr: "allowed only to a loopback"},
		{url: "imap://bob@10.0.0.1?tls=none", wantErr: "allowed only to a loopback"},
		{url: "imap://bob@127.0.0.1.example.com?tls=none", wantErr: "allowed only to a loopback"},
		{url: "imaps://bob@127.0.0.1?tls=none", wantErr: "contradicts imaps://"},
		{url: "imap://bob@h?tls=maybe", wantErr: "unknown tls"},
		{url: "imap://bob@h?auth=xoauth2", wantErr: "unknown auth"},
		{url: "imap://bob@h?foo=1", wantErr: "unknown parameter"},
		{url: "imap://bob@h?tls=none&tls=none", wantErr: "given 2 times"},
		{url: "pop3://bob@h", wantErr: "unsupported scheme"},
		{url: "mail.example.com", wantErr: "missing scheme"},
		{url: "imaps://mail.example.com", wantErr: "no user name"},
		{url: "imaps://alice@", wantErr: "no host"},
		{url: "imaps://alice@h:0", wantErr: "invalid port"},
		{url: "imaps://alice@h:99999", wantErr: "invalid port"},
		{url: "imaps://alice@h/INBOX", wantErr: "unexpected path"},
		{url: "imaps:alice@h", wantErr: "missing //"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			ep, err := ParseURL(tc.url)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %+v, want an error with %q", tc.url, ep, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
				}
				if !errors.Is(err, ErrConfig) {
					t.Errorf("error %v does not match ErrConfig", err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q reveals the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tc.url, err)
			}
			if *ep != tc.want {
				t.Errorf("ParseURL(%q) = %+v, want %+v", tc.url, *ep, tc.want)
			}
			// String gives a URL that parses to the same endpoint.
			again, err := ParseURL(ep.String())
			if err != nil || *again != *ep {
				t.Errorf("ParseURL(%q) = %+v, %v; want %+v", ep.String(), again, err, *ep)
			}
		})
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100, MaxDelay: 1000}.withDefaults()
	for n := 1; n <= 10; n++ {
		full := min(int64(100)<<(n-1), 1000)
		for range 50 {
			d := int64(p.delay(n))
			if d < full/2 || d > full {
				t.Fatalf("delay(%d) = %d, want in [%d, %d]", n, d, full/2, full)
			}
		}
	}
	if got := (RetryPolicy{}).withDefaults(); got.MaxAttempts != DefaultMaxAttempts || got.BaseDelay != DefaultBaseDelay || got.MaxDelay != DefaultMaxDelay {
		t.Errorf("defaults: %+v", got)
	}
}

func TestValidFlag(t *testing.T) {
	for f, want := range map[string]bool{
		`\Seen`: true, `$Forwarded`: true, `project-x`: true, `NonJunk`: true, `\*`: false,
		``: false, `\`: false, `two words`: false, `(x)`: false, `a"b`: false, `é`: false, `a\b`: false, `x]`: false,
	} {
		if got := validFlag(f); got != want {
			t.Errorf("validFlag(%q) = %v, want %v", f, got, want)
		}
	}
}

func TestMessageIDParse(t *testing.T) {
	for in, want := range map[string]string{
		"Message-ID: <a@b>\r\n\r\n":                  "<a@b>",
		"message-id:<a@b>\r\n\r\n":                   "<a@b>",
		"Message-ID:\r\n  <a@b>\r\n\r\n":             "<a@b>",
		"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n": "<a@b>",
		"\r\n":   "",
		"":       "",
		"X: y\n": "",
	} {
		if got := messageID([]byte(in)); got != want {
			t.Errorf("messageID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUIDSet(t *testing.T) {
	got := uidSet(sortedUIDs([]store.UID{5, 1, 2, 3, 9, 10, 2, 0})).String()
	if got != "1:3,5,9:10" {
		t.Errorf("uidSet = %q", got)
	}
	if n := len(chunks(sortedUIDs(make([]store.UID, 0)), 3)); n != 0 {
		t.Errorf("chunks of nothing: %d", n)
	}
}
