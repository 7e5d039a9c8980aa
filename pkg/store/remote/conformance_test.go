package remote

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/storetest"
)

// testLogger logs to stderr when IMAPCTL_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("IMAPCTL_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// dialTest connects to srv over implicit TLS as the default user.
func dialTest(t testing.TB, srv *servetest.Server, mutate func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		URL:      "imaps://" + servetest.DefaultUser + "@" + srv.TLSAddr,
		Password: servetest.DefaultPassword,
		RootCAs:  srv.RootCAs,
		Timeout:  10 * time.Second,
		Retry:    RetryPolicy{BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		Logger:   testLogger(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	st, err := Dial(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Dial(%s): %v", cfg.URL, err)
	}
	return st
}

// emptyAccount deletes every mailbox but INBOX (a new serve account has
// Sent, Drafts, ...).
func emptyAccount(t testing.TB, st *Store) {
	t.Helper()
	infos, err := st.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for i := len(infos) - 1; i >= 0; i-- {
		if infos[i].Name == "INBOX" {
			continue
		}
		if err := st.Delete(t.Context(), infos[i].Name); err != nil {
			t.Fatalf("Delete(%q): %v", infos[i].Name, err)
		}
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		srv := servetest.Start(t, servetest.Options{NoSync: true})
		st := dialTest(t, srv, nil)
		emptyAccount(t, st)
		return st
	})
}
