package maildir

import (
	"strings"
	"testing"
)

func TestMessageIDFrom(t *testing.T) {
	long := strings.Repeat("x", 9000)
	for _, c := range []struct{ name, in, want string }{
		{"simple", "From: a@b\r\nMessage-ID: <abc@example.com>\r\n\r\nbody", "<abc@example.com>"},
		{"bare LF", "From: a@b\nMessage-ID: <abc@example.com>\n\nbody", "<abc@example.com>"},
		{"case", "message-id: <x@y>\r\n\r\n", "<x@y>"},
		{"upper", "MESSAGE-ID:<x@y>\r\n\r\n", "<x@y>"},
		{"space before colon", "Message-ID : <x@y>\r\n\r\n", "<x@y>"},
		{"folded", "Subject: s\r\nMessage-ID:\r\n <folded@example.com>\r\nTo: t\r\n\r\n", "<folded@example.com>"},
		{"folded tab", "Message-ID: <a@b>\r\n\tcomment\r\n\r\n", "<a@b> comment"},
		{"inner spaces", "Message-ID:   <a@b>   \r\n\r\n", "<a@b>"},
		{"none", "From: a@b\r\nSubject: no id\r\n\r\nMessage-ID: <in-body@x>\r\n", ""},
		{"first wins", "Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n", "<first@x>"},
		{"last header", "From: a\r\nMessage-ID: <last@x>\r\n\r\n", "<last@x>"},
		{"no body", "From: a\r\nMessage-ID: <eof@x>", "<eof@x>"},
		{"no body LF", "From: a\r\nMessage-ID: <eof@x>\n", "<eof@x>"},
		{"empty", "", ""},
		{"only body", "\r\nMessage-ID: <x@y>\r\n", ""},
		{"resent", "Resent-Message-ID: <r@x>\r\nMessage-ID: <m@x>\r\n\r\n", "<m@x>"},
		{"not the header", "X-Message-ID: <x@x>\r\nMessage-IDs: <y@y>\r\n\r\n", ""},
		{"long line before", "X-Long: " + long + "\r\nMessage-ID: <after-long@x>\r\n\r\n", "<after-long@x>"},
		{"long line after", "Message-ID: <before-long@x>\r\nX-Long: " + long + "\r\n\r\n", "<before-long@x>"},
		{"long id", "Subject: hi\r\nMessage-ID: <" + long + "@x>\r\n\r\n", "<" + long + "@x>"},
		{"long folded", "Message-ID: <a@b>\r\nReferences: " + strings.Repeat("<ref@example.com> ", 600) + "\r\n\r\n", "<a@b>"},
	} {
		if got := messageIDFrom(strings.NewReader(c.in)); got != c.want {
			t.Errorf("%s: messageIDFrom = %.60q, want %.60q", c.name, got, c.want)
		}
	}
}
