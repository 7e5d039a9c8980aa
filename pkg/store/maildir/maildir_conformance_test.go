package maildir

import (
	"testing"

	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceNoSync(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), Options{NoSync: true, KeepLoaded: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
