package probe

import (
	"testing"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

func TestTry(t *testing.T) {
	_ = imapserver.Options{}
	_ = dns.Msg{}
	_ = errgroup.Group{}
}
